//! Every clap type of the command line, in one place. The doc comments are the manual.
use std::{ffi::OsString, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Low-overhead Linux tracing with eBPF: the answers of `strace -c`, BCC's
/// syscount and bpftrace one-liners, without a compiler or kernel headers.
///
/// Needs root, or CAP_BPF with CAP_PERFMON (plus CAP_DAC_READ_SEARCH to read
/// tracefs for tracepoints, -p and -- CMD, and CAP_SYS_ADMIN for uprobes or to
/// mount tracefs). A command launched with `-- CMD` runs exactly as it would
/// untraced, and its stdout stays its own: reports go to stderr or -o FILE.
/// Nothing stays attached in the kernel after tracer exits, however it exits.
///
/// Runs on Linux 5.10 and later: where the kernel lacks what a fast path uses
/// (task storage, BPF cookies, bpf_get_func_ip), tracer finds out by probing
/// and takes a fallback; `tracer info` says which. TRACER_FALLBACK (a comma-separated
/// list of task-storage, cookies and func-ip, or all) forces those fallbacks, for
/// testing and measuring them.
///
/// Exit codes: 0 success, 1 error (bad input, kernel refused, not root), and
/// with `-- CMD` the traced command's own exit code (128+N if a signal N killed it).
#[derive(Debug, Parser)]
#[command(name = "tracer", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Colour table headers and errors: auto (only when writing to a terminal),
    /// always or never. NO_COLOR in the environment means never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

impl Command {
    /// Whether the report goes to stderr: with `-- CMD` (its stdout is its
    /// own), and for the text of strace's layouts (`syscalls` with -p or
    /// --format strace, `trace`), as strace writes there.
    /// Whether the command runs until a signal ends it (it then installs
    /// handlers for SIGINT and SIGTERM, see signals.rs).
    pub fn waits_for_signals(&self) -> bool {
        match self {
            Command::Syscalls(_)
            | Command::Kprobe(_)
            | Command::Trace(_)
            | Command::Exec(_)
            | Command::Tcp(_)
            | Command::Uprobe(_)
            | Command::Tracepoint(_)
            | Command::Profile(_)
            | Command::Serve(_)
            | Command::Floor(_) => true,
            Command::List(_) | Command::Info(_) | Command::Completions { .. } | Command::Man => {
                false
            }
        }
    }

    pub fn report_on_stderr(&self) -> bool {
        match self {
            Command::Syscalls(a) => {
                a.process.launches() || (a.layout() == Layout::Strace && !a.run.json)
            }
            Command::Trace(a) => a.process.launches() || !a.run.json,
            Command::Exec(ExecArgs { process, .. })
            | Command::Kprobe(KprobeArgs { process, .. })
            | Command::Uprobe(UprobeArgs { process, .. })
            | Command::Tracepoint(TracepointArgs { process, .. })
            | Command::Profile(ProfileArgs { process, .. })
            | Command::Tcp(TcpArgs { process, .. })
            | Command::Serve(ServeArgs { process, .. }) => process.launches(),
            _ => false,
        }
    }
}

impl SyscallsArgs {
    /// --format, or its default: strace's layout with -p or -- CMD, syscount's otherwise.
    pub fn layout(&self) -> Layout {
        self.format.unwrap_or(if self.process.targets() {
            Layout::Strace
        } else {
            Layout::Syscount
        })
    }
}

impl ProcessArgs {
    /// `-- CMD` given.
    pub fn launches(&self) -> bool {
        !self.launch.command.is_empty()
    }

    /// -p or `-- CMD` given: only those processes are traced.
    pub fn targets(&self) -> bool {
        self.launches() || !self.pid.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Syscalls(SyscallsArgs),
    Kprobe(KprobeArgs),
    Trace(TraceArgs),
    Exec(ExecArgs),
    Tcp(TcpArgs),
    Uprobe(UprobeArgs),
    Tracepoint(TracepointArgs),
    Profile(ProfileArgs),
    Serve(ServeArgs),
    List(ListArgs),
    Info(InfoArgs),
    /// Print a shell completion script to stdout.
    ///
    ///     tracer completions bash | sudo tee /usr/share/bash-completion/completions/tracer
    ///     tracer completions zsh  | sudo tee /usr/local/share/zsh/site-functions/_tracer
    ///     tracer completions fish > ~/.config/fish/completions/tracer.fish
    #[command(verbatim_doc_comment)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    ///
    ///     tracer man | sudo tee /usr/local/share/man/man1/tracer.1 >/dev/null
    #[command(verbatim_doc_comment)]
    Man,
    /// Attach empty programs to the syscall hooks until interrupted: the cost
    /// floor any eBPF syscall counter pays (used by `cargo xtask bench`).
    #[command(hide = true)]
    Floor(FloorArgs),
}

/// What this kernel lets tracer do: kernel release, BTF, tracefs, and for each
/// hook and facility tracer uses whether it works here, with the reason when
/// not. Found by loading and attaching tiny programs for real (like
/// `bpftrace --info`), not guessed from the kernel config. Then the path each
/// command takes on this kernel: the fast one, or the fallback for an older
/// kernel with what is missing and which kernel brings it (for example
/// syscalls' entry times in a hash map where task storage, Linux 5.11, is
/// missing). Leaves nothing attached or mounted.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// JSON instead of text: {"kernel", "btf", "tracefs", "features": [{"name", "available",
    /// "reason"}], "commands": [{"command", "works", "path", "fallback", "missing"}]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Also attach an empty program on sys_exit.
    #[arg(long)]
    pub exit: bool,
    /// Programs that read the clock once each (bpf_ktime_get_ns): the floor of
    /// timing a syscall, as `-L` and `-- CMD` do.
    #[arg(long)]
    pub clock: bool,
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
/// time it slept: compare them with `strace -c -w`, not plain `strace -c`,
/// which sums system CPU time. Per-syscall CPU time is not offered: the
/// kernel updates a task's CPU time on ticks and context switches, not at
/// syscall boundaries, so it would cost a hook on every context switch. Calls
/// that never return (exit, exit_group, a successful execve's old image aside)
/// have a count but no time.
///
/// Ctrl-C, SIGTERM or the end of `--duration` print the final block and exit.
/// With `-- CMD`, Ctrl-C reaches CMD from the terminal as it would without
/// tracer; tracer sends it no signal, prints what it counted and exits 130.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct SyscallsArgs {
    /// Show every row (--top's default is 10 in the syscount layout, all in the strace layout).
    #[arg(long, conflicts_with = "top")]
    pub all: bool,

    /// Rows per process: in the syscount layout, a PID/COMM row per process; in the
    /// strace layout, one full table per process (pid, comm, parent) after the total.
    /// The rows of a process that exits leave the kernel's table within about
    /// 100 ms, so any number of short-lived processes can come and go.
    #[arg(short = 'P', long)]
    pub per_process: bool,

    /// With -P: each process's cgroup v2 path, below the cgroup v2 mount
    /// (`/system.slice/docker-ID.scope`, as `serve --by cgroup` labels it):
    /// a last CGROUP column, `cgroup PATH` in the strace layout's process
    /// heading, a "cgroup" field in JSON. It is the cgroup the kernel saw the
    /// process in at its fork, its exec and its first call of each syscall;
    /// `-` (null in JSON) when unknown, as for a process whose cgroup was
    /// removed before tracer could name it.
    #[arg(long, requires = "per_process")]
    pub show_cgroup: bool,

    /// Measure time spent in each syscall (total and average, microseconds).
    #[arg(short = 'L', long)]
    pub latency: bool,

    /// Count failed calls only (return value -1..-4095).
    #[arg(short = 'x', long)]
    pub failures: bool,

    /// Count failures per errno (ENOENT, EAGAIN, ...) under each syscall.
    #[arg(long)]
    pub errno: bool,

    /// Only these syscalls (names as in `man 2 syscalls`), comma separated.
    #[arg(
        short = 'e',
        long = "syscall",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub syscall: Vec<String>,

    /// Sort rows by this key [default: time in the strace layout, calls otherwise].
    #[arg(short = 'S', long, value_enum, value_name = "KEY")]
    pub sort: Option<SortKey>,

    /// Table layout [default: strace with -p or -- CMD, syscount otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Layout>,

    #[command(flatten)]
    pub blocks: BlockArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// Print each system call of a command or process as it completes, like strace.
///
///     sudo tracer trace -- ls /tmp
///     sudo tracer trace -T -e openat,stat,access -- make
///     sudo tracer trace -p 1234 --json -o calls.jsonl
///
/// One line per completed call of the traced processes and their children:
///
///     2011  execve("/usr/bin/ls", ["ls", "-la", "/etc"], 0x55d0c1a2e7e0) = 0
///     2011  openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
///     2011  access("/etc/missing", R_OK) = -1 ENOENT (No such file or directory)
///     2011  exit_group(0) = ?
///
/// the process id, the syscall and its arguments, then the result: a number, or
/// -1 and the errno's name and text when the call failed, or `?` for a call that
/// never returned (exit_group, a thread killed inside a call). Path arguments of
/// the file and exec calls (open, openat, execve, stat family, access, unlink,
/// mkdir, rename, chdir, readlink, link, chmod, ...) are shown as strings of up
/// to 255 bytes; a longer one ends with `"..."...`. An exec's argv is shown
/// as strace does, its first 32 elements within 255 bytes (`, ...` when more
/// follow); the environment as its address. openat/open flags and modes,
/// access modes and AT_* flags are decoded; other arguments are numbers
/// (pointers in hex). For calls tracer has no table of, the number and kind
/// of arguments come from the kernel's syscall tracepoint formats. (x86_64.)
///
/// Calls are printed when they complete, so a call that blocks shows up after
/// calls other threads made meanwhile (strace shows `<unfinished ...>` instead).
///
/// Events travel from the kernel through a ring buffer. If tracer cannot keep
/// up and the buffer fills, the kernel counts what it drops: the output then
/// says `lost N events` (never silently); raise --buffer-size.
///
/// The text goes to stderr like strace's (JSON to stdout), or to -o FILE.
/// With `-- CMD`, tracer exits with CMD's exit code.
///
/// With --json, one object per line. A call: {"type":"syscall", "time" (Unix
/// seconds at entry), "pid", "tid", "syscall", "nr", "args" (raw numbers),
/// "text" (the decoded arguments), "paths" ([{"value", "truncated"}] or
/// [{"error"}]), "ret" (null if it never returned), "errno" (name or null),
/// "duration_ns"}. Lost events: {"type":"lost", "lost", ...}. The last line:
/// {"type":"summary", "events", "lost", "lost_ring_full", "lost_table_full",
/// "without_paths"}.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct TraceArgs {
    /// Only these syscalls (names as in `man 2 syscalls`), comma separated.
    #[arg(
        short = 'e',
        long = "syscall",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub syscall: Vec<String>,

    /// Prefix each line with the wall-clock time of the call's entry (HH:MM:SS.micro).
    #[arg(short = 't', long = "time", conflicts_with = "relative")]
    pub time: bool,

    /// Prefix each line with the seconds since tracing started, at the call's entry
    /// (unlike strace -r, not the gap since the previous line: calls are printed
    /// as they complete, so that gap could be negative).
    #[arg(short = 'r', long = "relative")]
    pub relative: bool,

    /// Show the time spent in each call, <seconds>, at the end of the line.
    #[arg(short = 'T', long = "durations")]
    pub durations: bool,

    /// Size of the kernel's event ring buffer, in bytes (K and M suffixes allowed):
    /// a power of two, at least 4K. A syscall record takes 112 bytes, 368 with a
    /// path, 624 with two.
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_buffer_size)]
    pub buffer_size: u32,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// Print every program execution on the system, like BCC's execsnoop.
///
///     sudo tracer exec
///     sudo tracer exec -u alice --comm make
///     sudo tracer exec --cgroup /sys/fs/cgroup/system.slice/nginx.service --json
///
/// One line per execve/execveat (successful or not), when the call returns:
///
///     TIME     PID     PPID    UID   COMM             RET ARGS
///     10:01:02 4242    4100    0     ls                 0 /usr/bin/ls ls -l /tmp
///
/// ARGS is the file name that was executed followed by the argument vector
/// (argv[0] first). The first 8 arguments are shown (each up to 127 bytes; a
/// longer one ends with `...`), then `... (N args)` when there are more. COMM is the
/// new program's name, or the old one when the exec failed; RET is 0 or the
/// negative errno (with its name). PPID is the parent at fork time as the
/// kernel saw it (for a process forked before tracer started, read from /proc).
///
/// --comm matches the new program's comm (the first 15 bytes of the file
/// name). With -p or -- CMD, only the execs of those processes and (unless
/// --no-follow) their children: `tracer exec -- make` lists every program a
/// build runs.
///
/// Runs until Ctrl-C, --duration, or with -p/-- CMD until they have all
/// exited. Lost events (ring buffer full) are counted and reported.
///
/// With --json, one object per line: {"type":"exec", "time", "pid", "tid",
/// "ppid", "uid", "comm", "syscall", "filename", "argv" (the first 8), "argc"
/// ("argc_at_least" when there were 64 or more), "truncated", "ret",
/// "errno"}; lost events {"type":"lost", ...}; the last line
/// {"type":"summary", "events", "lost", ...} as in `tracer trace`.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct ExecArgs {
    #[command(flatten)]
    pub ring: RingArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// TCP connections: one line per connection when it closes, like BCC's tcplife;
/// or active opens (--connect), passive opens (--accept), retransmits (--retransmits).
///
///     sudo tracer tcp
///     sudo tracer tcp --port 443 --port 8080 -d 60
///     sudo tracer tcp --connect -- curl -s https://example.org
///     sudo tracer tcp --summary -p $(pidof nginx)
///     sudo tracer tcp --retransmits --json
///
/// Default: one line per connection that opened and closed while tracing
/// (connections already open when tracer started are not shown):
///
///     PID     COMM            LADDR           LPORT RADDR           RPORT TX_KB RX_KB MS
///     4242    curl            10.0.0.5        51334 93.184.215.14   443       0     1 91.79
///
/// TX_KB and RX_KB are the payload bytes sent and received, in KiB (--json
/// has them in bytes): read from tcp_sock at close, bytes_sent less
/// bytes_retrans, and bytes_received less the FIN's sequence number
/// (tcplife shows bytes_acked, which counts the SYN and FIN too). MS is the
/// time from the first SYN sent or received to the close. A loopback connection shows twice: its client
/// socket and its server socket.
///
/// --connect (tcpconnect, tcpconnlat): each connect() when it is established,
/// with its latency; one that fails (refused, timed out) shows FAILED.
/// --accept (tcpaccept): each connection a process takes with accept().
/// --retransmits (tcpretrans): each retransmitted segment, with the
/// connection's state. Only one of the four kinds per run.
///
/// PID and COMM are a task that used the connection: the one that called
/// connect() (an active open), accept() (a passive open), or, failing those,
/// close() or shutdown(). State changes and retransmits mostly run in
/// interrupt context, where the running task has nothing to do with the
/// connection, so it is never used: a connection with no such task yet (a
/// passive open not accepted, a retransmit on a connection opened before
/// tracer started) shows PID `-`. The process filters (-p, -- CMD, --comm,
/// -u, --cgroup, --container) apply to that task: with any of them, such
/// connections are left out.
///
/// --port keeps connections whose local or remote port is one of those
/// given; -4 and -6 keep one address family. All filters run in the kernel.
/// --summary prints, at the end, one row per remote address and service port
/// (the remote port of an active open, the local port of a passive one):
/// connections, bytes each way, median and longest lifetime.
///
/// Built on the stable tracepoints sock:inet_sock_set_state,
/// tcp:tcp_retransmit_skb and the accept syscalls' exits; struct offsets come
/// from the running kernel's BTF (/sys/kernel/btf/vmlinux). Nothing runs per
/// packet. Connections seen opening are kept in a kernel table of
/// --max-connections entries; lost events (ring buffer or table full) are
/// counted and reported.
///
/// With --json, one object per line: {"type":"tcp", "event" (close, connect,
/// accept, retransmit), "time", "pid", "comm", "uid", "family", "direction"
/// (active, passive or unknown), "saddr", "sport", "daddr", "dport",
/// "tx_bytes", "rx_bytes", "duration_ns" (close), "latency_ns" (connect),
/// "failed" (connect), "state" (retransmit, close: the state before)};
/// with --summary, {"type":"tcp_endpoint", ...} rows; lost events and the
/// last {"type":"summary", ...} line as in `tracer trace`.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct TcpArgs {
    /// Print active opens (connect) as they are established, with their latency.
    #[arg(long, group = "tcp_kind")]
    pub connect: bool,

    /// Print passive opens as processes accept them.
    #[arg(long, group = "tcp_kind")]
    pub accept: bool,

    /// Print retransmitted segments.
    #[arg(long, group = "tcp_kind")]
    pub retransmits: bool,

    /// Instead of a line per connection, a table per remote endpoint at the end.
    #[arg(long, conflicts_with_all = ["connect", "accept", "retransmits"])]
    pub summary: bool,

    /// Only connections with this local or remote port (repeat for several, up to 8).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Vec<u16>,

    /// Only IPv4.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Only IPv6.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Connections kept open at once in the kernel's table.
    #[arg(long, value_name = "N", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(16..=4_194_304))]
    pub max_connections: u32,

    #[command(flatten)]
    pub ring: RingArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// The event ring buffer of a streaming command whose events are few
/// (`exec`, `tcp`; `trace` has its own, larger default).
#[derive(Debug, Args, Clone)]
pub struct RingArgs {
    /// Size of the kernel's event ring buffer in bytes (a power of two, at least 4K).
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_buffer_size)]
    pub buffer_size: u32,
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

/// How long a run lasts and where its report goes: every tracing command.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Stop after SECS seconds.
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub duration: Option<f64>,

    /// JSON instead of text, one object per line (blocks, or events as they
    /// come; the fields are in the command's description and the README).
    #[arg(long)]
    pub json: bool,

    /// Write the report to FILE instead of stdout, or stderr where the text
    /// goes there (the strace layout, `trace`, every report with `-- CMD`).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Interval blocks and their length: every counting command.
#[derive(Debug, Args, Clone, Default)]
pub struct BlockArgs {
    /// Print a block every SECS seconds (counts for that interval), headed
    /// [HH:MM:SS]. The block printed at the end holds the whole run's totals.
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub interval: Option<f64>,

    /// Show the top N rows: syscalls, functions, stacks with --stack, events
    /// [default: all; 10 in the syscount layout and with --stack].
    #[arg(short = 'T', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub top: Option<u32>,
}

/// Which processes to trace: every tracing command.
#[derive(Debug, Args, Clone, Default)]
pub struct ProcessArgs {
    /// Only these processes (all their threads); repeat or separate with commas.
    /// Their children forked later are traced too unless --no-follow.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<i32>,

    /// Only tasks whose comm (the 15-character name in /proc/PID/comm) is COMM.
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,

    /// Only tasks in this cgroup (a cgroup v2 directory) or below it; repeat
    /// for several. A relative path is taken below the cgroup v2 mount
    /// (/sys/fs/cgroup, or /sys/fs/cgroup/unified in the hybrid layout):
    /// `--cgroup system.slice/nginx.service`. Decided in the kernel.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<PathBuf>,

    /// Only tasks of this container (Docker, Podman, containerd, CRI-O, a
    /// Kubernetes pod's container): a full id, a unique id prefix of at least
    /// 4 hex digits, or a Docker or Podman name. Repeat for several; with
    /// --cgroup, at most 8 in all.
    ///
    /// It stands for the container's cgroup v2 directory, as --cgroup does,
    /// found by walking the cgroup v2 tree (8 levels deep) for the runtimes'
    /// layouts: docker-ID.scope, docker/ID, libpod-ID.scope,
    /// libpod_parent/libpod-ID, cri-containerd-ID.scope, crio-ID.scope,
    /// nerdctl-ID.scope, kubepods/.../podUID/ID. No runtime socket or
    /// command is used. Names are read from Docker's data root
    /// (containers/ID/config.v2.json; TRACER_DOCKER_ROOT, else the data-root
    /// of /etc/docker/daemon.json, else /var/lib/docker) and Podman's storage
    /// (*-containers/containers.json; TRACER_PODMAN_ROOT, else the graphroot
    /// of /etc/containers/storage.conf, else /var/lib/containers/storage);
    /// both variables take a colon-separated list. Other runtimes' containers
    /// are given by id.
    #[arg(long, value_name = "ID|NAME")]
    pub container: Vec<String>,

    /// Only tasks running as this user (name or number).
    #[arg(short, long, value_name = "USER")]
    pub uid: Option<String>,

    /// With -p or -- CMD: trace only the first process, not its children.
    #[arg(long)]
    pub no_follow: bool,

    #[command(flatten)]
    pub launch: LaunchArgs,
}

/// `-- CMD` and how it is started.
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct LaunchArgs {
    /// Run CMD as USER (a name, or a uid with a passwd entry), with that user's
    /// group and supplementary groups, like `strace -u`: `sudo tracer ... --user
    /// alice -- make` sees what alice's build does. The environment is left as
    /// it is (as strace does).
    #[arg(long, value_name = "USER", requires = "command")]
    pub user: Option<String>,

    /// The command to launch and trace (with its children), after `--`. It
    /// starts exactly as it would untraced: the signal dispositions and mask,
    /// environment, working directory, fds, limits and umask tracer was
    /// started with. Its stdout is its own: reports go to stderr or -o FILE.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Count calls of user-space functions (uprobes), optionally with latency histograms.
///
/// Each PROBE is TARGET:PATTERN. TARGET is a path (`/usr/bin/bash`, `./app`) or
/// a library name found like the dynamic loader does (`libc`, `libc.so.6`,
/// `ssl`: the ld.so cache via `ldconfig -p`, then the standard library
/// directories), or a command in PATH. With -p, a bare library name is looked
/// up first among the libraries that process has mapped. PATTERN is a function
/// name (`malloc`), a glob (`handle_*`, `str?cmp`), SYMBOL+OFFSET (`main+0x10`)
/// or a raw ELF virtual address as `nm` prints it (`0x1139`).
///
///     sudo tracer uprobe libc:malloc libc:free -d 5
///     sudo tracer uprobe --latency ./app:handle_request -p 1234
///     sudo tracer uprobe 'libc:str*cmp' -- make
///
/// Prints the table of BCC's funccount (FUNC, COUNT; functions never called are
/// left out) when the run ends, and with `-i` every interval. With --latency,
/// one histogram per function of the time from entry to return, in the layout of
/// BCC's funclatency (nanoseconds, log2 buckets), with its average.
///
/// Without -p or -- CMD, every process on the system that runs the probed code is
/// counted. With -p or -- CMD, only those processes and (unless --no-follow) the
/// children they fork; with -- CMD the run ends when the command and its
/// children have exited, and tracer exits with the command's exit code.
/// Counting is done in the kernel (per-CPU arrays); nothing crosses to user
/// space per call.
///
/// Names come from the symbol table (`.symtab`) and the dynamic symbols; for a
/// stripped binary whose debug file is installed (via its build id or
/// `.gnu_debuglink`, as gdb finds it), from the debug file too. IFUNC symbols
/// (`strlen` in glibc) cannot be probed by name: probe the implementation
/// (`tracer list uprobes libc '__strlen*'`).
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct UprobeArgs {
    /// TARGET:PATTERN, one or more.
    #[arg(required = true, value_name = "PROBE")]
    pub probes: Vec<String>,

    /// Also measure each call's latency (a uretprobe) and print log2 histograms.
    #[arg(short = 'L', long)]
    pub latency: bool,

    #[command(flatten)]
    pub blocks: BlockArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// Count tracepoint events, in total or per process, and aggregate a numeric field.
///
/// Each TRACEPOINT is CATEGORY:NAME as listed by `tracer list tracepoints`
/// (`sched:sched_process_exec`, `syscalls:sys_enter_write`); globs are allowed
/// (`'sched:sched_process_*'`).
///
///     sudo tracer tracepoint sched:sched_process_exec -d 10
///     sudo tracer tracepoint -P 'syscalls:sys_enter_*' -T 5 -i 1
///     sudo tracer tracepoint syscalls:sys_enter_write --hist count -- ./app
///     sudo tracer tracepoint syscalls:sys_enter_read --sum count -p 1234
///
/// Without options prints EVENT and COUNT (in the style of BCC's funccount);
/// with -P, one row per process and event. `--hist FIELD` adds, per tracepoint,
/// a log2 histogram of that field of each event (BCC layout); `--sum FIELD` adds
/// a SUM column (per process with -P). FIELD is a numeric field of the
/// tracepoint's format file (`tracer list tracepoints -v NAME` lists them);
/// the kernel reads it at the offset the format file gives and aggregates it
/// there, so no event is copied to user space.
///
/// Process filters are applied in the kernel to the task that hits the
/// tracepoint (`sched:sched_process_exec` is hit by the process that execs).
/// With -- CMD the command's own execve is counted (it happens after tracing
/// starts), and tracer exits with the command's exit code.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct TracepointArgs {
    /// CATEGORY:NAME, one or more (globs allowed).
    #[arg(required = true, value_name = "TRACEPOINT")]
    pub tracepoints: Vec<String>,

    /// Rows per process (PID, COMM).
    #[arg(short = 'P', long)]
    pub per_process: bool,

    /// With -P: each process's cgroup v2 path, below the cgroup v2 mount, in
    /// a last CGROUP column and as "cgroup" in JSON (`-` or null when
    /// unknown), as `tracer syscalls -P --show-cgroup` shows it.
    #[arg(long, requires = "per_process")]
    pub show_cgroup: bool,

    /// A log2 histogram of this numeric field, per tracepoint.
    #[arg(long, value_name = "FIELD", conflicts_with = "sum")]
    pub hist: Option<String>,

    /// The sum of this numeric field, per tracepoint (and per process with -P).
    #[arg(long, value_name = "FIELD")]
    pub sum: Option<String>,

    #[command(flatten)]
    pub blocks: BlockArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// A sampling rate: a whole number of samples a second, at least 1 (the
/// kernel's upper limit is checked when planning).
fn parse_hz(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("the rate must be at least 1 sample a second".into()),
        Ok(hz) => Ok(hz),
        Err(_) => Err(format!("`{s}` is not a whole number of samples a second")),
    }
}

/// Where the CPU samples come from (`tracer profile -e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SampleEvent {
    /// The CPU's cycle counter where the kernel has one, else cpu-clock.
    Auto,
    /// The kernel's CPU clock (a software timer): works everywhere, VMs included.
    CpuClock,
    /// The CPU's cycle counter (a hardware event, as `perf record`'s default).
    Cycles,
}

/// Sample the stacks of running tasks (a CPU profile) or where tasks block
/// (--off-cpu): the hottest functions, folded stacks, a flame graph or pprof.
///
///     sudo tracer profile -d 10                          # the whole machine, top functions
///     sudo tracer profile -F 99 --svg cpu.svg -- ./app   # a flame graph of one command
///     sudo tracer profile -p 1234 --folded > out.folded  # for flamegraph.pl or inferno
///     sudo tracer profile -p 1234 --pprof cpu.pb -d 30   # for go tool pprof, Pyroscope, Parca
///     sudo tracer profile --off-cpu --min-block 1000 -p 1234 --svg offcpu.svg
///
/// A perf event on every CPU samples the running task -F times a second
/// (default 49, like BCC's profile; the idle task is not sampled); each
/// sample records the task's kernel stack and user stack, and the kernel
/// adds it up per (process, thread name, stacks): nothing is sent to user
/// space per sample. At the end tracer names the frames: kernel frames from
/// /proc/kallsyms; user frames with blazesym from each process's own files
/// (read through /proc/PID/map_files, so processes in containers work),
/// their symbol tables, DWARF when present, and separate debug files found
/// by build id or debuglink under /usr/lib/debug; Rust and C++ names are
/// demangled. A frame that cannot be named shows as FILE+0xOFFSET.
///
/// User stacks are unwound in the kernel from each object's `.eh_frame`
/// (or `.debug_frame`): the call-frame rules compilers emit for exceptions
/// and debuggers, present in programs built without frame pointers (most of
/// Debian's and RHEL's, Rust's standard library) where a frame-pointer walk
/// stops after a frame or two. tracer reads them from each mapped file when
/// it first samples a process, once per file (by build id) however many
/// processes map it, into tables of at most --unwind-memory. Objects
/// without them (JIT code, some hand-written assembly) are walked by frame
/// pointers (--unwind auto, the default); --unwind fp walks by frame
/// pointers only (the kernel's own walk, the cheapest). How each sample's
/// user stack ended is counted: complete (reached the program's entry or a
/// thread's start), truncated (127 frames), no unwind info, table full,
/// unreadable stack.
///
/// With --off-cpu, the scheduler's switch tracepoint records the stacks a
/// task was switched out in and, when it runs again, adds the time it was
/// away (blocked, sleeping, or preempted: like BCC's offcputime) if at least
/// --min-block microseconds. Values are then times, not samples.
///
/// The report is a table of the hottest functions, as `perf report
/// --children` lays it out: Self is the share of samples in the function
/// itself, Children the share with the function anywhere on the stack.
/// --folded prints one line per stack, `comm;frame;...;frame COUNT`, root
/// first, kernel frames marked _[k] (off-CPU counts are microseconds): the
/// input of flamegraph.pl, inferno and speedscope. --svg writes a flame graph,
/// --pprof a pprof protobuf profile; both can be given along with the
/// table or --folded. Stacks lost (the stack map full or a hash collision),
/// truncated (deeper than the kernel's limit, kernel.perf_event_max_stack) or
/// with frames that could not be named are counted in the report.
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct ProfileArgs {
    /// Samples per second on each CPU.
    #[arg(short = 'F', long = "frequency", value_name = "HZ", default_value_t = 49,
          value_parser = parse_hz, conflicts_with = "off_cpu")]
    pub frequency: u64,

    /// What to sample on.
    #[arg(short = 'e', long, value_enum, default_value_t = SampleEvent::Auto, value_name = "EVENT",
          conflicts_with = "off_cpu")]
    pub event: SampleEvent,

    /// Off-CPU time instead of on-CPU samples: the stacks tasks were switched
    /// out in, weighted by the time until they ran again.
    #[arg(long)]
    pub off_cpu: bool,

    /// With --off-cpu: count only switches of at least USECS microseconds.
    #[arg(long, value_name = "USECS", default_value_t = 1, requires = "off_cpu")]
    pub min_block: u64,

    /// Folded stacks (one line per stack) instead of the table.
    #[arg(long, conflicts_with = "json")]
    pub folded: bool,

    /// Also write a flame graph (SVG) to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Also write a pprof profile (protobuf) to FILE.
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,

    /// Distinct stacks the kernel can keep (the stack map's size; BCC's
    /// --stack-storage-size). Samples whose stack does not fit are counted
    /// as lost.
    #[arg(long, value_name = "N", default_value_t = 16384,
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub stack_storage_size: u32,

    /// How user stacks are walked: from .eh_frame tables where an object has
    /// them and by frame pointers elsewhere (auto), from tables only
    /// (dwarf), or by frame pointers only (fp, the kernel's own walk).
    #[arg(long, value_enum, default_value_t = Unwind::Auto, value_name = "HOW")]
    pub unwind: Unwind,

    /// Memory for the unwind tables, in MiB (16 bytes a rule; libc has about
    /// 20,000): an object whose table does not fit is walked by frame
    /// pointers, and its samples that end early are counted as "table full".
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub unwind_memory: u32,

    #[command(flatten)]
    pub blocks: BlockArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// How `tracer profile` walks user stacks (`--unwind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unwind {
    /// .eh_frame tables where an object has them, frame pointers elsewhere.
    Auto,
    /// .eh_frame tables only: a frame in an object without one ends the stack.
    Dwarf,
    /// Frame pointers only (the kernel's walk).
    Fp,
}

/// List what can be traced: syscalls, tracepoints, kernel functions, user functions.
///
/// One name per line, sorted, so the output pipes into grep and wc; with --json,
/// one JSON object per line. GLOB filters names (`'sys_enter_*'`, `'*malloc*'`).
///
///     tracer list syscalls '*stat*'
///     sudo tracer list tracepoints 'sched:*' -v
///     sudo tracer list kprobes 'vfs_*' | wc -l
///     tracer list uprobes libc 'mem*'
#[derive(Debug, Args, Clone)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {
    #[command(subcommand)]
    pub what: ListWhat,

    /// One JSON object per line instead of names.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand, Clone)]
pub enum ListWhat {
    /// System calls of this architecture (names as `tracer syscalls -e` takes them).
    Syscalls {
        /// Only names matching this glob.
        glob: Option<String>,
    },
    /// Tracepoints as CATEGORY:NAME (from tracefs `available_events`).
    Tracepoints {
        /// Only CATEGORY:NAME matching this glob.
        glob: Option<String>,
        /// Also each tracepoint's fields (type and name, from its format file);
        /// `-v` does the same.
        #[arg(long)]
        fields: bool,
    },
    /// Kernel functions that kprobes can attach to (tracefs `available_filter_functions`).
    Kprobes {
        /// Only names matching this glob.
        glob: Option<String>,
    },
    /// Function symbols of a binary or library (a path, `libc`, `libc.so.6`, a command).
    Uprobes {
        /// The binary or library.
        target: String,
        /// Only names matching this glob.
        glob: Option<String>,
    },
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

    /// Count per process: a PID COMM FUNC COUNT table.
    #[arg(short = 'P', long, conflicts_with_all = ["latency", "stack"])]
    pub per_process: bool,

    #[command(flatten)]
    pub blocks: BlockArgs,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// Serve what the kernel counts as Prometheus metrics on /metrics.
///
///     sudo tracer serve                              # syscalls, on 127.0.0.1:9852
///     sudo tracer serve --listen :9852 --by comm --max-series 5000
///     sudo tracer serve --kprobe 'vfs_*' --uprobe libc:malloc \
///                       --tracepoint sched:sched_process_exec --latency
///     sudo tracer serve --config /etc/tracer/serve.toml
///
/// The programs count in the kernel, as `tracer syscalls` does (the same
/// hooks); each scrape reads the kernel's maps, so nothing is sent to user
/// space per event and nothing grows in tracer between scrapes.
/// GET /metrics answers in the Prometheus text format 0.0.4, or in
/// OpenMetrics 1.0 when the client's Accept header asks for
/// `application/openmetrics-text` (Prometheus does).
///
/// Metrics (the README has the full table):
///   tracer_syscalls_total{syscall}              calls entered (+ the --by label)
///   tracer_syscall_errors_total{syscall,errno}  calls that failed, per errno
///   tracer_syscall_duration_seconds{syscall}    histogram, buckets 256 ns to 68.7 s (x4)
///   tracer_probe_hits_total{probe}              --kprobe/--uprobe/--tracepoint hits
///   tracer_probe_duration_seconds{probe}        with --latency (kprobes, uprobes)
///   tracer_dropped_series_total                 series refused by --max-series
///   tracer_lost_total{reason}                   updates the kernel could not make
///   tracer_build_info{version,kernel}, process_* (tracer's own CPU, memory, fds)
///
/// --by adds one label to tracer_syscalls_total: comm, pid or cgroup (the
/// cgroup v2 path). Each (label, syscall) pair is one series; at most
/// --max-series exist. Calls of pairs past the cap are counted under the
/// label value `_other` (one series per syscall, so sums over the label stay
/// exact), and each refused pair once in tracer_dropped_series_total. With
/// --by pid, the series of an exited process end one scrape after its exit.
///
/// The process filters (-p, --comm, -u, -- CMD) apply to every metric, in the
/// kernel; system-wide, tracer's own syscalls (its scrapes) are left out.
/// SIGTERM or Ctrl-C stops serving, detaches and exits 0; with -p or -- CMD
/// it also ends when those processes are all gone (with the command's exit
/// code), and -d SECS ends it after that long.
///
/// The same settings can come from a TOML file (--config); flags given on the
/// command line win, and the probe lists add up:
///
///     listen = "127.0.0.1:9852"
///     by = "comm"
///     max_series = 10000
///     latency = true
///     kprobe = ["vfs_read", "vfs_write"]
///     uprobe = ["libc:malloc"]
///     tracepoint = ["sched:sched_process_exec"]
///     comm = "nginx"           # also: pid = [1234], user = "www-data"
///     syscalls = true          # false: probes only
#[derive(Debug, Args, Clone, Default)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Address to serve on: HOST:PORT, [IPV6]:PORT, or :PORT for every
    /// interface [default: 127.0.0.1:9852, loopback only].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Settings from a TOML file (keys as in the description above).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Label tracer_syscalls_total by comm, pid or cgroup as well.
    #[arg(long, value_enum, value_name = "LABEL")]
    pub by: Option<ByLabel>,

    /// At most N series of tracer_syscalls_total with --by [default: 10000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_SERIES_LIMIT as i64))]
    pub max_series: Option<u32>,

    /// Kernel functions (names or globs) whose calls to count.
    #[arg(long = "kprobe", value_name = "PATTERN")]
    pub kprobes: Vec<String>,

    /// User functions, TARGET:PATTERN as in `tracer uprobe`.
    #[arg(long = "uprobe", value_name = "PROBE")]
    pub uprobes: Vec<String>,

    /// Tracepoints, CATEGORY:NAME (globs allowed), whose events to count.
    #[arg(long = "tracepoint", value_name = "TRACEPOINT")]
    pub tracepoints: Vec<String>,

    /// Also a duration histogram per kprobe and uprobe function.
    #[arg(short = 'L', long)]
    pub latency: bool,

    /// No syscall metrics: only the probes'.
    #[arg(long)]
    pub no_syscalls: bool,

    /// Stop after SECS seconds.
    #[arg(short, long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub duration: Option<f64>,

    #[command(flatten)]
    pub process: ProcessArgs,
}

/// The most series `tracer serve --max-series` (or `max_series`) allows.
pub const MAX_SERIES_LIMIT: u32 = 1_000_000;

/// The label `tracer serve --by` adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByLabel {
    /// The task's comm (15 characters).
    Comm,
    /// The process id.
    Pid,
    /// The cgroup v2 path (below the cgroup v2 mount).
    Cgroup,
}

/// What the function programs (kprobe, uprobe) measure at each call, and so
/// what the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Measure {
    /// Calls.
    #[default]
    Count,
    /// Calls and the time from entry to return (--latency).
    Latency,
    /// Calls and the kernel stacks that led to them (--stack).
    Stack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KprobeBackend {
    /// kprobe/kretprobe through the perf kprobe PMU (CONFIG_KPROBES).
    Kprobe,
    /// fentry/fexit through BTF trampolines.
    Fentry,
}

/// A value `parse_positive_secs` or `parse_buffer_size` rejects; clap prints
/// it after `invalid value '...' for '--flag'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    #[error("`{0}` is not a number of seconds")]
    NotSeconds(String),
    #[error("must be more than 0 seconds, got `{0}`")]
    NotPositive(String),
    #[error("`{0}` seconds is too long")]
    TooLong(String),
    #[error("`{0}` is not a size (examples: 65536, 64K, 16M)")]
    NotSize(String),
    #[error(
        "`{0}`: the ring buffer size must be a power of two from 4K to 1G (the kernel's rule)"
    )]
    BadRingSize(String),
}

/// `tracer SUBCOMMAND ARGV...` parsed (for the commands' unit tests).
#[cfg(test)]
pub fn parse(subcommand: &str, argv: &[&str]) -> Command {
    let all = ["tracer", subcommand]
        .into_iter()
        .chain(argv.iter().copied());
    Cli::try_parse_from(all).unwrap().command
}

fn parse_positive_secs(s: &str) -> Result<f64, BadValue> {
    let v: f64 = s.parse().map_err(|_| BadValue::NotSeconds(s.into()))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(BadValue::NotPositive(s.into()));
    }
    if v > 1e9 {
        return Err(BadValue::TooLong(s.into()));
    }
    Ok(v)
}

/// A ring buffer size: bytes with an optional K/M/G suffix, a power of two >= 4K.
fn parse_buffer_size(s: &str) -> Result<u32, BadValue> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| BadValue::NotSize(s.into()))?;
    let bytes = n.saturating_mul(mult);
    if bytes < 4096 || !bytes.is_power_of_two() || bytes > 1 << 30 {
        return Err(BadValue::BadRingSize(s.into()));
    }
    Ok(bytes as u32)
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
        assert_eq!(
            parse_positive_secs("abc").unwrap_err().to_string(),
            "`abc` is not a number of seconds"
        );
        assert_eq!(
            parse_positive_secs("0").unwrap_err().to_string(),
            "must be more than 0 seconds, got `0`"
        );
        assert_eq!(
            parse_positive_secs("1e10").unwrap_err().to_string(),
            "`1e10` seconds is too long"
        );
        assert_eq!(parse_positive_secs("0.5"), Ok(0.5));
    }

    #[test]
    fn buffer_sizes() {
        assert_eq!(parse_buffer_size("4K"), Ok(4096));
        assert_eq!(parse_buffer_size("16M"), Ok(16 << 20));
        assert_eq!(parse_buffer_size("65536"), Ok(65536));
        assert!(parse_buffer_size("5000")
            .unwrap_err()
            .to_string()
            .contains("power of two"));
        assert!(parse_buffer_size("2K").is_err());
        assert!(parse_buffer_size("x").is_err());
        assert!(parse_buffer_size("4G").is_err());
        assert_eq!(
            parse_buffer_size("x").unwrap_err().to_string(),
            "`x` is not a size (examples: 65536, 64K, 16M)"
        );
        assert_eq!(
            parse_buffer_size("5000").unwrap_err().to_string(),
            "`5000`: the ring buffer size must be a power of two from 4K to 1G (the kernel's rule)"
        );
    }

    #[test]
    fn command_after_double_dash() {
        let cli = Cli::try_parse_from(["tracer", "syscalls", "-e", "read,write", "--", "ls", "-l"])
            .unwrap();
        let Command::Syscalls(a) = cli.command else {
            panic!("not syscalls")
        };
        assert_eq!(a.syscall, ["read", "write"]);
        assert_eq!(a.process.launch.command, ["ls", "-l"]);
    }
}
