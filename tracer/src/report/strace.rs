//! The `strace -c` summary table, column for column (strace 6.x, src/count.c):
//! widths grow with their contents, zero errors print blank, the last column
//! is not padded, the total row carries the average usecs/call.
use std::fmt::Write as _;

use super::{Process, Row};
use crate::sys::names::Abi;

/// Render rows (already sorted) as strace -c does.
pub fn table(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.calls > 0).collect();
    let total_ns: u64 = rows.iter().map(|r| r.total_ns).sum();
    let calls: u64 = rows.iter().map(|r| r.calls).sum();
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    let secs = |ns: u64| ns as f64 / 1e9;
    let avg_us = |ns: u64, n: u64| ns.checked_div(n).unwrap_or(0) / 1000;
    let max_avg = rows
        .iter()
        .map(|r| avg_us(r.total_ns, r.calls))
        .max()
        .unwrap_or(0);
    let name_max = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);

    let widths = [
        6,
        11.max(format!("{:.6}", secs(total_ns)).len()),
        11.max(max_avg.to_string().len()),
        9.max(calls.to_string().len()),
        9.max(errors.to_string().len()),
        16.max(name_max + 1),
    ];
    let [w_pct, w_sec, w_avg, w_calls, w_err, _] = widths;
    let dashes = widths.map(|w| "-".repeat(w)).join(" ") + "\n";

    let h = format!(
        "{:>w_pct$} {:>w_sec$} {:>w_avg$} {:>w_calls$} {:>w_err$} syscall",
        "% time", "seconds", "usecs/call", "calls", "errors"
    );
    let mut out = super::style::header(&h) + "\n" + &dashes;
    let line = |out: &mut String, pct: f64, ns: u64, calls: u64, errors: u64, name: &str| {
        // Zero errors print blank.
        let errors = if errors == 0 {
            String::new()
        } else {
            errors.to_string()
        };
        let _ = writeln!(
            out,
            "{pct:>w_pct$.2} {:>w_sec$.6} {:>w_avg$} {calls:>w_calls$} {errors:>w_err$} {name}",
            secs(ns),
            avg_us(ns, calls),
        );
    };
    for r in &rows {
        // When the total is 0, so is every row's time.
        let pct = 100.0 * r.total_ns as f64 / total_ns.max(1) as f64;
        line(&mut out, pct, r.total_ns, r.calls, r.errors, &r.name);
    }
    out.push_str(&dashes);
    line(&mut out, 100.0, total_ns, calls, errors, "total");
    out
}

/// strace's name of a personality other than the native one, in the
/// heading of its table.
fn mode(abi: Abi) -> &'static str {
    match abi {
        Abi::Native => "64 bit",
        Abi::I386 => "32 bit",
        Abi::X32 => "x32",
    }
}

/// One table per ABI that made calls, as strace -c prints its personalities:
/// the native one first, then each other one under "System call usage
/// summary for 32 bit mode:" (x32: "for x32 mode:"). No call at all: the
/// native table, empty.
pub fn tables(rows: &[Row]) -> String {
    let mut out = String::new();
    for abi in Abi::ALL {
        let mine: Vec<Row> = rows
            .iter()
            .filter(|r| r.abi == abi && r.calls > 0)
            .cloned()
            .collect();
        if mine.is_empty() && !(abi.is_native() && rows.iter().all(|r| r.calls == 0)) {
            continue;
        }
        if !abi.is_native() {
            let _ = writeln!(out, "System call usage summary for {} mode:", mode(abi));
        }
        out.push_str(&table(&mine));
    }
    out
}

/// The heading of a per-process table; with `cgroup`, the process's cgroup
/// (`-` when unknown).
pub fn process_heading(p: &Process, cgroup: bool) -> String {
    let cg = if cgroup {
        format!(", cgroup {}", p.cgroup.as_deref().unwrap_or("-"))
    } else {
        String::new()
    };
    format!(
        "Process {} ({}), parent {}{cg}: {} calls\n",
        p.pid,
        p.comm,
        p.ppid,
        p.calls()
    )
}

/// The whole report in strace's layout: the table of all processes, then
/// (with -P) one per process, each cut to `top` rows, then lost updates.
pub fn render(b: &super::Block, top: Option<usize>) -> String {
    let mut out = match b.kind {
        super::BlockKind::Interval => format!("[{}]\n", b.clock),
        super::BlockKind::Summary => String::new(),
    };
    out.push_str(&tables(&b.rows));
    for p in &b.processes {
        let rows = &p.rows[..top.unwrap_or(usize::MAX).min(p.rows.len())];
        out.push_str(&format!(
            "\n{}{}",
            process_heading(p, b.show_cgroup),
            tables(rows)
        ));
    }
    super::push_drops(&mut out, &b.drops);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    #[test]
    fn matches_strace_layout() {
        let rows = vec![
            row("geteuid", 40000, 0, 412_345_000),
            row("openat", 10, 10, 498_000),
        ];
        let expected = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 99.88    0.412345          10     40000           geteuid
  0.12    0.000498          49        10        10 openat
------ ----------- ----------- --------- --------- ----------------
100.00    0.412843          10     40010        10 total
";
        assert_eq!(table(&rows), expected);
    }

    #[test]
    fn other_abis_get_their_own_table_as_in_strace() {
        let mut getpid32 = row("getpid", 100, 0, 0);
        getpid32.abi = Abi::I386;
        getpid32.nr = 20;
        let mut x = row("read", 2, 0, 0);
        x.abi = Abi::X32;
        let rows = vec![row("getpid", 50, 0, 0), getpid32, x];
        // strace -f -c of a 64-bit program making 50 getpid calls and 100
        // through int $0x80 (rows with times zero).
        let expected = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
  0.00    0.000000           0        50           getpid
------ ----------- ----------- --------- --------- ----------------
100.00    0.000000           0        50           total
System call usage summary for 32 bit mode:
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
  0.00    0.000000           0       100           getpid
------ ----------- ----------- --------- --------- ----------------
100.00    0.000000           0       100           total
System call usage summary for x32 mode:
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
  0.00    0.000000           0         2           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.000000           0         2           total
";
        assert_eq!(tables(&rows), expected);
        // Only native calls: one table, no heading; none at all: an empty one.
        assert_eq!(tables(&rows[..1]), table(&rows[..1]));
        assert_eq!(tables(&[]), table(&[]));
        // Only i386 calls: the 32-bit table alone, under its heading.
        let t = tables(&rows[1..2]);
        assert!(
            t.starts_with("System call usage summary for 32 bit mode:\n% time"),
            "{t}"
        );
    }

    #[test]
    fn widths_grow_with_contents() {
        let rows = vec![
            row("sched_get_priority_max", 12_345_678_901, 0, 0),
            row("read", 1, 1, 0),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        // calls needs 11 digits; name column is longest name + 1 = 23.
        assert_eq!(
            lines[1],
            format!(
                "------ ----------- ----------- {} --------- {}",
                "-".repeat(11),
                "-".repeat(23)
            )
        );
        assert_eq!(
            lines[2],
            "  0.00    0.000000           0 12345678901           sched_get_priority_max"
        );
        assert_eq!(
            lines[3],
            "  0.00    0.000000           0           1         1 read"
        );
        assert!(
            lines[5].ends_with(" 12345678902         1 total"),
            "{}",
            lines[5]
        );
    }

    #[test]
    fn zero_call_rows_are_skipped_and_empty_table_is_valid() {
        let t = table(&[row("read", 0, 0, 0)]);
        assert_eq!(t.lines().count(), 4);
        assert!(t
            .lines()
            .last()
            .unwrap()
            .starts_with("100.00    0.000000           0         0"));
    }

    #[test]
    fn process_headings_name_the_cgroup_when_asked() {
        let mut p = Process {
            pid: 42,
            ppid: 1,
            comm: "sh".into(),
            cgroup: Some("/tracer.scope".into()),
            rows: vec![row("read", 3, 0, 0)],
        };
        assert_eq!(
            process_heading(&p, false),
            "Process 42 (sh), parent 1: 3 calls\n"
        );
        assert_eq!(
            process_heading(&p, true),
            "Process 42 (sh), parent 1, cgroup /tracer.scope: 3 calls\n"
        );
        p.cgroup = None;
        assert_eq!(
            process_heading(&p, true),
            "Process 42 (sh), parent 1, cgroup -: 3 calls\n"
        );
    }
}
