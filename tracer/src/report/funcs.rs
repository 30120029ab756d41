//! `tracer uprobe` reports: BCC funccount's table (`%-36s %8d`), and with
//! `--latency` one funclatency histogram per function; JSON, one object per block.
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::{hist, BlockKind};

/// One probed function's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FuncRow {
    /// What the user sees (`malloc`, `libc:malloc` with several targets, `main+0x4`).
    pub name: String,
    /// The file probed.
    pub target: String,
    pub address: u64,
    pub calls: u64,
    /// Returns measured (with --latency).
    pub returns: u64,
    pub total_ns: u64,
    /// Log2 slots of the latency, nanoseconds (empty without --latency).
    pub hist: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct FuncBlock {
    pub kind: BlockKind,
    pub clock: String,
    pub seconds: f64,
    /// Sorted (most calls first).
    pub funcs: Vec<FuncRow>,
    pub latency: bool,
    pub drops: Vec<(&'static str, u64)>,
    pub exit_code: Option<i32>,
}

/// Most calls first, then by name.
pub fn sort(funcs: &mut [FuncRow]) {
    funcs.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.name.cmp(&b.name)));
}

pub fn render_text(b: &FuncBlock) -> String {
    let mut out = String::new();
    match b.kind {
        BlockKind::Interval => {
            let _ = writeln!(out, "[{}]", b.clock);
        }
        BlockKind::Summary => {
            let _ = writeln!(out, "[{}] totals over {:.1} s", b.clock, b.seconds);
        }
    }
    let _ = writeln!(out, "{:<36} {:>8}", "FUNC", "COUNT");
    for f in b.funcs.iter().filter(|f| f.calls > 0) {
        let _ = writeln!(out, "{:<36} {:>8}", f.name, f.calls);
    }
    if b.latency {
        for f in b.funcs.iter().filter(|f| f.returns > 0) {
            let _ = writeln!(out, "\nFunction = {}", f.name);
            out.push_str(&hist::render(&f.hist, "nsecs"));
            let _ = writeln!(
                out,
                "{}",
                hist::summary_line(f.total_ns, f.returns, "nsecs")
            );
        }
    }
    if let Some(w) = super::drops_line(&b.drops) {
        let _ = writeln!(out, "{w}");
    }
    out
}

/// Non-empty slots as `{"low", "high", "count"}` objects.
pub fn hist_json(buckets: &[u64]) -> Value {
    Value::Array(
        buckets
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, &c)| c > 0)
            .map(|(s, &c)| {
                let (low, high) = hist::bucket_range(s);
                json!({"low": low, "high": high, "count": c})
            })
            .collect(),
    )
}

pub fn render_json(b: &FuncBlock) -> String {
    let funcs: Vec<Value> = b
        .funcs
        .iter()
        .map(|f| {
            let mut o = Map::new();
            o.insert("function".into(), json!(f.name));
            o.insert("target".into(), json!(f.target));
            o.insert("address".into(), json!(format!("{:#x}", f.address)));
            o.insert("calls".into(), json!(f.calls));
            if b.latency {
                o.insert(
                    "latency".into(),
                    json!({
                        "unit": "ns",
                        "count": f.returns,
                        "total": f.total_ns,
                        "buckets": hist_json(&f.hist),
                    }),
                );
            }
            Value::Object(o)
        })
        .collect();
    let mut o = super::json::head(b.kind, &b.clock, b.seconds);
    o.insert("functions".into(), Value::Array(funcs));
    super::json::tail(&mut o, &b.drops, b.exit_code);
    Value::Object(o).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, calls: u64) -> FuncRow {
        FuncRow {
            name: name.into(),
            target: "/bin/x".into(),
            address: 0x1139,
            calls,
            ..FuncRow::default()
        }
    }

    fn block(funcs: Vec<FuncRow>, latency: bool) -> FuncBlock {
        FuncBlock {
            kind: BlockKind::Interval,
            clock: "10:00:00".into(),
            seconds: 1.0,
            funcs,
            latency,
            drops: vec![],
            exit_code: None,
        }
    }

    #[test]
    fn funccount_table() {
        let mut f = vec![row("free", 3), row("unused", 0), row("malloc", 113)];
        sort(&mut f);
        let t = render_text(&block(f, false));
        assert_eq!(
            t,
            "[10:00:00]\n\
             FUNC                                    COUNT\n\
             malloc                                    113\n\
             free                                        3\n"
        );
    }

    #[test]
    fn latency_histograms() {
        let mut f = row("work", 3);
        f.returns = 3;
        f.total_ns = 3000;
        f.hist = vec![0; 65];
        f.hist[10] = 3;
        let mut b = block(vec![f], true);
        b.kind = BlockKind::Summary;
        b.drops = vec![("entry table full", 1)];
        let t = render_text(&b);
        assert!(t.starts_with("[10:00:00] totals over 1.0 s\n"), "{t}");
        assert!(
            t.contains("\nFunction = work\n     nsecs               : count     distribution\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "       512 -> 1023       : 3        |****************************************|\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("avg = 1000 nsecs, total: 3000 nsecs, count: 3\n"),
            "{t}"
        );
        assert!(t.contains("WARNING"), "{t}");
        let v: Value = serde_json::from_str(&render_json(&b)).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["functions"][0]["function"], "work");
        assert_eq!(v["functions"][0]["address"], "0x1139");
        assert_eq!(v["functions"][0]["latency"]["count"], 3);
        assert_eq!(
            v["functions"][0]["latency"]["buckets"][0],
            json!({"low": 512, "high": 1023, "count": 3})
        );
        assert_eq!(v["lost"]["entry table full"], 1);
    }

    #[test]
    fn json_without_latency() {
        let v: Value =
            serde_json::from_str(&render_json(&block(vec![row("m", 2)], false))).unwrap();
        assert_eq!(v["type"], "interval");
        assert_eq!(v["functions"][0]["calls"], 2);
        assert!(v["functions"][0].get("latency").is_none());
        assert!(v.get("exit_code").is_none());
    }
}
