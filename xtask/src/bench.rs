//! `cargo xtask bench`: tracer against the untraced program, the eBPF floor and
//! the peers (bpftrace, strace, perf trace), in one run, interleaved, medians
//! of several rounds; writes BENCHMARKS.md.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::util::{self, step, Env};

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
}

pub const FULL: Size = Size {
    rounds: 5,
    iters: 4_000_000,
    strace_iters: 20_000,
    perf_iters: 20_000,
};
pub const QUICK: Size = Size {
    rounds: 1,
    iters: 100_000,
    strace_iters: 2_000,
    perf_iters: 2_000,
};

pub struct Bins {
    tracer: PathBuf,
    fixture: PathBuf,
}

/// A tool running in the background until we stop it.
struct Background {
    child: Child,
    startup: Duration,
    _drain: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Start `cmd` and wait until a line of stdout or stderr contains `ready`.
    fn start(cmd: &mut Command, ready: &str) -> Result<Self> {
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
        })
    }

    /// Peak resident memory so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) -> Result<()> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t0 = Instant::now();
        while self.child.try_wait()?.is_none() {
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                bail!("tool did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// One run of a command whose output includes the fixture's `loop_ns N`.
struct LoopRun {
    ns_per_call: f64,
    /// Wall time of the whole command (start-up and teardown included).
    wall_s: f64,
    /// Events the tool reported lost (`tracer: lost N events`), if any.
    lost: u64,
}

fn run_loop(cmd: &mut Command, iters: u64) -> Result<LoopRun> {
    let t0 = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
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
    /// Program and arguments; `{tracer}` and `{fx}` name our binaries, `{n}`
    /// the iteration count (a lone `{loop}` expands to `{fx} geteuid {n}`).
    argv: &'static [&'static str],
    iters: u64,
    /// Per round: ns per call.
    per_call: Vec<f64>,
    startup_ms: Vec<f64>,
    rss_kib: Vec<u64>,
    /// Launched runs: events delivered per second end to end, and events lost.
    events_per_s: Vec<f64>,
    lost: Vec<u64>,
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
                other => other.to_string(),
            })
            .collect();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    /// Run once and record the result.
    fn measure(&mut self, b: &Bins) -> Result<f64> {
        let n = self.iters;
        let per = match self.kind {
            Kind::Untraced => run_loop(&mut fixture_cmd(b, n), n)?.ns_per_call,
            Kind::Launcher => {
                let r = run_loop(&mut self.command(b), n)?;
                self.events_per_s
                    .push(n.saturating_sub(r.lost) as f64 / r.wall_s);
                self.lost.push(r.lost);
                r.ns_per_call
            }
            Kind::Background { ready } => {
                let tool = Background::start(&mut self.command(b), ready)?;
                let per = run_loop(&mut fixture_cmd(b, n), n)?.ns_per_call;
                self.rss_kib.push(tool.peak_rss_kib());
                self.startup_ms.push(tool.startup.as_secs_f64() * 1e3);
                tool.stop()?;
                per
            }
        };
        self.per_call.push(per);
        Ok(per)
    }
}

const BPFTRACE_SYSWIDE: &str = "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }";
const BPFTRACE_PID: &str =
    "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }";

fn median(v: &[f64]) -> f64 {
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
        iters,
        per_call: vec![],
        startup_ms: vec![],
        rss_kib: vec![],
        events_per_s: vec![],
        lost: vec![],
    };
    let bg = |ready| Kind::Background { ready };
    vec![
        mk(UNTRACED, "the loop alone: the baseline every other row is compared with", Kind::Untraced, &[], size.iters),
        mk(FLOOR, "the least any eBPF syscall counter can cost (an empty program on the hook tracer syscalls uses)", bg("Attached"), &["{tracer}", "floor"], size.iters),
        mk(FLOOR2, "the floor for counting with times and errors (both hooks)", bg("Attached"), &["{tracer}", "floor", "--exit"], size.iters),
        mk(OURS, "system-wide counting, the default (sys_enter only, per-CPU array)", bg("Tracing"), &["{tracer}", "syscalls"], size.iters),
        mk("tracer syscalls -L", "system-wide with time per syscall (both hooks, task-local entry time)", bg("Tracing"), &["{tracer}", "syscalls", "-L"], size.iters),
        mk("tracer syscalls -P", "system-wide per process (per-CPU hash keyed by pid and syscall)", bg("Tracing"), &["{tracer}", "syscalls", "-P"], size.iters),
        mk(OURS_CMD, "strace -c's job: the launched command only, with times and errors, forks followed", Kind::Launcher, &["{tracer}", "syscalls", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters),
        mk(BPFTRACE, "bpftrace's system-wide count by syscall id (classic tracepoint, hash map)", bg("Attaching"), &["bpftrace", "-e", BPFTRACE_SYSWIDE], size.iters),
        mk("bpftrace -c CMD, pid predicate", "bpftrace counting one command's syscalls", Kind::Launcher, &["bpftrace", "-e", BPFTRACE_PID, "-c", "{loop}"], size.iters),
        mk(STRACE, "ptrace-based counting (fewer iterations, scaled per call)", Kind::Launcher, &["strace", "-f", "-c", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.strace_iters),
        mk(TRACE, "strace's other job, a line per call: every geteuid as a ring-buffer event, formatted into /dev/null", Kind::Launcher, &["{tracer}", "trace", "-e", "geteuid", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters),
        mk(TRACE_JSON, "the same events as JSON lines", Kind::Launcher, &["{tracer}", "trace", "--json", "-e", "geteuid", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.iters),
        mk(STRACE_LINES, "strace printing each call (fewer iterations, scaled per call)", Kind::Launcher, &["strace", "-f", "-e", "trace=geteuid", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.strace_iters),
        mk("perf trace -s", "perf's syscall summary (fewer iterations, scaled per call)", Kind::Launcher, &["perf", "trace", "-s", "-o", "/dev/null", "--", "{fx}", "geteuid", "{n}"], size.perf_iters),
    ]
}

const UNTRACED: &str = "untraced";
const FLOOR: &str = "floor: empty raw tracepoint on sys_enter";
const FLOOR2: &str = "floor: empty raw tracepoints on sys_enter + sys_exit";
const OURS: &str = "tracer syscalls";
const OURS_CMD: &str = "tracer syscalls -- CMD";
const BPFTRACE: &str = "bpftrace one-liner";
const STRACE: &str = "strace -c -f";
const TRACE: &str = "tracer trace -- CMD";
const TRACE_JSON: &str = "tracer trace --json -- CMD";
const STRACE_LINES: &str = "strace -f -e trace=geteuid";

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

/// Run the benchmark; returns the markdown table. `check_budgets` fails the run
/// when a budget is missed (full runs); quick runs only prove the bench works.
pub fn run(env: &Env, size: Size, write_to: Option<&Path>) -> Result<String> {
    let bins = build(env)?;
    let mut sc = scenarios(size);
    let mut untraced = Vec::new();
    for round in 0..size.rounds {
        step(&format!("round {}/{}", round + 1, size.rounds));
        // Interleaved: every scenario once per round, so drift hits all of them.
        for s in sc.iter_mut() {
            let per = s.measure(&bins)?;
            if s.kind == Kind::Untraced {
                untraced.push(per);
            }
            eprintln!("    {:<55} {:>10.1} ns/call", s.name, per);
        }
    }
    let report = render(&sc, &untraced, size);
    println!("{report}");
    if let Some(p) = write_to {
        std::fs::write(p, &report).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(report)
}

/// Added ns per call of scenario `i`, per round (pairwise against that round's untraced run).
fn added(s: &Scenario, untraced: &[f64]) -> Vec<f64> {
    s.per_call
        .iter()
        .zip(untraced)
        .map(|(p, u)| p - u)
        .collect()
}

fn ratio_per_round(a: &[f64], b: &[f64]) -> f64 {
    median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>())
}

fn render(sc: &[Scenario], untraced: &[f64], size: Size) -> String {
    let by = |name: &str| sc.iter().find(|s| s.name == name).unwrap();
    let floor = added(by("floor: empty raw tracepoint on sys_enter"), untraced);
    let floor2 = added(
        by("floor: empty raw tracepoints on sys_enter + sys_exit"),
        untraced,
    );
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Written by `cargo xtask bench` on {}.\n\nThe loop is `syscall(SYS_geteuid)` in the fixture program, {} calls per run \
         ({} under strace and perf trace, scaled per call), {} interleaved rounds (every scenario once per round, so drift hits \
         all of them); each figure is the median over rounds. \"Added\" is the time per call minus the untraced time of the \
         same round; ratios are taken round by round, then the median.\n\n",
        machine(), size.iters, size.strace_iters, size.rounds
    ));
    out.push_str("| scenario | ns per call | added ns per call | added vs floor (enter) | added vs floor (enter+exit) | start-up to attached | peak RSS | what it shows |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---|\n");
    for s in sc {
        let add = added(s, untraced);
        let (r1, r2) = if s.kind == Kind::Untraced {
            (String::new(), String::new())
        } else {
            (
                format!("{:.2}x", ratio_per_round(&add, &floor)),
                format!("{:.2}x", ratio_per_round(&add, &floor2)),
            )
        };
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
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
            s.name,
            median(&s.per_call),
            if s.kind == Kind::Untraced {
                "-".into()
            } else {
                format!("{:.1}", median(&add))
            },
            r1,
            r2,
            startup,
            rss,
            s.what
        ));
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
        let s = by(name);
        let lost = median(&s.lost.iter().map(|&l| l as f64).collect::<Vec<_>>());
        out.push_str(&format!(
            "| {name} | {:.0} | {lost:.0} |\n",
            median(&s.events_per_s)
        ));
    }
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
    let ours = added(by(OURS), untraced);
    let cmd = added(by(OURS_CMD), untraced);
    let bpft = added(by(BPFTRACE), untraced);
    let strace = added(by(STRACE), untraced);
    let t = by(OURS);
    let checks = [
        (
            "`tracer syscalls` added cost <= 1.10 x the floor's (sys_enter)",
            ratio_per_round(&ours, &floor),
            1.10,
            true,
        ),
        (
            "`tracer syscalls` added cost <= 1/3 of bpftrace's one-liner",
            ratio_per_round(&ours, &bpft),
            1.0 / 3.0,
            true,
        ),
        (
            "`tracer syscalls -- CMD` added cost <= 1.5 x the floor's (sys_enter + sys_exit)",
            ratio_per_round(&cmd, &floor2),
            1.5,
            true,
        ),
        (
            "`tracer syscalls -- CMD` >= 500 x cheaper per call than `strace -c`",
            ratio_per_round(&strace, &cmd),
            500.0,
            false,
        ),
        (
            "`tracer trace` >= 100 x cheaper per call than `strace` printing calls",
            ratio_per_round(
                &added(by(STRACE_LINES), untraced),
                &added(by(TRACE), untraced),
            ),
            100.0,
            false,
        ),
        (
            "`tracer trace` delivers >= 1,000,000 events/s into /dev/null",
            median(&by(TRACE).events_per_s),
            1e6,
            false,
        ),
        (
            "`tracer syscalls` start-up (launch to attached) <= 50 ms",
            median(&t.startup_ms),
            50.0,
            true,
        ),
        (
            "`tracer syscalls` peak RSS <= 20 MB",
            median(&t.rss_kib.iter().map(|&k| k as f64).collect::<Vec<_>>()) / 1024.0,
            20.0,
            true,
        ),
    ];
    out.push_str("| budget | measured | met |\n|---|---:|---|\n");
    for (what, v, limit, at_most) in checks {
        let met = if at_most { v <= limit } else { v >= limit };
        out.push_str(&format!(
            "| {what} | {v:.2} | {} |\n",
            if met { "yes" } else { "NO" }
        ));
    }
    out
}
