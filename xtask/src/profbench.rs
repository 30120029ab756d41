//! The `tracer profile` part of `cargo xtask bench`: the added cost of
//! profiling a CPU-bound program with `tracer profile -F 99` and with `perf
//! record -F 99 -g`, interleaved round by round against the untraced run;
//! and a system-wide profile at 49 Hz: tracer's own CPU while sampling, its
//! start-up, its peak memory with every stack named.
use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};

use crate::util::step;

/// Rounds of the fixture's `cpu-work` (about 10 ms each in release).
pub const WORK: u64 = 300;
pub const HZ: u64 = 99;
/// The system-wide profile.
pub const WIDE_HZ: u64 = 49;
pub const WIDE_SECS: u64 = 10;

/// One run of the CPU-bound fixture: its loop's time, and the CPU time and
/// peak RSS of the whole tree (the tool and the fixture).
#[derive(Debug, Clone, Copy)]
struct TreeRun {
    loop_ms: f64,
    cpu_ms: f64,
}

#[derive(Debug, Default)]
pub struct ProfBench {
    pub rounds: usize,
    pub untraced_ms: Vec<f64>,
    pub ours_ms: Vec<f64>,
    pub perf_ms: Vec<f64>,
    /// CPU time of the tree minus the untraced fixture's, per round.
    pub ours_cpu_added_ms: Vec<f64>,
    pub perf_cpu_added_ms: Vec<f64>,
    /// The tool's own CPU: the tree's minus the program loop's (steadier
    /// than the difference with another run).
    pub ours_own_ms: Vec<f64>,
    pub perf_own_ms: Vec<f64>,
    /// The system-wide run.
    pub wide_sampling_cpu_pct: f64,
    pub wide_total_cpu_ms: f64,
    pub wide_startup_ms: f64,
    pub wide_hwm_kib: u64,
    pub wide_stacks: usize,
    pub wide_samples: u64,
}

fn tv_ms(t: libc::timeval) -> f64 {
    t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3
}

/// Run `cmd` (whose stdout carries the fixture's `loop_ns N`) to its end.
fn run_tree(cmd: &mut Command) -> Result<TreeRun> {
    let shown = crate::util::show(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out)?;
    let (mut status, mut ru) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    let pid = child.id() as i32;
    ensure!(
        unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } == pid,
        "wait4 {shown}"
    );
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{shown} failed ({status:#x})"
    );
    let ns: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("loop_ns "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("{shown} printed no loop_ns"))?;
    Ok(TreeRun {
        loop_ms: ns / 1e6,
        cpu_ms: tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime),
    })
}

/// utime + stime of a running process, in ms (clock ticks of 10 ms).
fn cpu_now_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").context("bad stat")?.1;
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks * 1e3 / hz)
}

pub fn measure(tracer: &Path, fixture: &Path, rounds: usize) -> Result<ProfBench> {
    let work = WORK.to_string();
    let perf_data = std::env::temp_dir().join("tracer-bench-perf.data");
    let mut b = ProfBench {
        rounds,
        ..Default::default()
    };
    for round in 0..rounds {
        step(&format!(
            "profile round {}/{rounds}: fixture cpu-work {WORK} untraced, under tracer profile -F {HZ}, under perf record -F {HZ} -g",
            round + 1
        ));
        let u = run_tree(Command::new(fixture).args(["cpu-work", &work]))?;
        let o = run_tree(
            Command::new(tracer)
                .args(["profile", "-F", &HZ.to_string(), "--"])
                .arg(fixture)
                .args(["cpu-work", &work]),
        )?;
        let p = run_tree(
            Command::new("perf")
                .args(["record", "-F", &HZ.to_string(), "-g", "-o"])
                .arg(&perf_data)
                .arg("--")
                .arg(fixture)
                .args(["cpu-work", &work]),
        )?;
        eprintln!(
            "    loop {:.0} / {:.0} / {:.0} ms; tree CPU {:.0} / {:.0} / {:.0} ms",
            u.loop_ms, o.loop_ms, p.loop_ms, u.cpu_ms, o.cpu_ms, p.cpu_ms
        );
        b.untraced_ms.push(u.loop_ms);
        b.ours_ms.push(o.loop_ms);
        b.perf_ms.push(p.loop_ms);
        b.ours_cpu_added_ms.push(o.cpu_ms - u.cpu_ms);
        b.perf_cpu_added_ms.push(p.cpu_ms - u.cpu_ms);
        b.ours_own_ms.push(o.cpu_ms - o.loop_ms);
        b.perf_own_ms.push(p.cpu_ms - p.loop_ms);
    }
    let _ = std::fs::remove_file(&perf_data);
    wide(tracer, fixture, &mut b)?;
    Ok(b)
}

/// `tracer profile -F 49 -d 10 --json` system-wide while a fixture burns
/// CPU and another makes syscalls: start-up to the banner, tracer's CPU
/// while sampling (read just before the end), and after it ends its total
/// CPU and peak RSS, with the number of stacks it named.
fn wide(tracer: &Path, fixture: &Path, b: &mut ProfBench) -> Result<()> {
    step(&format!(
        "profile system-wide at {WIDE_HZ} Hz for {WIDE_SECS} s, with a CPU-bound and a syscall-bound fixture running"
    ));
    let mut load = vec![
        Command::new(fixture)
            .args(["cpu", &(WIDE_SECS * 1000 + 2000).to_string()])
            .stdout(Stdio::null())
            .spawn()?,
        Command::new(fixture)
            .args(["geteuid", "100000000"])
            .stdout(Stdio::null())
            .spawn()?,
    ];
    let out = std::env::temp_dir().join("tracer-bench-profile.json");
    let t0 = Instant::now();
    let mut child = Command::new(tracer)
        .args([
            "profile",
            "-F",
            &WIDE_HZ.to_string(),
            "-d",
            &WIDE_SECS.to_string(),
            "--json",
            "-o",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let result = (|| {
        loop {
            line.clear();
            if err.read_line(&mut line)? == 0 {
                bail!("tracer profile ended before sampling");
            }
            if line.starts_with("Tracing") {
                break;
            }
        }
        b.wide_startup_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (c0, s0) = (cpu_now_ms(pid)?, Instant::now());
        std::thread::sleep(Duration::from_secs(WIDE_SECS) - Duration::from_millis(1500));
        let c1 = cpu_now_ms(pid)?;
        b.wide_sampling_cpu_pct = (c1 - c0) / (s0.elapsed().as_secs_f64() * 1e3) * 100.0;
        std::thread::spawn(move || for _ in err.lines() {});
        let (mut status, mut ru) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        ensure!(unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) } == pid as i32);
        ensure!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "tracer profile failed"
        );
        b.wide_total_cpu_ms = tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime);
        b.wide_hwm_kib = ru.ru_maxrss as u64;
        let text = std::fs::read_to_string(&out)?;
        let last: serde_json::Value =
            serde_json::from_str(text.lines().last().context("no JSON")?)?;
        b.wide_stacks = last["stacks"].as_array().map_or(0, Vec::len);
        b.wide_samples = last["total"].as_u64().unwrap_or(0);
        Ok(())
    })();
    for l in &mut load {
        let _ = l.kill();
        let _ = l.wait();
    }
    let _ = std::fs::remove_file(&out);
    result?;
    eprintln!(
        "    start-up {:.0} ms, {:.2}% of a CPU while sampling, {:.0} ms CPU in all, peak RSS {} KiB, {} stacks of {} samples",
        b.wide_startup_ms, b.wide_sampling_cpu_pct, b.wide_total_cpu_ms, b.wide_hwm_kib, b.wide_stacks, b.wide_samples
    );
    Ok(())
}

/// The section of BENCHMARKS.md.
pub fn render(b: &ProfBench) -> String {
    let m = crate::bench::median;
    let ratio = crate::bench::ratio_per_round;
    let added =
        |v: &[f64]| -> Vec<f64> { v.iter().zip(&b.untraced_ms).map(|(x, u)| x - u).collect() };
    let mut out = String::new();
    out.push_str("\n## CPU profiles (`tracer profile`)\n\n");
    out.push_str(&format!(
        "The fixture's `cpu-work {WORK}` (a fixed amount of work in `cpu_leaf_a` and `cpu_leaf_b`, about 3 s) \
         untraced, under `tracer profile -F {HZ}` (the default table at the end: every frame named) and under \
         `perf record -F {HZ} -g` (perf.data in /tmp, build ids collected at the end as perf does by default), \
         interleaved, {} rounds, medians. \"Tree CPU added\" is all the CPU time of the run (the tool, the \
         program, their children; wait4's rusage) minus the untraced program's, round by round: what profiling \
         costs the machine; round to round the untraced program's own time moves by more than tracer costs, so \
         \"tool's own CPU\" (the tree's CPU minus the program loop's, in the same run: the tool's start-up, \
         reading, writing, naming) is given too, the steadier figure. \"Loop added\" is how much longer the \
         program's own loop took (the samples' cost in the kernel lands there).\n\n",
        b.rounds
    ));
    out.push_str("| scenario | loop ms | loop added ms | tree CPU added ms | vs perf record | tool's own CPU ms | vs perf record |\n|---|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| untraced | {:.0} | | | | | |\n",
        m(&b.untraced_ms)
    ));
    out.push_str(&format!(
        "| `tracer profile -F {HZ}` | {:.0} | {:.1} | {:.1} | {:.2}x | {:.1} | {:.2}x |\n",
        m(&b.ours_ms),
        m(&added(&b.ours_ms)),
        m(&b.ours_cpu_added_ms),
        ratio(&b.ours_cpu_added_ms, &b.perf_cpu_added_ms),
        m(&b.ours_own_ms),
        ratio(&b.ours_own_ms, &b.perf_own_ms)
    ));
    out.push_str(&format!(
        "| `perf record -F {HZ} -g` | {:.0} | {:.1} | {:.1} | | {:.1} | |\n",
        m(&b.perf_ms),
        m(&added(&b.perf_ms)),
        m(&b.perf_cpu_added_ms),
        m(&b.perf_own_ms)
    ));
    out.push_str(&format!(
        "\nSystem-wide, `tracer profile -F {WIDE_HZ} -d {WIDE_SECS} --json` while one fixture burns a CPU and another \
         makes syscalls: start-up (launch to the \"Tracing\" line, sampling) {:.0} ms; tracer's own CPU while sampling \
         (utime+stime over the run but its last 1.5 s) {:.2}% of one CPU; {:.0} ms of CPU in all, reading and \
         naming included; peak RSS {:.1} MB with {} distinct stacks ({} samples) named.\n\n",
        b.wide_startup_ms,
        b.wide_sampling_cpu_pct,
        b.wide_total_cpu_ms,
        b.wide_hwm_kib as f64 / 1024.0,
        b.wide_stacks,
        b.wide_samples
    ));
    out
}

/// Budget rows: (what, measured, limit, at most).
pub fn budgets(b: &ProfBench) -> Vec<(String, f64, f64, bool)> {
    vec![
        (
            format!("`tracer profile -F {HZ}` own CPU over `perf record -F {HZ} -g`'s < 1"),
            crate::bench::ratio_per_round(&b.ours_own_ms, &b.perf_own_ms),
            1.0,
            true,
        ),
        (
            format!("`tracer profile -F {HZ}` tree CPU added over `perf record -F {HZ} -g`'s < 1"),
            crate::bench::ratio_per_round(&b.ours_cpu_added_ms, &b.perf_cpu_added_ms),
            1.0,
            true,
        ),
        (
            format!("`tracer profile -F {WIDE_HZ}` system-wide: own CPU while sampling <= 1% of one CPU"),
            b.wide_sampling_cpu_pct,
            1.0,
            true,
        ),
        (
            "`tracer profile` start-up to sampling <= 100 ms".into(),
            b.wide_startup_ms,
            100.0,
            true,
        ),
        (
            format!("`tracer profile` peak RSS with {} stacks named <= 50 MB", b.wide_stacks),
            b.wide_hwm_kib as f64 / 1024.0,
            50.0,
            true,
        ),
    ]
}
