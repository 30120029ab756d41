//! Function reports, for kernel functions (`tracer kprobe`) and user-space
//! functions (`tracer uprobe`) alike: BCC funccount's table, funclatency's
//! log2 histograms, stackcount's stacks, the kprobe attach lines, and JSON.
//! Plain data in, text out.
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::{hist, BlockKind};
pub use crate::cli::Measure;

/// One function's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FuncRow {
    /// What the user sees (`vfs_read`, `malloc`, `libc:malloc` with several
    /// targets, `main+0x4`).
    pub name: String,
    /// User-space functions: the file probed and the function's address in it.
    pub location: Option<(String, u64)>,
    pub calls: u64,
    /// Calls whose return was timed (--latency).
    pub returns: u64,
    pub total_ns: u64,
    /// `LOG2_SLOTS` log2 slots (`tracer_common::log2_slot`, BCC's layout):
    /// slot 1 holds 0 and 1 ns, slot s holds [2^(s-1), 2^s) ns; empty
    /// without --latency.
    pub hist: Vec<u64>,
}

/// Calls of one function by one process (-P).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcRow {
    pub pid: u32,
    pub comm: String,
    pub function: String,
    pub calls: u64,
}

/// A distinct kernel stack that led to `function`, innermost frame first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackRow {
    pub function: String,
    pub frames: Vec<String>,
    pub count: u64,
}

/// One printed block (or JSON object). Rows are already sorted and cut to -T.
#[derive(Debug, Clone)]
pub struct FuncBlock {
    pub kind: BlockKind,
    pub clock: String,
    pub seconds: f64,
    pub measure: Measure,
    /// Kernel functions: the hook they are attached with (`kprobe`, `fentry`).
    pub backend: Option<&'static str>,
    pub funcs: Vec<FuncRow>,
    /// Only with -P.
    pub procs: Vec<ProcRow>,
    /// Only with --stack.
    pub stacks: Vec<StackRow>,
    pub drops: Vec<(&'static str, u64)>,
    pub exit_code: Option<i32>,
}

/// Sort by calls (or total time with latency) descending, then name.
pub fn sort_funcs(rows: &mut [FuncRow], measure: Measure) {
    rows.sort_by(|a, b| {
        let k = match measure {
            Measure::Latency => b.total_ns.cmp(&a.total_ns),
            _ => b.calls.cmp(&a.calls),
        };
        k.then_with(|| a.name.cmp(&b.name))
    });
}

/// The text report of a block: stacks first (--stack), then the PID table
/// (-P) or the funccount table, then one histogram per function (--latency).
pub fn render(b: &FuncBlock) -> String {
    super::text_block(b.kind, &b.clock, b.seconds, &b.drops, |out| {
        for s in &b.stacks {
            for fr in &s.frames {
                let _ = writeln!(out, "  {fr}");
            }
            let _ = writeln!(out, "    {}\n", s.count);
        }
        if b.procs.is_empty() {
            let head = super::style::header(&format!("{:<36} {:>8}", "FUNC", "COUNT"));
            let _ = writeln!(out, "{head}");
            for f in b.funcs.iter().filter(|f| f.calls > 0) {
                let name = super::style::name_column(&f.name, 36, 9);
                let _ = writeln!(out, "{name:<36} {:>8}", f.calls);
            }
        } else {
            let _ = writeln!(
                out,
                "{:<6} {:<15} {:<36} {:>8}",
                "PID", "COMM", "FUNC", "COUNT"
            );
            for p in &b.procs {
                let _ = writeln!(
                    out,
                    "{:<6} {:<15} {:<36} {:>8}",
                    p.pid, p.comm, p.function, p.calls
                );
            }
        }
        let latency = b.measure == Measure::Latency;
        for f in b
            .funcs
            .iter()
            .filter(|f| latency && (f.returns > 0 || f.calls > 0))
        {
            let _ = writeln!(out, "\nFunction = {}", f.name);
            out.push_str(&hist::render(&f.hist, "nsecs"));
            let summary = hist::summary_line(f.total_ns, f.returns, "nsecs");
            let _ = writeln!(out, "{summary}");
        }
    })
}

/// Non-empty slots as `{"low", "high", "count"}` objects (slot 0, which
/// tracepoint histograms use for negative values, is left out).
pub fn hist_json(hist: &[u64]) -> Value {
    buckets_json(hist, "low", "high")
}

/// Non-empty slots but 0 as `{low, high, count}` objects, with the given key names.
fn buckets_json(hist: &[u64], low: &str, high: &str) -> Value {
    let bucket = |(i, &n): (usize, &u64)| {
        let (lo, hi) = hist::bucket_range(i);
        Map::from_iter([
            (low.into(), json!(lo)),
            (high.into(), json!(hi)),
            ("count".into(), json!(n)),
        ])
    };
    hist.iter()
        .enumerate()
        .skip(1)
        .filter(|(_, &n)| n > 0)
        .map(bucket)
        .collect()
}

/// One line of JSON for a block, in the layout the README documents for
/// `tracer kprobe` (a `backend`; latency fields flat, `*_ns` bucket keys;
/// functions never called left out) or for `tracer uprobe` (`target` and
/// `address`; latency nested under `latency`).
pub fn render_json(b: &FuncBlock) -> String {
    let mut o = super::json::head(b.kind, &b.clock, b.seconds);
    if let Some(backend) = b.backend {
        o.insert("backend".into(), json!(backend));
    }
    let latency = b.measure == Measure::Latency;
    let funcs: Vec<Value> = b
        .funcs
        .iter()
        .filter(|f| b.backend.is_none() || f.calls > 0 || f.returns > 0)
        .map(|f| {
            let mut r = Map::new();
            r.insert("function".into(), json!(f.name));
            if let Some((target, address)) = &f.location {
                r.insert("target".into(), json!(target));
                r.insert("address".into(), json!(format!("{address:#x}")));
            }
            r.insert("calls".into(), json!(f.calls));
            match (latency, b.backend) {
                (false, _) => {}
                (true, Some(_)) => {
                    r.insert("count".into(), json!(f.returns));
                    r.insert("total_ns".into(), json!(f.total_ns));
                    r.insert("buckets".into(), buckets_json(&f.hist, "low_ns", "high_ns"));
                }
                (true, None) => {
                    r.insert(
                        "latency".into(),
                        json!({
                            "unit": "ns",
                            "count": f.returns,
                            "total": f.total_ns,
                            "buckets": hist_json(&f.hist),
                        }),
                    );
                }
            }
            Value::Object(r)
        })
        .collect();
    o.insert("functions".into(), Value::Array(funcs));
    if !b.procs.is_empty() {
        let procs: Vec<Value> = b
            .procs
            .iter()
            .map(
                |p| json!({"pid": p.pid, "comm": p.comm, "function": p.function, "calls": p.calls}),
            )
            .collect();
        o.insert("processes".into(), Value::Array(procs));
    }
    if b.measure == Measure::Stack {
        let stacks: Vec<Value> = b
            .stacks
            .iter()
            .map(|s| json!({"function": s.function, "count": s.count, "frames": s.frames}))
            .collect();
        o.insert("stacks".into(), Value::Array(stacks));
    }
    super::json::tail(&mut o, &b.drops, b.exit_code);
    Value::Object(o).to_string()
}

/// The line saying which backend attached how many functions, how fast:
/// `backend` is its description (`fentry/fexit (BTF trampolines)`); the
/// per-function time counts the functions that failed too.
pub fn attached_line(backend: &str, attached: usize, failed: usize, seconds: f64) -> String {
    format!(
        "Using {backend} for {attached} functions (attached in {seconds:.3} s, {:.2} ms per function).",
        seconds * 1e3 / (attached + failed).max(1) as f64
    )
}

/// Attaching progress, `attaching: 120/4000 functions`: the caller prints it
/// after a `\r`, when it decides to.
pub fn attach_progress(done: usize, total: usize) -> String {
    format!("attaching: {done}/{total} functions")
}

/// The end-of-run list of functions that could not be attached, one
/// `  function: why` line each, and with `hint` the line saying the kprobe
/// backend may do better; empty when nothing failed.
pub fn attach_failures<E: std::fmt::Display>(failed: &[(String, E)], hint: bool) -> String {
    if failed.is_empty() {
        return String::new();
    }
    let mut out = format!("{} functions could not be attached:\n", failed.len());
    for (f, why) in failed {
        let _ = writeln!(out, "  {f}: {why}");
    }
    if hint {
        out.push_str("(--backend kprobe can attach functions that are missing from BTF)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::hist;
    use tracer_common::{log2_slot, LOG2_SLOTS};

    #[test]
    fn attach_lines() {
        assert_eq!(
            attached_line("fentry/fexit (BTF trampolines)", 3, 1, 0.01),
            "Using fentry/fexit (BTF trampolines) for 3 functions (attached in 0.010 s, 2.50 ms \
             per function)."
        );
        assert_eq!(
            attached_line("kprobe/kretprobe (perf kprobe PMU)", 0, 0, 0.0),
            "Using kprobe/kretprobe (perf kprobe PMU) for 0 functions (attached in 0.000 s, 0.00 \
             ms per function)."
        );
        assert_eq!(attach_progress(120, 4000), "attaching: 120/4000 functions");
    }

    #[test]
    fn attach_failure_list() {
        let none: &[(String, String)] = &[];
        assert_eq!(attach_failures(none, true), "");
        let failed = [
            ("vfs_read".to_string(), "no such function (ENOENT)"),
            ("do_sys_open".to_string(), "not in the kernel's BTF (x)"),
        ];
        assert_eq!(
            attach_failures(&failed, false),
            "2 functions could not be attached:
  vfs_read: no such function (ENOENT)
  \
             do_sys_open: not in the kernel's BTF (x)
"
        );
        assert_eq!(
            attach_failures(&failed[..1], true),
            "1 functions could not be attached:
  vfs_read: no such function (ENOENT)
\
             (--backend kprobe can attach functions that are missing from BTF)
"
        );
    }

    fn block(measure: Measure, funcs: Vec<FuncRow>) -> FuncBlock {
        FuncBlock {
            kind: BlockKind::Interval,
            clock: "09:39:04".into(),
            seconds: 1.0,
            measure,
            backend: Some("fentry"),
            funcs,
            procs: vec![],
            stacks: vec![],
            drops: vec![],
            exit_code: None,
        }
    }

    fn f(name: &str, calls: u64) -> FuncRow {
        FuncRow {
            name: name.into(),
            calls,
            ..Default::default()
        }
    }

    #[test]
    fn funccount_table() {
        let mut rows = vec![f("vfs_read", 5), f("vfs_write", 113), f("vfs_open", 0)];
        sort_funcs(&mut rows, Measure::Count);
        let t = render(&block(Measure::Count, rows));
        assert_eq!(
            t,
            "[09:39:04]\n\
             FUNC                                    COUNT\n\
             vfs_write                                 113\n\
             vfs_read                                    5\n"
        );
    }

    #[test]
    fn per_process_table() {
        let mut b = block(Measure::Count, vec![f("vfs_read", 3)]);
        b.procs = vec![ProcRow {
            pid: 42,
            comm: "cat".into(),
            function: "vfs_read".into(),
            calls: 3,
        }];
        let t = render(&b);
        assert!(
            t.contains("PID    COMM            FUNC                                    COUNT\n"),
            "{t}"
        );
        assert!(
            t.contains("42     cat             vfs_read                                    3\n"),
            "{t}"
        );
    }

    #[test]
    fn histogram_like_funclatency() {
        // 12 calls in [256, 512), 141 in [512, 1024): slots 9 and 10.
        let mut hist = vec![0; LOG2_SLOTS as usize];
        hist[9] = 12;
        hist[10] = 141;
        hist::tests::assert_bcc_layout(&hist::render(&hist, "nsecs"));
        assert_eq!(hist::render(&vec![0; LOG2_SLOTS as usize], "nsecs"), "");
        let mut row = f("vfs_read", 153);
        row.returns = 153;
        row.total_ns = 153 * 600;
        row.hist = hist;
        let t = render(&block(Measure::Latency, vec![row]));
        assert!(t.contains("\nFunction = vfs_read\n"), "{t}");
        assert!(
            t.ends_with("avg = 600 nsecs, total: 91800 nsecs, count: 153\n"),
            "{t}"
        );
    }

    /// Calls of 0 ns share BCC's first row with those of 1 ns, in the JSON too.
    #[test]
    fn zero_length_calls_in_the_first_row() {
        let mut hist = vec![0; LOG2_SLOTS as usize];
        hist[log2_slot(0) as usize] += 1;
        hist[log2_slot(1) as usize] += 2;
        hist[log2_slot(700) as usize] += 1;
        let h = hist::render(&hist, "nsecs");
        assert_eq!(
            h.lines().nth(1),
            Some("         0 -> 1          : 3        |****************************************|")
        );
        assert_eq!(
            h.lines().nth(10),
            Some("       512 -> 1023       : 1        |*************                           |")
        );
        let mut row = f("vfs_read", 4);
        row.returns = 4;
        row.hist = hist;
        let v: Value =
            serde_json::from_str(&render_json(&block(Measure::Latency, vec![row]))).unwrap();
        assert_eq!(
            v["functions"][0]["buckets"][0],
            json!({"low_ns": 0, "high_ns": 1, "count": 3})
        );
    }

    #[test]
    fn wide_histogram() {
        let mut hist = vec![0; LOG2_SLOTS as usize];
        hist[40] = 1;
        let h = hist::render(&hist, "nsecs");
        assert!(
            h.starts_with(
                "               nsecs                         : count     distribution\n"
            ),
            "{h}"
        );
        assert!(
            h.contains(&format!(
                "{:>20} -> {:<20} : 1        |{}|",
                1u64 << 39,
                (1u64 << 40) - 1,
                "*".repeat(20)
            )),
            "{h}"
        );
    }

    #[test]
    fn stacks_and_json() {
        let mut b = block(Measure::Stack, vec![f("vfs_read", 7)]);
        b.stacks = vec![StackRow {
            function: "vfs_read".into(),
            frames: vec!["vfs_read".into(), "ksys_read+0x6b".into()],
            count: 7,
        }];
        b.drops = vec![("stack lost", 1)];
        let t = render(&b);
        assert!(
            t.starts_with("[09:39:04]\n  vfs_read\n  ksys_read+0x6b\n    7\n\n"),
            "{t}"
        );
        assert!(t.contains("WARNING"), "{t}");
        let v: Value = serde_json::from_str(&render_json(&b)).unwrap();
        assert_eq!(v["backend"], "fentry");
        assert_eq!(v["functions"][0]["function"], "vfs_read");
        assert_eq!(v["functions"][0]["calls"], 7);
        assert_eq!(v["stacks"][0]["frames"][1], "ksys_read+0x6b");
        assert_eq!(v["lost"]["stack lost"], 1);
    }

    #[test]
    fn latency_json_buckets() {
        let mut row = f("vfs_read", 3);
        row.returns = 3;
        row.total_ns = 3000;
        row.hist = vec![0; LOG2_SLOTS as usize];
        row.hist[10] = 3;
        let mut b = block(Measure::Latency, vec![row]);
        b.kind = BlockKind::Summary;
        b.exit_code = Some(0);
        let v: Value = serde_json::from_str(&render_json(&b)).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["functions"][0]["count"], 3);
        assert_eq!(v["functions"][0]["total_ns"], 3000);
        assert_eq!(
            v["functions"][0]["buckets"][0],
            json!({"low_ns": 512, "high_ns": 1023, "count": 3})
        );
        assert_eq!(v["exit_code"], 0);
    }

    fn urow(name: &str, calls: u64) -> FuncRow {
        let location = Some(("/bin/x".into(), 0x1139));
        FuncRow {
            location,
            ..f(name, calls)
        }
    }

    /// A user-space functions' block: no backend, another clock.
    fn ublock(funcs: Vec<FuncRow>, latency: bool) -> FuncBlock {
        let measure = [Measure::Count, Measure::Latency][usize::from(latency)];
        let clock = "10:00:00".into();
        FuncBlock {
            clock,
            backend: None,
            ..block(measure, funcs)
        }
    }

    #[test]
    fn uprobe_funccount_table() {
        let mut f = vec![urow("free", 3), urow("unused", 0), urow("malloc", 113)];
        sort_funcs(&mut f, Measure::Count);
        let t = render(&ublock(f, false));
        assert_eq!(
            t,
            "[10:00:00]\n\
             FUNC                                    COUNT\n\
             malloc                                    113\n\
             free                                        3\n"
        );
    }

    #[test]
    fn uprobe_latency_histograms() {
        let mut f = urow("work", 3);
        f.returns = 3;
        f.total_ns = 3000;
        f.hist = vec![0; 65];
        f.hist[10] = 3;
        let mut b = ublock(vec![f], true);
        b.kind = BlockKind::Summary;
        b.drops = vec![("entry table full", 1)];
        let t = render(&b);
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
    fn uprobe_json_without_latency() {
        let v: Value =
            serde_json::from_str(&render_json(&ublock(vec![urow("m", 2)], false))).unwrap();
        assert_eq!(v["type"], "interval");
        assert_eq!(v["functions"][0]["calls"], 2);
        assert!(v["functions"][0].get("latency").is_none());
        assert!(v.get("exit_code").is_none());
    }
}
