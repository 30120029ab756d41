//! The layout of BCC / libbpf-tools syscount: `%-22s %8d` rows, `[HH:MM:SS]`
//! headers for intervals, a PID/COMM table with -P. Tracer adds an average
//! column to -L (syscount shows only the total) and errno sub-rows.
use std::fmt::Write as _;

use super::{style, Block, Process, Row};

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
pub fn render(b: &Block, opts: Options) -> String {
    super::text_block(b.kind, &b.clock, b.seconds, &b.drops, |out| {
        if opts.per_process {
            processes(out, &b.processes, b.show_cgroup, opts);
        } else {
            syscalls(out, &b.rows, opts);
        }
    })
}

fn syscalls(out: &mut String, rows: &[Row], opts: Options) {
    let mut head = format!("{:<22} {:>8}", "SYSCALL", "COUNT");
    if opts.latency {
        head += &format!(" {:>16} {:>12}", "TIME (us)", "AVG (us)");
    }
    let _ = writeln!(out, "{}", style::header(&head));
    let top = opts.top.unwrap_or(usize::MAX);
    for r in rows.iter().filter(|r| r.calls > 0).take(top) {
        let _ = write!(out, "{:<22} {:>8}", r.qualified_name(), r.calls);
        if opts.latency {
            let total = us(r.total_ns);
            let _ = write!(out, " {total:>16.3} {:>12.3}", total / r.calls as f64);
        }
        out.push('\n');
        for (errno, n) in &r.errnos {
            let _ = writeln!(out, "  {errno:<20} {n:>8}");
        }
    }
}

/// The PID/COMM table; with `cgroup`, each process's cgroup last (paths
/// vary in length, so nothing follows them).
fn processes(out: &mut String, procs: &[Process], cgroup: bool, opts: Options) {
    let mut head = format!("{:<6} {:<15} {:>8}", "PID", "COMM", "COUNT");
    if opts.latency {
        head += &format!(" {:>16}", "TIME (us)");
    }
    if cgroup {
        head += " CGROUP";
    }
    let _ = writeln!(out, "{}", style::header(&head));
    let top = opts.top.unwrap_or(usize::MAX);
    for p in procs.iter().filter(|p| p.calls() > 0).take(top) {
        let _ = write!(out, "{:<6} {:<15} {:>8}", p.pid, p.comm, p.calls());
        if opts.latency {
            let _ = write!(out, " {:>16.3}", us(p.total_ns()));
        }
        if cgroup {
            let _ = write!(out, " {}", p.cgroup.as_deref().unwrap_or("-"));
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        tests::{block, row},
        BlockKind,
    };

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
            cgroup: None,
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

    #[test]
    fn per_process_cgroups_come_last() {
        let p = |pid, comm: &str, cgroup: Option<&str>| Process {
            pid,
            ppid: 1,
            comm: comm.into(),
            cgroup: cgroup.map(Into::into),
            rows: vec![row("read", 3, 0, 2000)],
        };
        let mut b = block(
            vec![],
            vec![
                p(42, "bash", Some("/system.slice/docker-3f2a.scope")),
                p(7, "init", None),
            ],
        );
        b.show_cgroup = true;
        let t = render(
            &b,
            Options {
                top: None,
                latency: true,
                per_process: true,
            },
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            &lines[1..],
            [
                "PID    COMM               COUNT        TIME (us) CGROUP",
                "42     bash                   3            2.000 /system.slice/docker-3f2a.scope",
                "7      init                   3            2.000 -",
            ]
        );
        b.show_cgroup = false;
        assert!(!render(
            &b,
            Options {
                per_process: true,
                ..Options::default()
            }
        )
        .contains("CGROUP"));
    }
}
