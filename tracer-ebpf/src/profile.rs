//! `tracer profile`: stacks of running tasks sampled by a perf event on every
//! CPU, or the stacks tasks were switched out in, weighted by the time until
//! they ran again (`--off-cpu`). Both add into one hash map, (process,
//! generation, comm, kernel stack, user stack) -> samples or nanoseconds: no
//! traffic to user space per sample. The first sample of a process (and the
//! first after each exec) sends one notice, so user space reads its
//! mappings while it still runs.
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, perf_event, raw_tracepoint, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
    programs::{
        tracing::StackIdContext, PerfEventContext, RawTracePointContext, TracePointContext,
    },
    Global,
};
use tracer_common::profile::{drops, Notice, OffStart, ProcGen, StackKey};

use crate::{
    filter::{current_ids, current_tgid, is_traced},
    maps::{count, FLAGS},
};

/// The weights: samples (CPU) or nanoseconds (off-CPU). Preallocated (perf
/// event programs may use no other kind of hash map); sized at load.
#[map]
pub static PROFILE_COUNTS: HashMap<StackKey, u64> = HashMap::with_max_entries(1, 0);
#[map]
pub static PROFILE_STACKS: StackTrace = StackTrace::with_max_entries(1, 0);
/// Per sampled process: its exec generation (see `ProcGen`).
#[map]
pub static PROFILE_PROCS: HashMap<u32, ProcGen> = HashMap::with_max_entries(1, 0);
/// `Notice`s of processes sampled for the first time (user space polls it).
#[map]
pub static PROFILE_NOTICES: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static PROFILE_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::COUNT, 0);
/// Off-CPU: switched-out threads, by thread id. LRU, so a thread that exits
/// while switched out never fills it.
#[map]
pub static OFFCPU_STARTS: LruHashMap<u32, OffStart> = LruHashMap::with_max_entries(1, 0);

/// Offset of `next_pid` in the `sched:sched_switch` record (from its format file).
#[unsafe(no_mangle)]
pub static SWITCH_NEXT_PID_OFFSET: Global<u64> = Global::new(56);
/// Off-CPU: switches shorter than this are not counted (`--min-block`).
#[unsafe(no_mangle)]
pub static MIN_BLOCK_NS: Global<u64> = Global::new(1000);

const EFAULT: i32 = 14;

/// Sampled on a CPU: count the running task's stacks.
#[perf_event]
pub fn profile_cpu(ctx: PerfEventContext) -> u32 {
    let _ = try_profile_cpu(&ctx);
    0
}

#[inline(always)]
fn try_profile_cpu(ctx: &PerfEventContext) -> Option<()> {
    // The idle task: not a running task.
    if bpf_get_current_pid_tgid() as u32 == 0 || !is_traced(FLAGS.load()) {
        return None;
    }
    let walking = crate::unwind::walking();
    let mut key = stack_key(ctx, current_tgid(), !walking);
    if walking {
        // Counts the sample itself once it has walked the user stack.
        crate::unwind::start(ctx, &key, 1);
        // Not taken (no user mode, no walker): the kernel's walk.
        key.ustack = stack_id(ctx, BPF_F_USER_STACK as u64, drops::USTACK_LOST);
    }
    add(&key, 1);
    Some(())
}

/// `sched:sched_switch`, in the context of the task switched out: remember
/// when and where it stopped; for the task switched in, add the time it was
/// away to the stacks it stopped in.
#[tracepoint(category = "sched", name = "sched_switch")]
pub fn offcpu_switch(ctx: TracePointContext) -> u32 {
    let _ = try_offcpu_switch(&ctx);
    0
}

#[inline(always)]
fn try_offcpu_switch(ctx: &TracePointContext) -> Option<()> {
    let now = unsafe { bpf_ktime_get_ns() };
    let tid = bpf_get_current_pid_tgid() as u32;
    if tid != 0 && is_traced(FLAGS.load()) {
        let start = OffStart {
            ts: now,
            key: stack_key(ctx, current_tgid(), true),
        };
        let _ = OFFCPU_STARTS.insert(&tid, &start, 0);
    }
    let next = unsafe { ctx.read_at::<u32>(SWITCH_NEXT_PID_OFFSET.load() as usize) }.ok()?;
    let start = *unsafe { OFFCPU_STARTS.get(&next) }?;
    let _ = OFFCPU_STARTS.remove(&next);
    let away = now.saturating_sub(start.ts);
    if away >= MIN_BLOCK_NS.load() {
        add(&start.key, away);
    }
    Some(())
}

/// `sched_process_exec`: a sampled process runs a new program; its next
/// samples belong to a new generation, whose mappings user space reads anew.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn profile_exec(_ctx: RawTracePointContext) -> i32 {
    next_generation(current_tgid());
    0
}

/// `sched_process_exit`: when a sampled process's leader exits, the process
/// is gone; a later process given the same pid must not be named with its
/// mappings, so it starts a new generation too.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn profile_exit(_ctx: RawTracePointContext) -> i32 {
    let (tid, tgid) = current_ids();
    if tid == tgid && tgid != 0 {
        next_generation(tgid);
    }
    0
}

/// Samples of `tgid` from now on belong to its next generation (if it was
/// sampled at all), announced by a notice at its next sample.
#[inline(always)]
fn next_generation(tgid: u32) {
    if let Some(p) = PROFILE_PROCS.get_ptr_mut(&tgid) {
        unsafe {
            (*p).gen = (*p).gen.wrapping_add(1);
            (*p).noticed = 0;
        }
    }
}

/// The key of the current task's sample: process, generation, comm, stacks
/// (the user stack by the kernel's frame-pointer walk when `user`, else
/// left to the walker).
#[inline(always)]
fn stack_key<C: StackIdContext>(ctx: &C, tgid: u32, user: bool) -> StackKey {
    StackKey {
        tgid,
        gen: generation(tgid),
        kstack: stack_id(ctx, 0, drops::KSTACK_LOST),
        ustack: if user {
            stack_id(ctx, BPF_F_USER_STACK as u64, drops::USTACK_LOST)
        } else {
            -EFAULT
        },
        comm: bpf_get_current_comm().unwrap_or_default(),
        uend: 0,
    }
}

#[inline(always)]
fn stack_id<C: StackIdContext>(ctx: &C, flags: u64, lost: u32) -> i32 {
    match ctx.get_stackid(&PROFILE_STACKS, flags) {
        Ok(id) => id as i32,
        Err(e) => {
            if e != -EFAULT {
                count(&PROFILE_DROPS, lost);
            }
            e
        }
    }
}

/// The process's exec generation; the first sample of each tells user space.
#[inline(always)]
fn generation(tgid: u32) -> u32 {
    match PROFILE_PROCS.get_ptr_mut(&tgid) {
        Some(p) => unsafe {
            let gen = (*p).gen;
            if (*p).noticed == 0 {
                (*p).noticed = 1;
                if !notice(tgid, gen) {
                    (*p).noticed = 0;
                }
            }
            gen
        },
        None => {
            let new = ProcGen { gen: 0, noticed: 1 };
            match PROFILE_PROCS.insert(&tgid, &new, BPF_NOEXIST as u64) {
                Ok(()) => {
                    if !notice(tgid, 0) {
                        if let Some(p) = PROFILE_PROCS.get_ptr_mut(&tgid) {
                            unsafe { (*p).noticed = 0 };
                        }
                    }
                }
                // Another CPU inserted it first.
                Err(e) if e == -17 => {}
                Err(_) => {
                    count(&PROFILE_DROPS, drops::PROCS_FULL);
                }
            }
            0
        }
    }
}

/// Send a notice; false (and counted) when the ring is full.
#[inline(always)]
fn notice(tgid: u32, gen: u32) -> bool {
    send_notice(&Notice {
        tgid,
        gen,
        refresh: 0,
        _pad: 0,
    })
}

/// Send `n`; false (and counted) when the ring is full.
#[inline(always)]
pub fn send_notice(n: &Notice) -> bool {
    if PROFILE_NOTICES
        .output::<Notice>(n, BPF_RB_NO_WAKEUP as u64)
        .is_err()
    {
        count(&PROFILE_DROPS, drops::NOTICES_LOST);
        return false;
    }
    true
}

/// Add `v` to the key's weight (shared by the CPUs: an atomic add).
#[inline(always)]
pub fn add(key: &StackKey, v: u64) {
    if let Some(p) = PROFILE_COUNTS.get_ptr_mut(key) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
        return;
    }
    match PROFILE_COUNTS.insert(key, &v, BPF_NOEXIST as u64) {
        Ok(()) => {}
        Err(e) if e == -17 => {
            if let Some(p) = PROFILE_COUNTS.get_ptr_mut(key) {
                unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
            }
        }
        Err(_) => {
            count(&PROFILE_DROPS, drops::COUNTS_FULL);
        }
    }
}
