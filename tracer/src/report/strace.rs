//! The `strace -c` summary table, column for column (strace 6.x, src/count.c):
//! widths grow with their contents, zero errors print blank, the last column
//! is not padded, the total row carries the average usecs/call.
use std::fmt::Write as _;

use super::{Process, Row};

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

    let w_pct = 6;
    let w_sec = 11.max(format!("{:.6}", secs(total_ns)).len());
    let w_avg = 11.max(max_avg.to_string().len());
    let w_calls = 9.max(calls.to_string().len());
    let w_err = 9.max(errors.to_string().len());
    let w_name = 16.max(name_max + 1);

    let mut out = String::new();
    let h = format!(
        "{:>w_pct$} {:>w_sec$} {:>w_avg$} {:>w_calls$} {:>w_err$} syscall",
        "% time", "seconds", "usecs/call", "calls", "errors"
    );
    let _ = writeln!(out, "{}", super::style::header(&h));
    let dashes = |out: &mut String| {
        let _ = writeln!(
            out,
            "{} {} {} {} {} {}",
            "-".repeat(w_pct),
            "-".repeat(w_sec),
            "-".repeat(w_avg),
            "-".repeat(w_calls),
            "-".repeat(w_err),
            "-".repeat(w_name)
        );
    };
    dashes(&mut out);
    let blank_zero = |n: u64| if n == 0 { String::new() } else { n.to_string() };
    for r in &rows {
        let pct = if r.total_ns == 0 || total_ns == 0 {
            0.0
        } else {
            100.0 * r.total_ns as f64 / total_ns as f64
        };
        let _ = writeln!(
            out,
            "{:>w_pct$.2} {:>w_sec$.6} {:>w_avg$} {:>w_calls$} {:>w_err$} {}",
            pct,
            secs(r.total_ns),
            avg_us(r.total_ns, r.calls),
            r.calls,
            blank_zero(r.errors),
            r.name
        );
    }
    dashes(&mut out);
    let _ = writeln!(
        out,
        "{:>w_pct$.2} {:>w_sec$.6} {:>w_avg$} {:>w_calls$} {:>w_err$} total",
        100.0,
        secs(total_ns),
        avg_us(total_ns, calls),
        calls,
        blank_zero(errors)
    );
    out
}

/// The heading of a per-process table.
pub fn process_heading(p: &Process) -> String {
    format!(
        "Process {} ({}), parent {}: {} calls\n",
        p.pid,
        p.comm,
        p.ppid,
        p.calls()
    )
}

/// The whole report in strace's layout: the table of all processes, then
/// (with -P) one per process, each cut to `top` rows, then lost updates.
pub fn render(b: &super::Block, top: Option<usize>) -> String {
    let mut out = String::new();
    if b.kind == super::BlockKind::Interval {
        out.push_str(&format!("[{}]\n", b.clock));
    }
    out.push_str(&table(&b.rows));
    for p in &b.processes {
        out.push('\n');
        out.push_str(&process_heading(p));
        let mut rows = p.rows.clone();
        if let Some(top) = top {
            rows.truncate(top);
        }
        out.push_str(&table(&rows));
    }
    if let Some(w) = super::drops_line(&b.drops) {
        out.push_str(&w);
        out.push('\n');
    }
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
}
