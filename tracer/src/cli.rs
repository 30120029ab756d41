//! Every clap type of the command line, in one place. The doc comments are the manual.
use std::{ffi::OsString, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Low-overhead Linux tracing with eBPF: the answers of `strace -c`, BCC's
/// syscount and bpftrace one-liners, without a compiler or kernel headers.
///
/// Needs root (or CAP_BPF with CAP_PERFMON). Nothing stays attached in the
/// kernel after tracer exits, however it exits.
///
/// Exit codes: 0 success, 1 error (bad input, kernel refused, not root), and
/// with `-- CMD` the traced command's own exit code (128+N if a signal N killed it).
#[derive(Debug, Parser)]
#[command(name = "tracer", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Syscalls(SyscallsArgs),
    Kprobe(KprobeArgs),
    /// Attach empty programs to the syscall hooks until interrupted: the cost
    /// floor any eBPF syscall counter pays (used by `cargo xtask bench`).
    #[command(hide = true)]
    Floor(FloorArgs),
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Also attach an empty program on sys_exit.
    #[arg(long)]
    pub exit: bool,
}

/// Count system calls, system-wide or for chosen processes.
///
/// Without a target, counts every process on the system (except tracer itself)
/// and prints a table in the layout of BCC's syscount when the duration ends or
/// on Ctrl-C:
///
///     sudo tracer syscalls -d 5
///     sudo tracer syscalls -i 1 -L -T 5
///
/// With `-- CMD`, launches CMD and counts it and every process it forks, from
/// its own execve to its exit, and prints the summary of `strace -c -f` (same
/// columns, widths and sort) to stderr, or to `-o FILE`:
///
///     sudo tracer syscalls -- make -j2
///     sudo tracer syscalls --per-process -- sh -c 'ls | wc -l'
///
/// With `-p PID`, counts those running processes (all their threads) and, by
/// default, the children they fork from then on, until they have all exited or
/// Ctrl-C.
///
/// Filtering happens in the kernel; counts are aggregated there too (per-CPU
/// maps), so nothing crosses to user space per event. Times are wall-clock time
/// between a syscall's entry and its exit, so a call that blocks counts the
/// time it slept (as in strace -c). Calls that never return (exit, exit_group,
/// a successful execve's old image aside) have a count but no time.
///
/// Ctrl-C, SIGTERM or the end of `--duration` print the final block and exit.
/// With `-- CMD`, Ctrl-C reaches CMD from the terminal as it would without
/// tracer; tracer sends it no signal, prints what it counted and exits 130.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct SyscallsArgs {
    /// Stop after SECS seconds.
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub duration: Option<f64>,

    /// Print a block every SECS seconds (counts for that interval), headed [HH:MM:SS].
    /// The block printed at the end then holds the totals of the whole run.
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub interval: Option<f64>,

    /// Show the top N rows [default: 10 in the syscount layout, all in the strace layout].
    #[arg(short = 'T', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,

    /// Show every row.
    #[arg(long, conflicts_with = "top")]
    pub all: bool,

    /// Rows per process: in the syscount layout, a PID/COMM row per process; in the
    /// strace layout, one full table per process (pid, comm, parent) after the total.
    #[arg(short = 'P', long)]
    pub per_process: bool,

    /// Measure time spent in each syscall (total and average, microseconds).
    #[arg(short = 'L', long)]
    pub latency: bool,

    /// Count failed calls only (return value -1..-4095).
    #[arg(short = 'x', long)]
    pub failures: bool,

    /// Count failures per errno (ENOENT, EAGAIN, ...) under each syscall.
    #[arg(long)]
    pub errno: bool,

    /// Only these processes (all their threads); repeat or separate with commas.
    /// Their children forked later are counted too unless --no-follow.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<i32>,

    /// Only tasks whose comm (the 15-character name in /proc/PID/comm) is COMM.
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,

    /// Only tasks running as this user (name or number).
    #[arg(short, long, value_name = "USER")]
    pub uid: Option<String>,

    /// Only these syscalls (names as in `man 2 syscalls`), comma separated.
    #[arg(short = 'e', long = "syscall", value_name = "NAME", value_delimiter = ',')]
    pub syscall: Vec<String>,

    /// With -p or -- CMD: count only the first process, not its children.
    #[arg(long)]
    pub no_follow: bool,

    /// Sort rows by this key [default: time in the strace layout, calls otherwise].
    #[arg(short = 'S', long, value_enum, value_name = "KEY")]
    pub sort: Option<SortKey>,

    /// Table layout [default: strace with -p or -- CMD, syscount otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Layout>,

    /// JSON instead of a table: one object per interval and one at the end, one per
    /// line (see the README for the schema).
    #[arg(long)]
    pub json: bool,

    /// Write the report to FILE instead of stdout (syscount layout, JSON) or stderr
    /// (strace layout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The command to launch and trace, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Calls,
    Time,
    Name,
    Errors,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// BCC syscount: SYSCALL COUNT [TIME (us)].
    Syscount,
    /// strace -c: % time, seconds, usecs/call, calls, errors, syscall.
    Strace,
}

/// Count calls of kernel functions, time them, or count the stacks that lead to them.
///
/// PATTERN is a kernel function name or a glob (`*` and `?`), matched against
/// the functions the kernel can trace (tracefs `available_filter_functions`,
/// or /proc/kallsyms when tracefs cannot be read). By default, prints a table of
/// calls per function in the layout of BCC's funccount when the run ends:
///
///     sudo tracer kprobe 'vfs_*' -d 5
///     sudo tracer kprobe --latency vfs_read -- cat /etc/passwd
///     sudo tracer kprobe --stack -T 5 tcp_sendmsg
///
/// --latency times each call (entry to return) and prints a log2 histogram per
/// function as funclatency does; --stack counts the distinct kernel stacks
/// that led to the calls (as stackcount), most frequent first.
///
/// Two ways to hook a function exist and kernels differ in which they allow:
/// kprobes (perf kprobe PMU, needs CONFIG_KPROBES) and fentry/fexit (BTF
/// trampolines, Linux 5.5+ with BTF). tracer uses fentry where it works, else
/// kprobes, and says which in one line; --backend forces one. fentry costs less
/// per call (`cargo xtask vm-test` measures both); kprobes attach faster to
/// many functions, since fentry loads one program per function. Attaching
/// shows progress when it takes over a second. Functions that cannot be
/// attached (notrace, inlined, not in BTF) are listed at the end; it is an
/// error only if none attach.
///
/// The process filters work as in `tracer syscalls`: -p PID, --comm, -u and
/// `-- CMD` (following forks unless --no-follow). Filtering and counting happen
/// in the kernel. Ctrl-C, SIGTERM or the end of -d print the final block.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct KprobeArgs {
    /// Kernel function names or globs (`vfs_*`, `tcp_*send*`).
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,

    /// Time each call: a log2 histogram of nanoseconds per function, with
    /// avg / total / count (adds a return probe per function).
    #[arg(short = 'L', long, conflicts_with = "stack")]
    pub latency: bool,

    /// Count the distinct kernel stacks leading to the calls, symbolized as
    /// `function+0xoff`, most frequent first (-T limits how many) [default top: 10].
    #[arg(short = 's', long)]
    pub stack: bool,

    /// Which hook to use [default: fentry where it works, else kprobe].
    #[arg(long, value_enum)]
    pub backend: Option<KprobeBackend>,

    /// Refuse to attach more than N functions (a glob can match thousands).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_probes: u32,

    /// Stop after SECS seconds.
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub duration: Option<f64>,

    /// Print a block every SECS seconds (counts for that interval), headed [HH:MM:SS].
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub interval: Option<f64>,

    /// Show the top N functions (or stacks with --stack).
    #[arg(short = 'T', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,

    /// Count per process: a PID COMM FUNC COUNT table.
    #[arg(short = 'P', long, conflicts_with_all = ["latency", "stack"])]
    pub per_process: bool,

    /// Only these processes (all their threads); repeat or separate with commas.
    /// Their children forked later are counted too unless --no-follow.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<i32>,

    /// Only tasks whose comm (the 15-character name in /proc/PID/comm) is COMM.
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,

    /// Only tasks running as this user (name or number).
    #[arg(short, long, value_name = "USER")]
    pub uid: Option<String>,

    /// With -p or -- CMD: count only the first process, not its children.
    #[arg(long)]
    pub no_follow: bool,

    /// JSON instead of text: one object per interval and one at the end, one per line.
    #[arg(long)]
    pub json: bool,

    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The command to launch and trace, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KprobeBackend {
    /// kprobe/kretprobe through the perf kprobe PMU (CONFIG_KPROBES).
    Kprobe,
    /// fentry/fexit through BTF trampolines.
    Fentry,
}

fn parse_positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("must be more than 0 seconds, got `{s}`"));
    }
    if v > 1e9 {
        return Err(format!("`{s}` seconds is too long"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn zero_interval_is_rejected() {
        let err = Cli::try_parse_from(["tracer", "syscalls", "-i", "0"]).unwrap_err();
        assert!(err.to_string().contains("more than 0"), "{err}");
        assert!(Cli::try_parse_from(["tracer", "syscalls", "-d", "abc"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "syscalls", "-d", "-1"]).is_err());
    }

    #[test]
    fn command_after_double_dash() {
        let cli = Cli::try_parse_from(["tracer", "syscalls", "-e", "read,write", "--", "ls", "-l"])
            .unwrap();
        let Command::Syscalls(a) = cli.command else {
            panic!("not syscalls")
        };
        assert_eq!(a.syscall, ["read", "write"]);
        assert_eq!(a.command, ["ls", "-l"]);
    }
}
