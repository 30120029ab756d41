//! `tracer kprobe`: resolve patterns to kernel functions, load, attach with the
//! backend that works, collect on a timer, report at intervals and at the end.
use std::{
    collections::BTreeMap,
    io::Write as _,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use tracer_common::{flags, LOG2_SLOTS};

use super::{
    clock,
    process::{self, Selection},
    run::{Counting, Head},
};
use crate::{
    bpf::{
        self,
        kprobe::{AttachProgress, Attached, Backend},
        Object,
    },
    cli::{KprobeArgs, KprobeBackend},
    collect::kfuncs::{KCollector, KCounts},
    report::{
        funcs::{self, FuncBlock, FuncRow, Measure, ProcRow, StackRow},
        BlockKind,
    },
    sys::{kfuncs, proc, tracefs},
};

/// Everything decided from the command line before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub measure: Measure,
    /// Every flag the programs run with (the selection's included).
    pub flags: u32,
    pub selection: Selection,
    /// The patterns as given, and how many functions they may match.
    pub patterns: Vec<String>,
    pub max_probes: u32,
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
}

/// Check the arguments and find the functions; nothing is loaded yet.
pub fn plan(a: &KprobeArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    let mut f = selection.globals(0, true).flags;
    if a.per_process {
        f |= flags::PER_PROCESS;
    }
    let measure = match (a.latency, a.stack) {
        (true, _) => Measure::Latency,
        (_, true) => Measure::Stack,
        _ => Measure::Count,
    };
    let backends = match a.backend {
        Some(KprobeBackend::Kprobe) => vec![Backend::Kprobe],
        Some(KprobeBackend::Fentry) => vec![Backend::Fentry],
        None => vec![Backend::Fentry, Backend::Kprobe],
    };
    let top = match (a.blocks.top, measure) {
        (Some(t), _) => Some(t as usize),
        (None, Measure::Stack) => Some(10),
        (None, _) => None,
    };
    Ok(Plan {
        measure,
        flags: f,
        selection,
        patterns: a.patterns.clone(),
        max_probes: a.max_probes,
        backends,
        top,
        json: a.run.json,
    })
}

impl Plan {
    /// The kernel functions the patterns name.
    fn functions(&self) -> Result<Vec<String>> {
        let tfs = tracefs::ensure_mounted().ok();
        let (traceable, source) = kfuncs::traceable(tfs.as_deref())?;
        let all = kfuncs::kallsyms_functions(
            &std::fs::read_to_string("/proc/kallsyms").unwrap_or_default(),
        );
        let funcs = kfuncs::resolve(&self.patterns, &traceable, &all)?;
        if funcs.len() > self.max_probes as usize {
            bail!(
                "{} matches {} kernel functions, more than --max-probes {}: narrow the pattern or raise --max-probes",
                self.patterns.join(" "),
                funcs.len(),
                self.max_probes
            );
        }
        if source == kfuncs::Source::Kallsyms {
            log::info!("tracefs function list unreadable: matching against /proc/kallsyms (some may not attach)");
        }
        Ok(funcs)
    }
}

/// Names for the addresses the kernel reports, from kallsyms.
struct Symbols {
    syms: BTreeMap<u64, String>,
}

impl Symbols {
    fn load() -> Self {
        Self {
            syms: bpf::kernel_symbols(),
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
    funcs::sort_funcs(&mut funcs, plan.measure);
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
        if plan.measure == Measure::Stack {
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
        measure: plan.measure,
        backend: Some(backend.name()),
        funcs,
        procs,
        stacks,
        drops: counts.named_drops(),
        exit_code: None,
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
        eprint!("\r{}", funcs::attach_progress(done, total));
        let _ = std::io::stderr().flush();
    }
    fn finish(&self) {
        if self.last.is_some() {
            eprintln!();
        }
    }
}

/// What attaching leaves: the backend chosen, the functions attached (and
/// the links of fentry), the collector and the kernel's symbols.
pub struct Live {
    backend: Backend,
    attached: Attached,
    collector: KCollector,
    syms: Symbols,
}

impl Plan {
    /// The block of `counts`, its functions, processes and stacks named.
    pub fn func_block(&self, live: &Live, head: Head, counts: &KCounts) -> FuncBlock {
        let frames = |id: u32| {
            live.collector
                .frames(id)
                .into_iter()
                .map(|ip| live.syms.frame(ip))
                .collect::<Vec<_>>()
        };
        let procs = live.collector.procs();
        let names = Names {
            function: &|ip| live.syms.function(ip),
            frames: &frames,
            comm: &|pid| proc::comm_of(pid, procs.get(&pid)),
        };
        let mut b = block(self, head.kind, head.seconds, live.backend, counts, &names);
        b.exit_code = head.exit_code;
        b
    }
}

impl Counting for Plan {
    type Live = Live;
    type Counts = KCounts;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Object)> {
        let functions = self.functions()?;
        let follow = self.targeted() || self.per_process();
        let n = functions.len() as u32;
        let big = |on: bool, size: u32| if on { size } else { 1 };
        let latency = self.measure == Measure::Latency;
        let stack = self.measure == Measure::Stack;
        let globals = bpf::Globals {
            flags: self.flags,
            ..self.selection.globals(0, false)
        };
        let mut obj = bpf::load_following(
            globals,
            follow,
            &[
                (
                    "KFUNC_STATS",
                    (n * if self.per_process() { 64 } else { 1 }).clamp(16, 65536),
                ),
                ("KFUNC_HIST", big(latency, (n * LOG2_SLOTS).min(262144))),
                ("KFUNC_STARTS", big(latency, 32768)),
                ("KFUNC_STACKCNT", big(stack, 16384)),
                ("KFUNC_STACKS", big(stack, 4096)),
            ],
        )?;
        let collector = KCollector::new(&mut obj, latency, stack, self.per_process())?;
        let (backend, attached) = self.attach_functions(&mut obj, &functions)?;
        eprintln!(
            "{}",
            funcs::attached_line(
                backend.describe(),
                attached.functions.len(),
                attached.failed.len(),
                attached.seconds
            )
        );
        let live = Live {
            backend,
            attached,
            collector,
            // Read after attaching: the programs' and trampolines' own
            // symbols (bpf_prog_*, bpf_trampoline_*) exist only from then on,
            // and stack frames in them are recognised by those names.
            syms: Symbols::load(),
        };
        Ok((live, obj))
    }

    fn what(&self, live: &Live) -> String {
        format!(
            "{} functions for \"{}\"",
            live.attached.functions.len(),
            self.patterns.join(" ")
        )
    }

    fn read(&self, live: &Live) -> Result<KCounts> {
        live.collector.read()
    }

    fn render(&self, live: &Live, head: Head, counts: &KCounts) -> String {
        let b = self.func_block(live, head, counts);
        if self.json {
            funcs::render_json(&b) + "\n"
        } else {
            funcs::render(&b)
        }
    }

    fn epilogue(&self, live: &Live) -> Option<String> {
        let hint = live.backend == Backend::Fentry && bpf::kprobe::kprobe_unavailable().is_none();
        Some(funcs::attach_failures(&live.attached.failed, hint)).filter(|t| !t.is_empty())
    }

    fn quiet_with_command(&self) -> bool {
        true
    }
}

impl Plan {
    /// Attach with the first backend that works, in the plan's order, showing
    /// progress when it takes more than a second.
    fn attach_functions(&self, obj: &mut Object, funcs: &[String]) -> Result<(Backend, Attached)> {
        let mut progress: Option<Progress> = None;
        let (backends, measure) = (&self.backends, self.measure);
        Ok(bpf::kprobe::attach_first(
            obj,
            backends,
            measure,
            funcs,
            &mut |ev| match ev {
                AttachProgress::Trying(_) => {
                    progress = Some(Progress {
                        started: Instant::now(),
                        last: None,
                    })
                }
                AttachProgress::Tried { done, total } => {
                    progress.iter_mut().for_each(|p| p.tick(done, total))
                }
                AttachProgress::Finished => progress.take().iter().for_each(Progress::finish),
            },
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;
    use tracer_common::kfunc::FuncStat;

    fn args(argv: &[&str]) -> KprobeArgs {
        let Command::Kprobe(a) = crate::cli::parse("kprobe", argv) else {
            unreachable!()
        };
        a
    }

    #[test]
    fn plans() {
        let p = plan(&args(&["vfs_read"])).unwrap();
        assert_eq!(
            (p.measure, p.flags, p.top),
            (Measure::Count, flags::EXCLUDE_SELF, None)
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
        assert_eq!(p.measure, Measure::Latency);
        assert_eq!(p.backends, [Backend::Kprobe]);
        assert_eq!(p.flags, flags::FILTER_TGID | flags::FOLLOW_FORKS);
        let p = plan(&args(&["--stack", "vfs_read"])).unwrap();
        assert_eq!((p.measure, p.top), (Measure::Stack, Some(10)));
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
