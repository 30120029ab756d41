//! The `tracer profile` part of `cargo xtask bench`: the added cost of
//! profiling a CPU-bound program with `tracer profile -F 99` and with `perf
//! record -F 99 -g`, interleaved round by round against the untraced run;
//! and a system-wide profile at 49 Hz: tracer's own CPU while sampling, its
//! start-up, its peak memory with every stack named.
use std::{
    io::{BufRead as _, BufReader, Read as _},
    os::unix::process::CommandExt as _,
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
    let result = (|| {
        let (pid, startup) = start_sampling(tracer, WIDE_HZ, &out)?;
        b.wide_startup_ms = startup.as_secs_f64() * 1e3;
        let (c0, s0) = (cpu_now_ms(pid)?, Instant::now());
        std::thread::sleep(Duration::from_secs(WIDE_SECS) - Duration::from_millis(1500));
        let c1 = cpu_now_ms(pid)?;
        b.wide_sampling_cpu_pct = (c1 - c0) / (s0.elapsed().as_secs_f64() * 1e3) * 100.0;
        let (cpu, hwm, ok) = wait_rusage(pid)?;
        ensure!(ok, "tracer profile failed");
        b.wide_total_cpu_ms = cpu;
        b.wide_hwm_kib = hwm;
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

/// Start `tracer profile -F hz -d WIDE_SECS --json -o json` system-wide
/// and wait for it to sample (its "Tracing" line): its pid (reaped by the
/// caller, with wait4) and its start-up time.
fn start_sampling(tracer: &Path, hz: u64, json: &Path) -> Result<(u32, Duration)> {
    let t0 = Instant::now();
    let mut child = Command::new(tracer)
        .args([
            "profile",
            "-F",
            &hz.to_string(),
            "-d",
            &WIDE_SECS.to_string(),
            "--json",
            "-o",
        ])
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line)? == 0 {
            bail!("tracer profile ended before sampling");
        }
        if line.starts_with("Tracing") {
            break;
        }
    }
    let startup = t0.elapsed();
    std::thread::spawn(move || for _ in err.lines() {});
    Ok((pid, startup))
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

/// One system-wide `tracer profile` (default `--unwind auto`) at `hz` while
/// programs without frame pointers run: the walker's kernel-side cost per
/// sample (kernel.bpf_stats_enabled), tracer's CPU once the tables are built
/// and in all, its peak RSS, its maps' memory.
#[derive(Debug, Default, Clone)]
pub struct WalkRun {
    pub hz: u64,
    pub samples: u64,
    /// BPF run time (the sampling program and the walker's runs) per sample.
    pub ns_per_sample: f64,
    /// tracer's CPU from 2 s after sampling started to 1.5 s before the end.
    pub steady_cpu_pct: f64,
    pub total_cpu_ms: f64,
    pub hwm_kib: u64,
    /// memlock of every map tracer holds (fdinfo).
    pub maps_kib: u64,
    /// Shares of the walked samples that ended complete.
    pub complete_pct: f64,
    pub table_ms: f64,
    pub table_objects: u64,
}

/// `perf record -a --call-graph dwarf` for the same time and load, then
/// `perf report`: their CPU, and the data written.
#[derive(Debug, Default, Clone)]
pub struct PerfDwarf {
    pub record_cpu_ms: f64,
    pub report_cpu_ms: f64,
    pub data_mib: f64,
}

#[derive(Debug, Default)]
pub struct UnwindBench {
    pub walks: Vec<WalkRun>,
    pub perf: Vec<PerfDwarf>,
    /// `tracer profile -- cc1 ...` (gcc's compiler proper, Debian's, 33 MB,
    /// no frame pointers): the time to read the tables of it and its libraries.
    pub cc1_table_ms: f64,
    pub cc1_objects: u64,
    pub cc1_mib: f64,
}

pub const UNWIND_RATES: [u64; 2] = [49, 99];
const CC1: &str = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";

/// Programs without frame pointers that keep both CPUs busy: Debian's xz
/// compressing random data over and over, and gzip likewise.
fn unwind_load(dir: &Path) -> Result<Vec<std::process::Child>> {
    let data = dir.join("tracer-bench-random");
    let mut bytes = vec![0u8; 8 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&data, &bytes)?;
    let d = data.display();
    let mut out = Vec::new();
    for tool in ["xz -9 -T1", "gzip -9"] {
        out.push(
            Command::new("sh")
                .args([
                    "-c",
                    &format!("while :; do {tool} -c {d} > /dev/null; done"),
                ])
                .process_group(0)
                .spawn()?,
        );
    }
    Ok(out)
}

fn stop_load(load: Vec<std::process::Child>) {
    for mut l in load {
        unsafe { libc::kill(-(l.id() as i32), libc::SIGKILL) };
        let _ = l.wait();
    }
}

/// Sum of `memlock:` of the maps process `pid` holds.
fn maps_kib(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|t| t.contains("map_type:"))
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        / 1024
}

/// Wait for `pid` (a child) with its rusage: (CPU ms, peak RSS KiB), and
/// whether it exited 0.
fn wait_rusage(pid: u32) -> Result<(f64, u64, bool)> {
    let (mut status, mut ru) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    ensure!(unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) } == pid as i32);
    Ok((
        tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime),
        ru.ru_maxrss as u64,
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    ))
}

/// The `unwind_tables` and `user_stack_ends` of a profile's JSON summary:
/// (build ms, objects, complete share of the walked samples).
fn walk_figures(json: &Path) -> Result<(f64, u64, f64, u64)> {
    let text = std::fs::read_to_string(json)?;
    let v: serde_json::Value = serde_json::from_str(text.lines().last().context("no JSON")?)?;
    let t = &v["unwind_tables"];
    let ends = v["user_stack_ends"]
        .as_object()
        .context("no user_stack_ends")?;
    let walked: u64 = ends.values().filter_map(|x| x.as_u64()).sum();
    let complete = ends.get("complete").and_then(|x| x.as_u64()).unwrap_or(0);
    Ok((
        t["build_ms"].as_f64().unwrap_or(0.0),
        t["objects"].as_u64().unwrap_or(0),
        complete as f64 * 100.0 / walked.max(1) as f64,
        v["total"].as_u64().unwrap_or(0),
    ))
}

/// The walker's costs at each of `UNWIND_RATES`, perf's at the same, and
/// the first tables of a 33 MB program.
pub fn measure_unwind(tracer: &Path) -> Result<UnwindBench> {
    let dir = std::env::temp_dir();
    let mut b = UnwindBench::default();
    for hz in UNWIND_RATES {
        step(&format!(
            "profile system-wide at {hz} Hz for {WIDE_SECS} s, user stacks walked from .eh_frame, while Debian's xz and gzip (no frame pointers) run; then perf record -a --call-graph dwarf and perf report, the same"
        ));
        let load = unwind_load(&dir)?;
        let r = walk_once(tracer, hz, &dir);
        let p = r.as_ref().ok().map(|_| perf_dwarf_once(hz, &dir));
        stop_load(load);
        let r = r?;
        let p = p.context("perf")??;
        eprintln!(
            "    tracer: {} samples, {:.0} ns of BPF a sample, {:.2}% of a CPU once tables are built, {:.0} ms CPU in all, peak RSS {:.1} MB, maps {:.1} MB, {:.1}% complete, tables {:.0} ms ({} objects)",
            r.samples, r.ns_per_sample, r.steady_cpu_pct, r.total_cpu_ms, r.hwm_kib as f64 / 1024.0,
            r.maps_kib as f64 / 1024.0, r.complete_pct, r.table_ms, r.table_objects
        );
        eprintln!(
            "    perf: record {:.0} ms CPU, report {:.0} ms CPU, {:.1} MB written",
            p.record_cpu_ms, p.report_cpu_ms, p.data_mib
        );
        b.walks.push(r);
        b.perf.push(p);
    }
    step("profile -F 999 -- cc1 (Debian's gcc, 33 MB without frame pointers) compiling a C file: its tables' reading time");
    let src = dir.join("tracer-bench-cc1.c");
    let mut c = String::new();
    for i in 0..3000 {
        c += &format!("int f{i}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += i * {i} ^ (s >> 3); return s; }}\n");
    }
    std::fs::write(&src, c)?;
    let json = dir.join("tracer-bench-cc1.json");
    let out = Command::new(tracer)
        .args(["profile", "-F", "999", "--json", "-o"])
        .arg(&json)
        .args(["--", CC1, "-quiet", "-O2"])
        .arg(&src)
        .args(["-o", "/dev/null"])
        .output()?;
    ensure!(out.status.success(), "tracer profile -- cc1: {out:?}");
    let (ms, objects, _, _) = walk_figures(&json)?;
    b.cc1_table_ms = ms;
    b.cc1_objects = objects;
    b.cc1_mib = std::fs::metadata(CC1)?.len() as f64 / (1 << 20) as f64;
    eprintln!("    {objects} objects' tables read in {ms:.0} ms");
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(dir.join("tracer-bench-random"));
    Ok(b)
}

fn walk_once(tracer: &Path, hz: u64, dir: &Path) -> Result<WalkRun> {
    let json = dir.join("tracer-bench-unwind.json");
    let _on = crate::bpfstats::StatsOn::enable()?;
    let mut held = crate::bpfstats::Held::default();
    let (pid, _) = start_sampling(tracer, hz, &json)?;
    held.scan(pid);
    std::thread::sleep(Duration::from_secs(2));
    let (c0, s0) = (cpu_now_ms(pid)?, Instant::now());
    std::thread::sleep(Duration::from_secs(WIDE_SECS) - Duration::from_millis(3500));
    let c1 = cpu_now_ms(pid)?;
    let steady = (c1 - c0) / (s0.elapsed().as_secs_f64() * 1e3) * 100.0;
    let maps = maps_kib(pid);
    let stats = held.read()?;
    let (cpu, hwm, ok) = wait_rusage(pid)?;
    ensure!(ok, "tracer profile failed");
    let (table_ms, table_objects, complete_pct, samples) = walk_figures(&json)?;
    let _ = std::fs::remove_file(&json);
    let ns: u64 = stats
        .iter()
        .filter(|p| p.name == "profile_cpu" || p.name.starts_with("profile_unwind"))
        .map(|p| p.run_time_ns)
        .sum();
    let sampled = stats
        .iter()
        .find(|p| p.name == "profile_cpu")
        .map_or(0, |p| p.run_cnt);
    Ok(WalkRun {
        hz,
        samples,
        ns_per_sample: ns as f64 / sampled.max(1) as f64,
        steady_cpu_pct: steady,
        total_cpu_ms: cpu,
        hwm_kib: hwm,
        maps_kib: maps,
        complete_pct,
        table_ms,
        table_objects,
    })
}

fn perf_dwarf_once(hz: u64, dir: &Path) -> Result<PerfDwarf> {
    let data = dir.join("tracer-bench-dwarf.data");
    let rec = Command::new("perf")
        .args([
            "record",
            "-q",
            "-a",
            "-e",
            "cpu-clock",
            "-F",
            &hz.to_string(),
            "--call-graph",
            "dwarf",
            "-o",
        ])
        .arg(&data)
        .args(["--", "sleep", &WIDE_SECS.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let (record_cpu_ms, _, ok) = wait_rusage(rec.id())?;
    ensure!(ok, "perf record -a --call-graph dwarf failed");
    let data_mib = std::fs::metadata(&data)?.len() as f64 / (1 << 20) as f64;
    let rep = Command::new("perf")
        .args(["report", "--stdio", "-i"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let (report_cpu_ms, _, ok) = wait_rusage(rep.id())?;
    ensure!(ok, "perf report failed");
    let _ = std::fs::remove_file(&data);
    Ok(PerfDwarf {
        record_cpu_ms,
        report_cpu_ms,
        data_mib,
    })
}

/// The walker's section of BENCHMARKS.md.
pub fn render_unwind(b: &UnwindBench) -> String {
    let mut out = String::new();
    out.push_str(
        "\n## Whole stacks without frame pointers (`tracer profile`, `--unwind auto`)\n\n",
    );
    out.push_str(&format!(
        "System-wide for {WIDE_SECS} s while Debian's xz and gzip (built without frame pointers) compress random \
         data on both CPUs, tracer's user stacks walked in the kernel from `.eh_frame`; then `perf record -a \
         --call-graph dwarf` (an 8 KB copy of each sample's stack, unwound afterwards) for the same time and load, \
         and `perf report --stdio` on its data. BPF time per sample from kernel.bpf_stats_enabled (the sampling \
         program and every run of the walker); tracer's CPU \"once tables are built\" is from 2 s after sampling \
         starts to 1.5 s before the end; \"in all\" includes start-up, reading every process's tables, and naming; \
         maps are the memlock of every map tracer holds.\n\n"
    ));
    out.push_str("| rate | samples | complete | BPF per sample | tracer CPU once built | tracer CPU in all | peak RSS | maps | tables read | perf record CPU | perf report CPU | perf data | tracer / perf CPU |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (w, p) in b.walks.iter().zip(&b.perf) {
        out.push_str(&format!(
            "| {} Hz | {} | {:.1}% | {:.1} us | {:.2}% | {:.0} ms | {:.1} MB | {:.1} MB | {:.0} ms ({} objects) | {:.0} ms | {:.0} ms | {:.1} MB | {:.2}x |\n",
            w.hz,
            w.samples,
            w.complete_pct,
            w.ns_per_sample / 1e3,
            w.steady_cpu_pct,
            w.total_cpu_ms,
            w.hwm_kib as f64 / 1024.0,
            w.maps_kib as f64 / 1024.0,
            w.table_ms,
            w.table_objects,
            p.record_cpu_ms,
            p.report_cpu_ms,
            p.data_mib,
            w.total_cpu_ms / (p.record_cpu_ms + p.report_cpu_ms).max(1.0)
        ));
    }
    out.push_str(&format!(
        "\n`tracer profile -F 999 -- cc1 -O2 FILE.c` (Debian's gcc compiler proper, {:.0} MB, without frame pointers): \
         the tables of it and its libraries ({} objects) read in {:.0} ms.\n\n",
        b.cc1_mib, b.cc1_objects, b.cc1_table_ms
    ));
    out
}

/// The walker's budget rows (issue 24).
pub fn unwind_budgets(b: &UnwindBench) -> Vec<(String, f64, f64, bool)> {
    let mut out = Vec::new();
    if let Some(w) = b.walks.iter().find(|w| w.hz == 49) {
        out.push((
            "`tracer profile -F 49` walking stacks system-wide: own CPU once tables are built <= 1% of one CPU".into(),
            w.steady_cpu_pct,
            1.0,
            true,
        ));
    }
    for (w, p) in b.walks.iter().zip(&b.perf) {
        out.push((
            format!(
                "`tracer profile -F {}` CPU in all over `perf record --call-graph dwarf` + `perf report`'s <= 0.2",
                w.hz
            ),
            w.total_cpu_ms / (p.record_cpu_ms + p.report_cpu_ms).max(1.0),
            0.2,
            true,
        ));
        out.push((
            format!(
                "`tracer profile -F {}` maps for every process on this machine <= 150 MB",
                w.hz
            ),
            w.maps_kib as f64 / 1024.0,
            150.0,
            true,
        ));
    }
    out.push((
        format!(
            "tables of a {:.0} MB program (cc1) and its libraries read <= 1000 ms",
            b.cc1_mib
        ),
        b.cc1_table_ms,
        1000.0,
        true,
    ));
    out
}
