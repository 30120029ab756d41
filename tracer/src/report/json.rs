//! JSON output: one object per block, one per line. The schema is documented in
//! README.md ("JSON output"); `tests/json_schema.rs` checks it against real runs.
use serde_json::{json, Map, Value};

use super::{Block, BlockKind, Measured, Row};

fn row(r: &Row, m: Measured, with_errnos: bool) -> Value {
    let mut o = Map::new();
    o.insert("syscall".into(), json!(r.name));
    o.insert("nr".into(), json!(r.nr));
    o.insert("abi".into(), json!(r.abi.name()));
    o.insert("calls".into(), json!(r.calls));
    // Null when not measured.
    o.insert("errors".into(), json!(m.errors.then_some(r.errors)));
    o.insert("total_ns".into(), json!(m.time.then_some(r.total_ns)));
    if with_errnos {
        let e = r.errnos.iter().map(|(k, v)| (k.clone(), json!(v)));
        o.insert("errno".into(), Value::Object(e.collect()));
    }
    Value::Object(o)
}

fn rows(rs: &[Row], m: Measured, with_errnos: bool) -> Value {
    let shown = rs.iter().filter(|r| r.calls > 0);
    shown.map(|r| row(r, m, with_errnos)).collect()
}

/// The fields every counting command's JSON object starts with.
pub fn head(kind: BlockKind, clock: &str, seconds: f64) -> Map<String, Value> {
    let mut o = Map::new();
    let kind = match kind {
        BlockKind::Interval => "interval",
        BlockKind::Summary => "summary",
    };
    o.insert("type".into(), json!(kind));
    o.insert("time".into(), json!(clock));
    o.insert("seconds".into(), json!((seconds * 1000.0).round() / 1000.0));
    o
}

/// ... and ends with: lost updates by reason, and the command's exit code.
pub fn tail(o: &mut Map<String, Value>, drops: &[(&'static str, u64)], exit_code: Option<i32>) {
    let drops = drops.iter().map(|(k, v)| ((*k).to_string(), json!(v)));
    o.insert("lost".into(), Value::Object(drops.collect()));
    if let Some(code) = exit_code {
        o.insert("exit_code".into(), json!(code));
    }
}

/// One line of JSON for `block`. Rows are in the order given (already sorted and cut).
pub fn render(block: &Block, with_errnos: bool) -> String {
    let m = block.measured;
    let total = super::total(&block.rows);
    let mut o = head(block.kind, &block.clock, block.seconds);
    o.insert("syscalls".into(), rows(&block.rows, m, with_errnos));
    let mut t = row(&total, m, false);
    if let Value::Object(t) = &mut t {
        t.remove("syscall");
        t.remove("nr");
        t.remove("abi");
    }
    o.insert("total".into(), t);
    if !block.processes.is_empty() {
        let procs = block.processes.iter().map(|p| {
            let syscalls = rows(&p.rows, m, with_errnos);
            let mut o = json!({"pid": p.pid, "ppid": p.ppid, "comm": p.comm, "calls": p.calls(),
                   "syscalls": syscalls});
            if block.show_cgroup {
                o["cgroup"] = json!(p.cgroup);
            }
            o
        });
        o.insert("processes".into(), procs.collect());
    }
    tail(&mut o, &block.drops, block.exit_code);
    Value::Object(o).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        tests::{block, row as mk},
        Process,
    };

    #[test]
    fn schema() {
        let mut r = mk("openat", 5, 3, 1234);
        r.nr = 257;
        r.errnos = vec![("ENOENT".into(), 3)];
        let p = Process {
            pid: 7,
            ppid: 1,
            comm: "x".into(),
            cgroup: Some("/a.scope".into()),
            rows: vec![r.clone()],
        };
        let b = Block {
            kind: BlockKind::Summary,
            clock: "10:00:00".into(),
            seconds: 1.23456,
            measured: Measured {
                errors: true,
                time: true,
            },
            drops: vec![("starts_full", 2)],
            exit_code: Some(3),
            ..block(vec![r, mk("read", 0, 0, 0)], vec![p])
        };
        let v: Value = serde_json::from_str(&render(&b, true)).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["seconds"], 1.235);
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(v["syscalls"][0]["syscall"], "openat");
        assert_eq!(v["syscalls"][0]["nr"], 257);
        assert_eq!(v["syscalls"][0]["errors"], 3);
        assert_eq!(v["syscalls"][0]["errno"]["ENOENT"], 3);
        assert_eq!(v["total"]["calls"], 5);
        assert_eq!(v["total"]["total_ns"], 1234);
        assert_eq!(v["processes"][0]["pid"], 7);
        assert_eq!(v["processes"][0]["calls"], 5);
        assert!(v["processes"][0].get("cgroup").is_none(), "only when asked");
        let mut b = b;
        b.show_cgroup = true;
        let v: Value = serde_json::from_str(&render(&b, true)).unwrap();
        assert_eq!(v["processes"][0]["cgroup"], "/a.scope");
        b.processes[0].cgroup = None;
        let v: Value = serde_json::from_str(&render(&b, true)).unwrap();
        assert!(v["processes"][0]["cgroup"].is_null());
        assert_eq!(v["lost"]["starts_full"], 2);
        assert_eq!(v["exit_code"], 3);
    }

    #[test]
    fn unmeasured_fields_are_null() {
        let b = Block {
            clock: "10:00:00".into(),
            ..block(vec![mk("read", 2, 0, 0)], vec![])
        };
        let v: Value = serde_json::from_str(&render(&b, false)).unwrap();
        assert_eq!(v["type"], "interval");
        assert!(v["syscalls"][0]["errors"].is_null());
        assert!(v["syscalls"][0]["total_ns"].is_null());
        assert!(v["syscalls"][0].get("errno").is_none());
        assert!(v.get("processes").is_none());
        assert!(v.get("exit_code").is_none());
    }
}
