//! `tracer uprobe`: resolve TARGET:PATTERN to file offsets, attach one uprobe
//! program (and with --latency one uretprobe program) to each with the
//! function's index as cookie, count in the kernel, report like funccount.
use std::{
    collections::{hash_map::Entry, BTreeMap, HashMap},
    path::PathBuf,
};

use anyhow::{Context as _, Result};
use tracer_common::{flags, uprobe_drops, LOG2_SLOTS, MAX_UPROBES};

use super::{
    clock,
    process::{self, Selection},
    run::{Counting, Head},
};
use crate::{
    bpf::{self, cookies::Site, Object},
    cli::UprobeArgs,
    collect::{
        slots_of,
        uprobes::{FuncCollector, FuncCounts},
    },
    report::{
        funcs::{self, FuncBlock, FuncRow, Measure},
        BlockKind,
    },
    sys::elf::{self, Pattern},
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
    /// The probe specs as given.
    pub specs: Vec<String>,
    pub selection: Selection,
    pub latency: bool,
    pub json: bool,
}

/// Resolve every probe spec; functions reached twice (two patterns, or two
/// names for one address) are probed once.
pub fn plan(a: &UprobeArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    let pid_hint = selection.pids.first().copied();
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
        specs: a.probes.clone(),
        selection,
        latency: a.latency,
        json: a.run.json,
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
                location: Some((p.target.display().to_string(), p.address)),
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
    let measure = plan.measure();
    funcs::sort_funcs(&mut rows, measure);
    let drops = match c.drops.get(uprobe_drops::STARTS_FULL as usize) {
        Some(&n) if n > 0 => vec![("entry-time table full", n)],
        _ => vec![],
    };
    FuncBlock {
        kind,
        clock: clock(),
        seconds,
        measure,
        backend: None,
        funcs: rows,
        procs: vec![],
        stacks: vec![],
        drops,
        exit_code: None,
    }
}

impl Plan {
    fn measure(&self) -> Measure {
        if self.latency {
            Measure::Latency
        } else {
            Measure::Count
        }
    }

    fn sites(&self) -> Vec<Site<'_>> {
        self.probes
            .iter()
            .map(|p| Site {
                target: &p.target,
                file_offset: p.file_offset,
                name: &p.name,
            })
            .collect()
    }
}

impl Counting for Plan {
    type Live = FuncCollector;
    type Counts = FuncCounts;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(FuncCollector, Object)> {
        let n = self.probes.len() as u32;
        let latency_flag = if self.latency {
            flags::UPROBE_LATENCY
        } else {
            0
        };
        let mut obj = bpf::load_following(
            self.selection.globals(latency_flag, true),
            self.selection.targeted(),
            &[
                ("UPROBE_STATS", n),
                ("UPROBE_HIST", if self.latency { n * LOG2_SLOTS } else { 1 }),
                ("UPROBE_STARTS", if self.latency { 32768 } else { 1 }),
            ],
        )?;
        let collector = FuncCollector::new(&mut obj, self.probes.len(), self.latency)?;
        let sites = self.sites();
        if self.latency {
            bpf::cookies::attach_uprobes(&mut obj, "uretprobe_latency", &sites)?;
        }
        bpf::cookies::attach_uprobes(&mut obj, "uprobe_count", &sites)?;
        Ok((collector, obj))
    }

    fn what(&self, _: &FuncCollector) -> String {
        let n = self.probes.len();
        format!(
            "{n} function{} for \"{}\"",
            if n == 1 { "" } else { "s" },
            self.specs.join(" ")
        )
    }

    fn read(&self, collector: &FuncCollector) -> Result<FuncCounts> {
        collector.read()
    }

    fn render(&self, _: &FuncCollector, head: Head, counts: &FuncCounts) -> String {
        let mut b = block(self, head.kind, head.seconds, counts);
        b.exit_code = head.exit_code;
        if self.json {
            funcs::render_json(&b) + "\n"
        } else {
            funcs::render(&b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use tracer_common::FuncStat;

    fn args(argv: &[&str]) -> UprobeArgs {
        let Command::Uprobe(a) = crate::cli::parse("uprobe", argv) else {
            unreachable!()
        };
        a
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
