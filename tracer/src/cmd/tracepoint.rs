//! `tracer tracepoint`: one generic program attached to each chosen
//! tracepoint with the tracepoint's index as attach cookie; per-tracepoint
//! instructions (field offset, size, sign) in `TP_CONFIG[index]`. Counts, sums and histograms are
//! aggregated in the kernel.
use std::{collections::BTreeMap, path::Path, time::Instant};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{Array, HashMap, MapData},
    programs::TracePoint,
};
use tracer_common::{flags, tp_drops, tp_mode, ProcInfo, TpConfig, LOG2_SLOTS, MAX_TRACEPOINTS};

use super::{
    clock,
    list::tracepoints as available_tracepoints,
    probe_run::{self, End, Filters, Session},
    Sink,
};
use crate::{
    bpf,
    cli::TracepointArgs,
    collect::probes::{slots_of, TpCollector, TpCounts},
    report::{
        events::{self, Aggregate, EventBlock, EventRow, ProcRow},
        listing::is_numeric,
        BlockKind,
    },
    sys::launch,
    sys::{names, proc, tracefs},
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
    pub filters: Filters,
    pub per_process: bool,
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

pub fn plan(a: &TracepointArgs, tfs: &Path) -> Result<Plan> {
    let filters = probe_run::filters(&a.process)?;
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
        filters,
        per_process: a.per_process,
        aggregate,
        top: a.top.map(|t| t as usize),
        json: a.json,
    })
}

fn signed_sum(raw: u64, signed: bool) -> i128 {
    if signed {
        raw as i64 as i128
    } else {
        raw as i128
    }
}

/// A report block from counts.
pub fn block(
    plan: &Plan,
    kind: BlockKind,
    seconds: f64,
    c: &TpCounts,
    procs: &BTreeMap<u32, ProcInfo>,
) -> EventBlock {
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
        .map(|(&(pid, slot), s)| {
            let comm = match (procs.get(&pid), proc::status(pid)) {
                (Some(info), _) if info.comm[0] != 0 => proc::comm_str(&info.comm),
                (_, Some(st)) => st.name,
                _ => "?".into(),
            };
            ProcRow {
                pid,
                comm,
                event: plan
                    .events
                    .get(slot as usize)
                    .map(Event::full_name)
                    .unwrap_or_default(),
                count: s.count,
                sum: signed_sum(s.sum, signed(slot as usize)),
            }
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
        aggregate: plan.aggregate.clone(),
        drops,
        exit_code: None,
    }
}

fn render(plan: &Plan, b: &EventBlock) -> String {
    if plan.json {
        events::render_json(b, plan.top) + "\n"
    } else {
        events::render_text(b, plan.top)
    }
}

pub async fn run(args: TracepointArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let tfs = tracefs::ensure_mounted()?;
    let plan = plan(&args, &tfs)?;
    let started = Instant::now();
    let n = plan.events.len() as u32;
    let follow = plan.filters.targeted() || plan.per_process;
    let per_process_flag = if plan.per_process {
        flags::PER_PROCESS
    } else {
        0
    };
    let hist = matches!(plan.aggregate, Aggregate::Hist(_));
    let mut ebpf = probe_run::load(
        &plan.filters,
        per_process_flag,
        follow,
        &[
            ("TP_CONFIG", n),
            ("TP_STATS", n),
            ("TP_PROC_STATS", if plan.per_process { 32768 } else { 1 }),
            ("TP_HIST", if hist { n * LOG2_SLOTS } else { 1 }),
        ],
    )?;
    {
        let mut config: Array<&mut MapData, TpConfig> =
            Array::try_from(ebpf.map_mut("TP_CONFIG").context("map TP_CONFIG missing")?)?;
        for (i, e) in plan.events.iter().enumerate() {
            let f = e.field.as_ref();
            let cfg = TpConfig {
                slot: i as u32,
                offset: f.map_or(0, |f| f.offset as u16),
                size: f.map_or(0, |f| f.size as u8),
                signed: f.is_some_and(|f| f.signed) as u8,
                mode: plan.mode(),
                _pad: [0; 3],
            };
            config.set(i as u32, cfg, 0).context("filling TP_CONFIG")?;
        }
    }
    let collector = TpCollector::new(&mut ebpf, plan.events.len(), plan.per_process, hist)?;
    let procs_map: HashMap<MapData, u32, ProcInfo> = crate::collect::take(&mut ebpf, "PROCS")?;
    let mut links = Vec::new();
    {
        use std::os::fd::AsFd as _;
        let prog: &mut TracePoint = ebpf
            .program_mut("tracepoint_event")
            .context("program tracepoint_event missing from the object")?
            .try_into()?;
        prog.load()
            .context("the kernel refused to load program tracepoint_event")?;
        let fd = prog.fd()?.as_fd();
        for (i, e) in plan.events.iter().enumerate() {
            links.push(
                bpf::cookie_link::attach_tracepoint(fd, u64::from(e.id), i as u64)
                    .with_context(|| format!("attaching to tracepoint {}", e.full_name()))?,
            );
        }
    }
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
    let what = match &plan.aggregate {
        Aggregate::Hist(f) => format!(", histogram of {f}"),
        Aggregate::Sum(f) => format!(", sum of {f}"),
        Aggregate::None => String::new(),
    };
    eprintln!(
        "Tracing {n} tracepoint{}{what}{}... Hit Ctrl-C to end.",
        if n == 1 { "" } else { "s" },
        plan.filters.describe(&args.process.launch.command)
    );
    let procs = || -> BTreeMap<u32, ProcInfo> { procs_map.iter().filter_map(|r| r.ok()).collect() };
    let mut sink = Sink::new(
        args.output.as_deref(),
        !args.process.launch.command.is_empty(),
    )?;
    let t0 = Instant::now();
    let mut prev = TpCounts::default();
    let end = session
        .run(args.duration, args.interval, |secs| {
            let now = collector.read()?;
            let b = block(
                &plan,
                BlockKind::Interval,
                secs,
                &now.since(&prev),
                &procs(),
            );
            sink.write(&render(&plan, &b))?;
            prev = now;
            Ok(())
        })
        .await?;
    // The run's length, before detaching (unregistering probes can take a while).
    let seconds = t0.elapsed().as_secs_f64();
    drop(links);
    drop(ebpf);
    let counts = collector.read()?;
    let mut b = block(&plan, BlockKind::Summary, seconds, &counts, &procs());
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
        let plan = Plan {
            events: vec![ev("a"), ev("b")],
            filters: probe_run::filters(&crate::cli::ProcessArgs {
                pid: vec![],
                comm: None,
                uid: None,
                no_follow: false,
                launch: Default::default(),
            })
            .unwrap(),
            per_process: true,
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
            },
        );
        let b = block(&plan, BlockKind::Summary, 1.0, &c, &procs);
        assert_eq!(b.events[0].name, "c:b");
        assert_eq!(b.events[1].sum, -5);
        let p = b.processes.as_ref().unwrap();
        assert_eq!(
            (p[0].pid, p[0].comm.as_str(), p[0].count, p[0].sum),
            (4242, "fixture", 3, 9)
        );
        assert_eq!(p[1].sum, -5);
        assert_eq!(b.drops, vec![("field read failed", 2)]);
    }
}
