//! `cargo xtask bench`: tracer against the untraced program, the eBPF floors and
//! the peers (bpftrace, strace, perf trace), in one run, interleaved, medians
//! of several rounds; in each round also one more run of each eBPF scenario
//! with the kernel's run-time statistics on, for each program's own ns per
//! run; writes BENCHMARKS.md.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{
    bpfstats::{Held, ProgStat, StatsOn},
    util::{self, step, Env},
};

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub rounds: usize,
    /// geteuid calls per loop for the eBPF tools.
    pub iters: u64,
    /// geteuid calls per loop under strace (ptrace makes each call ~1000x dearer).
    pub strace_iters: u64,
    /// geteuid calls per loop under perf trace.
    pub perf_iters: u64,
    /// Calls of the fixture's function per loop under a uprobe (a trap per call).
    pub uprobe_iters: u64,
}

pub const FULL: Size = Size {
    rounds: 5,
    iters: 4_000_000,
    strace_iters: 20_000,
    perf_iters: 20_000,
    uprobe_iters: 400_000,
};
pub const QUICK: Size = Size {
    rounds: 1,
    iters: 100_000,
    strace_iters: 2_000,
    perf_iters: 2_000,
    uprobe_iters: 20_000,
};

pub struct Bins {
    pub tracer: PathBuf,
    pub fixture: PathBuf,
}

/// A tool running in the background until we stop it.
pub struct Background {
    child: Child,
    startup: Duration,
    _drain: Vec<std::thread::JoinHandle<()>>,
    /// A peer (not tracer): SIGINT is sent again if the first is not acted
    /// on (bpftrace 0.17 can miss one that lands while it is still
    /// attaching, and then runs on; a quick pass saw it once). tracer gets
    /// one SIGINT: missing it would be a bug to report.
    peer: bool,
}

impl Background {
    /// Start `cmd` and wait until a line of stdout or stderr contains `ready`.
    pub fn start(cmd: &mut Command, ready: &str) -> Result<Self> {
        let t0 = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", util::show(cmd)))?;
        let (tx, rx) = mpsc::channel::<String>();
        let mut drain = Vec::new();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            drain.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            }));
        }
        drop(tx);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "{} never became ready: {}",
                        util::show(cmd),
                        seen.join("\n")
                    );
                }
            }
        }
        let startup = t0.elapsed();
        // Keep draining so the tool never blocks on a full pipe.
        drain.push(std::thread::spawn(move || for _ in rx {}));
        Ok(Self {
            child,
            startup,
            _drain: drain,
            peer: !cmd.get_program().to_string_lossy().ends_with("tracer"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        kib(self.child.id(), "VmHWM:")
    }

    pub fn stop(mut self) -> Result<()> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t0 = Instant::now();
        let mut resent = Instant::now();
        while self.child.try_wait()?.is_none() {
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                bail!(
                    "{} did not stop on SIGINT",
                    if self.peer { "the peer" } else { "tracer" }
                );
            }
            if self.peer && resent.elapsed() > Duration::from_secs(5) {
                eprintln!("    the peer ran on 5 s after SIGINT: sent again");
                unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
                resent = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The statistics of the programs a background tool (`tool`, ready when it
/// prints `ready`) holds while `work` (a loop of `iters`) runs; statistics
/// must be on.
pub fn held_while(
    tool: &mut Command,
    ready: &str,
    work: &mut Command,
    iters: u64,
) -> Result<Vec<ProgStat>> {
    let mut held = Held::default();
    let t = Background::start(tool, ready)?;
    held.scan(t.pid());
    run_loop(work, iters, None)?;
    held.scan(t.pid());
    let stats = held.read()?;
    t.stop()?;
    Ok(stats)
}

/// One run of a command whose output includes the fixture's `loop_ns N`.
pub struct LoopRun {
    pub ns_per_call: f64,
    /// Wall time of the whole command (start-up and teardown included).
    wall_s: f64,
    /// Events the tool reported lost (`tracer: lost N events`), if any.
    lost: u64,
}

/// Run `cmd` to its end. With `watch`, take hold of the BPF programs it holds
/// while it runs (polling its fds every 2 ms).
pub fn run_loop(cmd: &mut Command, iters: u64, watch: Option<&mut Held>) -> Result<LoopRun> {
    let t0 = Instant::now();
    let out = match watch {
        None => cmd.stdin(Stdio::null()).output(),
        Some(held) => {
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("running {}", util::show(cmd)))?;
            let pid = child.id();
            let waiter = std::thread::spawn(move || child.wait_with_output());
            while !waiter.is_finished() {
                held.scan(pid);
                std::thread::sleep(Duration::from_millis(2));
            }
            waiter.join().expect("waiter thread")
        }
    }
    .with_context(|| format!("running {}", util::show(cmd)))?;
    let wall_s = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{} failed ({}): {err}", util::show(cmd), out.status);
    }
    let ns: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("loop_ns "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no loop_ns from {}: {text}{err}", util::show(cmd)))?;
    let lost = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("tracer: lost ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Ok(LoopRun {
        ns_per_call: ns as f64 / iters as f64,
        wall_s,
        lost,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Untraced,
    /// A tool running system-wide in the background: started, waited for until
    /// it prints `ready`, then the loop runs, then the tool gets SIGINT.
    Background {
        ready: &'static str,
    },
    /// The tool launches the loop itself.
    Launcher,
}

struct Scenario {
    name: &'static str,
    what: &'static str,
    kind: Kind,
    /// Program and arguments; `{tracer}` and `{fx}` name our binaries (`{fx}`
    /// also within an argument), `{n}` the iteration count (a lone `{loop}`
    /// expands to `{fx} geteuid {n}`).
    argv: &'static [&'static str],
    /// Extra environment of the tool (e.g. `TRACER_FALLBACK`).
    env: &'static [(&'static str, &'static str)],
    iters: u64,
    /// The untraced scenario whose time per call this one's "added" is over.
    base: &'static str,
    /// Times each syscall (both hooks and a clock read each): compared with the clock-reading floor.
    timing: bool,
    /// The peer this row is compared with (a scenario name).
    peer: Option<&'static str>,
    /// Runs BPF programs: gets a run with the kernel's statistics on.
    bpf: bool,
    /// Per round: ns per call.
    per_call: Vec<f64>,
    startup_ms: Vec<f64>,
    rss_kib: Vec<u64>,
    /// Launched runs: events delivered per second end to end, and events lost.
    events_per_s: Vec<f64>,
    lost: Vec<u64>,
    /// Per round, from the statistics run: the programs the tool held that ran
    /// (none if none was seen).
    kernel: Vec<Vec<ProgStat>>,
}

fn fixture_cmd(b: &Bins, iters: u64) -> Command {
    let mut c = Command::new(&b.fixture);
    c.args(["geteuid", &iters.to_string()]);
    c
}

impl Scenario {
    fn command(&self, b: &Bins) -> Command {
        let fx = b.fixture.to_string_lossy().into_owned();
        let n = self.iters.to_string();
        let argv: Vec<String> = self
            .argv
            .iter()
            .map(|a| match *a {
                "{tracer}" => b.tracer.to_string_lossy().into_owned(),
                "{fx}" => fx.clone(),
                "{n}" => n.clone(),
                "{loop}" => format!("{fx} geteuid {n}"),
                other => other.replace("{fx}", &fx),
            })
            .collect();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c.envs(self.env.iter().copied());
        c
    }

    fn env(mut self, env: &'static [(&'static str, &'static str)]) -> Self {
        self.env = env;
        self
    }

    fn timing(mut self) -> Self {
        self.timing = true;
        self
    }

    fn peer(mut self, peer: &'static str) -> Self {
        self.peer = Some(peer);
        self
    }

    fn base(mut self, base: &'static str) -> Self {
        self.base = base;
        self
    }

    fn no_bpf(mut self) -> Self {
        self.bpf = false;
        self
    }

    /// Run once and record the result.
    fn measure(&mut self, b: &Bins) -> Result<f64> {
        let n = self.iters;
        let per = match self.kind {
            Kind::Untraced => run_loop(&mut self.command(b), n, None)?.ns_per_call,
            Kind::Launcher => {
                let r = run_loop(&mut self.command(b), n, None)?;
                self.events_per_s
                    .push(n.saturating_sub(r.lost) as f64 / r.wall_s);
                self.lost.push(r.lost);
                r.ns_per_call
            }
            Kind::Background { ready } => {
                let tool = Background::start(&mut self.command(b), ready)?;
                let per = run_loop(&mut fixture_cmd(b, n), n, None)?.ns_per_call;
                self.rss_kib.push(tool.peak_rss_kib());
                self.startup_ms.push(tool.startup.as_secs_f64() * 1e3);
                tool.stop()?;
                per
            }
        };
        self.per_call.push(per);
        Ok(per)
    }

    /// Run once more with the kernel's run-time statistics on (only while it
    /// runs) and record each program's figures; the time per call of this run
    /// is not kept (the statistics add two clock reads per program run).
    /// Returns the run's kernel-side ns per call, if a program was seen running.
    fn measure_kernel(&mut self, b: &Bins) -> Result<Option<f64>> {
        let n = self.iters;
        let mut held = Held::default();
        let _on = StatsOn::enable()?;
        let progs = match self.kind {
            Kind::Untraced => return Ok(None),
            Kind::Launcher => {
                run_loop(&mut self.command(b), n, Some(&mut held))?;
                held.read()?
            }
            Kind::Background { ready } => {
                held_while(&mut self.command(b), ready, &mut fixture_cmd(b, n), n)?
            }
        };
        let per = per_call_of(&progs);
        self.kernel.push(progs);
        Ok(per)
    }

    /// Per round: kernel-side ns per call (`None` where no program was seen).
    fn kernel_rounds(&self) -> Vec<Option<f64>> {
        self.kernel.iter().map(|p| per_call_of(p)).collect()
    }

    fn kernel_per_call(&self) -> Option<f64> {
        let v: Vec<f64> = self.kernel_rounds().into_iter().flatten().collect();
        (!v.is_empty()).then(|| median(&v))
    }

    /// The programs that ran at least 1% as often as the busiest (the fork, exec
    /// and exit trackers do not), by name: median runs and ns per run over the
    /// rounds, busiest first.
    fn hot_programs(&self) -> Vec<(String, f64, f64)> {
        let mut by_name: std::collections::BTreeMap<&str, (Vec<f64>, Vec<f64>)> =
            Default::default();
        for round in &self.kernel {
            let busiest = round.iter().map(|p| p.run_cnt).max().unwrap_or(0);
            for p in round.iter().filter(|p| p.run_cnt * 100 >= busiest) {
                let e = by_name.entry(&p.name).or_default();
                e.0.push(p.run_cnt as f64);
                e.1.push(p.ns_per_run());
            }
        }
        let mut v: Vec<(String, f64, f64)> = by_name
            .into_iter()
            .map(|(name, (runs, ns))| (name.to_string(), median(&runs), median(&ns)))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Kernel-side ns per call: the run time of all the programs over the runs of
/// the busiest one (the hook every call passes).
fn per_call_of(progs: &[ProgStat]) -> Option<f64> {
    let runs = progs.iter().map(|p| p.run_cnt).max()?;
    let ns: u64 = progs.iter().map(|p| p.run_time_ns).sum();
    Some(ns as f64 / runs as f64)
}

const BPFTRACE_SYSWIDE: &str = "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }";
const BPFTRACE_PID: &str =
    "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }";

/// The latency one-liner: the entry time per thread in a hash map, summed by
/// syscall id on exit (bpftrace's idiom for `syscount -L` / `strace -c` times).
const BPFTRACE_LAT_SYSWIDE: &str = "tracepoint:raw_syscalls:sys_enter { @s[tid] = nsecs; } \
     tracepoint:raw_syscalls:sys_exit /@s[tid]/ { @t[args->id] = sum(nsecs - @s[tid]); delete(@s[tid]); }";
const BPFTRACE_LAT_PID: &str = "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @s[tid] = nsecs; } \
     tracepoint:raw_syscalls:sys_exit /@s[tid]/ { @t[args->id] = sum(nsecs - @s[tid]); delete(@s[tid]); }";
const HASH_ENTRY: &[(&str, &str)] = &[("TRACER_FALLBACK", "task-storage")];
const NO_COOKIES: &[(&str, &str)] = &[("TRACER_FALLBACK", "cookies")];

/// The "added ns per call" cell: `-` for the untraced baselines.
fn added_cell(untraced: bool, added: &[f64]) -> String {
    if untraced {
        "-".into()
    } else {
        format!("{:.1}", median(added))
    }
}

pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn scenarios(size: Size) -> Vec<Scenario> {
    let mk = |name, what, kind, argv, iters| Scenario {
        name,
        what,
        kind,
        argv,
        env: &[],
        iters,
        base: UNTRACED,
        timing: false,
        peer: None,
        bpf: kind != Kind::Untraced,
        per_call: vec![],
        startup_ms: vec![],
        rss_kib: vec![],
        events_per_s: vec![],
        lost: vec![],
        kernel: vec![],
    };
    let bg = |ready| Kind::Background { ready };
    vec![
        mk(UNTRACED, "the loop alone: the baseline every other row is compared with", Kind::Untraced, &["{fx}", "geteuid", "{n}"], size.iters),
        mk(FLOOR, "the least any eBPF syscall counter can cost (an empty program on the hook tracer syscalls uses)", bg("Attached"), &["{tracer}", "floor"], size.iters),
        mk(FLOOR2, "the floor for counting with times and errors (both hooks)", bg("Attached"), &["{tracer}", "floor", "--exit"], size.iters),
        mk(FLOOR_CLOCK, "the floor for timing syscalls: both hooks, each program reads the clock once and nothing else", bg("Attached"), &["{tracer}", "floor", "--exit", "--clock"], size.iters).timing(),
        mk(OURS, "system-wide counting, the default (sys_enter only, per-CPU array)", bg("Tracing"), &["{tracer}", "syscalls"], size.iters).peer(BPFTRACE),
        mk(OURS_L, "system-wide with time per syscall (both hooks, task-local entry time)", bg("Tracing"), &["{tracer}", "syscalls", "-L"], size.iters).timing().peer(BPFTRACE_LAT),
        mk(OURS_L_HASH, "the same on the old-kernel path: entry time in a hash map keyed by tid (TRACER_FALLBACK=task-storage)", bg("Tracing"), &["{tracer}", "syscalls", "-L"], size.iters).env(HASH_ENTRY).timing().peer(BPFTRACE_LAT),
        mk(SERVE, "Prometheus metrics: the hooks of tracer syscalls -L with errnos and a duration histogram per syscall (not scraped while measured)", bg("Tracing"), &["{tracer}", "serve", "--listen", "127.0.0.1:0"], size.iters).timing().peer(OURS_L),
        mk(SERVE_BY, "the same with a comm label (a per-CPU hash keyed by comm and syscall)", bg("Tracing"), &["{tracer}", "serve", "--listen", "127.0.0.1:0", "--by", "comm"], size.iters).timing().peer(OURS_L),
        mk(OURS_CGROUP, "system-wide counting of the tasks under a cgroup: the root one (`--cgroup .`), so every call pays the in-kernel cgroup test and passes it", bg("Tracing"), &["{tracer}", "syscalls", "--cgroup", "."], size.iters).peer(OURS),
        mk("tracer syscalls -P", "system-wide per process (per-CPU hash keyed by pid and syscall)", bg("Tracing"), &["{tracer}", "syscalls", "-P"], size.iters),
        mk(OURS_CMD, "strace -c's job: the launched command only, with times and errors, forks followed", Kind::Launcher, &["{tracer}", "syscalls", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters).timing().peer(BPFTRACE_LAT_CMD),
        mk(OURS_CMD_HASH, "the same on the old-kernel path: entry time in a hash map keyed by tid (TRACER_FALLBACK=task-storage)", Kind::Launcher, &["{tracer}", "syscalls", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters).env(HASH_ENTRY).timing().peer(BPFTRACE_LAT_CMD),
        mk(BPFTRACE, "bpftrace's system-wide count by syscall id (classic tracepoint, hash map)", bg("Attaching"), &["bpftrace", "-e", BPFTRACE_SYSWIDE], size.iters),
        mk("bpftrace -c CMD, pid predicate", "bpftrace counting one command's syscalls", Kind::Launcher, &["bpftrace", "-e", BPFTRACE_PID, "-c", "{loop}"], size.iters),
        mk(BPFTRACE_LAT, "bpftrace's latency one-liner, system-wide: @s[tid] = nsecs on enter; on exit, sum by syscall id and delete", bg("Attaching"), &["bpftrace", "-e", BPFTRACE_LAT_SYSWIDE], size.iters).timing(),
        mk(BPFTRACE_LAT_CMD, "the latency one-liner for one command (-c, pid == cpid on enter)", Kind::Launcher, &["bpftrace", "-e", BPFTRACE_LAT_PID, "-c", "{loop}"], size.iters).timing(),
        mk(STRACE, "ptrace-based counting (fewer iterations, scaled per call)", Kind::Launcher, &["strace", "-f", "-c", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.strace_iters).no_bpf(),
        mk(TRACE, "strace's other job, a line per call: every geteuid as a ring-buffer event, formatted into /dev/null", Kind::Launcher, &["{tracer}", "trace", "-e", "geteuid", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters),
        mk(TRACE_JSON, "the same events as JSON lines", Kind::Launcher, &["{tracer}", "trace", "--json", "-e", "geteuid", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters),
        mk(STRACE_LINES, "strace printing each call (fewer iterations, scaled per call)", Kind::Launcher, &["strace", "-f", "-e", "trace=geteuid", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.strace_iters).no_bpf(),
        mk("perf trace -s", "perf's syscall summary (fewer iterations, scaled per call)", Kind::Launcher, &["perf", "trace", "-s", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.perf_iters).no_bpf(),
        mk(UNTRACED_WORK, "the fixture's function called in a loop: the baseline of the uprobe rows", Kind::Untraced, &["{fx}", "work-loop", "{n}"], size.uprobe_iters),
        mk(UPROBE, "the launched command's calls of one function, counted (uprobe, BPF cookie names the function)", Kind::Launcher, &["{tracer}", "uprobe", "-o", "/dev/null", "{fx}:tracer_fixture_work", "--", "{fx}", "work-loop", "{n}"], size.uprobe_iters).base(UNTRACED_WORK),
        mk(UPROBE_NO_COOKIES, "the same on the old-kernel path: the function found without BPF cookies (TRACER_FALLBACK=cookies)", Kind::Launcher, &["{tracer}", "uprobe", "-o", "/dev/null", "{fx}:tracer_fixture_work", "--", "{fx}", "work-loop", "{n}"], size.uprobe_iters).env(NO_COOKIES).base(UNTRACED_WORK),
    ]
}

const UNTRACED: &str = "untraced";
const UNTRACED_WORK: &str = "untraced function loop";
const FLOOR: &str = "floor: empty raw tracepoint on sys_enter";
const FLOOR2: &str = "floor: empty raw tracepoints on sys_enter + sys_exit";
const FLOOR_CLOCK: &str = "floor: clock-reading raw tracepoints on sys_enter + sys_exit";
const OURS: &str = "tracer syscalls";
const OURS_L: &str = "tracer syscalls -L";
const OURS_CGROUP: &str = "tracer syscalls --cgroup .";
const OURS_L_HASH: &str = "tracer syscalls -L (hash-map entry state)";
const OURS_CMD: &str = "tracer syscalls -- CMD";
const OURS_CMD_HASH: &str = "tracer syscalls -- CMD (hash-map entry state)";
const BPFTRACE: &str = "bpftrace one-liner";
const BPFTRACE_LAT: &str = "bpftrace latency one-liner";
const BPFTRACE_LAT_CMD: &str = "bpftrace latency one-liner -c CMD, pid predicate";
const STRACE: &str = "strace -c -f";
const TRACE: &str = "tracer trace -- CMD";
const TRACE_JSON: &str = "tracer trace --json -- CMD";
const STRACE_LINES: &str = "strace -f -e trace=geteuid";
const SERVE: &str = "tracer serve";
const SERVE_BY: &str = "tracer serve --by comm";
const UPROBE: &str = "tracer uprobe FIXTURE:FUNC -- CMD";
const UPROBE_NO_COOKIES: &str = "tracer uprobe FIXTURE:FUNC -- CMD (no cookies)";

pub fn build(env: &Env) -> Result<Bins> {
    step("building tracer and the fixture (release)");
    util::cargo(
        env,
        &[
            "build",
            "--release",
            "-p",
            "tracer",
            "-p",
            "tracer-fixtures",
        ],
    )?;
    let t = util::target_dir().join("release");
    Ok(Bins {
        tracer: t.join("tracer"),
        fixture: t.join("fixture"),
    })
}

fn machine() -> String {
    let uname = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{} cores ({cpu}), kernel {uname}, {date}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    )
}

/// Run the benchmark; returns the markdown report. Budgets are checked and
/// printed (PASS/OVER), never asserted: quick runs only prove the bench works.
/// What scrapes of `tracer serve --by comm` holding many series cost.
struct Scrapes {
    procs: u64,
    syscalls: u64,
    /// Series of tracer_syscalls_total with the fixture's comms.
    series: usize,
    /// Bytes of one answer.
    bytes: usize,
    /// Each scrape's wall time, from connect to the last byte.
    ms: Vec<f64>,
    /// tracer's resident memory after the scrapes, and its peak.
    rss_kib: u64,
    hwm_kib: u64,
}

const SCRAPE_PROCS: u64 = 100;
const SCRAPE_SYSCALLS: u64 = 400;
const SCRAPES: usize = 50;

/// A `kB` field of /proc/PID/status (0 if unreadable).
fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// GET /metrics from `addr`: the body.
fn scrape(addr: &str) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => bail!(
            "bad answer from tracer serve: {}",
            text.lines().next().unwrap_or("")
        ),
    }
}

/// `tracer serve --by comm` while the fixture's `spread` mode gives it
/// `procs` x `syscalls` series: each scrape's latency, and tracer's memory.
fn measure_scrapes(b: &Bins) -> Result<Scrapes> {
    let mut child = Command::new(&b.tracer)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--by",
            "comm",
            "--max-series",
            "100000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tracer serve")?;
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while err.read_line(&mut line)? > 0 {
        if let Some(rest) = line.strip_prefix("Serving metrics at http://") {
            addr = rest.split('/').next().map(str::to_string);
            break;
        }
        line.clear();
    }
    let result = (|| {
        let addr = addr.context("tracer serve printed no address")?;
        std::thread::spawn(move || for _ in err.lines() {});
        let out = Command::new(&b.fixture)
            .args([
                "spread",
                &SCRAPE_PROCS.to_string(),
                &SCRAPE_SYSCALLS.to_string(),
            ])
            .status()?;
        if !out.success() {
            bail!("fixture spread failed: {out}");
        }
        let body = scrape(&addr)?;
        let series = body
            .lines()
            .filter(|l| l.starts_with("tracer_syscalls_total{") && l.contains("comm=\"spread"))
            .count();
        let mut ms = Vec::new();
        for _ in 0..SCRAPES {
            let t0 = Instant::now();
            scrape(&addr)?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        Ok(Scrapes {
            procs: SCRAPE_PROCS,
            syscalls: SCRAPE_SYSCALLS,
            series,
            bytes: body.len(),
            ms,
            rss_kib: kib(child.id(), "VmRSS:"),
            hwm_kib: kib(child.id(), "VmHWM:"),
        })
    })();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    result
}

pub fn run(env: &Env, size: Size, write_to: Option<&Path>) -> Result<String> {
    let bins = build(env)?;
    step(&format!(
        "tracer serve --by comm: {SCRAPES} scrapes of {SCRAPE_PROCS} comms x {SCRAPE_SYSCALLS} syscalls"
    ));
    let scrapes = measure_scrapes(&bins)?;
    let prof = crate::profbench::measure(&bins.tracer, &bins.fixture, size.rounds)?;
    let unwind = crate::profbench::measure_unwind(&bins.tracer)?;
    let tcp = crate::tcpbench::measure(&bins, size.rounds)?;
    eprintln!(
        "    {} series, median {:.1} ms per scrape, RSS {} KiB",
        scrapes.series,
        median(&scrapes.ms),
        scrapes.rss_kib
    );
    let mut sc = scenarios(size);
    for round in 0..size.rounds {
        step(&format!("round {}/{}", round + 1, size.rounds));
        // Interleaved: every scenario once per round, so drift hits all of them.
        for s in sc.iter_mut() {
            let per = s.measure(&bins)?;
            eprintln!("    {:<55} {:>10.1} ns/call", s.name, per);
        }
        step(&format!(
            "round {}/{}, kernel-side: each eBPF scenario once more, kernel.bpf_stats_enabled on while it runs",
            round + 1,
            size.rounds
        ));
        for s in sc.iter_mut().filter(|s| s.bpf) {
            match s.measure_kernel(&bins)? {
                Some(ns) => eprintln!("    {:<55} {:>10.1} ns/call in its programs", s.name, ns),
                None => eprintln!("    {:<55} no program of it seen running", s.name),
            }
        }
    }
    let report = render(&sc, size, &scrapes, &prof, &unwind, &tcp);
    println!("{report}");
    if let Some(p) = write_to {
        std::fs::write(p, &report).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(report)
}

/// Added ns per call of `s`, per round (pairwise against that round's run of its baseline).
fn added(s: &Scenario, sc: &[Scenario]) -> Vec<f64> {
    let base = &by(sc, s.base).per_call;
    s.per_call.iter().zip(base).map(|(p, u)| p - u).collect()
}

fn by<'a>(sc: &'a [Scenario], name: &str) -> &'a Scenario {
    sc.iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

pub(crate) fn ratio_per_round(a: &[f64], b: &[f64]) -> f64 {
    median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>())
}

fn render(
    sc: &[Scenario],
    size: Size,
    scrapes: &Scrapes,
    prof: &crate::profbench::ProfBench,
    unwind: &crate::profbench::UnwindBench,
    tcp: &crate::tcpbench::TcpBench,
) -> String {
    let add = |name: &str| added(by(sc, name), sc);
    let floor = add(FLOOR);
    let floor2 = add(FLOOR2);
    let clock = add(FLOOR_CLOCK);
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Written by `cargo xtask bench` on {}.\n\nThe loop is `syscall(SYS_geteuid)` in the fixture program, {} calls per run \
         ({} under strace and perf trace, scaled per call), {} interleaved rounds (every scenario once per round, so drift hits \
         all of them); each figure is the median over rounds. \"Added\" is the time per call minus the untraced time of the \
         same round; ratios are taken round by round, then the median. The clock floor is the least a tool that times \
         syscalls pays: both hooks, each program reading the clock once. \"Added vs peer\" compares a tracer row with the \
         bpftrace program doing the same job: `tracer syscalls` with the count one-liner, the `-L` rows with the latency \
         one-liner (`{}`), the `-- CMD` rows with the latency one-liner under `-c` with `pid == cpid` on enter; the \
         `tracer serve` rows compare with `tracer syscalls -L` instead, whose hooks they share. The \
         hash-map rows run with `TRACER_FALLBACK=task-storage`, the path kernels without task-local storage take.\n\n",
        machine(), size.iters, size.strace_iters, size.rounds, BPFTRACE_LAT_SYSWIDE
    ));
    out.push_str("| scenario | ns per call | added ns per call | added vs floor (enter) | added vs floor (enter+exit) | added vs clock floor | added vs peer | start-up to attached | peak RSS | what it shows |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    let ratio = |a: &[f64], b: &[f64]| format!("{:.2}x", ratio_per_round(a, b));
    for s in sc.iter().filter(|s| s.base == UNTRACED) {
        let a = added(s, sc);
        let untraced = s.kind == Kind::Untraced;
        let cell = |on: bool, v: &dyn Fn() -> String| if on { v() } else { String::new() };
        let startup = if s.startup_ms.is_empty() {
            "-".into()
        } else {
            format!("{:.0} ms", median(&s.startup_ms))
        };
        let rss = if s.rss_kib.is_empty() {
            "-".into()
        } else {
            format!(
                "{:.1} MB",
                median(&s.rss_kib.iter().map(|&k| k as f64).collect::<Vec<_>>()) / 1024.0
            )
        };
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.name,
            median(&s.per_call),
            added_cell(untraced, &a),
            cell(!untraced, &|| ratio(&a, &floor)),
            cell(!untraced, &|| ratio(&a, &floor2)),
            cell(s.timing, &|| ratio(&a, &clock)),
            cell(s.peer.is_some(), &|| ratio(
                &a,
                &add(s.peer.unwrap_or(UNTRACED))
            )),
            startup,
            rss,
            s.what
        ));
    }
    out.push_str("\n## Functions in user space (uprobe)\n\n");
    out.push_str(&format!(
        "The fixture calls one function {} times in a loop; tracer counts its calls with a uprobe, with and \
         without BPF cookies (`TRACER_FALLBACK=cookies`). Added is over the same loop untraced.\n\n",
        size.uprobe_iters
    ));
    out.push_str("| scenario | ns per call | added ns per call | added vs with cookies | what it shows |\n|---|---:|---:|---:|---|\n");
    let uprobe = add(UPROBE);
    for s in sc.iter().filter(|s| s.base == UNTRACED_WORK) {
        let untraced = s.kind == Kind::Untraced;
        let a = added(s, sc);
        out.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} |\n",
            s.name,
            median(&s.per_call),
            added_cell(untraced, &a),
            if untraced {
                String::new()
            } else {
                ratio(&a, &uprobe)
            },
            s.what
        ));
    }
    out.push_str("\n## Kernel-side ns per run\n\n");
    out.push_str(
        "From one more run of each eBPF scenario in each round with the kernel's run-time statistics on while it \
         runs (`kernel.bpf_stats_enabled`, restored after): for each program the tool held that ran, \
         `run_time_ns / run_cnt` as the kernel counts them (medians over rounds), free of the loop's own noise. Runs are system-wide (every process's syscalls pass \
         the hooks). Only the time inside the programs: the hook's own cost (the raw tracepoint's call, the perf-event \
         plumbing around bpftrace's classic tracepoints, the uprobe's trap) is not in these figures, and the statistics \
         add a clock read of their own to each run: \"over an empty program\" takes off the run time of the empty \
         floor's programs, leaving the program's own work. Per call: all the scenario's programs' run time over the \
         runs of its busiest program (the hook every call passes). Programs that ran less than 1% as often as that \
         one (the fork, exec and exit trackers) are left out of the rows, not out of the per-call figure. Names are \
         the kernel's, cut to 15 characters.\n\n",
    );
    out.push_str(
        "| scenario | program | runs | ns per run | ns per run over an empty program | ns per call, all its programs | vs clock floor |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    let clock_k = by(sc, FLOOR_CLOCK).kernel_rounds();
    // The empty program's run time: the statistics' own cost and the call.
    let empty = by(sc, FLOOR2).hot_programs();
    let empty = median(&empty.iter().map(|p| p.2).collect::<Vec<_>>());
    for s in sc.iter().filter(|s| s.bpf) {
        let progs = s.hot_programs();
        if progs.is_empty() {
            out.push_str(&format!("| {} | (none seen running) | | | | | |\n", s.name));
            continue;
        }
        for (i, (prog, runs, ns)) in progs.iter().enumerate() {
            let (name, per_call, vs) = if i == 0 {
                let k = s.kernel_per_call();
                let pairs: Vec<f64> = s
                    .kernel_rounds()
                    .iter()
                    .zip(&clock_k)
                    .filter_map(|(a, b)| Some((*a)? / (*b)?))
                    .collect();
                let vs = if s.base == UNTRACED && !pairs.is_empty() {
                    format!("{:.2}x", median(&pairs))
                } else {
                    String::new()
                };
                (s.name, k.map(|k| format!("{k:.1}")).unwrap_or_default(), vs)
            } else {
                ("", String::new(), String::new())
            };
            out.push_str(&format!(
                "| {name} | {prog} | {runs:.0} | {ns:.1} | {:.1} | {per_call} | {vs} |\n",
                ns - empty
            ));
        }
    }
    out.push_str("\n## Event streaming\n\n");
    out.push_str(&format!(
        "`tracer trace` on the same loop ({} calls), every call an event through the default ring buffer, \
         written to /dev/null. Events per second are delivered events over tracer's whole run (start-up, \
         attach and drain included); lost events are the ones tracer reported.\n\n",
        size.iters
    ));
    out.push_str("| scenario | events/s delivered | lost (median) |\n|---|---:|---:|\n");
    for name in [TRACE, TRACE_JSON] {
        let s = by(sc, name);
        let lost = median(&s.lost.iter().map(|&l| l as f64).collect::<Vec<_>>());
        out.push_str(&format!(
            "| {name} | {:.0} | {lost:.0} |\n",
            median(&s.events_per_s)
        ));
    }
    out.push_str("\n## `tracer serve`: scrapes\n\n");
    out.push_str(&format!(
        "`tracer serve --by comm --max-series 100000` after the fixture's `spread` mode ran {} processes, each \
         under its own comm, each making {} different syscall numbers (ones no kernel has, which fail with ENOSYS \
         and still pass the hooks): {} labelled series. {} scrapes one after the other over loopback (connect, \
         GET /metrics, read to the end; Prometheus text format), timed from connect to the last byte.\n\n",
        scrapes.procs, scrapes.syscalls, scrapes.series, scrapes.ms.len()
    ));
    let mut sorted = scrapes.ms.clone();
    sorted.sort_by(f64::total_cmp);
    let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
    out.push_str("| series | answer | scrape median | scrape p90 | scrape max | RSS after | peak RSS |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| {} | {:.1} MB | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MB | {:.1} MB |\n",
        scrapes.series,
        scrapes.bytes as f64 / 1e6,
        median(&scrapes.ms),
        p90,
        sorted.last().copied().unwrap_or(f64::NAN),
        scrapes.rss_kib as f64 / 1024.0,
        scrapes.hwm_kib as f64 / 1024.0,
    ));
    out.push_str(&crate::profbench::render(prof));
    out.push_str(&crate::profbench::render_unwind(unwind));
    out.push_str(&crate::tcpbench::render(tcp));
    out.push_str("\n## Kernel functions (from the last `cargo xtask vm-test`)\n\n");
    out.push_str(
        "The host kernel has neither kprobes nor fentry, so these come from Debian's kernels booted \
         under qemu with TCG (software emulation): timings are indicative only, several times slower \
         than on hardware.\n\n",
    );
    match std::fs::read_to_string(util::target_dir().join(crate::vm::NOTES_FILE)) {
        Ok(notes) if !notes.trim().is_empty() => out.push_str(&notes),
        _ => {
            out.push_str("(no vm-test run on this machine yet: run `cargo xtask vm-test` first)\n")
        }
    }
    out.push_str("\n## Budgets\n\n");
    let ours = add(OURS);
    let cmd = add(OURS_CMD);
    let t = by(sc, OURS);
    // (what, measured, limit, at most?)
    let mut checks: Vec<(String, f64, f64, bool)> = vec![
        (
            "`tracer syscalls` added cost <= 1.10 x the floor's (sys_enter)".into(),
            ratio_per_round(&ours, &floor),
            1.10,
            true,
        ),
        (
            "`tracer syscalls` added cost <= 1/3 of bpftrace's one-liner".into(),
            ratio_per_round(&ours, &add(BPFTRACE)),
            1.0 / 3.0,
            true,
        ),
        (
            "`tracer syscalls -- CMD` added cost <= 1.5 x the floor's (sys_enter + sys_exit)"
                .into(),
            ratio_per_round(&cmd, &floor2),
            1.5,
            true,
        ),
    ];
    for name in [OURS_L, OURS_CMD, OURS_L_HASH, OURS_CMD_HASH] {
        checks.push((
            format!("`{name}` added cost <= 1.3 x the clock-reading floor's"),
            ratio_per_round(&add(name), &clock),
            1.3,
            true,
        ));
    }
    checks.push((
        format!(
            "`{SERVE}` added cost <= 1.2 x `{OURS_L}`'s (the same hooks, plus a histogram slot)"
        ),
        ratio_per_round(&add(SERVE), &add(OURS_L)),
        1.2,
        true,
    ));
    for name in [OURS_L, OURS_CMD, OURS_L_HASH, OURS_CMD_HASH] {
        let peer = by(sc, name).peer.expect("timing rows have a peer");
        checks.push((
            format!("`{name}` added cost <= 1/3 of its peer's ({peer})"),
            ratio_per_round(&add(name), &add(peer)),
            1.0 / 3.0,
            true,
        ));
    }
    checks.extend([
        (
            "`tracer syscalls -- CMD` >= 500 x cheaper per call than `strace -c`".into(),
            ratio_per_round(&add(STRACE), &cmd),
            500.0,
            false,
        ),
        (
            "`tracer trace` >= 100 x cheaper per call than `strace` printing calls".into(),
            ratio_per_round(&add(STRACE_LINES), &add(TRACE)),
            100.0,
            false,
        ),
        (
            "`tracer trace` delivers >= 1,000,000 events/s into /dev/null".into(),
            median(&by(sc, TRACE).events_per_s),
            1e6,
            false,
        ),
        (
            "`tracer syscalls` start-up (launch to attached) <= 50 ms".into(),
            median(&t.startup_ms),
            50.0,
            true,
        ),
        (
            "`tracer syscalls` peak RSS <= 20 MB".into(),
            median(&t.rss_kib.iter().map(|&k| k as f64).collect::<Vec<_>>()) / 1024.0,
            20.0,
            true,
        ),
        (
            format!(
                "`tracer serve` scrape of {} series, median <= 10 ms",
                scrapes.series
            ),
            median(&scrapes.ms),
            10.0,
            true,
        ),
        (
            "`tracer serve` peak RSS while holding and scraping them <= 30 MB".into(),
            scrapes.hwm_kib as f64 / 1024.0,
            30.0,
            true,
        ),
    ]);
    // The --cgroup test, kernel-side (noise-free): its programs' ns per call
    // over `tracer syscalls`'s, round by round.
    let cg: Vec<f64> = by(sc, OURS_CGROUP)
        .kernel_rounds()
        .into_iter()
        .zip(t.kernel_rounds())
        .filter_map(|(c, o)| Some(c? - o?))
        .collect();
    checks.push((
        format!("`{OURS_CGROUP}` adds <= 25 ns per call in its programs over `{OURS}` (bpf_stats)"),
        median(&cg),
        25.0,
        true,
    ));
    checks.extend(crate::profbench::budgets(prof));
    checks.extend(crate::profbench::unwind_budgets(unwind));
    checks.extend(crate::tcpbench::budgets(tcp));
    out.push_str("| budget | measured | result |\n|---|---:|---|\n");
    for (what, v, limit, at_most) in checks {
        let result = match (at_most, if at_most { v <= limit } else { v >= limit }) {
            (_, true) => "PASS",
            (true, false) => "OVER",
            (false, false) => "SHORT",
        };
        out.push_str(&format!("| {what} | {v:.2} | {result} |\n"));
    }
    out
}
