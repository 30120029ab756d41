//! `tracer profile`'s reports: the hottest functions (laid out like `perf
//! report --children`), folded stacks (what flame graph tools read), a flame
//! graph (SVG, with inferno) and JSON. pprof is in [`super::pprof`]. Plain
//! data ([`Profile`]) in, text or bytes out.
//!
//! A stack with no frames at all (both its stacks lost) shows everywhere as
//! one frame `[unknown]` of module `[unknown]`, so that every report adds up
//! to the profile's total.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use super::BlockKind;
use crate::collect::profile::{Frame, Kind, Profile, Stack};

/// A frame as the reports see it: borrowed from [`Profile::frames`], or the
/// `[unknown]` frame standing for a stack with none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FrameRef<'a> {
    pub name: &'a str,
    pub module: &'a str,
    pub kernel: bool,
    pub symbolized: bool,
}

/// What a stack without any frame (or a frame index out of range) shows as.
pub(super) const UNKNOWN: FrameRef<'static> = FrameRef {
    name: "[unknown]",
    module: "[unknown]",
    kernel: false,
    symbolized: false,
};

impl<'a> From<&'a Frame> for FrameRef<'a> {
    fn from(f: &'a Frame) -> Self {
        FrameRef {
            name: &f.name,
            module: &f.module,
            kernel: f.kernel,
            symbolized: f.symbolized,
        }
    }
}

impl<'a> FrameRef<'a> {
    /// A function's identity in the reports: name, module, kernel or not.
    fn key(&self) -> (&'a str, &'a str, bool) {
        (self.name, self.module, self.kernel)
    }
}

/// `s`'s frames, root first (never empty: `[UNKNOWN]` for a stack without any).
pub(super) fn frames<'a>(p: &'a Profile, s: &Stack) -> Vec<FrameRef<'a>> {
    if s.frames.is_empty() {
        return vec![UNKNOWN];
    }
    let frame = |&i: &usize| p.frames.get(i).map_or(UNKNOWN, FrameRef::from);
    s.frames.iter().map(frame).collect()
}

/// Whether some frame of `s` is not named (or it has none at all).
fn unsymbolized(p: &Profile, s: &Stack) -> bool {
    frames(p, s).iter().any(|f| !f.symbolized)
}

/// The stacks, heaviest first, ties by comm, frame names and pid (stable output).
pub(super) fn sorted_stacks(p: &Profile) -> Vec<&Stack> {
    let mut stacks: Vec<&Stack> = p.stacks.iter().collect();
    let names = |s: &Stack| -> Vec<&str> { frames(p, s).iter().map(|f| f.name).collect() };
    stacks.sort_by(|a, b| {
        b.value
            .cmp(&a.value)
            .then_with(|| a.comm.cmp(&b.comm))
            .then_with(|| names(a).cmp(&names(b)))
            .then_with(|| a.pid.cmp(&b.pid))
    });
    stacks
}

/// `s` as one folded-stack field: `;` made `:`, whitespace runs (newlines
/// too) one space, trimmed; `[unknown]` when nothing is left.
fn field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        return UNKNOWN.name.to_string();
    }
    out.replace(';', ":")
}

/// Folded stacks as (line without the value, value), sorted by line, equal
/// lines merged, in the unit the folded output prints (samples, or off-CPU
/// microseconds rounded); lines of value 0 are left out.
fn folded_lines(p: &Profile) -> Vec<(String, u64)> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.stacks {
        let mut line = field(&s.comm);
        for f in frames(p, s) {
            line.push(';');
            line.push_str(&field(f.name));
            if f.kernel {
                line.push_str("_[k]");
            }
        }
        *merged.entry(line).or_default() += s.value;
    }
    let scale = |v: u64| match p.kind {
        Kind::Cpu { .. } => v,
        // Nanoseconds to microseconds, rounded (BCC's offcputime -f prints µs).
        Kind::OffCpu { .. } => v / 1000 + u64::from(v % 1000 >= 500),
    };
    merged
        .into_iter()
        .map(|(line, v)| (line, scale(v)))
        .filter(|&(_, v)| v > 0)
        .collect()
}

/// The folded-stack format flame graph tools read (Brendan Gregg's
/// stackcollapse output, BCC `profile -f`): one `comm;root;...;leaf VALUE`
/// line per distinct stack, kernel frames suffixed `_[k]`, sorted. Values
/// are samples (on-CPU) or microseconds (off-CPU, rounded; stacks of less
/// than half a microsecond left out). Stacks that print the same (another
/// pid of the same comm) are summed.
pub fn folded(p: &Profile) -> String {
    let mut out = String::new();
    for (line, v) in folded_lines(p) {
        let _ = writeln!(out, "{line} {v}");
    }
    out
}

/// A flame graph of `p` (SVG), titled `title`: on-CPU in samples with the
/// usual hot colours; off-CPU in microseconds with blue ones (`--colors io`,
/// as BCC's offcputime suggests). An error when there is nothing to draw
/// (inferno would draw an error message instead).
pub fn svg(p: &Profile, title: &str) -> anyhow::Result<Vec<u8>> {
    use inferno::flamegraph::{
        color::{BasicPalette, Palette},
        from_lines, Options,
    };
    let lines: Vec<String> = folded_lines(p)
        .into_iter()
        .map(|(line, v)| format!("{line} {v}"))
        .collect();
    if lines.is_empty() {
        bail!("no stacks were sampled; nothing to draw");
    }
    let mut o = Options::default();
    o.title = title.to_string();
    // Colours by name hash: the same function has the same colour in every graph.
    o.hash = true;
    match &p.kind {
        Kind::Cpu { event, hz } => {
            o.count_name = "samples".into();
            o.subtitle = Some(format!(
                "{event} at {hz} Hz on every CPU, {:.1} s",
                p.seconds
            ));
        }
        Kind::OffCpu { min_block_us } => {
            o.count_name = "us".into();
            o.colors = Palette::Basic(BasicPalette::Io);
            o.subtitle = Some(format!(
                "Off-CPU time (us) of blocks of at least {min_block_us} us, {:.1} s",
                p.seconds
            ));
        }
    }
    let mut out = Vec::new();
    from_lines(&mut o, lines.iter().map(String::as_str), &mut out)
        .context("drawing the flame graph")?;
    Ok(out)
}

/// One function's weight in a profile: where it is the leaf (self) and
/// where it is anywhere in the stack (total, "children" in perf's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    pub module: String,
    pub kernel: bool,
    /// The sum of the values of the stacks it is the leaf of.
    pub self_value: u64,
    /// The sum of the values of the stacks it is in, each stack once even
    /// when the function recurses.
    pub total_value: u64,
}

/// Every function of `p` (identified by name, module and kernel), by total
/// descending, then self descending, then name, module.
pub fn functions(p: &Profile) -> Vec<FunctionRow> {
    let mut sums: HashMap<(&str, &str, bool), (u64, u64)> = HashMap::new();
    let mut seen = HashSet::new();
    for s in &p.stacks {
        let fs = frames(p, s);
        seen.clear();
        for f in &fs {
            if seen.insert(f.key()) {
                sums.entry(f.key()).or_default().1 += s.value;
            }
        }
        if let Some(leaf) = fs.last() {
            sums.entry(leaf.key()).or_default().0 += s.value;
        }
    }
    let mut rows: Vec<FunctionRow> = sums
        .into_iter()
        .map(
            |((name, module, kernel), (self_value, total_value))| FunctionRow {
                name: name.to_string(),
                module: module.to_string(),
                kernel,
                self_value,
                total_value,
            },
        )
        .collect();
    rows.sort_by(|a, b| {
        b.total_value
            .cmp(&a.total_value)
            .then_with(|| b.self_value.cmp(&a.self_value))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.module.cmp(&b.module))
            .then_with(|| a.kernel.cmp(&b.kernel))
    });
    rows
}

/// `part` as a percentage of `total`, two decimals (0.00% of nothing).
fn percent(part: u64, total: u64) -> String {
    let pc = if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    };
    format!("{pc:.2}%")
}

/// Nanoseconds as milliseconds, three decimals.
fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The header lines of the table (each starting with `#`).
fn table_header(p: &Profile, out: &mut String) {
    let total = p.total();
    match &p.kind {
        Kind::Cpu { event, hz } => {
            let _ = writeln!(
                out,
                "# Profile: on-CPU, {event} sampled at {hz} Hz on every CPU, {:.1} s",
                p.seconds
            );
            let _ = writeln!(out, "# Samples: {total}");
        }
        Kind::OffCpu { min_block_us } => {
            let _ = writeln!(
                out,
                "# Profile: off-CPU, blocks of at least {min_block_us} us, {:.1} s",
                p.seconds
            );
            let _ = writeln!(out, "# Off-CPU time: {} ms", ms(total));
        }
    }
    let truncated = p.stacks.iter().filter(|s| s.truncated).count();
    let unnamed = p.stacks.iter().filter(|s| unsymbolized(p, s)).count();
    let _ = writeln!(
        out,
        "# Stacks: {} distinct, {truncated} truncated (outermost callers missing), \
         {unnamed} with frames not named",
        p.stacks.len()
    );
    if let Some(line) = ends_line(p) {
        let _ = writeln!(out, "# User stacks ended: {line}");
    }
    if let Some(t) = &p.tables {
        let _ = writeln!(out, "# Unwind tables: {}", tables_line(t));
    }
    if !p.lost.is_empty() {
        let lost: Vec<String> = p.lost.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            out,
            "# Lost in the kernel: {} (the numbers are low)",
            lost.join(", ")
        );
    }
    out.push_str("#\n");
}

/// `12 objects, 81234 rules (1.2 of 64 MiB), read in 35 ms; 2 without
/// unwind information, 0 did not fit`.
fn tables_line(t: &crate::collect::profile::TableStats) -> String {
    let mib = |rows: u64| rows as f64 * ROW_BYTES / (1 << 20) as f64;
    let mut line = format!(
        "{} objects, {} rules ({:.1} of {:.0} MiB), read in {:.0} ms; {} without unwind \
         information, {} did not fit",
        t.objects,
        t.rows,
        mib(t.rows),
        mib(t.capacity_rows),
        t.build_ms,
        t.no_info,
        t.full
    );
    if t.procs_full > 0 {
        line += &format!("; {} processes' mappings did not fit", t.procs_full);
    }
    line
}

/// Bytes of one rule in the kernel's tables.
const ROW_BYTES: f64 = size_of::<tracer_common::unwind::Row>() as f64;

/// How the walked user stacks ended, as shares of the walked total, in a
/// fixed order: `complete 97.5% (390), no_unwind_info 2.5% (10)`. None when
/// nothing was walked (`--unwind fp`).
fn ends_line(p: &Profile) -> Option<String> {
    let walked: u64 = p.ends.values().sum();
    if walked == 0 {
        return None;
    }
    let order = [
        "complete",
        "truncated",
        "no_unwind_info",
        "table_full",
        "unreadable_stack",
        "tables_pending",
        "other",
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|k| p.ends.get(k).map(|v| (k, v)))
        .map(|(k, v)| {
            let shown = match p.kind {
                Kind::Cpu { .. } => v.to_string(),
                Kind::OffCpu { .. } => format!("{} ms", ms(*v)),
            };
            format!("{k} {:.1}% ({shown})", 100.0 * *v as f64 / walked as f64)
        })
        .collect();
    Some(parts.join(", "))
}

/// The default text report: the header (what was profiled, the total, the
/// stacks, anything lost), then the hottest functions as `perf report
/// --children` lays them out: `Children` and `Self` percentages of the
/// total, the same as values (samples, or off-CPU milliseconds), the shared
/// object, and the symbol marked `[k]` (kernel) or `[.]` (user). Cut to `top`
/// rows when given, with a last line saying how many were left out.
pub fn table(p: &Profile, top: Option<usize>) -> String {
    let mut out = String::new();
    table_header(p, &mut out);
    let total = p.total();
    let rows = functions(p);
    let shown = top.unwrap_or(rows.len()).min(rows.len());
    let value = |v: u64| match p.kind {
        Kind::Cpu { .. } => v.to_string(),
        Kind::OffCpu { .. } => ms(v),
    };
    let (total_head, self_head) = match p.kind {
        Kind::Cpu { .. } => ("Samples", "Self samples"),
        Kind::OffCpu { .. } => ("Total ms", "Self ms"),
    };
    let cells: Vec<[String; 5]> = rows[..shown]
        .iter()
        .map(|r| {
            [
                percent(r.total_value, total),
                percent(r.self_value, total),
                value(r.total_value),
                value(r.self_value),
                r.module.clone(),
            ]
        })
        .collect();
    let heads = ["Children", "Self", total_head, self_head, "Shared Object"];
    // perf's percentage columns are 8 wide, room for 100.00% and a space.
    let mut widths = heads.map(str::len);
    widths[1] = widths[1].max(8);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let [w0, w1, w2, w3, w4] = widths;
    let line = |c: [&str; 5]| {
        format!(
            "{:>w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {:<w4$}  ",
            c[0], c[1], c[2], c[3], c[4]
        )
    };
    let _ = writeln!(out, "# {}Symbol", line(heads));
    let dots = widths.map(|w| ".".repeat(w));
    let _ = writeln!(
        out,
        "# {}......",
        line([&dots[0], &dots[1], &dots[2], &dots[3], &dots[4]])
    );
    out.push_str("#\n");
    for (r, c) in rows.iter().zip(&cells) {
        let prefix = format!("  {}", line([&c[0], &c[1], &c[2], &c[3], &c[4]]));
        let mark = if r.kernel { "[k]" } else { "[.]" };
        let symbol = format!("{mark} {}", r.name);
        let symbol = match super::style::width() {
            Some(w) => super::style::fit(&symbol, w.saturating_sub(prefix.len()).max(12)),
            None => symbol,
        };
        let _ = writeln!(out, "{prefix}{symbol}");
    }
    match rows.len() - shown {
        0 => {}
        1 => out.push_str("#\n# ... 1 more function not shown\n"),
        n => {
            let _ = writeln!(out, "#\n# ... {n} more functions not shown");
        }
    }
    out
}

/// One line of JSON (with its newline): the fields of [`super::json::head`],
/// what was profiled, the total, every stack (heaviest first, frames root
/// first), the functions as in [`table`] (cut to `top`), how many stacks were
/// truncated or have frames not named, then [`super::json::tail`]'s.
pub fn json(
    p: &Profile,
    kind: BlockKind,
    clock: &str,
    top: Option<usize>,
    exit_code: Option<i32>,
) -> String {
    let mut o = super::json::head(kind, clock, p.seconds);
    let (profile, event, hz, min_block_us, unit) = match &p.kind {
        Kind::Cpu { event, hz } => ("cpu", Some(event.as_str()), Some(*hz), None, "samples"),
        Kind::OffCpu { min_block_us } => ("off-cpu", None, None, Some(*min_block_us), "ns"),
    };
    o.insert("profile".into(), json!(profile));
    o.insert("event".into(), json!(event));
    o.insert("hz".into(), json!(hz));
    o.insert("min_block_us".into(), json!(min_block_us));
    o.insert("unit".into(), json!(unit));
    o.insert("total".into(), json!(p.total()));
    let stacks: Vec<Value> = sorted_stacks(p)
        .into_iter()
        .map(|s| {
            let frames: Vec<Value> = frames(p, s)
                .iter()
                .map(|f| {
                    json!({"name": f.name, "module": f.module, "kernel": f.kernel,
                           "symbolized": f.symbolized})
                })
                .collect();
            json!({"pid": s.pid, "comm": s.comm, "value": s.value, "truncated": s.truncated,
                   "user_stack_end": s.user_end, "frames": frames})
        })
        .collect();
    o.insert("stacks".into(), Value::Array(stacks));
    let mut rows = functions(p);
    rows.truncate(top.unwrap_or(usize::MAX));
    let functions: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"name": r.name, "module": r.module, "kernel": r.kernel,
                   "self": r.self_value, "total": r.total_value})
        })
        .collect();
    o.insert("functions".into(), Value::Array(functions));
    let truncated = p.stacks.iter().filter(|s| s.truncated).count();
    let unnamed = p.stacks.iter().filter(|s| unsymbolized(p, s)).count();
    o.insert("truncated_stacks".into(), json!(truncated));
    o.insert("unsymbolized_stacks".into(), json!(unnamed));
    // How the walked user stacks ended, in samples by reason ({} with --unwind fp).
    o.insert("user_stack_ends".into(), json!(p.ends));
    // The walker's tables (null with --unwind fp).
    o.insert(
        "unwind_tables".into(),
        match &p.tables {
            Some(t) => json!({"objects": t.objects, "rules": t.rows,
                "bytes": t.rows * ROW_BYTES as u64, "capacity_bytes": t.capacity_rows * ROW_BYTES as u64,
                "build_ms": t.build_ms, "no_unwind_info": t.no_info, "full": t.full,
                "processes_full": t.procs_full}),
            None => Value::Null,
        },
    );
    let lost: Vec<(&'static str, u64)> = p.lost.iter().map(|(k, v)| (*k, *v)).collect();
    super::json::tail(&mut o, &lost, exit_code);
    let mut line = Value::Object(o).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn frame(name: &str, module: &str, kernel: bool) -> Frame {
        Frame {
            name: name.into(),
            module: module.into(),
            kernel,
            symbolized: !name.contains("+0x"),
        }
    }

    fn stack(pid: u32, comm: &str, frames: &[usize], value: u64) -> Stack {
        Stack {
            pid,
            comm: comm.into(),
            frames: frames.to_vec(),
            value,
            truncated: false,
            user_end: None,
        }
    }

    /// `fx`: main -> outer -> leaf_a (200), main -> outer -> leaf_b (100),
    /// main -> outer -> leaf_b -> vfs_read [k] (50), with 99 Hz cpu-clock.
    pub fn cpu() -> Profile {
        Profile {
            kind: Kind::Cpu {
                event: "cpu-clock".into(),
                hz: 99,
            },
            seconds: 5.0,
            frames: vec![
                frame("main", "fx", false),
                frame("outer", "fx", false),
                frame("leaf_a", "fx", false),
                frame("leaf_b", "fx", false),
                frame("vfs_read", "[kernel]", true),
            ],
            stacks: vec![
                stack(7, "fx", &[0, 1, 2], 200),
                stack(7, "fx", &[0, 1, 3], 100),
                stack(7, "fx", &[0, 1, 3, 4], 50),
            ],
            lost: BTreeMap::new(),
            ends: BTreeMap::new(),
            tables: None,
        }
    }

    #[test]
    fn folded_lines_root_first() {
        assert_eq!(
            folded(&cpu()),
            "fx;main;outer;leaf_a 200\n\
             fx;main;outer;leaf_b 100\n\
             fx;main;outer;leaf_b;vfs_read_[k] 50\n"
        );
    }

    #[test]
    fn folded_merges_equal_lines_and_shows_empty_stacks() {
        let mut p = cpu();
        p.stacks.push(stack(8, "fx", &[0, 1, 2], 5));
        p.stacks.push(stack(8, "fx", &[], 3));
        p.stacks.push(stack(9, "fx", &[], 4));
        let f = folded(&p);
        assert!(f.contains("fx;main;outer;leaf_a 205\n"), "{f}");
        assert!(f.starts_with("fx;[unknown] 7\n"), "{f}");
        assert_eq!(f.lines().count(), 4);
    }

    #[test]
    fn folded_escapes_names() {
        let mut p = cpu();
        p.frames[2].name = "Vec<[u8; 8]>::push\n  (x)".into();
        p.stacks[0].comm = "my;comm\tx".into();
        let f = folded(&p);
        assert!(
            f.contains("my:comm x;main;outer;Vec<[u8: 8]>::push (x) 200\n"),
            "{f}"
        );
        // Every line still splits into fields and a value.
        for l in f.lines() {
            let (stack, v) = l.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap();
            assert!(stack.split(';').all(|s| !s.is_empty()), "{l}");
        }
    }

    pub fn off_cpu() -> Profile {
        Profile {
            kind: Kind::OffCpu { min_block_us: 1 },
            ..cpu()
        }
    }

    #[test]
    fn folded_off_cpu_in_microseconds() {
        let mut p = off_cpu();
        p.stacks[0].value = 2_500; // 2.5 us: 3
        p.stacks[1].value = 1_499; // 1 us
        p.stacks[2].value = 499; // 0: left out
        assert_eq!(
            folded(&p),
            "fx;main;outer;leaf_a 3\n\
             fx;main;outer;leaf_b 1\n"
        );
        // Merged in nanoseconds, then rounded.
        p.stacks.push(stack(8, "fx", &[0, 1, 3, 4], 499));
        assert!(folded(&p).ends_with("fx;main;outer;leaf_b;vfs_read_[k] 1\n"));
    }

    #[test]
    fn function_rows() {
        let mut p = cpu();
        // Recursion: outer twice in one stack counts once in its total.
        p.stacks.push(stack(7, "fx", &[0, 1, 1], 10));
        let rows = functions(&p);
        let find = |n: &str| {
            let r = rows.iter().find(|r| r.name == n).unwrap();
            (r.self_value, r.total_value)
        };
        assert_eq!(find("main"), (0, 360));
        assert_eq!(find("outer"), (10, 360));
        assert_eq!(find("leaf_a"), (200, 200));
        assert_eq!(find("leaf_b"), (100, 150));
        assert_eq!(find("vfs_read"), (50, 50));
        let order: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        // main and outer tie on total: outer has more self.
        assert_eq!(order, ["outer", "main", "leaf_a", "leaf_b", "vfs_read"]);
        let selfs: u64 = rows.iter().map(|r| r.self_value).sum();
        assert_eq!(selfs, p.total());
    }

    #[test]
    fn perf_like_table() {
        let mut p = cpu();
        p.stacks[2].truncated = true;
        p.frames[2].name = "fx+0x1234".into();
        p.frames[2].symbolized = false;
        p.lost.insert("counts_full", 2);
        let t = table(&p, None);
        assert_eq!(
            t,
            "# Profile: on-CPU, cpu-clock sampled at 99 Hz on every CPU, 5.0 s\n\
             # Samples: 350\n\
             # Stacks: 3 distinct, 1 truncated (outermost callers missing), 1 with frames not named\n\
             # Lost in the kernel: counts_full: 2 (the numbers are low)\n\
             #\n\
             # Children      Self  Samples  Self samples  Shared Object  Symbol\n\
             # ........  ........  .......  ............  .............  ......\n\
             #\n   \
               100.00%     0.00%      350             0  fx             [.] main\n   \
               100.00%     0.00%      350             0  fx             [.] outer\n    \
                57.14%    57.14%      200           200  fx             [.] fx+0x1234\n    \
                42.86%    28.57%      150           100  fx             [.] leaf_b\n    \
                14.29%    14.29%       50            50  [kernel]       [k] vfs_read\n"
        );
        let cut = table(&p, Some(4));
        assert!(
            cut.ends_with("[.] leaf_b\n#\n# ... 1 more function not shown\n"),
            "{cut}"
        );
        let cut = table(&p, Some(2));
        assert!(cut.contains("[.] outer\n"), "{cut}");
        assert!(!cut.contains("leaf_b"), "{cut}");
        assert!(
            cut.ends_with("\n#\n# ... 3 more functions not shown\n"),
            "{cut}"
        );
    }

    #[test]
    fn off_cpu_table_in_milliseconds() {
        let mut p = off_cpu();
        p.stacks[0].value = 2_000_000;
        p.stacks[1].value = 1_250_000;
        p.stacks[2].value = 500_000;
        let t = table(&p, Some(1));
        assert!(
            t.starts_with(
                "# Profile: off-CPU, blocks of at least 1 us, 5.0 s\n\
                 # Off-CPU time: 3.750 ms\n"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "# Children      Self  Total ms  Self ms  Shared Object  Symbol\n\
                 # ........  ........  ........  .......  .............  ......\n\
                 #\n   \
                   100.00%     0.00%     3.750    0.000  fx             [.] main\n"
            ),
            "{t}"
        );
        assert!(t.ends_with("# ... 4 more functions not shown\n"), "{t}");
    }

    #[test]
    fn empty_table() {
        let p = Profile {
            stacks: vec![],
            ..cpu()
        };
        let t = table(&p, Some(10));
        assert!(t.contains("# Samples: 0\n"), "{t}");
        assert!(
            t.ends_with(
                "Symbol\n# ........  ........  .......  ............  .............  ......\n#\n"
            ),
            "{t}"
        );
    }

    #[test]
    fn walker_tables_and_ends_are_reported() {
        let mut p = cpu();
        p.stacks[0].user_end = Some("complete");
        p.ends.insert("complete", 300);
        p.ends.insert("tables_pending", 100);
        p.tables = Some(crate::collect::profile::TableStats {
            objects: 3,
            rows: 65536,
            capacity_rows: 4 << 20,
            no_info: 1,
            full: 0,
            build_ms: 12.4,
            procs_full: 0,
        });
        let t = table(&p, None);
        assert!(
            t.contains("# User stacks ended: complete 75.0% (300), tables_pending 25.0% (100)\n"),
            "{t}"
        );
        assert!(
            t.contains("# Unwind tables: 3 objects, 65536 rules (1.0 of 64 MiB), read in 12 ms; 1 without unwind information, 0 did not fit\n"),
            "{t}"
        );
        let v: Value =
            serde_json::from_str(&json(&p, BlockKind::Summary, "10:00:00", None, None)).unwrap();
        assert_eq!(v["unwind_tables"]["bytes"], 65536 * 16);
        assert_eq!(v["unwind_tables"]["capacity_bytes"], 64 << 20);
        assert_eq!(v["unwind_tables"]["objects"], 3);
        assert_eq!(v["user_stack_ends"]["tables_pending"], 100);
        assert_eq!(v["stacks"][0]["user_stack_end"], "complete");
        assert!(v["stacks"][1]["user_stack_end"].is_null());
        assert!(
            serde_json::from_str::<Value>(&json(&cpu(), BlockKind::Summary, "1", None, None))
                .unwrap()["unwind_tables"]
                .is_null()
        );
    }

    #[test]
    fn json_fields() {
        let mut p = cpu();
        p.stacks[1].truncated = true;
        p.stacks.push(stack(9, "other", &[], 1));
        p.lost.insert("user_stack_lost", 4);
        let line = json(&p, BlockKind::Summary, "10:00:00", Some(2), Some(0));
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["time"], "10:00:00");
        assert_eq!(v["seconds"], 5.0);
        assert_eq!(v["profile"], "cpu");
        assert_eq!(v["event"], "cpu-clock");
        assert_eq!(v["hz"], 99);
        assert!(v["min_block_us"].is_null());
        assert_eq!(v["unit"], "samples");
        assert_eq!(v["total"], 351);
        let stacks = v["stacks"].as_array().unwrap();
        assert_eq!(stacks.len(), 4);
        assert_eq!(stacks[0]["value"], 200);
        assert_eq!(stacks[0]["pid"], 7);
        assert_eq!(stacks[0]["comm"], "fx");
        assert_eq!(stacks[0]["truncated"], false);
        assert_eq!(stacks[1]["truncated"], true);
        assert_eq!(
            stacks[0]["frames"][0],
            json!({"name": "main", "module": "fx", "kernel": false, "symbolized": true})
        );
        assert_eq!(stacks[0]["frames"][2]["name"], "leaf_a");
        assert_eq!(stacks[2]["frames"][3]["kernel"], true);
        assert_eq!(stacks[3]["frames"][0]["name"], "[unknown]");
        let functions = v["functions"].as_array().unwrap();
        assert_eq!(functions.len(), 2);
        assert_eq!(
            functions[0],
            json!({"name": "main", "module": "fx", "kernel": false, "self": 0, "total": 350})
        );
        assert_eq!(v["truncated_stacks"], 1);
        assert_eq!(v["unsymbolized_stacks"], 1);
        assert_eq!(v["lost"]["user_stack_lost"], 4);
        assert_eq!(v["exit_code"], 0);

        let v: Value =
            serde_json::from_str(&json(&off_cpu(), BlockKind::Interval, "x", None, None)).unwrap();
        assert_eq!(v["profile"], "off-cpu");
        assert!(v["event"].is_null() && v["hz"].is_null());
        assert_eq!(v["min_block_us"], 1);
        assert_eq!(v["unit"], "ns");
        assert_eq!(v["functions"].as_array().unwrap().len(), 5);
        assert_eq!(v["lost"], json!({}));
        assert!(v.get("exit_code").is_none());
    }

    /// `svg` parsed as XML (flame graphs have a DOCTYPE).
    fn parse_xml(svg: &str) -> roxmltree::Document<'_> {
        let opt = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(svg, opt).unwrap()
    }

    #[test]
    fn flame_graph_svg() {
        let on = String::from_utf8(svg(&cpu(), "tracer profile").unwrap()).unwrap();
        let doc = parse_xml(&on);
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(on.contains("leaf_a"));
        assert!(on.contains("tracer profile"));
        assert!(on.contains("samples"));
        let mut p = off_cpu();
        p.stacks[0].value = 5_000_000;
        let off = String::from_utf8(svg(&p, "off").unwrap()).unwrap();
        parse_xml(&off);
        assert!(off.contains("blocks of at least 1 us"), "{off}");
        assert!(off.contains("5,000 us"), "{off}");
        let empty = Profile {
            stacks: vec![],
            ..cpu()
        };
        let e = svg(&empty, "x").unwrap_err();
        assert_eq!(e.to_string(), "no stacks were sampled; nothing to draw");
    }
}
