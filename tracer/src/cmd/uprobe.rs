//! `tracer uprobe`: resolve TARGET:PATTERN to file offsets, attach one uprobe
//! program (and with --latency one uretprobe program) to each with the
//! function's index as cookie, count in the kernel, report like funccount.
use std::{
    collections::{hash_map::Entry, BTreeMap, HashMap},
    path::PathBuf,
    time::Instant,
};

use anyhow::{Context as _, Result};
use aya::programs::{
    uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    UProbe,
};
use tracer_common::{flags, uprobe_drops, LOG2_SLOTS, MAX_UPROBES};

use super::{
    clock,
    probe_run::{self, End, Filters, Session},
    Sink,
};
use crate::{
    cli::UprobeArgs,
    collect::probes::{slots_of, FuncCollector, FuncCounts},
    report::{
        funcs::{self, FuncBlock, FuncRow},
        BlockKind,
    },
    sys::elf::{self, Pattern},
    sys::launch,
};

/// One function to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: PathBuf,
    pub name: String,
    pub address: u64,
    pub file_offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub probes: Vec<Probe>,
    pub filters: Filters,
    pub latency: bool,
    pub json: bool,
}

/// Resolve every probe spec; functions reached twice (two patterns, or two
/// names for one address) are probed once.
pub fn plan(a: &UprobeArgs) -> Result<Plan> {
    let filters = probe_run::filters(&a.process)?;
    let pid_hint = filters.pids.first().copied();
    let mut binaries: BTreeMap<PathBuf, elf::Binary> = BTreeMap::new();
    let mut probes = Vec::new();
    // (file, offset) -> index in `probes`: aliases of one function are probed once.
    let mut seen: HashMap<(PathBuf, u64), usize> = HashMap::new();
    for spec in &a.probes {
        let (target, pattern) = elf::split_probe(spec)?;
        let pattern = Pattern::parse(pattern).with_context(|| format!("probe `{spec}`"))?;
        let path = elf::resolve_target(target, pid_hint)?;
        if !binaries.contains_key(&path) {
            let b = elf::load(&path)?;
            binaries.insert(path.clone(), b);
        }
        for loc in binaries[&path].resolve(&pattern)? {
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            match seen.entry((real, loc.file_offset)) {
                Entry::Occupied(i) => {
                    let p: &mut Probe = &mut probes[*i.get()];
                    if elf::name_rank(&loc.display) < elf::name_rank(&p.name) {
                        p.name = loc.display;
                    }
                }
                Entry::Vacant(v) => {
                    v.insert(probes.len());
                    probes.push(Probe {
                        target: path.clone(),
                        name: loc.display,
                        address: loc.address,
                        file_offset: loc.file_offset,
                    });
                }
            }
        }
    }
    if probes.len() > MAX_UPROBES as usize {
        anyhow::bail!(
            "the patterns match {} functions; tracer attaches at most {MAX_UPROBES}: narrow them",
            probes.len()
        );
    }
    if binaries.len() > 1 {
        for p in &mut probes {
            let base = p
                .target
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.name = format!("{base}:{}", p.name);
        }
    }
    Ok(Plan {
        probes,
        filters,
        latency: a.latency,
        json: a.json,
    })
}

/// A report block from counts.
pub fn block(plan: &Plan, kind: BlockKind, seconds: f64, c: &FuncCounts) -> FuncBlock {
    let mut rows: Vec<FuncRow> = plan
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let s = c.funcs.get(i).copied().unwrap_or_default();
            FuncRow {
                name: p.name.clone(),
                target: p.target.display().to_string(),
                address: p.address,
                calls: s.calls,
                returns: s.returns,
                total_ns: s.total_ns,
                hist: if plan.latency {
                    slots_of(&c.hist, i)
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    funcs::sort(&mut rows);
    let drops = match c.drops.get(uprobe_drops::STARTS_FULL as usize) {
        Some(&n) if n > 0 => vec![("entry-time table full", n)],
        _ => vec![],
    };
    FuncBlock {
        kind,
        clock: clock(),
        seconds,
        funcs: rows,
        latency: plan.latency,
        drops,
        exit_code: None,
    }
}

fn render(plan: &Plan, b: &FuncBlock) -> String {
    if plan.json {
        funcs::render_json(b) + "\n"
    } else {
        funcs::render_text(b)
    }
}

fn attach_all(ebpf: &mut aya::Ebpf, prog: &str, probes: &[Probe]) -> Result<()> {
    let p: &mut UProbe = ebpf
        .program_mut(prog)
        .with_context(|| format!("program {prog} missing from the object"))?
        .try_into()?;
    p.load()
        .with_context(|| format!("the kernel refused to load program {prog}"))?;
    for (i, probe) in probes.iter().enumerate() {
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(probe.file_offset),
            cookie: Some(i as u64),
        };
        p.attach(point, &probe.target, UProbeScope::AllProcesses)
            .with_context(|| {
                use crate::sys::privileges::{has, CAP_SYS_ADMIN};
                format!(
                    "attaching a uprobe to {} in {} (file offset {:#x}){}",
                    probe.name,
                    probe.target.display(),
                    probe.file_offset,
                    if has(CAP_SYS_ADMIN) {
                        ""
                    } else {
                        " (the kernel lets only root or CAP_SYS_ADMIN create uprobes)"
                    }
                )
            })?;
    }
    Ok(())
}

pub async fn run(args: UprobeArgs) -> Result<i32> {
    let plan = plan(&args)?;
    crate::sys::privileges::check()?;
    let started = Instant::now();
    let n = plan.probes.len() as u32;
    let latency_flag = if plan.latency {
        flags::UPROBE_LATENCY
    } else {
        0
    };
    let mut ebpf = probe_run::load(
        &plan.filters,
        latency_flag,
        plan.filters.targeted(),
        &[
            ("UPROBE_STATS", n),
            ("UPROBE_HIST", if plan.latency { n * LOG2_SLOTS } else { 1 }),
            ("UPROBE_STARTS", if plan.latency { 32768 } else { 1 }),
        ],
    )?;
    let collector = FuncCollector::new(&mut ebpf, plan.probes.len(), plan.latency)?;
    if plan.latency {
        attach_all(&mut ebpf, "uretprobe_latency", &plan.probes)?;
    }
    attach_all(&mut ebpf, "uprobe_count", &plan.probes)?;
    log::info!(
        "loaded and attached in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let mut session = Session::start(
        &mut ebpf,
        &plan.filters.pids,
        plan.filters.targeted(),
        launch::prepare_opt(&args.process.launch)?.as_ref(),
    )?;
    eprintln!(
        "Tracing {} function{} for \"{}\"{}... Hit Ctrl-C to end.",
        n,
        if n == 1 { "" } else { "s" },
        args.probes.join(" "),
        plan.filters.describe(&args.process.launch.command)
    );
    let mut sink = Sink::new(
        args.output.as_deref(),
        !args.process.launch.command.is_empty(),
    )?;
    let t0 = Instant::now();
    let mut prev = FuncCounts::default();
    let end = session
        .run(args.duration, args.interval, |secs| {
            let now = collector.read()?;
            sink.write(&render(
                &plan,
                &block(&plan, BlockKind::Interval, secs, &now.since(&prev)),
            ))?;
            prev = now;
            Ok(())
        })
        .await?;
    // The run's length, before detaching (unregistering probes can take a while).
    let seconds = t0.elapsed().as_secs_f64();
    // Detach before the final read so the block is consistent.
    drop(ebpf);
    let counts = collector.read()?;
    let mut b = block(&plan, BlockKind::Summary, seconds, &counts);
    let code = end.exit_code(session.launched.is_some());
    if session.launched.is_some() && matches!(end, End::TargetsGone(_)) {
        b.exit_code = Some(code);
    }
    sink.write(&render(&plan, &b))?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;
    use tracer_common::FuncStat;

    fn args(argv: &[&str]) -> UprobeArgs {
        let mut v = vec!["tracer", "uprobe"];
        v.extend_from_slice(argv);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Uprobe(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn plans_own_binary() {
        let me = std::env::current_exe().unwrap().display().to_string();
        let p = plan(&args(&[
            &format!("{me}:main"),
            &format!("{me}:main"),
            "--latency",
        ]))
        .unwrap();
        assert_eq!(p.probes.len(), 1, "the same function twice is probed once");
        assert_eq!(p.probes[0].name, "main");
        assert!(p.latency);
        let e = plan(&args(&[&format!("{me}:no_such_function_xyz")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no function `no_such_function_xyz`"), "{e}");
        let e = plan(&args(&["/etc/passwd:main"])).unwrap_err().to_string();
        assert!(e.contains("not an ELF"), "{e}");
        let e = plan(&args(&["/no/such/bin:main"])).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn blocks() {
        let me = std::env::current_exe().unwrap().display().to_string();
        let p = plan(&args(&[&format!("{me}:main"), "-L"])).unwrap();
        let mut hist = vec![0; LOG2_SLOTS as usize];
        hist[5] = 2;
        let c = FuncCounts {
            funcs: vec![FuncStat {
                calls: 2,
                returns: 2,
                total_ns: 40,
            }],
            hist,
            drops: vec![3, 0],
        };
        let b = block(&p, BlockKind::Summary, 1.0, &c);
        assert_eq!(b.funcs[0].calls, 2);
        assert_eq!(b.funcs[0].hist[5], 2);
        assert_eq!(b.drops, vec![("entry-time table full", 3)]);
    }
}
