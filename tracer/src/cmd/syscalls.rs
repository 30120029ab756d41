//! `tracer syscalls`: plan from the arguments, load and attach, collect on a
//! timer, report at each interval and at the end.
use std::{collections::BTreeMap, time::Instant};

use anyhow::{Context as _, Result};
use tracer_common::{drops, flags, ProcInfo, MAX_SYSCALLS};

use super::{clock, session::Session, Sink};
use crate::{
    bpf,
    cli::{Layout, SortKey, SyscallsArgs},
    collect::syscalls::{Collector, Counts},
    report::{self, Block, BlockKind, Measured, Process, Row},
    sys::{launch, names, proc, tracefs},
};

/// Everything decided from the command line before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub layout: Layout,
    pub json: bool,
    pub flags: u32,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
    /// Processes given with -p (tgids).
    pub pids: Vec<u32>,
    /// Syscall numbers given with -e.
    pub syscalls: Vec<u32>,
    pub sort: SortKey,
    pub top: Option<usize>,
    pub measured: Measured,
}

impl Plan {
    pub fn exit_hook(&self) -> bool {
        self.flags & flags::EXIT_HOOK != 0
    }
    pub fn per_process(&self) -> bool {
        self.flags & flags::PER_PROCESS != 0
    }
    pub fn targeted(&self) -> bool {
        self.flags & flags::FILTER_TGID != 0
    }
}

/// Turn arguments into a plan; every bad value is reported here, before loading anything.
pub fn plan(a: &SyscallsArgs) -> Result<Plan> {
    let targeted = !a.launch.command.is_empty() || !a.pid.is_empty();
    if !a.launch.command.is_empty() && !a.pid.is_empty() {
        anyhow::bail!("give either -p PID or -- CMD, not both");
    }
    let layout = a.format.unwrap_or(if targeted {
        Layout::Strace
    } else {
        Layout::Syscount
    });
    let mut f = 0;
    let pids = proc::resolve_pids(&a.pid)?;
    if targeted {
        f |= flags::FILTER_TGID;
        if !a.no_follow {
            f |= flags::FOLLOW_FORKS;
        }
    }
    let task = proc::task_filters(a.uid.as_deref(), a.comm.as_deref())?;
    f |= task.flags;
    let (target_uid, target_comm) = (task.uid, task.comm);
    let mut syscalls = Vec::new();
    for name in a.syscall.iter().filter(|n| !n.trim().is_empty()) {
        let nr = names::syscall_number(name).map_err(anyhow::Error::msg)?;
        if nr >= MAX_SYSCALLS {
            anyhow::bail!(
                "syscall `{name}` (number {nr}) is beyond tracer's table of {MAX_SYSCALLS}"
            );
        }
        syscalls.push(nr);
    }
    if !syscalls.is_empty() {
        f |= flags::FILTER_SYSCALL;
    }
    if a.per_process {
        // Rows of exited processes are taken out of the kernel maps during the run.
        f |= flags::PER_PROCESS | flags::EXIT_NOTICES;
    }
    if (a.interval.is_some() || a.per_process) && !targeted {
        // Reading the maps every interval (or draining exited processes every
        // 100 ms) makes syscalls; keep them out of the counts.
        f |= flags::EXCLUDE_SELF;
    }
    if a.failures {
        f |= flags::FAILURES_ONLY;
    }
    if a.errno {
        f |= flags::ERRNO;
    }
    let time = a.latency || layout == Layout::Strace;
    let errors = a.failures || a.errno || layout == Layout::Strace || a.json && time;
    if time || errors {
        f |= flags::EXIT_HOOK;
    }
    let sort = a
        .sort
        .unwrap_or(if time { SortKey::Time } else { SortKey::Calls });
    let top = if a.all {
        None
    } else {
        match (a.top, layout) {
            (Some(n), _) => Some(n as usize),
            (None, Layout::Syscount) => Some(10),
            (None, Layout::Strace) => None,
        }
    };
    Ok(Plan {
        layout,
        json: a.json,
        flags: f,
        target_uid,
        target_comm,
        pids,
        syscalls,
        sort,
        top,
        measured: Measured { errors, time },
    })
}

/// Bytes of the exit-notice ring (16 per exited process): 16384 exits between
/// two drains 100 ms apart, far more than a machine forks.
const EXIT_RING_BYTES: u32 = 256 * 1024;

/// Rows of `PROC_STATS`, one per (process, syscall) in use. Rows of exited
/// processes are drained during the run, so it holds the live processes only:
/// 64 rows for each running at start (a process uses about 20 syscalls, rarely
/// more than 50, and as many may start as are running), at least 32768, at
/// most 262144. The map is preallocated with a value per possible CPU, so the
/// rows are also kept under about 256 MiB (about 100 bytes + 24 per CPU each).
pub fn proc_stats_rows(processes: usize, cpus: usize) -> u32 {
    let wanted = (processes.saturating_mul(64)).clamp(32768, 262_144);
    let per_row = 104 + 24 * cpus.max(1);
    let budget = (256usize << 20) / per_row;
    wanted.min(budget.max(8192)) as u32
}

/// Rows for one syscall table: names, errnos of `tgid` (0 = all) attached.
fn rows_of(
    stats: &BTreeMap<u32, tracer_common::SyscallStat>,
    counts: &Counts,
    tgid: Option<u32>,
) -> Vec<Row> {
    stats
        .iter()
        .filter(|(_, s)| s.calls > 0)
        .map(|(&nr, s)| {
            let mut errnos: Vec<(String, u64)> = counts
                .errnos
                .iter()
                .filter(|((t, sc, _), n)| {
                    *sc == nr && **n > 0 && tgid.is_none_or(|want| *t == want)
                })
                .fold(BTreeMap::<u32, u64>::new(), |mut m, ((_, _, e), n)| {
                    *m.entry(*e).or_default() += n;
                    m
                })
                .into_iter()
                .map(|(e, n)| (names::errno_name(e), n))
                .collect();
            errnos.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Row {
                name: names::syscall_name(nr),
                nr,
                calls: s.calls,
                errors: s.errors,
                total_ns: s.total_ns,
                errnos,
            }
        })
        .collect()
}

/// Build a report block from counts.
pub fn block(
    plan: &Plan,
    kind: BlockKind,
    seconds: f64,
    counts: &Counts,
    procs: &BTreeMap<u32, ProcInfo>,
    launched: Option<u32>,
) -> Block {
    let mut rows = rows_of(&counts.by_syscall, counts, None);
    report::sort_rows(&mut rows, plan.sort);
    let mut processes: Vec<Process> = counts
        .by_process
        .iter()
        .map(|(&pid, stats)| {
            let mut rows = rows_of(stats, counts, Some(pid));
            report::sort_rows(&mut rows, plan.sort);
            let status = proc::status(pid);
            let (ppid, comm) = match (procs.get(&pid), &status) {
                (Some(info), _) if info.comm[0] != 0 => {
                    let ppid = match &status {
                        Some(st) if info.ppid == 0 => st.ppid,
                        _ => info.ppid,
                    };
                    (ppid, proc::comm_str(&info.comm))
                }
                (_, Some(st)) => (st.ppid, st.name.clone()),
                _ => (0, "?".into()),
            };
            let ppid = if Some(pid) == launched {
                std::process::id()
            } else {
                ppid
            };
            Process {
                pid,
                ppid,
                comm,
                rows,
            }
        })
        .filter(|p| p.calls() > 0)
        .collect();
    processes.sort_by(|a, b| {
        let k = match plan.sort {
            SortKey::Time => b.total_ns().cmp(&a.total_ns()),
            SortKey::Name => a.comm.cmp(&b.comm),
            _ => b.calls().cmp(&a.calls()),
        };
        k.then(a.pid.cmp(&b.pid))
    });
    Block {
        kind,
        clock: clock(),
        seconds,
        rows,
        processes,
        measured: plan.measured,
        drops: counts.named_drops(),
        exit_code: None,
    }
}

/// Render a block in the plan's output format.
pub fn render(plan: &Plan, b: &Block) -> String {
    let mut b = b.clone();
    if let Some(top) = plan.top {
        b.rows.truncate(top);
        if plan.layout == Layout::Syscount {
            b.processes.truncate(top);
        }
    }
    if plan.json {
        return report::json::render(&b, plan.flags & flags::ERRNO != 0) + "\n";
    }
    match plan.layout {
        Layout::Syscount => report::syscount::render(
            &b,
            report::syscount::Options {
                top: plan.top,
                latency: plan.measured.time,
                per_process: plan.per_process(),
            },
        ),
        Layout::Strace => {
            let mut out = String::new();
            if b.kind == BlockKind::Interval {
                out.push_str(&format!("[{}]\n", b.clock));
            }
            out.push_str(&report::strace::table(&b.rows));
            for p in &b.processes {
                out.push('\n');
                out.push_str(&report::strace::process_heading(p));
                let mut rows = p.rows.clone();
                if let Some(top) = plan.top {
                    rows.truncate(top);
                }
                out.push_str(&report::strace::table(&rows));
            }
            if let Some(w) = report::drops_line(&b.drops) {
                out.push_str(&w);
                out.push('\n');
            }
            out
        }
    }
}

pub async fn run(args: SyscallsArgs) -> Result<i32> {
    let plan = plan(&args)?;
    let prepared = launch::prepare_opt(&args.launch)?;
    crate::sys::privileges::check()?;
    let started = Instant::now();
    let follow_hooks = plan.targeted() || plan.per_process();
    let mut globals = bpf::Globals {
        flags: plan.flags,
        target_uid: plan.target_uid,
        target_comm: plan.target_comm,
        fork_child_pid_offset: None,
    };
    if follow_hooks {
        let tfs = tracefs::ensure_mounted()?;
        let off = tracefs::field_offset(&tfs, "sched", "sched_process_fork", "child_pid")?;
        globals.fork_child_pid_offset = Some(off as u32);
    }
    let big = |on: bool| if on { 32768 } else { 1 };
    let proc_rows = if plan.per_process() {
        let rows = proc_stats_rows(proc::count_processes(), aya::util::nr_cpus().unwrap_or(1));
        log::info!("per-process table: {rows} rows");
        rows
    } else {
        1
    };
    let mut ebpf = bpf::load(
        &globals,
        &[
            ("PROC_STATS", proc_rows),
            (
                "PROC_EXITS",
                if plan.per_process() {
                    EXIT_RING_BYTES
                } else {
                    4096
                },
            ),
            (
                "ERRNO_STATS",
                if plan.flags & flags::ERRNO != 0 {
                    8192
                } else {
                    1
                },
            ),
            ("TRACED_TGIDS", big(plan.targeted())),
            ("PROCS", big(follow_hooks)),
        ],
    )?;
    if !plan.syscalls.is_empty() {
        let mut filter: aya::maps::Array<_, u8> = aya::maps::Array::try_from(
            ebpf.map_mut("SYSCALL_FILTER")
                .context("map SYSCALL_FILTER missing")?,
        )?;
        for &nr in &plan.syscalls {
            filter.set(nr, 1, 0)?;
        }
    }
    let collector = Collector::new(
        &mut ebpf,
        plan.per_process(),
        plan.flags & flags::ERRNO != 0,
        plan.flags & flags::EXIT_NOTICES != 0,
    )?;
    if follow_hooks {
        bpf::attach_tracepoint(
            &mut ebpf,
            "sched_process_fork",
            "sched",
            "sched_process_fork",
        )?;
        bpf::attach_raw_tracepoint(&mut ebpf, "sched_process_exec", "sched_process_exec")?;
        bpf::attach_raw_tracepoint(&mut ebpf, "sched_process_exit", "sched_process_exit")?;
    }
    if plan.exit_hook() {
        bpf::attach_raw_tracepoint(&mut ebpf, "sys_exit", "sys_exit")?;
    }
    // With no filter and no exit hook, a program that only increments.
    let enter = if plan.flags == 0 {
        "sys_enter_count"
    } else {
        "sys_enter"
    };
    bpf::attach_raw_tracepoint(&mut ebpf, enter, "sys_enter")?;
    log::info!(
        "loaded and attached in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut session = Session::start(&mut ebpf, &plan.pids, plan.targeted(), prepared.as_ref())?;
    let launched = session.launched;
    if launched.is_none() {
        let what = if plan.targeted() {
            let pids: Vec<String> = plan.pids.iter().map(u32::to_string).collect();
            let children = if args.no_follow {
                ""
            } else {
                " and its children"
            };
            format!(" of pid {}{children}", pids.join(", "))
        } else {
            match plan.top {
                Some(n) if !plan.json => format!(", printing top {n}"),
                _ => String::new(),
            }
        };
        eprintln!("Tracing syscalls{what}... Ctrl-C to end.");
    }

    // strace's layout goes to stderr, as strace's does; with a command launched
    // every report does: CMD's stdout is its own.
    let to_stderr =
        (plan.layout == Layout::Strace && !plan.json) || !args.launch.command.is_empty();
    let mut sink = Sink::new(args.output.as_deref(), to_stderr)?;
    let t0 = Instant::now();
    let mut prev = Counts::default();
    // Read at intervals, drained every 100 ms: both by the one loop, in turn.
    let collector = std::cell::RefCell::new(collector);
    let end = session
        .run_with(
            args.duration,
            args.interval,
            |secs| {
                let collector = collector.borrow();
                let now = collector.read()?;
                let b = block(
                    &plan,
                    BlockKind::Interval,
                    secs,
                    &now.since(&prev),
                    &collector.procs(),
                    launched,
                );
                sink.write(&render(&plan, &b))?;
                prev = now;
                Ok(())
            },
            plan.per_process()
                .then_some(|| collector.borrow_mut().drain_exited(proc::group_gone)),
        )
        .await?;
    // Stop counting before the final read so the block is consistent.
    drop(ebpf);
    let collector = collector.into_inner();
    let counts = collector.read()?;
    let late = counts.drops[drops::EXITS_LOST as usize];
    if late > 0 {
        log::warn!(
            "{late} process exits were not seen in time (exit-notice ring full): their rows \
             stayed in the kernel's per-process table until a sweep took them; no count was lost"
        );
    }
    let mut b = block(
        &plan,
        BlockKind::Summary,
        t0.elapsed().as_secs_f64(),
        &counts,
        &collector.procs(),
        launched,
    );
    b.exit_code = end.command_exit_code(launched.is_some());
    sink.write(&render(&plan, &b))?;
    Ok(end.exit_code(launched.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(argv: &[&str]) -> SyscallsArgs {
        let mut v = vec!["tracer", "syscalls"];
        v.extend_from_slice(argv);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Syscalls(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn system_wide_count_is_enter_only() {
        let p = plan(&args(&[])).unwrap();
        assert_eq!(p.layout, Layout::Syscount);
        assert_eq!(p.flags, 0);
        assert_eq!(p.top, Some(10));
        assert_eq!(p.sort, SortKey::Calls);
        assert!(!p.exit_hook());
    }

    #[test]
    fn latency_needs_exit_hook_and_sorts_by_time() {
        let p = plan(&args(&["-L", "--all"])).unwrap();
        assert!(p.exit_hook());
        assert_eq!(p.sort, SortKey::Time);
        assert_eq!(p.top, None);
    }

    #[test]
    fn command_uses_strace_layout_and_follows() {
        let p = plan(&args(&["--", "true"])).unwrap();
        assert_eq!(p.layout, Layout::Strace);
        assert_eq!(p.flags & flags::FOLLOW_FORKS, flags::FOLLOW_FORKS);
        assert!(p.targeted() && p.exit_hook());
        assert_eq!(p.top, None);
        let p = plan(&args(&["--no-follow", "--", "true"])).unwrap();
        assert_eq!(p.flags & flags::FOLLOW_FORKS, 0);
    }

    #[test]
    fn filters() {
        let me = std::process::id().to_string();
        let p = plan(&args(&[
            "-p",
            &me,
            "-e",
            "read,openat",
            "-u",
            "0",
            "--comm",
            "sh",
            "--errno",
            "-x",
        ]))
        .unwrap();
        assert_eq!(p.pids, [std::process::id()]);
        assert_eq!(p.syscalls.len(), 2);
        let want = flags::FILTER_TGID
            | flags::FOLLOW_FORKS
            | flags::FILTER_SYSCALL
            | flags::FILTER_UID
            | flags::FILTER_COMM
            | flags::ERRNO
            | flags::FAILURES_ONLY
            | flags::EXIT_HOOK;
        assert_eq!(p.flags, want);
    }

    #[test]
    fn bad_input_is_an_error() {
        let e = plan(&args(&["-e", "opnat"])).unwrap_err().to_string();
        assert!(e.contains("did you mean") && e.contains("openat"), "{e}");
        let e = plan(&args(&["-p", "999999999"])).unwrap_err().to_string();
        assert!(e.contains("no process"), "{e}");
        let e = plan(&args(&["--comm", "a-very-long-command-name"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("15 bytes"), "{e}");
        let e = plan(&args(&["-u", "no-such-user-xyz"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no user"), "{e}");
        let me = std::process::id().to_string();
        assert!(plan(&args(&["-p", &me, "--", "true"])).is_err());
    }

    #[test]
    fn per_process_drains_exited_processes() {
        let p = plan(&args(&["-P"])).unwrap();
        let want = flags::PER_PROCESS | flags::EXIT_NOTICES | flags::EXCLUDE_SELF;
        assert_eq!(p.flags, want);
        // Targeted: tracer is not in the traced set, nothing to exclude.
        let p = plan(&args(&["--per-process", "--", "true"])).unwrap();
        assert_eq!(p.flags & want, flags::PER_PROCESS | flags::EXIT_NOTICES);
        assert_eq!(plan(&args(&[])).unwrap().flags & flags::EXIT_NOTICES, 0);
    }

    #[test]
    fn per_process_table_size() {
        assert_eq!(proc_stats_rows(80, 2), 32768);
        assert_eq!(proc_stats_rows(2000, 2), 128_000);
        assert_eq!(proc_stats_rows(100_000, 2), 262_144);
        // Many CPUs: the memory budget wins, down to a floor.
        assert!(proc_stats_rows(2000, 256) < 50_000);
        assert_eq!(proc_stats_rows(2000, 100_000), 8192);
    }

    #[test]
    fn blocks_from_counts() {
        let p = plan(&args(&["--errno", "-P", "--all"])).unwrap();
        let mut c = Counts::default();
        let st = |calls, errors| tracer_common::SyscallStat {
            calls,
            errors,
            total_ns: 0,
        };
        c.by_syscall.insert(2, st(5, 3));
        c.by_syscall.insert(0, st(9, 0));
        c.by_process.entry(4242).or_default().insert(2, st(5, 3));
        c.errnos.insert((4242, 2, 2), 3);
        let mut procs = BTreeMap::new();
        procs.insert(
            4242,
            ProcInfo {
                ppid: 1,
                _pad: 0,
                comm: *b"fixture\0\0\0\0\0\0\0\0\0",
            },
        );
        let b = block(&p, BlockKind::Summary, 1.0, &c, &procs, None);
        assert_eq!(b.rows[0].nr, 0);
        assert_eq!(b.rows[1].errnos, vec![("ENOENT".to_string(), 3)]);
        assert_eq!(b.processes.len(), 1);
        assert_eq!(b.processes[0].comm, "fixture");
        assert_eq!(
            b.processes[0].rows[0].errnos,
            vec![("ENOENT".to_string(), 3)]
        );
        let text = render(&p, &b);
        assert!(text.contains("fixture"), "{text}");
    }
}
