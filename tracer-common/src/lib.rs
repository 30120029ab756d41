//! Types shared between the eBPF programs (`tracer-ebpf`) and user space (`tracer`).
//!
//! Everything here is `#[repr(C)]`, `Copy`, and free of padding holes so that the
//! bytes the kernel writes are exactly the bytes user space reads.
#![no_std]

/// Size of the per-syscall tables. x86_64 and aarch64 numbers are all below this.
pub const MAX_SYSCALLS: u32 = 1024;

/// Length of a task's `comm`, as in the kernel.
pub const TASK_COMM_LEN: usize = 16;

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
}

/// Counters for one syscall (optionally of one process), summed over CPUs by user space.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallStat {
    /// Calls entered (or, with `FAILURES_ONLY`, calls that failed).
    pub calls: u64,
    /// Calls that returned a value in [-4095, -1].
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

/// What the kernel side knows about a traced process (filled at fork and exec).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct ProcInfo {
    pub ppid: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
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

/// Counters of one probed user function, indexed by the probe's attach cookie.
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
