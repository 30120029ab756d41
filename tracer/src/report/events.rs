//! `tracer tracepoint` reports: EVENT COUNT [SUM] (funccount's widths), a
//! PID/COMM table with -P, a BCC log2 histogram per tracepoint with --hist,
//! and JSON, one object per block.
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::{funcs::hist_json, hist, BlockKind};

/// What is done with the numeric field, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    None,
    Hist(String),
    Sum(String),
}

/// One tracepoint's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRow {
    /// `category:name`.
    pub name: String,
    pub count: u64,
    /// Sum of the field (signed fields summed as signed).
    pub sum: i128,
    /// Log2 slots of the field with --hist; slot 0 counts negative values.
    pub hist: Vec<u64>,
}

/// One process's numbers for one tracepoint (-P).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcRow {
    pub pid: u32,
    pub comm: String,
    /// Its cgroup v2 path, with --show-cgroup (None: unknown).
    pub cgroup: Option<String>,
    pub event: String,
    pub count: u64,
    pub sum: i128,
}

#[derive(Debug, Clone)]
pub struct EventBlock {
    pub kind: BlockKind,
    pub clock: String,
    pub seconds: f64,
    /// Sorted, most events first.
    pub events: Vec<EventRow>,
    /// With -P only; sorted, most events first.
    pub processes: Option<Vec<ProcRow>>,
    /// The processes' cgroups are shown (--show-cgroup).
    pub show_cgroup: bool,
    pub aggregate: Aggregate,
    pub drops: Vec<(&'static str, u64)>,
    pub exit_code: Option<i32>,
}

/// Most events first, then by name (and pid).
pub fn sort(events: &mut [EventRow], procs: &mut [ProcRow]) {
    events.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    procs.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.pid.cmp(&b.pid))
            .then_with(|| a.event.cmp(&b.event))
    });
}

/// Text; `top` cuts the table (not the histograms).
pub fn render_text(b: &EventBlock, top: Option<usize>) -> String {
    let sum_head = match &b.aggregate {
        Aggregate::Sum(f) => Some(format!("SUM({f})")),
        _ => None,
    };
    let top = top.unwrap_or(usize::MAX);
    // With -P --show-cgroup, each process's cgroup ends its row (paths vary
    // in length, so nothing follows them).
    let cgroup = b.show_cgroup && b.processes.is_some();
    // The table: the columns before COUNT, COUNT and SUM, and the cgroup;
    // header first.
    type Line = (String, u64, i128, String);
    let (head, rows): (String, Vec<Line>) = match &b.processes {
        Some(procs) => (
            format!("{:<7} {:<15} {:<36}", "PID", "COMM", "EVENT"),
            procs
                .iter()
                .filter(|p| p.count > 0)
                .take(top)
                .map(|p| {
                    (
                        format!("{:<7} {:<15} {:<36}", p.pid, p.comm, p.event),
                        p.count,
                        p.sum,
                        p.cgroup.clone().unwrap_or_else(|| "-".into()),
                    )
                })
                .collect(),
        ),
        None => (
            format!("{:<36}", "EVENT"),
            b.events
                .iter()
                .filter(|e| e.count > 0)
                .take(top)
                .map(|e| (format!("{:<36}", e.name), e.count, e.sum, String::new()))
                .collect(),
        ),
    };
    super::text_block(b.kind, &b.clock, b.seconds, &b.drops, |out| {
        let _ = write!(out, "{head} {:>8}", "COUNT");
        if let Some(h) = &sum_head {
            let _ = write!(out, " {h:>16}");
        }
        if cgroup {
            out.push_str(" CGROUP");
        }
        for (lead, count, sum, cg) in rows {
            let _ = write!(out, "\n{lead} {count:>8}");
            if sum_head.is_some() {
                let _ = write!(out, " {sum:>16}");
            }
            if cgroup {
                let _ = write!(out, " {cg}");
            }
        }
        out.push('\n');
        if let Aggregate::Hist(field) = &b.aggregate {
            for e in b.events.iter().filter(|e| e.count > 0) {
                let _ = writeln!(out, "\nEvent = {}, field {field}", e.name);
                out.push_str(&hist::render(&e.hist, field));
                if e.sum >= 0 {
                    let _ = writeln!(out, "{}", hist::summary_line(e.sum as u64, e.count, field));
                }
            }
        }
    })
}

pub fn render_json(b: &EventBlock, top: Option<usize>) -> String {
    let top = top.unwrap_or(usize::MAX);
    let with_sum = b.aggregate != Aggregate::None;
    let events: Vec<Value> = b
        .events
        .iter()
        .filter(|e| e.count > 0)
        .take(top)
        .map(|e| {
            let mut o = Map::new();
            o.insert("tracepoint".into(), json!(e.name));
            o.insert("count".into(), json!(e.count));
            if with_sum {
                o.insert("sum".into(), sum_json(e.sum));
            }
            if let Aggregate::Hist(f) = &b.aggregate {
                o.insert(
                    "hist".into(),
                    json!({
                        "field": f,
                        "negative": e.hist.first().copied().unwrap_or(0),
                        "buckets": hist_json(&e.hist),
                    }),
                );
            }
            Value::Object(o)
        })
        .collect();
    let mut o = super::json::head(b.kind, &b.clock, b.seconds);
    if let Aggregate::Hist(f) | Aggregate::Sum(f) = &b.aggregate {
        o.insert("field".into(), json!(f));
    }
    o.insert("events".into(), Value::Array(events));
    if let Some(procs) = &b.processes {
        let procs: Vec<Value> = procs
            .iter()
            .filter(|p| p.count > 0)
            .take(top)
            .map(|p| {
                let mut v =
                    json!({"pid": p.pid, "comm": p.comm, "tracepoint": p.event, "count": p.count});
                if with_sum {
                    v["sum"] = sum_json(p.sum);
                }
                if b.show_cgroup {
                    v["cgroup"] = json!(p.cgroup);
                }
                v
            })
            .collect();
        o.insert("processes".into(), Value::Array(procs));
    }
    super::json::tail(&mut o, &b.drops, b.exit_code);
    Value::Object(o).to_string()
}

/// A sum as a JSON integer (u64 or i64 range).
fn sum_json(s: i128) -> Value {
    if s >= 0 {
        json!(s as u64)
    } else {
        json!(s as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, count: u64, sum: i128) -> EventRow {
        EventRow {
            name: name.into(),
            count,
            sum,
            hist: vec![],
        }
    }

    fn block(
        events: Vec<EventRow>,
        processes: Option<Vec<ProcRow>>,
        aggregate: Aggregate,
    ) -> EventBlock {
        EventBlock {
            kind: BlockKind::Interval,
            clock: "10:00:00".into(),
            seconds: 1.0,
            events,
            processes,
            show_cgroup: false,
            aggregate,
            drops: vec![],
            exit_code: None,
        }
    }

    #[test]
    fn counts_table() {
        let mut e = vec![
            ev("sched:sched_process_fork", 2, 0),
            ev("sched:sched_process_exec", 5, 0),
            ev("x:y", 0, 0),
        ];
        sort(&mut e, &mut []);
        let t = render_text(&block(e.clone(), None, Aggregate::None), None);
        assert_eq!(
            t,
            "[10:00:00]\n\
             EVENT                                   COUNT\n\
             sched:sched_process_exec                    5\n\
             sched:sched_process_fork                    2\n"
        );
        let t = render_text(&block(e, None, Aggregate::None), Some(1));
        assert!(!t.contains("fork"), "{t}");
    }

    #[test]
    fn per_process_sums() {
        let p = vec![ProcRow {
            pid: 42,
            comm: "fixture".into(),
            cgroup: Some("/x.scope".into()),
            event: "syscalls:sys_enter_write".into(),
            count: 3,
            sum: -6,
        }];
        let mut b = block(
            vec![ev("syscalls:sys_enter_write", 3, -6)],
            Some(p),
            Aggregate::Sum("count".into()),
        );
        let t = render_text(&b, None);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            format!(
                "{:<7} {:<15} {:<36} {:>8} {:>16}",
                "PID", "COMM", "EVENT", "COUNT", "SUM(count)"
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{:<7} {:<15} {:<36} {:>8} {:>16}",
                42, "fixture", "syscalls:sys_enter_write", 3, -6
            )
        );
        let v: Value = serde_json::from_str(&render_json(&b, None)).unwrap();
        assert_eq!(v["field"], "count");
        assert_eq!(v["events"][0]["sum"], -6);
        assert_eq!(v["processes"][0]["pid"], 42);
        assert_eq!(v["processes"][0]["sum"], -6);
        assert!(v["processes"][0].get("cgroup").is_none(), "only when asked");
        // --show-cgroup: the cgroup ends each row.
        b.show_cgroup = true;
        let t = render_text(&b, None);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            format!(
                "{:<7} {:<15} {:<36} {:>8} {:>16} CGROUP",
                "PID", "COMM", "EVENT", "COUNT", "SUM(count)"
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{:<7} {:<15} {:<36} {:>8} {:>16} /x.scope",
                42, "fixture", "syscalls:sys_enter_write", 3, -6
            )
        );
        let v: Value = serde_json::from_str(&render_json(&b, None)).unwrap();
        assert_eq!(v["processes"][0]["cgroup"], "/x.scope");
    }

    #[test]
    fn histograms() {
        let mut e = ev("syscalls:sys_enter_write", 4, 1100);
        e.hist = vec![0; 65];
        e.hist[7] = 1; // 64 -> 127
        e.hist[10] = 3; // 512 -> 1023
        let mut b = block(vec![e], None, Aggregate::Hist("count".into()));
        b.kind = BlockKind::Summary;
        b.exit_code = Some(0);
        let t = render_text(&b, None);
        assert!(t.contains("\nEvent = syscalls:sys_enter_write, field count\n     count               : count     distribution\n"), "{t}");
        assert!(
            t.contains(
                "        64 -> 127        : 1        |*************                           |\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("avg = 275 count, total: 1100 count, count: 4\n"),
            "{t}"
        );
        let v: Value = serde_json::from_str(&render_json(&b, None)).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["events"][0]["hist"]["negative"], 0);
        assert_eq!(
            v["events"][0]["hist"]["buckets"][1],
            json!({"low": 512, "high": 1023, "count": 3})
        );
        assert!(v.get("processes").is_none());
    }
}
