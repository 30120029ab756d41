//! Raw tracepoints on `sys_enter` / `sys_exit`: per-syscall counters.
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_NOEXIST},
    helpers::generated::bpf_get_current_task_btf,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::{btf_map, map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, Queue},
    programs::RawTracePointContext,
    Global,
};
use tracer_common::{
    abi, drops,
    flags::{
        BY_ANY, BY_COMM, BY_PID, ERRNO, EXIT_HOOK, FAILURES_ONLY, FILTER_COMM, FILTER_SYSCALL,
        FILTER_UID, HIST, PER_PROCESS,
    },
    is_error_return, lacks, log2_slot, ErrnoKey, LabelKey, ProcKey, SyscallHist, SyscallStart,
    SyscallStat, HIST_SLOTS, MAX_SYSCALLS, SYSCALL_NRS,
};

use crate::{
    filter::{current_tgid, is_traced},
    maps::{count, DROPS, FLAGS, SYSCALL_FILTER},
    procs::note_process,
    task_storage::TaskStorage,
};

/// Per syscall number (system-wide counts).
#[map]
pub static SYSCALL_STATS: PerCpuArray<SyscallStat> = PerCpuArray::with_max_entries(MAX_SYSCALLS, 0);
/// Per (tgid, syscall), with `flags::PER_PROCESS`.
#[map]
pub static PROC_STATS: PerCpuHashMap<ProcKey, SyscallStat> = PerCpuHashMap::with_max_entries(1, 0);
/// Failures per errno, with `flags::ERRNO`.
#[map]
pub static ERRNO_STATS: PerCpuHashMap<ErrnoKey, u64> = PerCpuHashMap::with_max_entries(1, 0);
/// Per syscall number, its duration histogram, with `flags::HIST`.
#[map]
pub static SYSCALL_HIST: PerCpuArray<SyscallHist> = PerCpuArray::with_max_entries(1, 0);
/// The labelled call counters (`flags::BY_ANY`, `tracer serve --by`): one
/// row per (label, syscall), as many rows as the series cap. The rows live
/// in two arrays user space maps into its memory (`BPF_F_MMAPABLE`), so a
/// scrape reads tens of thousands of them without a system call: the key of
/// row i in `LABEL_KEYS`, its calls in `LABEL_COUNTS` (added atomically: a
/// row is shared by the CPUs). `LABEL_INDEX` finds a key's row.
#[map]
pub static LABEL_INDEX: HashMap<LabelKey, u32> = HashMap::with_max_entries(1, 0);
#[map]
pub static LABEL_KEYS: Array<LabelKey> = Array::with_max_entries(1, BPF_F_MMAPABLE);
#[map]
pub static LABEL_COUNTS: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);
/// The rows not in use: user space fills it with every row at start (so
/// the cap is exact, and needs no shared counter: atomic fetch-and-add
/// needs Linux 5.12), and returns the rows of exited processes (--by pid).
#[map]
pub static LABEL_FREE: Queue<u32> = Queue::with_max_entries(1, 0);
/// Per syscall number, the calls of rows there was no room for.
#[map]
pub static LABEL_OVERFLOW: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// The rows refused, each counted once in `drops::SERIES_REFUSED`.
#[map]
pub static LABEL_REFUSED: HashMap<LabelKey, u8> = HashMap::with_max_entries(1, 0);
/// Per-thread syscall entry (id, time), for the exit hook. Task-local storage,
/// or on kernels without it a hash map keyed by thread id (see task_storage.rs).
#[btf_map]
pub static STARTS: TaskStorage<SyscallStart> = TaskStorage::new();

/// Byte offset of `thread_info.status` in `task_struct`, from the kernel's
/// BTF (written by user space unless `lacks::IA32`).
#[unsafe(no_mangle)]
pub static IA32_STATUS_OFFSET: Global<u32> = Global::new(0);

/// Whether the current thread is in an i386 syscall (`TS_COMPAT`, the
/// kernel's `in_ia32_syscall()`). Never asked with `lacks::IA32`: the
/// verifier prunes the read where the kernel has no i386 ABI.
///
/// Where the kernel has `bpf_get_current_task_btf` (5.11, with task storage)
/// the task is a BTF pointer and `status` a direct load, which the verifier
/// checks against the kernel's `task_struct` (the offset is a frozen global,
/// so a known constant) and the JIT makes one guarded `mov`. Measured with
/// bpf_stats on 2M geteuid calls (`sys_enter_count`, kernel 6.18, 2 busy
/// CPUs): 72 ns a call without the check (`TRACER_FALLBACK=ia32`), 93 with
/// it (medians of 4 runs): the helper call, which the JIT does not inline.
/// The first version, a `bpf_probe_read_kernel` of `bpf_get_current_task()`,
/// cost 155. Older kernels take that one.
#[inline(always)]
fn in_ia32_syscall(flags: u32) -> bool {
    let off = IA32_STATUS_OFFSET.load() as usize;
    let status = if flags & lacks::TASK_STORAGE == 0 {
        let task = unsafe { bpf_get_current_task_btf() } as *const u8;
        unsafe { core::ptr::read_volatile(task.add(off) as *const u32) }
    } else {
        let task = unsafe { bpf_get_current_task() } as usize;
        unsafe { bpf_probe_read_kernel((task + off) as *const u32) }.unwrap_or(0)
    };
    status & abi::TS_COMPAT != 0
}

/// The table index of the syscall this thread enters, `id` being its number
/// as `sys_enter` gives it: the number in its ABI's block
/// (`tracer_common::abi`). A number outside its ABI's block gives an index
/// outside the tables (every lookup misses: counted as a drop).
#[inline(always)]
pub fn syscall_index(flags: u32, id: i64) -> u32 {
    let nr = id as u32;
    let (block, nr) = if flags & lacks::IA32 == 0 && in_ia32_syscall(flags) {
        (abi::I386, nr)
    } else if cfg!(bpf_target_arch = "x86_64") && nr & abi::X32_SYSCALL_BIT != 0 {
        (abi::X32, nr ^ abi::X32_SYSCALL_BIT)
    } else {
        (abi::NATIVE, nr)
    };
    if nr >= SYSCALL_NRS {
        return u32::MAX;
    }
    block * SYSCALL_NRS + nr
}

/// Whether `STARTS` is the hash-map fallback (frozen: the verifier prunes the other path).
#[inline(always)]
fn starts_by_tid(flags: u32) -> bool {
    flags & lacks::TASK_STORAGE != 0
}

/// The calling thread's entry slot; with `create`, a zeroed one is made if
/// absent. In the hash-map fallback a slot, like task storage's, lives as
/// long as its thread (`sys_thread_exit` removes it): a call's entry and exit
/// only write into it, never insert or delete.
#[inline(always)]
fn thread_slot(flags: u32, create: bool) -> Option<&'static mut SyscallStart> {
    if !starts_by_tid(flags) {
        return STARTS.current(create);
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(slot) = STARTS.by_tid(tid) {
        return Some(slot);
    }
    if !create {
        return None;
    }
    STARTS.set_by_tid(tid, &SyscallStart::default()).ok()?;
    STARTS.by_tid(tid)
}

/// The counters for `syscall` (of `tgid` when counting per process), created on first use.
#[inline(always)]
fn stat_slot(flags: u32, syscall: u32) -> Option<*mut SyscallStat> {
    if flags & PER_PROCESS == 0 {
        return SYSCALL_STATS.get_ptr_mut(syscall);
    }
    let tgid = current_tgid();
    let key = ProcKey { tgid, syscall };
    if let Some(p) = PROC_STATS.get_ptr_mut(&key) {
        return Some(p);
    }
    if PROC_STATS.insert(&key, &SyscallStat::default(), 0).is_err() {
        count(&DROPS, drops::PROCS_FULL);
        return None;
    }
    // A new row: remember the process's name, which it may no longer have
    // (or be around to ask) when the report is printed, and its cgroup.
    note_process(tgid);
    PROC_STATS.get_ptr_mut(&key)
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = try_sys_enter(&ctx);
    0
}

/// Count the call and, with the exit hook, stamp its entry. `None`: not counted
/// (filtered out).
#[inline(always)]
fn try_sys_enter(ctx: &RawTracePointContext) -> Option<()> {
    let flags = FLAGS.load();
    // With the exit hook, a thread that passed the filters has an entry slot:
    // finding it spares the filters (a hash lookup when targeting processes).
    // The filters' outcome cannot change for a thread, except by exec changing
    // its comm or setuid its uid, so with --comm or -u the filters always run.
    let mut slot = None;
    if flags & EXIT_HOOK != 0 && flags & (FILTER_COMM | FILTER_UID) == 0 {
        slot = thread_slot(flags, false);
    }
    if slot.is_none() && !is_traced(flags) {
        return None;
    }
    // A number outside the tables (negative ones become huge) makes every
    // array lookup below miss; it is counted as a drop there, which spares
    // the common path its own bounds check.
    let id = syscall_index(flags, ctx.arg::<i64>(1));
    if flags & FILTER_SYSCALL != 0 {
        match SYSCALL_FILTER.get(id) {
            Some(&on) if on != 0 => {}
            _ => return None,
        }
    }
    if flags & FAILURES_ONLY == 0 {
        match stat_slot(flags, id) {
            Some(stat) => unsafe { (*stat).calls += 1 },
            None if id >= MAX_SYSCALLS => {
                count(&DROPS, drops::BAD_SYSCALL);
            }
            None => {}
        }
        if flags & BY_ANY != 0 && id < MAX_SYSCALLS {
            count_label(flags, id);
        }
    }
    if flags & EXIT_HOOK != 0 {
        match slot.or_else(|| thread_slot(flags, true)) {
            Some(start) => {
                start.syscall = id;
                start.ts_ns = unsafe { bpf_ktime_get_ns() };
            }
            None => {
                count(&DROPS, drops::STARTS_FULL);
            }
        }
    }
    Some(())
}

/// Add one call to row `row` of `LABEL_COUNTS`.
#[inline(always)]
fn add_to_row(row: u32) -> bool {
    match LABEL_COUNTS.get_ptr_mut(row) {
        Some(p) => {
            // SAFETY: the pointer is to a u64 of the map's value area. The
            // result is unused, so this is the classic `lock xadd`, which
            // every kernel's verifier takes (fetch-and-add needs 5.12).
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1) };
            true
        }
        None => false,
    }
}

/// Count the call in its (label, syscall) row; when there is no room (the
/// series cap), in the syscall's overflow counter, and the refused row once
/// in `drops::SERIES_REFUSED`.
#[inline(always)]
fn count_label(flags: u32, syscall: u32) {
    let mut key = LabelKey {
        label: [0; 16],
        syscall,
        _pad: 0,
    };
    if flags & BY_COMM != 0 {
        key.label = bpf_get_current_comm().unwrap_or_default();
    } else if flags & BY_PID != 0 {
        let tgid = current_tgid().to_ne_bytes();
        key.label[..4].copy_from_slice(&tgid);
    } else {
        let id = unsafe { bpf_get_current_cgroup_id() }.to_ne_bytes();
        key.label[..8].copy_from_slice(&id);
    }
    if let Some(&row) = unsafe { LABEL_INDEX.get(&key) } {
        add_to_row(row);
        return;
    }
    if let Ok(Some(row)) = LABEL_FREE.pop() {
        if let Some(k) = LABEL_KEYS.get_ptr_mut(row) {
            unsafe { *k = key };
            if LABEL_INDEX.insert(&key, &row, BPF_NOEXIST as u64).is_ok() {
                add_to_row(row);
                return;
            }
            // Another CPU made the key's row meanwhile: the row goes back,
            // and the call is counted in that one.
            let _ = LABEL_FREE.push(row, 0);
            if let Some(&row) = unsafe { LABEL_INDEX.get(&key) } {
                add_to_row(row);
                return;
            }
        }
    }
    if let Some(n) = LABEL_OVERFLOW.get_ptr_mut(syscall) {
        unsafe { *n += 1 };
    }
    if LABEL_REFUSED.get_ptr(&key).is_none() {
        if LABEL_REFUSED.insert(&key, &1, 0).is_ok() {
            count(&DROPS, drops::SERIES_REFUSED);
        } else {
            count(&DROPS, drops::REFUSED_UNTRACKED);
        }
    }
}

/// `sys_enter` for the plainest run, a system-wide count with no filter and
/// no exit hook: nothing but the increment, so it costs as little over an
/// empty program as a counter can.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_count(ctx: RawTracePointContext) -> i32 {
    let id = syscall_index(FLAGS.load(), ctx.arg::<i64>(1));
    match SYSCALL_STATS.get_ptr_mut(id) {
        Some(stat) => unsafe { (*stat).calls += 1 },
        None => {
            count(&DROPS, drops::BAD_SYSCALL);
        }
    }
    0
}

/// Only attached when times, errors or errnos are wanted.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let _ = try_sys_exit(&ctx);
    0
}

/// Add the call's time, error and errno. `None`: nothing to count (no entry, or
/// a success with `FAILURES_ONLY`).
#[inline(always)]
fn try_sys_exit(ctx: &RawTracePointContext) -> Option<()> {
    let flags = FLAGS.load();
    // A thread only has an entry if a sys_enter of it passed the filters; the
    // entry is spent (ts_ns = 0) once its exit is counted.
    let slot = thread_slot(flags, false)?;
    let start = *slot;
    if start.ts_ns == 0 {
        return None;
    }
    slot.ts_ns = 0;
    let now = unsafe { bpf_ktime_get_ns() };
    let ret: i64 = ctx.arg(1);
    let failed = is_error_return(ret);
    if flags & FAILURES_ONLY != 0 && !failed {
        return None;
    }
    if let Some(stat) = stat_slot(flags, start.syscall) {
        let stat = unsafe { &mut *stat };
        if flags & FAILURES_ONLY != 0 {
            stat.calls += 1;
        }
        if failed {
            stat.errors += 1;
        }
        stat.total_ns += now.wrapping_sub(start.ts_ns);
    }
    if flags & HIST != 0 {
        if let Some(h) = SYSCALL_HIST.get_ptr_mut(start.syscall) {
            let mut s = log2_slot(now.wrapping_sub(start.ts_ns)) as usize;
            if s >= HIST_SLOTS {
                s = HIST_SLOTS - 1;
            }
            unsafe { (*h).slots[s] += 1 };
        }
    }
    if failed && flags & ERRNO != 0 {
        let key = ErrnoKey {
            tgid: if flags & PER_PROCESS != 0 {
                current_tgid()
            } else {
                0
            },
            syscall: start.syscall,
            errno: (-ret) as u32,
            _pad: 0,
        };
        match ERRNO_STATS.get_ptr_mut(&key) {
            Some(n) => unsafe { *n += 1 },
            None => {
                if ERRNO_STATS.insert(&key, &1, 0).is_err() {
                    count(&DROPS, drops::ERRNO_FULL);
                }
            }
        }
    }
    Some(())
}

/// With the hash-map fallback only: a thread's slot is removed when it exits
/// (task storage is freed by the kernel with its task).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sys_thread_exit(_ctx: RawTracePointContext) -> i32 {
    if starts_by_tid(FLAGS.load()) {
        STARTS.remove_by_tid(bpf_get_current_pid_tgid() as u32);
    }
    0
}

/// Empty programs: the floor any eBPF syscall counter pays (used by `cargo xtask bench`).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn noop_enter(_ctx: RawTracePointContext) -> i32 {
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn noop_exit(_ctx: RawTracePointContext) -> i32 {
    0
}

/// Empty programs that read the clock once each: the floor of timing a syscall
/// (`tracer floor --clock`). The helper call stays whatever becomes of its
/// result (the compiler cannot see into a helper); the whole program is
/// `call bpf_ktime_get_ns; r0 = 0; exit`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn noop_clk_enter(_ctx: RawTracePointContext) -> i32 {
    (unsafe { bpf_ktime_get_ns() } == 0) as i32
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn noop_clk_exit(_ctx: RawTracePointContext) -> i32 {
    (unsafe { bpf_ktime_get_ns() } == 0) as i32
}
