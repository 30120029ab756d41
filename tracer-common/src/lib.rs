//! Types shared between the eBPF programs (`tracer-ebpf`) and user space (`tracer`).
//!
//! Everything here is `#[repr(C)]`, `Copy`, and free of padding holes so that the
//! bytes the kernel writes are exactly the bytes user space reads.
#![no_std]

/// The most `--cgroup` directories a run can take (`CGROUP_FILTER`'s size).
pub const MAX_CGROUPS: u32 = 8;

/// Syscall numbers of one ABI: x86_64, i386, x32 and aarch64 numbers are all below this.
pub const SYSCALL_NRS: u32 = 1024;

/// Size of the per-syscall tables: the index space of every ABI, one block of
/// `SYSCALL_NRS` each ([`abi`]). A call's index is its ABI's block start plus
/// its number in that ABI, so every table keyed by syscall (counters, filter,
/// histograms, path arguments) keeps the ABIs apart with no other key.
pub const MAX_SYSCALLS: u32 = abi::COUNT * SYSCALL_NRS;

/// The ABIs a syscall is made through, as blocks of the syscall index space.
pub mod abi {
    /// The kernel's own (x86_64, aarch64): indexes 0..1024.
    pub const NATIVE: u32 = 0;
    /// i386 on x86_64 (`int $0x80`, 32-bit programs), told apart by the
    /// thread's `TS_COMPAT`: indexes 1024..2048.
    pub const I386: u32 = 1;
    /// x32 on x86_64 (numbers with `X32_SYSCALL_BIT`): indexes 2048..3072.
    pub const X32: u32 = 2;
    pub const COUNT: u32 = 3;
    /// `__X32_SYSCALL_BIT`: set in the number of an x32 call.
    pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    /// `TS_COMPAT` (arch/x86/include/asm/thread_info.h): set in
    /// `thread_info.status` during an i386 syscall, from the entry until the
    /// return to user space, whether the program is 32-bit or 64-bit code
    /// using `int $0x80`.
    pub const TS_COMPAT: u32 = 0x0002;
}

/// The index of syscall `nr` of ABI `abi` in the per-syscall tables.
#[inline(always)]
pub const fn syscall_index(abi: u32, nr: u32) -> u32 {
    abi * SYSCALL_NRS + nr
}

/// Length of a task's `comm`, as in the kernel.
pub const TASK_COMM_LEN: usize = 16;

/// The largest errno: a syscall failed when it returned a value in
/// `[-MAX_ERRNO, -1]` (the kernel's `IS_ERR_VALUE`).
pub const MAX_ERRNO: i64 = 4095;

/// Whether a syscall's return value is a failure (`-errno`).
#[inline(always)]
pub fn is_error_return(ret: i64) -> bool {
    (-MAX_ERRNO..0).contains(&ret)
}

/// What this kernel does not have, found by user space probing it, so the
/// programs take the fallback path: bits of the `FLAGS` global (above the
/// settings in `flags`), which every program has loaded already. It is frozen
/// read-only data: the verifier prunes the path not taken, so a kernel with
/// everything runs the fast path (and one `and` of a register each time a
/// program asks).
pub mod lacks {
    /// No task-local storage (Linux 5.11): per-thread syscall entry state
    /// lives in `STARTS` turned into a hash map keyed by thread id.
    pub const TASK_STORAGE: u32 = 1 << 24;
    /// No BPF cookies nor perf-event links (Linux 5.15): uprobe and tracepoint
    /// programs learn which function or tracepoint fired from a slot copy
    /// of the program (one per function, see `SLOTS`).
    pub const COOKIES: u32 = 1 << 25;
    /// No `bpf_get_func_ip` (Linux 5.15): kprobes read the address from the
    /// registers, kretprobes and fentry/fexit use slot copies.
    pub const FUNC_IP: u32 = 1 << 26;
    /// No way to tell an i386 syscall from a native one: no IA32 emulation
    /// (or not x86_64), or no BTF to find `thread_info.status`. Every call is
    /// counted under its number as a native one (x32 calls are still told
    /// apart by their number).
    pub const IA32: u32 = 1 << 27;
}

/// Slot copies of each program that needs to know which function or
/// tracepoint fired where the kernel has no BPF cookies or `bpf_get_func_ip`:
/// copy `n` passes `n` where the cookie would be. So on such kernels a run
/// can watch at most this many functions (or tracepoints) at once.
pub const SLOTS: u32 = 64;

/// Bits of the `FLAGS` global, written by user space before the programs load.
pub mod flags {
    /// Only tasks whose tgid is in `TRACED_TGIDS` are counted.
    pub const FILTER_TGID: u32 = 1 << 0;
    /// Only tasks with uid `TARGET_UID`.
    pub const FILTER_UID: u32 = 1 << 1;
    /// Only tasks whose comm equals `TARGET_COMM`.
    pub const FILTER_COMM: u32 = 1 << 2;
    /// Only syscalls whose entry in `SYSCALL_FILTER` is non-zero.
    pub const FILTER_SYSCALL: u32 = 1 << 3;
    /// Count per (tgid, syscall) instead of per syscall.
    pub const PER_PROCESS: u32 = 1 << 4;
    /// Count only failed calls (needs the exit hook).
    pub const FAILURES_ONLY: u32 = 1 << 5;
    /// Count failures per errno (needs the exit hook).
    pub const ERRNO: u32 = 1 << 6;
    /// The exit hook is attached: record entry (id, time) per thread.
    pub const EXIT_HOOK: u32 = 1 << 7;
    /// Children forked by traced tasks become traced (`sched_process_fork`).
    pub const FOLLOW_FORKS: u32 = 1 << 8;
    /// Uprobes: record entry times for the uretprobe (`tracer uprobe --latency`).
    pub const UPROBE_LATENCY: u32 = 1 << 12;
    /// Do not count tracer's own syscalls (set when it reads maps while counting).
    pub const EXCLUDE_SELF: u32 = 1 << 9;
    /// When a known process (one with a `PROCS` entry) loses its group leader,
    /// send its tgid through `PROC_EXITS`, so user space can take its rows out
    /// of the per-process maps while the run goes on.
    pub const EXIT_NOTICES: u32 = 1 << 10;
    /// Add each call's duration to its syscall's row of `SYSCALL_HIST`
    /// (needs the exit hook; `tracer serve`).
    pub const HIST: u32 = 1 << 13;
    /// Count calls per (label, syscall) in `LABEL_STATS`, the label being the
    /// task's comm, its process id or its cgroup id (`tracer serve --by`).
    pub const BY_COMM: u32 = 1 << 14;
    pub const BY_PID: u32 = 1 << 15;
    pub const BY_CGROUP: u32 = 1 << 16;
    /// Any of the label kinds.
    pub const BY_ANY: u32 = BY_COMM | BY_PID | BY_CGROUP;
    /// Only tasks in one of the `CGROUP_FILTER` cgroups (v2) or below them.
    pub const FILTER_CGROUP: u32 = 1 << 17;
    /// tracer runs in a PID namespace other than the initial one: every pid
    /// the kernel side compares with user space's or reports is the one
    /// tracer's namespace gives the task (read with `PIDNS_OFFSETS`), 0 for a
    /// task outside it.
    pub const PIDNS: u32 = 1 << 20;
}

/// Slots of a syscall's duration histogram (`SYSCALL_HIST`): slot `s` holds
/// the calls of `[2^(s-1), 2^s - 1]` ns as in [`log2_slot`], except the last,
/// which holds everything from `2^(HIST_SLOTS - 2)` ns (275 s) up.
pub const HIST_SLOTS: usize = 40;

/// One syscall's duration histogram, per CPU.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyscallHist {
    pub slots: [u64; HIST_SLOTS],
}

impl Default for SyscallHist {
    fn default() -> Self {
        Self {
            slots: [0; HIST_SLOTS],
        }
    }
}

/// Key of the labelled syscall counters (`LABEL_STATS`): the label is a
/// comm (NUL-padded), or a tgid (`u32`, native endian) or cgroup id (`u64`)
/// in the first bytes, the rest zero.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelKey {
    pub label: [u8; TASK_COMM_LEN],
    pub syscall: u32,
    pub _pad: u32,
}

/// Counters for one syscall (optionally of one process), summed over CPUs by user space.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallStat {
    /// Calls entered (or, with `FAILURES_ONLY`, calls that failed).
    pub calls: u64,
    /// Calls that failed ([`is_error_return`]: a value in [-4095, -1]).
    pub errors: u64,
    /// Sum of entry-to-exit wall time, nanoseconds (only with the exit hook).
    pub total_ns: u64,
}

/// Key of the per-process counters.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcKey {
    pub tgid: u32,
    pub syscall: u32,
}

/// Key of the per-errno counters.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrnoKey {
    /// The process, or 0 when not counting per process.
    pub tgid: u32,
    pub syscall: u32,
    pub errno: u32,
    pub _pad: u32,
}

/// What the entry hook remembers for the exit hook, per thread.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct SyscallStart {
    pub syscall: u32,
    pub _pad: u32,
    pub ts_ns: u64,
}

/// What the kernel side knows about a traced process (filled at fork and
/// exec, and when it first gets a counting row).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct ProcInfo {
    pub ppid: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
    /// Its cgroup v2 id (`bpf_get_current_cgroup_id`, the directory's inode
    /// number) when last recorded: at fork (the parent's), at exec, and each
    /// time it gets a new counting row; 0 when unknown.
    pub cgroup: u64,
}

/// Indexes of the `DROPS` per-CPU array: why an update was lost.
pub mod drops {
    /// The per-thread entry map was full: a call's time/errors were not recorded.
    pub const STARTS_FULL: u32 = 0;
    /// The per-process table was full.
    pub const PROCS_FULL: u32 = 1;
    /// The errno table was full.
    pub const ERRNO_FULL: u32 = 2;
    /// The traced-process set was full: a forked child was not followed.
    pub const TRACED_FULL: u32 = 3;
    /// A syscall number was outside the table.
    pub const BAD_SYSCALL: u32 = 4;
    /// The exit-notice ring was full: an exited process's rows were not
    /// drained when it exited (a periodic sweep takes them later; no count is lost).
    pub const EXITS_LOST: u32 = 5;
    /// A (label, syscall) row did not fit in `LABEL_STATS` (the series cap):
    /// counted once per row refused; its calls go to `LABEL_OVERFLOW`.
    pub const SERIES_REFUSED: u32 = 6;
    /// A refused row could not be remembered (`LABEL_REFUSED` full), so it
    /// was not counted in `SERIES_REFUSED`: counted per call.
    pub const REFUSED_UNTRACKED: u32 = 7;
    pub const COUNT: u32 = 8;
}

/// Slots of a log2 histogram, in the layout of BCC's `bpf_log2l`: slot `s >= 1`
/// holds values in `[2^(s-1), 2^s - 1]` (slot 1 holds 0 and 1), up to slot 64
/// for values of 2^63 and more. Slot 0 is never filled by [`log2_slot`]; users
/// may keep values without a slot there (negative values of a signed field).
pub const LOG2_SLOTS: u32 = 65;

/// The histogram slot of `v` (BCC's `bpf_log2l`): `1 + floor(log2(v))`, and 1 for 0.
/// Written with shifts only so that it compiles to a few BPF instructions.
#[inline(always)]
pub fn log2_slot(v: u64) -> u32 {
    let mut v = v;
    let mut r = 0;
    if v >> 32 != 0 {
        v >>= 32;
        r |= 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        r |= 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        r |= 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        r |= 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        r |= 2;
    }
    if v >> 1 != 0 {
        r |= 1;
    }
    r + 1
}

/// Most functions one `tracer uprobe` run attaches to.
pub const MAX_UPROBES: u32 = 1024;

/// Counters of one probed function: a user function (uprobes, indexed by the
/// attach cookie) or a kernel function (`kfunc`, keyed by address and process).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FuncStat {
    /// Entries (uprobe hits).
    pub calls: u64,
    /// Returns matched with their entry (only with the uretprobe).
    pub returns: u64,
    /// Sum of entry-to-return times of those returns, nanoseconds.
    pub total_ns: u64,
}

/// Key of the uprobe entry times: one per thread and function.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FuncStartKey {
    pub tid: u32,
    pub func: u32,
}

/// Indexes of the `UPROBE_DROPS` per-CPU array.
pub mod uprobe_drops {
    /// The entry-time table was full: a call's latency was not measured.
    pub const STARTS_FULL: u32 = 0;
    pub const COUNT: u32 = 2;
}

/// What `tracer tracepoint` does with each event of one attached tracepoint.
pub mod tp_mode {
    /// Count events.
    pub const COUNT: u8 = 0;
    /// Count, and add the field's value to a log2 histogram.
    pub const HIST: u8 = 1;
    /// Count, and add the field's value to a sum.
    pub const SUM: u8 = 2;
}

/// Most tracepoints one `tracer tracepoint` run attaches to.
pub const MAX_TRACEPOINTS: u32 = 256;

/// How the generic tracepoint program handles one tracepoint: `TP_CONFIG`
/// is indexed by the attach cookie, the tracepoint's index in user space's list.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TpConfig {
    /// Index of the tracepoint in user space's list (the counters' index).
    pub slot: u32,
    /// Offset of the numeric field in the record (from the format file).
    pub offset: u16,
    /// Its size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// 1 when the field is signed.
    pub signed: u8,
    /// A `tp_mode` value.
    pub mode: u8,
    pub _pad: [u8; 3],
}

/// Counters of one tracepoint (of one process with -P).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TpStat {
    pub count: u64,
    /// Sum of the field (two's complement for signed fields), with `tp_mode::SUM`.
    pub sum: u64,
}

/// Key of the per-process tracepoint counters.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TpProcKey {
    pub tgid: u32,
    pub slot: u32,
}

/// Indexes of the `TP_DROPS` per-CPU array.
pub mod tp_drops {
    /// The per-process table was full.
    pub const PROCS_FULL: u32 = 0;
    /// A record's field could not be read.
    pub const READ_FAILED: u32 = 1;
    pub const COUNT: u32 = 2;
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for SyscallStat {}
    unsafe impl aya::Pod for SyscallHist {}
    unsafe impl aya::Pod for LabelKey {}
    unsafe impl aya::Pod for ProcKey {}
    unsafe impl aya::Pod for ErrnoKey {}
    unsafe impl aya::Pod for SyscallStart {}
    unsafe impl aya::Pod for ProcInfo {}
    unsafe impl aya::Pod for FuncStat {}
    unsafe impl aya::Pod for FuncStartKey {}
    unsafe impl aya::Pod for TpConfig {}
    unsafe impl aya::Pod for TpStat {}
    unsafe impl aya::Pod for TpProcKey {}
}

// ---- Event streams (`tracer trace`, `tracer exec`): records sent through the
// `EVENTS` ring buffer. Every record starts with a `u32` kind.

/// Kinds of ring buffer records.
pub mod event_kind {
    /// A `SyscallEvent`, followed by `nstr` strings of `TRACE_STR_LEN` bytes.
    pub const SYSCALL: u32 = 1;
    /// An `ExecEvent`.
    pub const EXEC: u32 = 2;
    /// A `tcp::TcpEvent`.
    pub const TCP: u32 = 3;
}

/// Bytes kept of a path argument (with its NUL): longer paths are truncated and marked.
pub const TRACE_STR_LEN: usize = 256;
/// Path arguments decoded per syscall at most (rename, link, symlink have two).
pub const TRACE_MAX_STR: usize = 2;

/// `SyscallEvent::flags` bits.
pub mod event_flags {
    /// The call never returned (exit, exit_group, or the thread died in it): `ret` is meaningless.
    pub const NO_RETURN: u32 = 1 << 0;
    /// String 0 / 1 was longer than `TRACE_STR_LEN - 1` bytes and is cut.
    pub const STR0_TRUNCATED: u32 = 1 << 1;
    pub const STR1_TRUNCATED: u32 = 1 << 2;
    /// The strings of this call were not kept (the string table was full).
    pub const STR_MISSING: u32 = 1 << 3;
    /// `ExecEvent`: `ppid` comes from the kernel's fork record (else user space fills it).
    pub const PPID_KNOWN: u32 = 1 << 4;
    /// String 1 is an exec's argv: its elements one after the other, each with
    /// its NUL (the last one without it when `STR1_TRUNCATED` says it is cut).
    pub const STR1_ARGV: u32 = 1 << 5;
    /// The argv had more elements than string 1 holds.
    pub const ARGV_MORE: u32 = 1 << 6;
}

/// `PATH_ARGS` (per syscall number) of `tracer trace`: byte 0 is 1 + the index
/// of the first string argument, byte 1 is 1 + the index of the second (0 = none);
/// these bits say more.
pub mod path_spec {
    /// The byte of string `i` (0 or 1) in a spec: 1 + its argument's index, 0 for none.
    #[inline(always)]
    pub const fn arg(spec: u32, i: u32) -> u32 {
        (spec >> (8 * i)) & 0xff
    }

    /// The spec bits saying that string `i` is argument `index` (0-based).
    pub const fn with_arg(i: u32, index: u32) -> u32 {
        (index + 1) << (8 * i)
    }

    /// The strings cannot be read again at exit (a successful exec replaced the memory).
    pub const NO_RETRY: u32 = 1 << 16;
    /// The second string argument is an argv array (`char *const argv[]`), kept
    /// as its first elements, NUL-separated, in `TRACE_STR_LEN` bytes.
    pub const ARGV: u32 = 1 << 17;
}

/// Elements of an exec's argv read at most by `tracer trace` (strace also
/// shows 32 by default).
pub const TRACE_ARGV_MAX: usize = 32;

/// What `sys_enter` keeps per thread for `sys_exit` in `tracer trace`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct TracePending {
    pub nr: u32,
    /// Path arguments read at entry (0..=TRACE_MAX_STR).
    pub nstr: u32,
    pub enter_ns: u64,
    pub args: [u64; 6],
}

/// A completed (or never-returning) syscall. In the ring buffer it is followed by
/// `nstr` strings of `TRACE_STR_LEN` bytes each.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallEvent {
    pub kind: u32,
    pub nr: u32,
    pub tgid: u32,
    pub tid: u32,
    pub enter_ns: u64,
    pub exit_ns: u64,
    pub args: [u64; 6],
    pub ret: i64,
    pub nstr: u32,
    /// `event_flags` bits.
    pub flags: u32,
    /// Per string: bytes read including the NUL, or a negative errno if reading failed.
    pub str_len: [i32; TRACE_MAX_STR],
}

/// Indexes of the `EVENT_LOST` per-CPU array: events (or parts) that did not reach user space.
pub mod event_lost {
    /// The ring buffer was full: the whole event was dropped.
    pub const RING_FULL: u32 = 0;
    /// The per-thread entry table was full: the call's event was dropped.
    pub const PENDING_FULL: u32 = 1;
    /// The per-thread string table was full: the event went out without its strings.
    pub const STRINGS_FULL: u32 = 2;
    pub const COUNT: u32 = 4;
}

/// Arguments of an exec kept at most, and bytes of each (with the NUL).
pub const EXEC_ARGS: usize = 8;
pub const EXEC_ARG_LEN: usize = 128;
/// Arguments counted at most (argc is reported up to this).
pub const EXEC_MAX_ARGC: u32 = 64;

/// One execve/execveat, from entry to exit.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct ExecEvent {
    pub kind: u32,
    pub nr: u32,
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub enter_ns: u64,
    pub exit_ns: u64,
    pub ret: i64,
    /// Number of arguments (counted up to `EXEC_MAX_ARGC`).
    pub argc: u32,
    /// `event_flags` bits.
    pub flags: u32,
    /// Bytes read of the filename including the NUL, or a negative errno.
    pub filename_len: i32,
    /// Per kept argument: bytes read including the NUL, or a negative errno.
    pub arg_len: [i32; EXEC_ARGS],
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
    pub filename: [u8; TRACE_STR_LEN],
    pub args: [[u8; EXEC_ARG_LEN]; EXEC_ARGS],
}

#[cfg(feature = "user")]
mod event_pod {
    use super::*;
    unsafe impl aya::Pod for TracePending {}
    unsafe impl aya::Pod for SyscallEvent {}
}

/// `tracer tcp`: what its programs (tracer-ebpf/src/tcp.rs) send and are told.
pub mod tcp {
    use super::TASK_COMM_LEN;

    /// `TcpEvent::what`, and the `MODE` bit that asks for it.
    pub mod what {
        /// A connection closed: its lifetime and bytes (tcplife).
        pub const CLOSE: u32 = 1;
        /// An active open completed or failed: its latency (tcpconnect, tcpconnlat).
        pub const CONNECT: u32 = 2;
        /// A passive open taken by accept() (tcpaccept).
        pub const ACCEPT: u32 = 3;
        /// A retransmitted segment (tcpretrans).
        pub const RETRANSMIT: u32 = 4;
        /// The `TCP_MODE` bit of event `what`.
        pub const fn bit(what: u32) -> u64 {
            1 << what
        }
    }

    /// `TcpEvent::flags`.
    pub mod flags {
        /// Opened by connect() (SYN_SENT seen).
        pub const ACTIVE: u32 = 1 << 0;
        /// Opened by a listener (SYN_RECV seen).
        pub const PASSIVE: u32 = 1 << 1;
        /// `tgid`, `uid` and `comm` are those of a task that used the socket
        /// (connect, accept or close), not of whatever ran the softirq.
        pub const OWNER: u32 = 1 << 2;
        /// That task passed the process filters.
        pub const TRACED: u32 = 1 << 3;
        /// A connect that ended before it was established (refused, timed out).
        pub const FAILED: u32 = 1 << 4;
    }

    /// TCP states (include/net/tcp_states.h).
    pub mod state {
        pub const ESTABLISHED: u32 = 1;
        pub const SYN_SENT: u32 = 2;
        pub const SYN_RECV: u32 = 3;
        pub const FIN_WAIT1: u32 = 4;
        pub const CLOSE: u32 = 7;
        pub const LAST_ACK: u32 = 9;
    }

    /// Indexes into the `TCP_OFFSETS` global: struct member offsets from the
    /// running kernel's BTF, and field offsets of `tcp:tcp_retransmit_skb`
    /// from its format file (its layout changed between kernels).
    pub mod off {
        pub const BYTES_SENT: usize = 0;
        pub const BYTES_RECEIVED: usize = 1;
        pub const TASK_FILES: usize = 2;
        pub const FILES_FDT: usize = 3;
        pub const FDT_MAX_FDS: usize = 4;
        pub const FDT_FD: usize = 5;
        pub const FILE_PRIVATE_DATA: usize = 6;
        pub const SOCKET_SK: usize = 7;
        pub const RETX_SKADDR: usize = 8;
        pub const RETX_STATE: usize = 9;
        pub const RETX_SPORT: usize = 10;
        pub const RETX_DPORT: usize = 11;
        pub const RETX_FAMILY: usize = 12;
        pub const RETX_SADDR: usize = 13;
        pub const RETX_DADDR: usize = 14;
        pub const RETX_SADDR_V6: usize = 15;
        pub const RETX_DADDR_V6: usize = 16;
        pub const BYTES_RETRANS: usize = 17;
        pub const SK_FLAGS: usize = 18;
        pub const COUNT: usize = 19;
        /// An offset the kernel does not have (a field older kernels lack).
        pub const NONE: u64 = u64::MAX;
    }

    /// `--port` values kept at most.
    pub const MAX_PORTS: usize = 8;

    pub const AF_INET: u16 = 2;
    pub const AF_INET6: u16 = 10;

    /// One TCP event; also the per-connection record kept from open to close.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default)]
    pub struct TcpEvent {
        pub kind: u32,
        pub what: u32,
        pub tgid: u32,
        pub uid: u32,
        /// `flags` bits.
        pub flags: u32,
        /// The TCP state: before the close, or of a retransmit.
        pub state: u32,
        pub family: u16,
        /// Local and remote port (host order).
        pub sport: u16,
        pub dport: u16,
        pub _pad: u16,
        /// Local and remote address: 4 bytes for IPv4, 16 for IPv6 (network order).
        pub saddr: [u8; 16],
        pub daddr: [u8; 16],
        /// When the connection was first seen opening (SYN sent or received).
        pub start_ns: u64,
        /// When this event happened.
        pub ts_ns: u64,
        /// Payload bytes sent and received: at close, `tcp_sock.bytes_sent`
        /// less `bytes_retrans`, and `bytes_received` less the peer's FIN
        /// (which takes one sequence number) when it came.
        pub tx_bytes: u64,
        pub rx_bytes: u64,
        pub comm: [u8; TASK_COMM_LEN],
    }
}

/// `tracer kprobe`: types of the kernel-function programs (tracer-ebpf/src/kprobe.rs).
pub mod kfunc {
    /// Key of the per-function counters: the function's address as the kernel
    /// reports it (`bpf_get_func_ip`), and the tgid when counting per process (else 0).
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct FuncKey {
        pub ip: u64,
        pub tgid: u32,
        pub _pad: u32,
    }

    /// Counters of one function (per CPU; summed by user space): the same
    /// type as the uprobes'.
    pub use super::FuncStat;

    /// Key of the latency histogram: function and log2 slot ([`crate::log2_slot`]).
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct HistKey {
        pub ip: u64,
        pub slot: u32,
        pub _pad: u32,
    }

    /// Key of the entry timestamps: one per (thread, function) in flight.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct StartKey {
        pub ip: u64,
        pub tid: u32,
        pub _pad: u32,
    }

    /// Key of the stack counters: function and stack id in the stack trace map.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct StackKey {
        pub ip: u64,
        pub stack_id: u32,
        pub _pad: u32,
    }

    /// Indexes of the `KFUNC_DROPS` per-CPU array.
    pub mod drops {
        /// The per-function counter table was full.
        pub const FUNCS_FULL: u32 = 0;
        /// The histogram table was full.
        pub const HIST_FULL: u32 = 1;
        /// The entry-timestamp table was full: a call's latency was not measured.
        pub const STARTS_FULL: u32 = 2;
        /// `bpf_get_stackid` failed (stack map full or hash collision).
        pub const STACK_LOST: u32 = 3;
        /// The stack counter table was full.
        pub const STACK_COUNTS_FULL: u32 = 4;
        pub const COUNT: u32 = 8;
    }

    #[cfg(feature = "user")]
    mod pod {
        use super::*;
        unsafe impl aya::Pod for FuncKey {}
        unsafe impl aya::Pod for HistKey {}
        unsafe impl aya::Pod for StartKey {}
        unsafe impl aya::Pod for StackKey {}
    }
}

/// `tracer profile`: types of the sampling and off-CPU programs
/// (tracer-ebpf/src/profile.rs).
pub mod profile {
    use super::TASK_COMM_LEN;

    /// Key of the profile's weights (`PROFILE_COUNTS`): a thread's process,
    /// name and stacks. `gen` counts the process's execs (and the exits of
    /// earlier processes with its pid) seen since it was first sampled, so
    /// user space names each stack with the mappings of the program that ran it.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct StackKey {
        pub tgid: u32,
        pub gen: u32,
        /// Stack ids in `PROFILE_STACKS`, or a negative errno when there is
        /// none (`-EFAULT`: no such stack, e.g. no kernel frames in a sample
        /// taken in user mode; others are counted as lost).
        pub kstack: i32,
        /// With `uend` `unwind::end::NONE`, a stack id like `kstack`; else
        /// the id of a stack the walker recorded in `PROFILE_USTACKS`.
        pub ustack: i32,
        pub comm: [u8; TASK_COMM_LEN],
        /// How the user stack walk ended (`unwind::end`).
        pub uend: u32,
    }

    /// Per sampled process (`PROFILE_PROCS`): its exec generation, and
    /// whether user space was told about that generation yet.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    pub struct ProcGen {
        pub gen: u32,
        pub noticed: u32,
    }

    /// A record of `PROFILE_NOTICES`: a process (or a new program in it,
    /// after exec) was sampled for the first time; user space reads its
    /// mappings while it runs.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    pub struct Notice {
        pub tgid: u32,
        pub gen: u32,
        /// 1: the walker met an address outside the mappings it knows
        /// (a library loaded since): read them again.
        pub refresh: u32,
        pub _pad: u32,
    }

    /// A switched-out thread (`OFFCPU_STARTS`, keyed by thread id): when, and
    /// the stacks it blocked in.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    pub struct OffStart {
        pub ts: u64,
        pub key: StackKey,
    }

    /// Indexes of the `PROFILE_DROPS` per-CPU array.
    pub mod drops {
        /// `PROFILE_COUNTS` was full: a sample (or a blocked time) was not counted.
        pub const COUNTS_FULL: u32 = 0;
        /// The kernel stack was not recorded (stack map full, or a hash
        /// collision with another stack): counted without it.
        pub const KSTACK_LOST: u32 = 1;
        /// The same for the user stack.
        pub const USTACK_LOST: u32 = 2;
        /// `PROFILE_PROCS` was full: the process's mappings were not read.
        pub const PROCS_FULL: u32 = 3;
        /// `PROFILE_NOTICES` was full: retried at the process's next sample.
        pub const NOTICES_LOST: u32 = 4;
        pub const COUNT: u32 = 5;
    }

    #[cfg(feature = "user")]
    mod pod {
        use super::*;
        unsafe impl aya::Pod for StackKey {}
        unsafe impl aya::Pod for ProcGen {}
        unsafe impl aya::Pod for Notice {}
        unsafe impl aya::Pod for OffStart {}
    }
}

/// `tracer profile`'s user-stack unwinder (tracer-ebpf/src/unwind.rs): the
/// tables user space derives from `.eh_frame`/`.debug_frame`, the mappings
/// of each process, and how a walk ended. The register model is generic:
/// `sp` and `fp` are the stack and frame pointers (rsp and rbp on x86_64,
/// sp and x29 on aarch64); where each is read from a sample is the
/// architecture's (see `arch` below).
pub mod unwind {
    /// One row of an object's table: from `pc` (a virtual address of the
    /// ELF file, as its program headers number it) up to the next row's.
    /// Rows of one object are sorted by `pc` and lie together in
    /// `UNWIND_ROWS`.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Row {
        pub pc: u32,
        /// `cfa::*`: how the canonical frame address (the caller's sp) is found.
        pub cfa: u8,
        /// `reg::*`: where the caller's fp is.
        pub fp: u8,
        /// `reg::*`: where the return address is.
        pub ra: u8,
        pub _pad: u8,
        pub cfa_off: i16,
        pub fp_off: i16,
        pub ra_off: i16,
        pub _pad2: u16,
    }

    /// `Row::cfa`.
    pub mod cfa {
        /// No rule here (between functions, or a rule the walker cannot
        /// follow): the walk ends, `end::NO_INFO`.
        pub const NONE: u8 = 0;
        /// CFA = sp + cfa_off
        pub const SP: u8 = 1;
        /// CFA = fp + cfa_off
        pub const FP: u8 = 2;
        /// x86_64 PLT entries' expression: CFA = sp + cfa_off, plus 8 when
        /// `pc & 15 >= 11` (after the entry's push).
        pub const PLT: u8 = 3;
        /// The outermost frame (its return address is undefined: `_start`,
        /// a thread's start): the walk is complete.
        pub const END: u8 = 4;
        /// CFA = the 8 bytes at fp + cfa_off: the body of a function that
        /// realigns its stack through a DRAP register (gcc: over-aligned
        /// locals with a variable-sized frame), whose fp is then `reg::AT_FP`.
        pub const FP_DEREF: u8 = 5;
        /// CFA = sp + cfa_off * 8: a frame too large for cfa_off (32 KiB
        /// and more: a big buffer on the stack).
        pub const SP_X8: u8 = 6;
    }

    /// `Row::fp` and `Row::ra`.
    pub mod reg {
        /// Unchanged from the callee (still in the register).
        pub const SAME: u8 = 0;
        /// Saved at CFA + offset.
        pub const AT_CFA: u8 = 1;
        /// Not recoverable (the walk ends there if it is the return address).
        pub const UNDEFINED: u8 = 2;
        /// Saved at fp + offset, fp being the callee's (with `cfa::FP_DEREF`:
        /// the distance from the CFA varies with the realignment). Only for
        /// `Row::fp`.
        pub const AT_FP: u8 = 3;
    }

    /// An executable mapping of a process, with where its object's rows are.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    pub struct Mapping {
        pub start: u64,
        pub end: u64,
        /// Subtracted from an address in the mapping to get the file's
        /// virtual address (what `Row::pc` counts).
        pub bias: u64,
        /// The object's first row in `UNWIND_ROWS`, or one of `table::*`.
        pub first: u32,
        /// How many rows it has (0 with `table::*`).
        pub rows: u32,
    }

    /// `Mapping::first` when the object has no rows.
    pub mod table {
        /// No unwind information (no `.eh_frame`, or not read yet): frame
        /// pointers are followed where allowed.
        pub const NONE: u32 = u32::MAX;
        /// The table did not fit in `--unwind-memory`.
        pub const FULL: u32 = u32::MAX - 1;
    }

    /// Mappings kept per process; more are dropped (largest first by user space).
    pub const MAX_MAPPINGS: usize = 256;

    /// A process's executable mappings, sorted by `start`, not overlapping
    /// (`UNWIND_PROCS`, by tgid).
    #[repr(C)]
    #[derive(Copy, Clone, Debug)]
    pub struct ProcMaps {
        pub len: u32,
        /// The exec generation (`profile::ProcGen::gen`) these mappings are of.
        pub gen: u32,
        /// Set by the kernel when it met an address in no mapping and asked
        /// user space to read the mappings again (a `profile::Notice` with
        /// `refresh`); cleared when they are written anew.
        pub asked: u32,
        pub _pad: u32,
        pub maps: [Mapping; MAX_MAPPINGS],
    }

    impl Default for ProcMaps {
        fn default() -> Self {
            Self {
                len: 0,
                gen: 0,
                asked: 0,
                _pad: 0,
                maps: [Mapping::default(); MAX_MAPPINGS],
            }
        }
    }

    /// The deepest user stack the walker records.
    pub const MAX_FRAMES: usize = 127;

    /// A walked user stack (`PROFILE_USTACKS`, by its id).
    #[repr(C)]
    #[derive(Copy, Clone, Debug)]
    pub struct UserStack {
        /// The frames' hash: an id whose stored stack has another hash is a
        /// collision, counted as a lost stack.
        pub hash: u64,
        pub len: u32,
        pub _pad: u32,
        /// Innermost first.
        pub ips: [u64; MAX_FRAMES],
    }

    impl Default for UserStack {
        fn default() -> Self {
            Self {
                hash: 0,
                len: 0,
                _pad: 0,
                ips: [0; MAX_FRAMES],
            }
        }
    }

    /// How a user stack walk ended (`profile::StackKey::uend`).
    pub mod end {
        /// No walk: frame pointers by the kernel (`--unwind fp`), or a
        /// task without user space.
        pub const NONE: u32 = 0;
        /// Reached the entry point or a thread's start.
        pub const COMPLETE: u32 = 1;
        /// Stopped at the depth limit (`MAX_FRAMES`).
        pub const TRUNCATED: u32 = 2;
        /// An address with no unwind information (outside every known
        /// mapping, or in an object without tables where frame pointers
        /// are not followed or lead nowhere).
        pub const NO_INFO: u32 = 3;
        /// An object whose table did not fit in `--unwind-memory`.
        pub const TABLE_FULL: u32 = 4;
        /// The stack (or the task's saved registers) could not be read.
        pub const UNREADABLE: u32 = 5;
        /// The walk met a process whose tables user space was still
        /// building (its first moments: frame pointers were followed from
        /// there, so its outer frames may be missing; never reported as
        /// complete), or code in a library mapped since its mappings were
        /// read (the walk ends there until they are read again).
        pub const PENDING: u32 = 6;
        pub const COUNT: usize = 7;
    }

    /// `UNWIND_MODE` global.
    pub mod mode {
        /// Frame pointers only (the kernel's walker).
        pub const FP: u64 = 0;
        /// Tables only: an object without one ends the walk.
        pub const DWARF: u64 = 1;
        /// Tables where an object has one, frame pointers elsewhere.
        pub const AUTO: u64 = 2;
    }

    /// Indexes of the `UNWIND_ARCH` global: the register model, the one
    /// architecture-specific part of the walker. User space fills it from
    /// `arch::values` (this machine's) and the kernel's BTF.
    pub mod arch {
        /// Byte offsets in `struct pt_regs` of the pc, sp and fp.
        pub const PC: usize = 0;
        pub const SP: usize = 1;
        pub const FP: usize = 2;
        /// The register whose bits tell user mode: offset, mask, value.
        pub const MODE: usize = 3;
        pub const MODE_MASK: usize = 4;
        pub const MODE_USER: usize = 5;
        /// `sizeof(struct pt_regs)`, and the kernel stack's size: a task's
        /// user registers are saved at its top.
        pub const PT_REGS_SIZE: usize = 6;
        pub const THREAD_SIZE: usize = 7;
        /// `task_struct.stack` (from BTF).
        pub const TASK_STACK: usize = 8;
        /// A frame-pointer frame, as signed offsets: CFA = fp + FP_CFA_OFF;
        /// the return address at CFA + FP_RA_OFF, the caller's fp at
        /// CFA + FP_FP_OFF.
        pub const FP_CFA_OFF: usize = 9;
        pub const FP_RA_OFF: usize = 10;
        pub const FP_FP_OFF: usize = 11;
        pub const COUNT: usize = 12;

        /// x86_64: `struct pt_regs` (r15 ... rbp at 4, ... rip at 16, cs at
        /// 17, eflags, rsp at 19, ss), 16 KiB kernel stacks,
        /// `push %rbp; mov %rsp,%rbp` frames. `TASK_STACK` is left 0.
        #[cfg(target_arch = "x86_64")]
        pub fn values() -> [u64; COUNT] {
            let mut v = [0u64; COUNT];
            v[PC] = 16 * 8;
            v[SP] = 19 * 8;
            v[FP] = 4 * 8;
            v[MODE] = 17 * 8;
            v[MODE_MASK] = 3;
            v[MODE_USER] = 3;
            v[PT_REGS_SIZE] = 21 * 8;
            v[THREAD_SIZE] = 16384;
            v[FP_CFA_OFF] = 16;
            v[FP_RA_OFF] = -8i64 as u64;
            v[FP_FP_OFF] = -16i64 as u64;
            v
        }
    }

    #[cfg(feature = "user")]
    mod pod {
        use super::*;
        unsafe impl aya::Pod for Row {}
        unsafe impl aya::Pod for Mapping {}
        unsafe impl aya::Pod for ProcMaps {}
        unsafe impl aya::Pod for UserStack {}
    }
}

/// Reading a task's pids as tracer's PID namespace numbers them
/// (`flags::PIDNS`): indexes into the `PIDNS_OFFSETS` global, struct member
/// offsets from the running kernel's BTF, and the namespace's inode number.
pub mod pidns {
    /// `task_struct.group_leader`
    pub const TASK_GROUP_LEADER: usize = 0;
    /// `task_struct.thread_pid` (`struct pid *`)
    pub const TASK_THREAD_PID: usize = 1;
    /// `pid.level`: how deep the task's own namespace is
    pub const PID_LEVEL: usize = 2;
    /// `pid.numbers`: one `struct upid` per level, from the initial namespace down
    pub const PID_NUMBERS: usize = 3;
    /// `sizeof(struct upid)`
    pub const UPID_SIZE: usize = 4;
    /// `upid.nr`
    pub const UPID_NR: usize = 5;
    /// `upid.ns`
    pub const UPID_NS: usize = 6;
    /// `pid_namespace.ns.inum`
    pub const NS_INUM: usize = 7;
    /// tracer's PID namespace's inode number (`stat -L /proc/self/ns/pid`)
    pub const INUM: usize = 8;
    pub const COUNT: usize = 9;
    /// Levels searched for tracer's namespace (the kernel allows 32; the
    /// level found is kept, so the search runs until the first task of it).
    pub const MAX_LEVELS: u64 = 32;
    /// The initial PID namespace's inode number (`PROC_PID_INIT_INO`).
    pub const INIT_INUM: u64 = 0xEFFF_FFFC;
}
