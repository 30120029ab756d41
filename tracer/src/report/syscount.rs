//! The layout of BCC / libbpf-tools syscount: `%-22s %8d` rows, `[HH:MM:SS]`
//! headers for intervals, a PID/COMM table with -P. Tracer adds an average
//! column to -L (syscount shows only the total) and errno sub-rows.
use std::fmt::Write as _;

use super::{style, Block, BlockKind, Process, Row};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub top: Option<usize>,
    pub latency: bool,
    pub per_process: bool,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Rows already sorted; processes already sorted.
pub fn render(block: &Block, opts: Options) -> String {
    let mut out = String::new();
    match block.kind {
        BlockKind::Interval => {
            let _ = writeln!(out, "[{}]", block.clock);
        }
        BlockKind::Summary => {
            let _ = writeln!(out, "[{}] totals over {:.1} s", block.clock, block.seconds);
        }
    }
    if opts.per_process {
        processes(&mut out, &block.processes, opts);
    } else {
        syscalls(&mut out, &block.rows, opts);
    }
    if let Some(w) = super::drops_line(&block.drops) {
        let _ = writeln!(out, "{w}");
    }
    out
}

fn syscalls(out: &mut String, rows: &[Row], opts: Options) {
    let header = if opts.latency {
        format!(
            "{:<22} {:>8} {:>16} {:>12}",
            "SYSCALL", "COUNT", "TIME (us)", "AVG (us)"
        )
    } else {
        format!("{:<22} {:>8}", "SYSCALL", "COUNT")
    };
    let _ = writeln!(out, "{}", style::header(&header));
    let shown = rows.iter().filter(|r| r.calls > 0);
    for r in shown.take(opts.top.unwrap_or(usize::MAX)) {
        if opts.latency {
            let avg = if r.calls == 0 {
                0.0
            } else {
                us(r.total_ns) / r.calls as f64
            };
            let _ = writeln!(
                out,
                "{:<22} {:>8} {:>16.3} {:>12.3}",
                r.name,
                r.calls,
                us(r.total_ns),
                avg
            );
        } else {
            let _ = writeln!(out, "{:<22} {:>8}", r.name, r.calls);
        }
        for (errno, n) in &r.errnos {
            let _ = writeln!(out, "  {errno:<20} {n:>8}");
        }
    }
}

fn processes(out: &mut String, procs: &[Process], opts: Options) {
    let header = if opts.latency {
        format!(
            "{:<6} {:<15} {:>8} {:>16}",
            "PID", "COMM", "COUNT", "TIME (us)"
        )
    } else {
        format!("{:<6} {:<15} {:>8}", "PID", "COMM", "COUNT")
    };
    let _ = writeln!(out, "{}", style::header(&header));
    for p in procs
        .iter()
        .filter(|p| p.calls() > 0)
        .take(opts.top.unwrap_or(usize::MAX))
    {
        if opts.latency {
            let _ = writeln!(
                out,
                "{:<6} {:<15} {:>8} {:>16.3}",
                p.pid,
                p.comm,
                p.calls(),
                us(p.total_ns())
            );
        } else {
            let _ = writeln!(out, "{:<6} {:<15} {:>8}", p.pid, p.comm, p.calls());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{tests::row, Measured};

    fn block(rows: Vec<Row>, processes: Vec<Process>) -> Block {
        Block {
            kind: BlockKind::Interval,
            clock: "09:39:04".into(),
            seconds: 1.0,
            rows,
            processes,
            measured: Measured::default(),
            drops: vec![],
            exit_code: None,
        }
    }

    #[test]
    fn counts_table() {
        let b = block(
            vec![
                row("write", 10739, 0, 0),
                row("read", 0, 0, 0),
                row("futex", 5, 0, 0),
            ],
            vec![],
        );
        let t = render(&b, Options::default());
        assert_eq!(
            t,
            "[09:39:04]\nSYSCALL                   COUNT\nwrite                     10739\nfutex                         5\n"
        );
    }

    #[test]
    fn latency_top_and_errnos() {
        let mut r = row("openat", 4, 3, 10_500);
        r.errnos = vec![("ENOENT".into(), 3)];
        let b = block(vec![r, row("read", 2, 0, 1000)], vec![]);
        let t = render(
            &b,
            Options {
                top: Some(1),
                latency: true,
                per_process: false,
            },
        );
        assert_eq!(
            t,
            "[09:39:04]\n\
             SYSCALL                   COUNT        TIME (us)     AVG (us)\n\
             openat                        4           10.500        2.625\n  \
             ENOENT                      3\n"
        );
    }

    #[test]
    fn per_process_table() {
        let p = Process {
            pid: 42,
            ppid: 1,
            comm: "bash".into(),
            rows: vec![row("read", 3, 0, 0), row("write", 4, 0, 0)],
        };
        let mut b = block(vec![], vec![p]);
        b.kind = BlockKind::Summary;
        b.seconds = 5.0;
        b.drops = vec![("per-process table full", 1)];
        let t = render(
            &b,
            Options {
                top: None,
                latency: false,
                per_process: true,
            },
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "[09:39:04] totals over 5.0 s");
        assert_eq!(lines[1], "PID    COMM               COUNT");
        assert_eq!(lines[2], "42     bash                   7");
        assert!(lines[3].starts_with("WARNING"));
    }
}
