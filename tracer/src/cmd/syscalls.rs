//! `tracer syscalls`: counts per syscall (and per process, per errno) in
//! per-CPU maps, read at each interval and at the end.
use std::{cell::RefCell, collections::BTreeMap};

use anyhow::Result;
use tracer_common::{drops, flags, ProcInfo, MAX_SYSCALLS};

use super::{
    clock,
    process::{self, Selection},
    run::{Counting, Head},
};
use crate::{
    bpf::{self, Object},
    cli::{Layout, SortKey, SyscallsArgs},
    collect::syscalls::{Collector, Counts},
    report::{self, Block, BlockKind, Measured, Process, Row},
    sys::{cgroup::Namer, names, proc},
};

/// Everything decided from the command line before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub layout: Layout,
    pub json: bool,
    /// Every flag the programs run with (the selection's included).
    pub flags: u32,
    pub selection: Selection,
    /// Syscall numbers given with -e.
    pub syscalls: Vec<u32>,
    pub sort: SortKey,
    pub top: Option<usize>,
    pub measured: Measured,
    /// Rows of the labelled counters (`flags::BY_ANY`, `tracer serve --max-series`).
    pub max_series: u32,
    /// Name each process's cgroup (-P --show-cgroup).
    pub show_cgroup: bool,
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
    /// Rows of the labelled counters: the series cap, or 1 (unused).
    pub fn label_rows(&self) -> u32 {
        if self.flags & flags::BY_ANY != 0 {
            self.max_series.max(1)
        } else {
            1
        }
    }
}

/// The table indexes of syscalls given by name (-e): each name in every ABI
/// that has it (`getpid@32`: in one), checked against the kernel side's table.
pub fn syscall_numbers(names: &[String]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for name in names.iter().filter(|n| !n.trim().is_empty()) {
        for index in names::syscall_indexes(name).map_err(anyhow::Error::msg)? {
            let (_, nr) = names::Abi::of(index);
            if index >= MAX_SYSCALLS {
                anyhow::bail!(
                    "syscall `{name}` (number {nr}) is beyond tracer's table of {MAX_SYSCALLS}"
                );
            }
            out.push(index);
        }
    }
    Ok(out)
}

/// Turn arguments into a plan; every bad value is reported here, before loading anything.
pub fn plan(a: &SyscallsArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    let targeted = selection.targeted();
    let layout = a.layout();
    let mut f = selection.flags;
    let syscalls = syscall_numbers(&a.syscall)?;
    if !syscalls.is_empty() {
        f |= flags::FILTER_SYSCALL;
    }
    if a.per_process {
        // Rows of exited processes are taken out of the kernel maps during the run.
        f |= flags::PER_PROCESS | flags::EXIT_NOTICES;
    }
    if (a.blocks.interval.is_some() || a.per_process) && !targeted {
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
    let json = a.run.json;
    let time = a.latency || layout == Layout::Strace;
    let errors = a.failures || a.errno || layout == Layout::Strace || json && time;
    if time || errors {
        f |= flags::EXIT_HOOK;
    }
    let sort = a
        .sort
        .unwrap_or(if time { SortKey::Time } else { SortKey::Calls });
    let top = if a.all {
        None
    } else {
        match (a.blocks.top, layout) {
            (Some(n), _) => Some(n as usize),
            (None, Layout::Syscount) => Some(10),
            (None, Layout::Strace) => None,
        }
    };
    Ok(Plan {
        layout,
        json,
        flags: f,
        selection,
        syscalls,
        sort,
        top,
        measured: Measured { errors, time },
        max_series: 0,
        show_cgroup: a.show_cgroup,
    })
}

/// Rows of the refused-series set at least (about 100 bytes each).
const REFUSED_ROWS: u32 = 16384;

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
            let (abi, abi_nr) = names::Abi::of(nr);
            Row {
                name: names::syscall_name(nr),
                nr: abi_nr,
                abi,
                calls: s.calls,
                errors: s.errors,
                total_ns: s.total_ns,
                errnos,
            }
        })
        .collect()
}

/// Build a report block from counts; `namer` names the processes' cgroups
/// (with --show-cgroup).
pub fn block(
    plan: &Plan,
    kind: BlockKind,
    seconds: f64,
    counts: &Counts,
    procs: &BTreeMap<u32, ProcInfo>,
    launched: Option<u32>,
    namer: Option<&mut Namer>,
) -> Block {
    let mut rows = rows_of(&counts.by_syscall, counts, None);
    report::sort_rows(&mut rows, plan.sort);
    let cgroups = namer
        .filter(|_| plan.show_cgroup)
        .map(|n| n.name_all(counts.by_process.keys().copied(), procs));
    let mut processes: Vec<Process> = counts
        .by_process
        .iter()
        .map(|(&pid, stats)| {
            let mut rows = rows_of(stats, counts, Some(pid));
            report::sort_rows(&mut rows, plan.sort);
            let (ppid, comm) = proc::parent_and_comm(pid, procs.get(&pid));
            let ppid = if Some(pid) == launched {
                std::process::id()
            } else {
                ppid
            };
            Process {
                pid,
                ppid,
                comm,
                cgroup: cgroups.as_ref().and_then(|c| c.get(&pid).cloned()),
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
        show_cgroup: cgroups.is_some(),
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
        Layout::Strace => report::strace::render(&b, plan.top),
    }
}

/// What attaching leaves: the collector and the processes the kernel saw,
/// and the names of their cgroups found so far.
pub struct Live {
    collector: Collector,
    cgroups: RefCell<Namer>,
}

impl Counting for Plan {
    type Live = Live;
    type Counts = Counts;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Object)> {
        let follow = self.targeted() || self.per_process();
        let proc_rows = if self.per_process() {
            let rows = proc_stats_rows(proc::count_processes(), bpf::possible_cpus()?);
            log::info!("per-process table: {rows} rows");
            rows
        } else {
            1
        };
        let globals = bpf::Globals {
            flags: self.flags,
            ..self.selection.globals(0, false)
        };
        let sized = |on: bool, n: u32| if on { n } else { 1 };
        let labelled = self.flags & flags::BY_ANY != 0;
        let rows = self.label_rows();
        let mut obj = bpf::load_following(
            globals,
            follow,
            &[
                ("PROC_STATS", proc_rows),
                (
                    "PROC_EXITS",
                    sized(self.per_process(), EXIT_RING_BYTES).max(4096),
                ),
                ("ERRNO_STATS", sized(self.flags & flags::ERRNO != 0, 8192)),
                (
                    "SYSCALL_HIST",
                    sized(self.flags & flags::HIST != 0, MAX_SYSCALLS),
                ),
                ("LABEL_INDEX", rows),
                ("LABEL_KEYS", rows),
                ("LABEL_COUNTS", rows),
                ("LABEL_FREE", rows),
                // Refused rows are remembered to count each once; past this
                // many, they are counted per call as "not remembered".
                (
                    "LABEL_REFUSED",
                    sized(labelled, self.max_series.clamp(REFUSED_ROWS, 1 << 20)),
                ),
                ("LABEL_OVERFLOW", sized(labelled, MAX_SYSCALLS)),
            ],
        )?;
        obj.fill_array("SYSCALL_FILTER", self.syscalls.iter().map(|&nr| (nr, 1u8)))?;
        let collector = Collector::new(
            &mut obj,
            self.per_process(),
            self.flags & flags::ERRNO != 0,
            self.flags & flags::EXIT_NOTICES != 0,
        )?;
        if self.exit_hook() {
            obj.attach_raw_tracepoint("sys_exit", "sys_exit")?;
            obj.attach_entry_cleanup()?;
        }
        // With no filter and no exit hook, a program that only increments.
        let enter = if self.flags == 0 {
            "sys_enter_count"
        } else {
            "sys_enter"
        };
        obj.attach_raw_tracepoint(enter, "sys_enter")?;
        let cgroups = RefCell::new(Namer::when(self.show_cgroup));
        Ok((Live { collector, cgroups }, obj))
    }

    fn what(&self, _: &Live) -> String {
        match self.top {
            Some(n) if !self.json && !self.targeted() => format!("syscalls, printing top {n}"),
            _ => "syscalls".into(),
        }
    }

    fn read(&self, live: &Live) -> Result<Counts> {
        live.collector.read()
    }

    fn render(&self, live: &Live, head: Head, counts: &Counts) -> String {
        if head.kind == BlockKind::Summary {
            let late = counts.drops[drops::EXITS_LOST as usize];
            if late > 0 {
                log::warn!(
                    "{late} process exits were not seen in time (exit-notice ring full): their \
                     rows stayed in the kernel's per-process table until a sweep took them; no \
                     count was lost"
                );
            }
        }
        let mut b = block(
            self,
            head.kind,
            head.seconds,
            counts,
            &live.collector.procs(),
            head.launched,
            Some(&mut live.cgroups.borrow_mut()),
        );
        b.exit_code = head.exit_code;
        render(self, &b)
    }

    /// Rows of exited processes leave the kernel's maps every 100 ms (-P).
    fn keeps_house(&self) -> bool {
        self.per_process()
    }

    fn housekeeping(&self, live: &mut Live) -> Result<Vec<u32>> {
        let gone = live.collector.drain_exited(proc::group_gone)?;
        if self.show_cgroup && !gone.is_empty() {
            // Name their cgroups now, before those are removed too (a
            // container's, when its last process exits).
            let ids = gone.iter().filter_map(|&t| live.collector.proc_info(t));
            let ids: Vec<u64> = ids.map(|info| info.cgroup).collect();
            live.cgroups.get_mut().learn(ids);
        }
        Ok(gone)
    }

    fn quiet_with_command(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn args(argv: &[&str]) -> SyscallsArgs {
        let Command::Syscalls(a) = crate::cli::parse("syscalls", argv) else {
            unreachable!()
        };
        a
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
        assert_eq!(p.selection.pids, [std::process::id()]);
        assert_eq!(
            p.syscalls.len(),
            6,
            "read and openat in each of the three ABIs"
        );
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
                cgroup: 0,
            },
        );
        let b = block(&p, BlockKind::Summary, 1.0, &c, &procs, None, None);
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
        assert!(!b.show_cgroup && !text.contains("CGROUP"), "{text}");
        // --show-cgroup: the recorded cgroup id, named (the v2 mount's root is `/`).
        let p = plan(&args(&["--errno", "-P", "--all", "--show-cgroup"])).unwrap();
        let root = crate::sys::cgroup::cgroup2_mount();
        let ino = root.as_ref().map_or(0, |r| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(r).unwrap())
        });
        procs.get_mut(&4242).unwrap().cgroup = ino;
        let mut namer = Namer::new();
        let b = block(
            &p,
            BlockKind::Summary,
            1.0,
            &c,
            &procs,
            None,
            Some(&mut namer),
        );
        assert_eq!(b.processes[0].cgroup, root.map(|_| "/".to_string()));
        let text = render(&p, &b);
        assert!(text.contains("CGROUP"), "{text}");
        let e = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "tracer",
            "syscalls",
            "--show-cgroup",
        ]);
        assert!(e.is_err(), "--show-cgroup needs -P");
    }
}
