//! `tracer tracepoint`: one generic program attached to each chosen
//! tracepoint with the tracepoint's index as attach cookie; per-tracepoint
//! instructions (field offset, size, sign) in `TP_CONFIG[index]`. Counts, sums and histograms are
//! aggregated in the kernel.
use std::{cell::RefCell, collections::BTreeMap, path::Path};

use anyhow::{bail, Context as _, Result};
use tracer_common::{flags, tp_drops, tp_mode, ProcInfo, TpConfig, LOG2_SLOTS, MAX_TRACEPOINTS};

use super::{
    clock,
    list::tracepoints as available_tracepoints,
    process::{self, Selection},
    run::{Counting, Head},
};
use crate::{
    bpf::{self, Object},
    cli::TracepointArgs,
    collect::{
        slots_of,
        tracepoints::{TpCollector, TpCounts},
    },
    report::{
        events::{self, Aggregate, EventBlock, EventRow, ProcRow},
        listing::is_numeric,
        BlockKind,
    },
    sys::{cgroup::Namer, names, proc, tracefs},
};

/// One tracepoint to attach.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub category: String,
    pub name: String,
    /// The id in tracefs (`events/CAT/NAME/id`), what perf_event_open attaches to.
    pub id: u32,
    /// The field to aggregate (with --hist / --sum).
    pub field: Option<tracefs::Field>,
}

impl Event {
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.category, self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub events: Vec<Event>,
    pub selection: Selection,
    pub per_process: bool,
    /// Name each process's cgroup (-P --show-cgroup).
    pub show_cgroup: bool,
    pub aggregate: Aggregate,
    pub top: Option<usize>,
    pub json: bool,
}

impl Plan {
    fn mode(&self) -> u8 {
        match self.aggregate {
            Aggregate::None => tp_mode::COUNT,
            Aggregate::Hist(_) => tp_mode::HIST,
            Aggregate::Sum(_) => tp_mode::SUM,
        }
    }
}

/// `CATEGORY:NAME` (or a glob of them) to the tracepoints it names.
pub fn expand(spec: &str, available: &[String]) -> Result<Vec<String>> {
    let spec = spec.trim();
    let Some((cat, name)) = spec.split_once(':') else {
        bail!("`{spec}`: a tracepoint is CATEGORY:NAME, for example sched:sched_process_exec");
    };
    if cat.is_empty() || name.is_empty() {
        bail!("`{spec}`: a tracepoint is CATEGORY:NAME, for example sched:sched_process_exec");
    }
    if spec.contains(['*', '?', '[']) {
        let g = glob::Pattern::new(spec).with_context(|| format!("bad glob `{spec}`"))?;
        let found: Vec<String> = available.iter().filter(|t| g.matches(t)).cloned().collect();
        if found.is_empty() {
            bail!("no tracepoint matches `{spec}` (see `tracer list tracepoints`)");
        }
        return Ok(found);
    }
    if available.iter().any(|t| t == spec) {
        return Ok(vec![spec.to_string()]);
    }
    let all: Vec<&str> = available.iter().map(String::as_str).collect();
    let close = names::closest(spec, &all, 3);
    let mut msg = format!("no tracepoint `{spec}` in this kernel");
    if close.is_empty() {
        msg.push_str(" (see `tracer list tracepoints`)");
    } else {
        msg.push_str(&format!("; did you mean {}?", close.join(", ")));
    }
    bail!(msg)
}

/// The numeric field `name` of a tracepoint, or an error listing the usable ones.
pub fn numeric_field(event: &str, fields: &[tracefs::Field], name: &str) -> Result<tracefs::Field> {
    let usable: Vec<&str> = fields
        .iter()
        .filter(|f| is_numeric(f) && !f.name.starts_with("common_"))
        .map(|f| f.name.as_str())
        .collect();
    match fields.iter().find(|f| f.name == name) {
        Some(f) if is_numeric(f) => Ok(f.clone()),
        Some(f) => bail!(
            "field `{name}` of {event} is `{}`, not a number; numeric fields: {}",
            f.decl,
            usable.join(", ")
        ),
        None => bail!(
            "{event} has no field `{name}`; numeric fields: {}",
            if usable.is_empty() {
                "none".to_string()
            } else {
                usable.join(", ")
            }
        ),
    }
}

fn tracepoint_id(tfs: &Path, category: &str, name: &str) -> Result<u32> {
    let path = tfs.join("events").join(category).join(name).join("id");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("bad id in {}", path.display()))
}

/// Check the arguments against the kernel's tracepoints (read from tracefs,
/// so privileges are checked first).
pub fn plan(a: &TracepointArgs) -> Result<Plan> {
    crate::sys::privileges::check()?;
    let tfs = tracefs::ensure_mounted()?;
    plan_in(a, &tfs)
}

fn plan_in(a: &TracepointArgs, tfs: &Path) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    let aggregate = match (&a.hist, &a.sum) {
        (Some(f), _) => Aggregate::Hist(f.clone()),
        (None, Some(f)) => Aggregate::Sum(f.clone()),
        _ => Aggregate::None,
    };
    let available = available_tracepoints(tfs)?;
    let mut names_wanted: Vec<String> = Vec::new();
    for spec in &a.tracepoints {
        for t in expand(spec, &available)? {
            if !names_wanted.contains(&t) {
                names_wanted.push(t);
            }
        }
    }
    if names_wanted.len() > MAX_TRACEPOINTS as usize {
        bail!(
            "{} tracepoints match; tracer attaches at most {MAX_TRACEPOINTS}: narrow the globs",
            names_wanted.len()
        );
    }
    let mut events = Vec::new();
    for full in names_wanted {
        let (cat, name) = full.split_once(':').unwrap_or((&full, ""));
        let field = match &aggregate {
            Aggregate::Hist(f) | Aggregate::Sum(f) => {
                let fields = tracefs::tracepoint_format(tfs, cat, name)?;
                Some(numeric_field(&full, &fields, f)?)
            }
            Aggregate::None => None,
        };
        events.push(Event {
            category: cat.to_string(),
            name: name.to_string(),
            id: tracepoint_id(tfs, cat, name)?,
            field,
        });
    }
    Ok(Plan {
        events,
        selection,
        per_process: a.per_process,
        show_cgroup: a.show_cgroup,
        aggregate,
        top: a.blocks.top.map(|t| t as usize),
        json: a.run.json,
    })
}

fn signed_sum(raw: u64, signed: bool) -> i128 {
    if signed {
        raw as i64 as i128
    } else {
        raw as i128
    }
}

/// A report block from counts; `namer` names the processes' cgroups (with
/// --show-cgroup).
pub fn block(
    plan: &Plan,
    kind: BlockKind,
    seconds: f64,
    c: &TpCounts,
    procs: &BTreeMap<u32, ProcInfo>,
    namer: Option<&mut Namer>,
) -> EventBlock {
    let cgroups = namer
        .filter(|_| plan.show_cgroup)
        .map(|n| n.name_all(c.by_process.keys().map(|&(pid, _)| pid), procs));
    let signed = |i: usize| {
        plan.events
            .get(i)
            .and_then(|e| e.field.as_ref())
            .is_some_and(|f| f.signed)
    };
    let mut rows: Vec<EventRow> = plan
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let s = c.totals.get(i).copied().unwrap_or_default();
            EventRow {
                name: e.full_name(),
                count: s.count,
                sum: signed_sum(s.sum, signed(i)),
                hist: if matches!(plan.aggregate, Aggregate::Hist(_)) {
                    slots_of(&c.hist, i)
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    let mut prows: Vec<ProcRow> = c
        .by_process
        .iter()
        .map(|(&(pid, slot), s)| ProcRow {
            pid,
            comm: proc::comm_of(pid, procs.get(&pid)),
            cgroup: cgroups.as_ref().and_then(|c| c.get(&pid).cloned()),
            event: plan
                .events
                .get(slot as usize)
                .map(Event::full_name)
                .unwrap_or_default(),
            count: s.count,
            sum: signed_sum(s.sum, signed(slot as usize)),
        })
        .collect();
    events::sort(&mut rows, &mut prows);
    let mut drops = Vec::new();
    for (i, what) in [
        (tp_drops::PROCS_FULL, "per-process table full"),
        (tp_drops::READ_FAILED, "field read failed"),
    ] {
        if let Some(&n) = c.drops.get(i as usize) {
            if n > 0 {
                drops.push((what, n));
            }
        }
    }
    EventBlock {
        kind,
        clock: clock(),
        seconds,
        events: rows,
        processes: plan.per_process.then_some(prows),
        show_cgroup: cgroups.is_some(),
        aggregate: plan.aggregate.clone(),
        drops,
        exit_code: None,
    }
}

/// What attaching leaves: the collector, and the names of the processes'
/// cgroups found so far.
pub struct Live {
    pub collector: TpCollector,
    cgroups: RefCell<Namer>,
}

impl Counting for Plan {
    type Live = Live;
    type Counts = TpCounts;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Object)> {
        let n = self.events.len() as u32;
        let follow = self.selection.targeted() || self.per_process;
        let per_process_flag = if self.per_process {
            flags::PER_PROCESS
        } else {
            0
        };
        let hist = matches!(self.aggregate, Aggregate::Hist(_));
        let mut obj = bpf::load_following(
            self.selection.globals(per_process_flag, true),
            follow,
            &[
                ("TP_CONFIG", n),
                ("TP_STATS", n),
                ("TP_PROC_STATS", if self.per_process { 32768 } else { 1 }),
                ("TP_HIST", if hist { n * LOG2_SLOTS } else { 1 }),
            ],
        )?;
        obj.fill_array(
            "TP_CONFIG",
            self.events.iter().enumerate().map(|(i, e)| {
                let f = e.field.as_ref();
                let cfg = TpConfig {
                    slot: i as u32,
                    offset: f.map_or(0, |f| f.offset as u16),
                    size: f.map_or(0, |f| f.size as u8),
                    signed: f.is_some_and(|f| f.signed) as u8,
                    mode: self.mode(),
                    _pad: [0; 3],
                };
                (i as u32, cfg)
            }),
        )?;
        let collector = TpCollector::new(&mut obj, self.events.len(), self.per_process, hist)?;
        let ids: Vec<(u32, String)> = self.events.iter().map(|e| (e.id, e.full_name())).collect();
        bpf::cookies::attach_tracepoints(&mut obj, "tracepoint_event", &ids)?;
        let cgroups = RefCell::new(Namer::when(self.show_cgroup));
        Ok((Live { collector, cgroups }, obj))
    }

    fn what(&self, _: &Live) -> String {
        let n = self.events.len();
        let what = match &self.aggregate {
            Aggregate::Hist(f) => format!(", histogram of {f}"),
            Aggregate::Sum(f) => format!(", sum of {f}"),
            Aggregate::None => String::new(),
        };
        format!("{n} tracepoint{}{what}", if n == 1 { "" } else { "s" })
    }

    fn read(&self, live: &Live) -> Result<TpCounts> {
        live.collector.read()
    }

    fn render(&self, live: &Live, head: Head, counts: &TpCounts) -> String {
        let mut b = block(
            self,
            head.kind,
            head.seconds,
            counts,
            &live.collector.procs(),
            Some(&mut live.cgroups.borrow_mut()),
        );
        b.exit_code = head.exit_code;
        if self.json {
            events::render_json(&b, self.top) + "\n"
        } else {
            events::render_text(&b, self.top)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::TpStat;

    const WRITE: &str = "name: sys_enter_write\nID: 700\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
        \tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
        \tfield:const char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\
        \tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n";

    #[test]
    fn expands_names_and_globs() {
        let avail: Vec<String> = [
            "sched:sched_process_exec",
            "sched:sched_process_fork",
            "syscalls:sys_enter_write",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            expand("sched:sched_process_exec", &avail).unwrap(),
            ["sched:sched_process_exec"]
        );
        assert_eq!(expand("sched:*", &avail).unwrap().len(), 2);
        let e = expand("sched:sched_process_exex", &avail)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did you mean") && e.contains("sched:sched_process_exec"),
            "{e}"
        );
        assert!(expand("sched", &avail)
            .unwrap_err()
            .to_string()
            .contains("CATEGORY:NAME"));
        assert!(expand("nope:*", &avail)
            .unwrap_err()
            .to_string()
            .contains("no tracepoint matches"));
    }

    #[test]
    fn fields_must_be_numeric() {
        let f = tracefs::parse_format(WRITE);
        let count = numeric_field("syscalls:sys_enter_write", &f, "count").unwrap();
        assert_eq!((count.offset, count.size, count.signed), (32, 8, false));
        let e = numeric_field("syscalls:sys_enter_write", &f, "buf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number") && e.contains("count"), "{e}");
        let e = numeric_field("syscalls:sys_enter_write", &f, "cnt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no field `cnt`") && e.contains("__syscall_nr, fd, count"),
            "{e}"
        );
    }

    #[test]
    fn blocks_sign_and_sort() {
        let field = tracefs::Field {
            decl: "long ret".into(),
            name: "ret".into(),
            offset: 16,
            size: 8,
            signed: true,
        };
        let ev = |name: &str| Event {
            category: "c".into(),
            name: name.into(),
            id: 1,
            field: Some(field.clone()),
        };
        let mut plan = Plan {
            events: vec![ev("a"), ev("b")],
            selection: process::plan(&crate::cli::ProcessArgs::default()).unwrap(),
            per_process: true,
            show_cgroup: false,
            aggregate: Aggregate::Sum("ret".into()),
            top: None,
            json: false,
        };
        let mut c = TpCounts {
            totals: vec![
                TpStat {
                    count: 1,
                    sum: (-5i64) as u64,
                },
                TpStat { count: 3, sum: 9 },
            ],
            ..TpCounts::default()
        };
        c.by_process.insert((4242, 1), TpStat { count: 3, sum: 9 });
        c.by_process.insert(
            (4243, 0),
            TpStat {
                count: 1,
                sum: (-5i64) as u64,
            },
        );
        c.drops = vec![0, 2];
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
        let b = block(&plan, BlockKind::Summary, 1.0, &c, &procs, None);
        assert_eq!(b.events[0].name, "c:b");
        assert_eq!(b.events[1].sum, -5);
        let p = b.processes.as_ref().unwrap();
        assert_eq!(
            (p[0].pid, p[0].comm.as_str(), p[0].count, p[0].sum),
            (4242, "fixture", 3, 9)
        );
        assert_eq!(p[1].sum, -5);
        assert_eq!(b.drops, vec![("field read failed", 2)]);
        assert!(!b.show_cgroup && p[0].cgroup.is_none());
        // --show-cgroup: the recorded cgroup id, named (the v2 mount's root
        // is `/`).
        plan.show_cgroup = true;
        let root = crate::sys::cgroup::cgroup2_mount();
        let ino = root.as_ref().map_or(0, |r| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(r).unwrap())
        });
        procs.get_mut(&4242).unwrap().cgroup = ino;
        let mut namer = Namer::new();
        let b = block(&plan, BlockKind::Summary, 1.0, &c, &procs, Some(&mut namer));
        assert!(b.show_cgroup);
        let p = b.processes.as_ref().unwrap();
        assert_eq!(p[0].cgroup, root.map(|_| "/".to_string()));
    }
}
