//! `tracer kprobe`: resolve patterns to kernel functions, load, attach with the
//! backend that works, collect on a timer, report at intervals and at the end.
use std::{
    collections::BTreeMap,
    io::Write as _,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use tracer_common::{flags, LOG2_SLOTS};

use super::{clock, session::Session, Sink};
use crate::{
    bpf::{
        self,
        kprobe::{Attached, Backend, Job},
    },
    cli::{KprobeArgs, KprobeBackend},
    collect::kfuncs::{KCollector, KCounts},
    report::{
        kfuncs::{self as funcs, FuncBlock, FuncRow, Mode, ProcRow, StackRow},
        BlockKind,
    },
    sys::{kfuncs, launch, proc, tracefs},
};

/// Everything decided from the command line before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub job: Job,
    pub flags: u32,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
    pub pids: Vec<u32>,
    /// Backends to try, in order.
    pub backends: Vec<Backend>,
    pub top: Option<usize>,
    pub json: bool,
}

impl Plan {
    fn targeted(&self) -> bool {
        self.flags & flags::FILTER_TGID != 0
    }
    fn per_process(&self) -> bool {
        self.flags & flags::PER_PROCESS != 0
    }
    fn mode(&self) -> Mode {
        match self.job {
            Job::Count => Mode::Count,
            Job::Latency => Mode::Latency,
            Job::Stack => Mode::Stack,
        }
    }
}

pub fn plan(a: &KprobeArgs) -> Result<Plan> {
    let filters = super::probe_run::filters(&a.process)?;
    let mut f = filters.flags;
    let (pids, target_uid, target_comm) = (filters.pids, filters.target_uid, filters.target_comm);
    if a.per_process {
        f |= flags::PER_PROCESS;
    }
    let job = match (a.latency, a.stack) {
        (true, _) => Job::Latency,
        (_, true) => Job::Stack,
        _ => Job::Count,
    };
    let backends = match a.backend {
        Some(KprobeBackend::Kprobe) => vec![Backend::Kprobe],
        Some(KprobeBackend::Fentry) => vec![Backend::Fentry],
        None => vec![Backend::Fentry, Backend::Kprobe],
    };
    let top = match (a.top, job) {
        (Some(t), _) => Some(t as usize),
        (None, Job::Stack) => Some(10),
        (None, _) => None,
    };
    Ok(Plan {
        job,
        flags: f,
        target_uid,
        target_comm,
        pids,
        backends,
        top,
        json: a.json,
    })
}

/// Names for the addresses the kernel reports, from kallsyms.
struct Symbols {
    syms: BTreeMap<u64, String>,
}

impl Symbols {
    fn load() -> Self {
        Self {
            syms: aya::util::kernel_symbols().unwrap_or_default(),
        }
    }
    fn function(&self, ip: u64) -> String {
        kfuncs::function_of(&self.syms, ip)
    }
    fn frame(&self, ip: u64) -> String {
        kfuncs::symbolize(&self.syms, ip)
    }
}

/// Frames of the tracing machinery itself (the BPF program, its trampoline) are
/// not part of the traced call path.
fn is_tracing_frame(name: &str) -> bool {
    name.starts_with("bpf_prog_") || name.starts_with("bpf_trampoline_") || name.starts_with("0x")
}

/// How a block turns kernel facts into names: a function's address into its
/// name, a stack id into symbolized frames, a pid into its comm.
pub struct Names<'a> {
    pub function: &'a dyn Fn(u64) -> String,
    pub frames: &'a dyn Fn(u32) -> Vec<String>,
    pub comm: &'a dyn Fn(u32) -> String,
}

/// Build a report block from counts.
pub fn block(
    plan: &Plan,
    kind: BlockKind,
    seconds: f64,
    backend: Backend,
    counts: &KCounts,
    names: &Names,
) -> FuncBlock {
    let mut by_name: BTreeMap<String, FuncRow> = BTreeMap::new();
    let mut procs: BTreeMap<(u32, String), u64> = BTreeMap::new();
    let mut name_of: BTreeMap<u64, String> = BTreeMap::new();
    let mut name = |ip: u64| {
        name_of
            .entry(ip)
            .or_insert_with(|| (names.function)(ip))
            .clone()
    };
    for (&(ip, tgid), st) in &counts.stats {
        let n = name(ip);
        let row = by_name.entry(n.clone()).or_insert_with(|| FuncRow {
            name: n.clone(),
            hist: vec![0; LOG2_SLOTS as usize],
            ..Default::default()
        });
        row.calls += st.calls;
        row.returns += st.returns;
        row.total_ns += st.total_ns;
        if plan.per_process() && st.calls > 0 {
            *procs.entry((tgid, n)).or_default() += st.calls;
        }
    }
    for (&(ip, slot), &v) in &counts.hist {
        let n = name(ip);
        let row = by_name.entry(n.clone()).or_insert_with(|| FuncRow {
            name: n,
            hist: vec![0; LOG2_SLOTS as usize],
            ..Default::default()
        });
        if let Some(s) = row.hist.get_mut(slot as usize) {
            *s += v;
        }
    }
    let mut funcs: Vec<FuncRow> = by_name.into_values().collect();
    funcs::sort_funcs(&mut funcs, plan.mode());
    let mut stacks: Vec<StackRow> = counts
        .stacks
        .iter()
        .filter(|(_, &c)| c > 0)
        .map(|(&(ip, id), &count)| {
            let mut fr: Vec<String> = (names.frames)(id);
            let skip = fr.iter().take_while(|f| is_tracing_frame(f)).count();
            fr.drain(..skip);
            StackRow {
                function: name(ip),
                frames: fr,
                count,
            }
        })
        .collect();
    stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.frames.cmp(&b.frames)));
    let mut procs: Vec<ProcRow> = procs
        .into_iter()
        .map(|((pid, function), calls)| ProcRow {
            pid,
            comm: (names.comm)(pid),
            function,
            calls,
        })
        .collect();
    procs.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then(a.pid.cmp(&b.pid))
            .then_with(|| a.function.cmp(&b.function))
    });
    if let Some(t) = plan.top {
        if plan.job == Job::Stack {
            stacks.truncate(t);
        } else {
            funcs.truncate(t);
            procs.truncate(t);
        }
    }
    FuncBlock {
        kind,
        clock: clock(),
        seconds,
        mode: plan.mode(),
        backend: backend.name(),
        funcs,
        procs,
        stacks,
        drops: counts.named_drops(),
        exit_code: None,
    }
}

fn render(plan: &Plan, b: &FuncBlock) -> String {
    if plan.json {
        funcs::render_json(b) + "\n"
    } else {
        funcs::render(b)
    }
}

/// Shows `attaching i/N` on stderr once attaching has taken more than a second.
struct Progress {
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn tick(&mut self, done: usize, total: usize) {
        let now = Instant::now();
        if now.duration_since(self.started) < Duration::from_secs(1) {
            return;
        }
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_millis(200))
            && done < total
        {
            return;
        }
        self.last = Some(now);
        eprint!("\rattaching: {done}/{total} functions");
        let _ = std::io::stderr().flush();
    }
    fn finish(&self) {
        if self.last.is_some() {
            eprintln!();
        }
    }
}

pub async fn run(args: KprobeArgs) -> Result<i32> {
    let plan = plan(&args)?;
    let prepared = launch::prepare_opt(&args.process.launch)?;
    crate::sys::privileges::check()?;
    let tfs = tracefs::ensure_mounted().ok();
    let (traceable, source) = kfuncs::traceable(tfs.as_deref())?;
    let all =
        kfuncs::kallsyms_functions(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default());
    let funcs = kfuncs::resolve(&args.patterns, &traceable, &all)?;
    if funcs.len() > args.max_probes as usize {
        bail!(
            "{} matches {} kernel functions, more than --max-probes {}: narrow the pattern or raise --max-probes",
            args.patterns.join(" "),
            funcs.len(),
            args.max_probes
        );
    }
    if source == kfuncs::Source::Kallsyms {
        log::info!("tracefs function list unreadable: matching against /proc/kallsyms (some may not attach)");
    }
    let follow_hooks = plan.targeted() || plan.per_process();
    let mut globals = bpf::Globals {
        flags: plan.flags,
        target_uid: plan.target_uid,
        target_comm: plan.target_comm,
        fork_child_pid_offset: None,
    };
    if follow_hooks {
        let Some(t) = &tfs else {
            bail!("following processes needs tracefs, which is not mounted and could not be");
        };
        let off = tracefs::field_offset(t, "sched", "sched_process_fork", "child_pid")?;
        globals.fork_child_pid_offset = Some(off as u32);
    }
    let n = funcs.len() as u32;
    let big = |on: bool, size: u32| if on { size } else { 1 };
    let latency = plan.job == Job::Latency;
    let stack = plan.job == Job::Stack;
    let mut ebpf = bpf::load(
        &globals,
        &[
            ("TRACED_TGIDS", big(plan.targeted(), 32768)),
            ("PROCS", big(follow_hooks, 32768)),
            (
                "KFUNC_STATS",
                (n * if plan.per_process() { 64 } else { 1 }).clamp(16, 65536),
            ),
            ("KFUNC_HIST", big(latency, (n * LOG2_SLOTS).min(262144))),
            ("KFUNC_STARTS", big(latency, 32768)),
            ("KFUNC_STACKCNT", big(stack, 16384)),
            ("KFUNC_STACKS", big(stack, 4096)),
        ],
    )?;
    let collector = KCollector::new(&mut ebpf, latency, stack, plan.per_process())?;
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

    let mut reasons = Vec::new();
    let mut chosen: Option<(Backend, Attached)> = None;
    for &backend in &plan.backends {
        let mut progress = Progress {
            started: Instant::now(),
            last: None,
        };
        let r = bpf::kprobe::attach(&mut ebpf, backend, plan.job, &funcs, &mut |d, t| {
            progress.tick(d, t)
        });
        progress.finish();
        match r {
            Ok(a) if !a.functions.is_empty() => {
                chosen = Some((backend, a));
                break;
            }
            Ok(a) => {
                let first = a
                    .failed
                    .first()
                    .map(|(f, why)| format!("{f}: {why}"))
                    .unwrap_or_default();
                reasons.push(format!(
                    "{}: none of the {} functions could be attached ({first})",
                    plan_backend_label(backend),
                    funcs.len()
                ));
            }
            Err(why) => reasons.push(format!("{}: {why}", plan_backend_label(backend))),
        }
    }
    let Some((backend, attached)) = chosen else {
        // kprobes first, whatever the order tried: the message reads the same everywhere.
        reasons.sort();
        reasons.reverse();
        if plan.backends.len() == 1 {
            bail!(
                "cannot trace kernel functions with --backend {}: {}",
                plan.backends[0].name(),
                reasons.join("; ")
            );
        }
        bail!(
            "cannot trace kernel functions on this kernel: {}\n\
             tracer needs a kernel with kprobes (CONFIG_KPROBES=y) or with BTF and fentry \
             (CONFIG_DEBUG_INFO_BTF=y, Linux 5.5+)",
            reasons.join("; ")
        );
    };
    eprintln!(
        "Using {} for {} functions (attached in {:.3} s, {:.2} ms per function).",
        backend.describe(),
        attached.functions.len(),
        attached.seconds,
        attached.seconds * 1e3 / (attached.functions.len() + attached.failed.len()).max(1) as f64
    );
    let syms = Symbols::load();

    let mut session = Session::start(&mut ebpf, &plan.pids, plan.targeted(), prepared.as_ref())?;
    let launched = session.launched;
    if launched.is_none() {
        eprintln!(
            "Tracing {} functions for \"{}\"... Hit Ctrl-C to end.",
            attached.functions.len(),
            args.patterns.join(" ")
        );
    }

    let mut sink = Sink::new(
        args.output.as_deref(),
        !args.process.launch.command.is_empty(),
    )?;
    let t0 = Instant::now();
    let mut prev = KCounts::default();
    let frames = |id: u32| {
        collector
            .frames(id)
            .into_iter()
            .map(|ip| syms.frame(ip))
            .collect::<Vec<_>>()
    };
    let func = |ip: u64| syms.function(ip);
    // The comm the kernel recorded when it first counted the process, else /proc.
    let comm_in = |comms: &BTreeMap<u32, String>, pid: u32| {
        comms
            .get(&pid)
            .filter(|c| !c.is_empty())
            .cloned()
            .or_else(|| proc::status(pid).map(|s| s.name))
            .unwrap_or_else(|| "?".into())
    };
    let end = session
        .run(args.duration, args.interval, |secs| {
            let now = collector.read()?;
            let comms = collector.comms();
            let comm_of = |pid: u32| comm_in(&comms, pid);
            let names = Names {
                function: &func,
                frames: &frames,
                comm: &comm_of,
            };
            let b = block(
                &plan,
                BlockKind::Interval,
                secs,
                backend,
                &now.since(&prev),
                &names,
            );
            sink.write(&render(&plan, &b))?;
            prev = now;
            Ok(())
        })
        .await?;
    // Stop counting before the final read so the block is consistent.
    drop(attached.links);
    drop(ebpf);
    let counts = collector.read()?;
    let comms = collector.comms();
    let comm_of = |pid: u32| comm_in(&comms, pid);
    let mut b = block(
        &plan,
        BlockKind::Summary,
        t0.elapsed().as_secs_f64(),
        backend,
        &counts,
        &Names {
            function: &func,
            frames: &frames,
            comm: &comm_of,
        },
    );
    let code = end.exit_code(launched.is_some());
    b.exit_code = end.command_exit_code(launched.is_some());
    sink.write(&render(&plan, &b))?;
    if !attached.failed.is_empty() {
        eprintln!("{} functions could not be attached:", attached.failed.len());
        for (f, why) in &attached.failed {
            eprintln!("  {f}: {why}");
        }
        if backend == Backend::Fentry && bpf::kprobe::kprobe_unavailable().is_none() {
            eprintln!("(--backend kprobe can attach functions that are missing from BTF)");
        }
    }
    Ok(code)
}

fn plan_backend_label(b: Backend) -> &'static str {
    match b {
        Backend::Kprobe => "kprobes",
        Backend::Fentry => "fentry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;
    use tracer_common::kfunc::FuncStat;

    fn args(argv: &[&str]) -> KprobeArgs {
        let mut v = vec!["tracer", "kprobe"];
        v.extend_from_slice(argv);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Kprobe(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn plans() {
        let p = plan(&args(&["vfs_read"])).unwrap();
        assert_eq!(
            (p.job, p.flags, p.top),
            (Job::Count, flags::EXCLUDE_SELF, None)
        );
        assert_eq!(p.backends, [Backend::Fentry, Backend::Kprobe]);
        let p = plan(&args(&[
            "--backend",
            "kprobe",
            "-L",
            "vfs_read",
            "--",
            "true",
        ]))
        .unwrap();
        assert_eq!(p.job, Job::Latency);
        assert_eq!(p.backends, [Backend::Kprobe]);
        assert_eq!(p.flags, flags::FILTER_TGID | flags::FOLLOW_FORKS);
        let p = plan(&args(&["--stack", "vfs_read"])).unwrap();
        assert_eq!((p.job, p.top), (Job::Stack, Some(10)));
        assert!(Cli::try_parse_from(["tracer", "kprobe"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "kprobe", "-L", "--stack", "x"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "kprobe", "--max-probes", "0", "x"]).is_err());
    }

    #[test]
    fn blocks() {
        let p = plan(&args(&["--stack", "vfs_*"])).unwrap();
        let mut c = KCounts::default();
        c.stats.insert(
            (0x1000, 0),
            FuncStat {
                calls: 7,
                returns: 0,
                total_ns: 0,
            },
        );
        c.stats.insert(
            (0x2004, 0),
            FuncStat {
                calls: 2,
                returns: 0,
                total_ns: 0,
            },
        );
        c.stacks.insert((0x1000, 1), 5);
        c.stacks.insert((0x1000, 2), 2);
        let sym = |ip: u64| {
            if ip < 0x2000 {
                "vfs_read".to_string()
            } else {
                "vfs_write".to_string()
            }
        };
        let frames = |id: u32| {
            let mut v = vec![
                "bpf_prog_abc_fe_stack+0x40".to_string(),
                "vfs_read+0x5".to_string(),
            ];
            v.push(
                if id == 1 {
                    "ksys_read+0x6b"
                } else {
                    "kernel_read+0x10"
                }
                .to_string(),
            );
            v
        };
        let b = block(
            &p,
            BlockKind::Summary,
            1.0,
            Backend::Fentry,
            &c,
            &Names {
                function: &sym,
                frames: &frames,
                comm: &|_| "x".into(),
            },
        );
        assert_eq!(b.funcs[0].name, "vfs_read");
        assert_eq!(b.funcs[0].calls, 7);
        assert_eq!(b.funcs[1].name, "vfs_write");
        assert_eq!(b.stacks.len(), 2);
        assert_eq!(b.stacks[0].count, 5);
        assert_eq!(b.stacks[0].frames, ["vfs_read+0x5", "ksys_read+0x6b"]);
        let p = plan(&args(&["-P", "vfs_read"])).unwrap();
        let mut c = KCounts::default();
        c.stats.insert(
            (0x1000, 42),
            FuncStat {
                calls: 3,
                returns: 0,
                total_ns: 0,
            },
        );
        c.stats.insert(
            (0x1000, 43),
            FuncStat {
                calls: 4,
                returns: 0,
                total_ns: 0,
            },
        );
        let b = block(
            &p,
            BlockKind::Summary,
            1.0,
            Backend::Kprobe,
            &c,
            &Names {
                function: &sym,
                frames: &frames,
                comm: &|p| format!("p{p}"),
            },
        );
        assert_eq!(b.funcs[0].calls, 7);
        assert_eq!(
            b.procs[0],
            ProcRow {
                pid: 43,
                comm: "p43".into(),
                function: "vfs_read".into(),
                calls: 4
            }
        );
    }
}
