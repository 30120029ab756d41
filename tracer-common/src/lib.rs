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

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for SyscallStat {}
    unsafe impl aya::Pod for ProcKey {}
    unsafe impl aya::Pod for ErrnoKey {}
    unsafe impl aya::Pod for SyscallStart {}
    unsafe impl aya::Pod for ProcInfo {}
}

/// `tracer kprobe`: types of the kernel-function programs (tracer-ebpf/src/kprobe.rs).
pub mod kfunc {
    /// Log2 histogram slots: slot `s` holds durations in `[2^(s-1), 2^s)` ns (slot 0: 0 ns).
    pub const HIST_SLOTS: u32 = 64;

    /// Key of the per-function counters: the function's address as the kernel
    /// reports it (`bpf_get_func_ip`), and the tgid when counting per process (else 0).
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct FuncKey {
        pub ip: u64,
        pub tgid: u32,
        pub _pad: u32,
    }

    /// Counters of one function (per CPU; summed by user space).
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    pub struct FuncStat {
        /// Calls entered.
        pub calls: u64,
        /// Calls whose return was seen (only with --latency).
        pub returns: u64,
        /// Sum of entry-to-return time of those calls, nanoseconds.
        pub total_ns: u64,
    }

    /// Key of the latency histogram: function and log2 slot.
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
        unsafe impl aya::Pod for FuncStat {}
        unsafe impl aya::Pod for HistKey {}
        unsafe impl aya::Pod for StartKey {}
        unsafe impl aya::Pod for StackKey {}
    }
}
