//! Renderers: plain Rust data in, text out. Nothing here touches aya, so all of
//! it is unit-tested without root.
pub mod args;
pub mod events;
pub mod funcs;
pub mod hist;
pub mod info;
pub mod json;
pub mod listing;
pub mod metrics;
pub mod pprof;
pub mod pprof_proto;
pub mod profile;
pub mod strace;
pub mod style;
pub mod syscall_events;
pub mod syscount;
pub mod tcp;

use crate::cli::SortKey;

/// One syscall's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub name: String,
    /// Its number in its ABI.
    pub nr: u32,
    /// The ABI the calls were made through (one row per syscall and ABI).
    pub abi: crate::sys::names::Abi,
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    /// Failures per errno name, most frequent first (only with --errno).
    pub errnos: Vec<(String, u64)>,
}

/// One process's rows (per-process reports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Its cgroup v2 path, with --show-cgroup (None: unknown).
    pub cgroup: Option<String>,
    pub rows: Vec<Row>,
}

impl Process {
    pub fn calls(&self) -> u64 {
        self.rows.iter().map(|r| r.calls).sum()
    }
    pub fn total_ns(&self) -> u64 {
        self.rows.iter().map(|r| r.total_ns).sum()
    }
}

/// What the kernel side measured in this run (errors and times need the exit hook).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    pub errors: bool,
    pub time: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Counts of one interval (`-i`).
    Interval,
    /// Counts of the whole run, printed at the end.
    Summary,
}

/// Everything one printed block (or JSON object) holds.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    /// Local wall clock time, HH:MM:SS.
    pub clock: String,
    /// Seconds covered by this block.
    pub seconds: f64,
    pub rows: Vec<Row>,
    /// Only filled when counting per process.
    pub processes: Vec<Process>,
    /// The processes' cgroups are shown (--show-cgroup).
    pub show_cgroup: bool,
    pub measured: Measured,
    /// Lost updates by reason (non-zero only).
    pub drops: Vec<(&'static str, u64)>,
    /// Exit status of the traced command, for the final block of `-- CMD`.
    pub exit_code: Option<i32>,
}

/// Sort rows in place: numbers descending, names ascending, ties by name.
pub fn sort_rows(rows: &mut [Row], key: SortKey) {
    rows.sort_by(|a, b| {
        let primary = match key {
            SortKey::Calls => b.calls.cmp(&a.calls),
            SortKey::Time => b.total_ns.cmp(&a.total_ns),
            SortKey::Errors => b.errors.cmp(&a.errors),
            SortKey::Name => a.name.cmp(&b.name),
        };
        primary
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.abi.cmp(&b.abi))
    });
}

impl Row {
    /// Its name with its ABI where that is not the native one, as strace's
    /// `-e` writes it: `getpid`, `getpid@32`, `getpid@x32`.
    pub fn qualified_name(&self) -> String {
        if self.abi.is_native() {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, self.abi.suffix())
        }
    }
}

/// The sum of the rows.
pub fn total(rows: &[Row]) -> Row {
    let mut t = Row {
        name: "total".into(),
        ..Row::default()
    };
    for r in rows {
        t.calls += r.calls;
        t.errors += r.errors;
        t.total_ns += r.total_ns;
    }
    t
}

/// The line telling the user tracing has started (every command says it the
/// same way): `what` is traced, `whose` from the process selection.
pub fn banner(what: &str, whose: &str) -> String {
    format!("Tracing {what}{whose}... Hit Ctrl-C to end.")
}

/// The line after the banner of `tracer serve`: where the metrics are.
pub fn serving(url: &str) -> String {
    format!("Serving metrics at {url} (Prometheus text; OpenMetrics when asked)")
}

/// A warning line about lost updates, if any were lost.
pub fn drops_line(drops: &[(&'static str, u64)]) -> Option<String> {
    let parts: Vec<String> = drops.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    (!drops.is_empty()).then(|| {
        style::warning(&format!(
            "WARNING: some updates were lost in the kernel ({}); counts may be low",
            parts.join(", ")
        ))
    })
}

fn push_drops(out: &mut String, drops: &[(&'static str, u64)]) {
    if let Some(w) = drops_line(drops) {
        out.push_str(&w);
        out.push('\n');
    }
}

/// A text block of the counting commands: the `[HH:MM:SS]` heading (with the
/// time covered, for the summary), what `body` writes, the lost-updates warning.
fn text_block(
    kind: BlockKind,
    clock: &str,
    seconds: f64,
    drops: &[(&'static str, u64)],
    body: impl FnOnce(&mut String),
) -> String {
    let mut out = match kind {
        BlockKind::Interval => format!("[{clock}]\n"),
        BlockKind::Summary => format!("[{clock}] totals over {seconds:.1} s\n"),
    };
    body(&mut out);
    push_drops(&mut out, drops);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row(name: &str, calls: u64, errors: u64, total_ns: u64) -> Row {
        Row {
            name: name.into(),
            nr: 0,
            abi: Default::default(),
            calls,
            errors,
            total_ns,
            errnos: vec![],
        }
    }

    /// An interval block of `rows` and `processes`, nothing measured or lost.
    pub fn block(rows: Vec<Row>, processes: Vec<Process>) -> Block {
        Block {
            kind: BlockKind::Interval,
            clock: "09:39:04".into(),
            seconds: 1.0,
            rows,
            processes,
            show_cgroup: false,
            measured: Measured::default(),
            drops: vec![],
            exit_code: None,
        }
    }

    #[test]
    fn sorting() {
        let mut rows = vec![row("b", 5, 0, 10), row("a", 5, 1, 30), row("c", 9, 0, 20)];
        let names = |rows: &[Row]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        sort_rows(&mut rows, SortKey::Calls);
        assert_eq!(names(&rows), ["c", "a", "b"]);
        sort_rows(&mut rows, SortKey::Time);
        assert_eq!(names(&rows), ["a", "c", "b"]);
        sort_rows(&mut rows, SortKey::Name);
        assert_eq!(names(&rows), ["a", "b", "c"]);
        sort_rows(&mut rows, SortKey::Errors);
        assert_eq!(rows[0].name, "a");
        let t = total(&rows);
        assert_eq!((t.calls, t.errors, t.total_ns), (19, 1, 60));
    }

    #[test]
    fn drops_warning() {
        assert_eq!(drops_line(&[]), None);
        let l = drops_line(&[("per-process table full", 3)]).unwrap();
        assert!(l.contains("per-process table full: 3"), "{l}");
    }
}
