//! Kernel functions: kprobe/kretprobe and fentry/fexit programs for `tracer kprobe`.
//!
//! The same three jobs exist for both backends: count calls, time calls (entry
//! stamp + return) into a log2 histogram, count the kernel stacks of calls.
//! A function is identified by `bpf_get_func_ip` (its address, or with IBT the
//! address past its `endbr`); user space maps it back to a name with kallsyms.
//! The kprobe programs are loaded once and attached to every function; the
//! fentry programs are loaded once per function (BTF ties a load to a target).
//!
//! Kernels without `bpf_get_func_ip` (before 5.15): a kprobe at a function's
//! first byte reports the address past it in the registers (int3, ftrace and
//! optimized kprobes alike), so it reads that; kretprobes and fentry/fexit
//! have no such register, so each function gets its own slot copy of those
//! programs (slots.rs), which finds the function's address in `KFUNC_SLOT_IPS`.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_get_func_ip},
    macros::{fentry, fexit, kprobe, kretprobe, map},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, StackTrace},
    programs::{
        tracing::StackIdContext, FEntryContext, FExitContext, ProbeContext, RetProbeContext,
    },
    EbpfContext,
};
use tracer_common::{
    flags::PER_PROCESS,
    kfunc::{drops, FuncKey, FuncStat, HistKey, StackKey, StartKey},
    lacks, log2_slot, SLOTS,
};

use crate::{
    filter::{current_tgid, is_traced},
    maps::{count, FLAGS},
    procs::note_process,
};

#[map]
pub static KFUNC_STATS: PerCpuHashMap<FuncKey, FuncStat> = PerCpuHashMap::with_max_entries(1, 0);
#[map]
pub static KFUNC_HIST: PerCpuHashMap<HistKey, u64> = PerCpuHashMap::with_max_entries(1, 0);
#[map]
pub static KFUNC_STARTS: HashMap<StartKey, u64> = HashMap::with_max_entries(1, 0);
#[map]
pub static KFUNC_STACKCNT: PerCpuHashMap<StackKey, u64> = PerCpuHashMap::with_max_entries(1, 0);
#[map]
pub static KFUNC_STACKS: StackTrace = StackTrace::with_max_entries(1, 0);
#[map]
pub static KFUNC_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::COUNT, 0);

/// Slot `n`'s function address, for the slot copies (kernels without `bpf_get_func_ip`).
#[map]
pub static KFUNC_SLOT_IPS: Array<u64> = Array::with_max_entries(SLOTS, 0);

#[inline(always)]
fn func_ip<C: EbpfContext>(ctx: &C) -> u64 {
    unsafe { bpf_get_func_ip(ctx.as_ptr()) }
}

/// A kprobe's function: `bpf_get_func_ip`, or without it the address the
/// kprobe reports, one past the probed first byte.
#[inline(always)]
fn kprobe_ip(ctx: &ProbeContext, flags: u32) -> u64 {
    if flags & lacks::FUNC_IP != 0 {
        regs_ip(ctx).wrapping_sub(1)
    } else {
        func_ip(ctx)
    }
}

#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn regs_ip(ctx: &ProbeContext) -> u64 {
    unsafe { (*ctx.regs).rip }
}

/// Elsewhere the breakpoint does not move the reported address past the probe.
#[cfg(not(bpf_target_arch = "x86_64"))]
#[inline(always)]
fn regs_ip(ctx: &ProbeContext) -> u64 {
    unsafe { bpf_get_func_ip(ctx.as_ptr()) }.wrapping_add(1)
}

#[inline(always)]
fn slot_ip(n: u32) -> u64 {
    KFUNC_SLOT_IPS.get(n).copied().unwrap_or(0)
}

/// The `FLAGS` global (loaded once per call), and the calling task's tgid
/// and tid, if it passes the process filters.
#[inline(always)]
fn traced() -> Option<(u32, u32, u32)> {
    let flags = FLAGS.load();
    if !is_traced(flags) {
        return None;
    }
    // The tid keys the entry stamps (the kernel's own); the tgid is reported.
    let tid = bpf_get_current_pid_tgid() as u32;
    let tgid = if flags & PER_PROCESS != 0 {
        current_tgid()
    } else {
        0
    };
    Some((flags, tgid, tid))
}

#[inline(always)]
fn stat_slot(flags: u32, ip: u64, tgid: u32) -> Option<*mut FuncStat> {
    let tgid = if flags & PER_PROCESS != 0 { tgid } else { 0 };
    let key = FuncKey { ip, tgid, _pad: 0 };
    if let Some(p) = KFUNC_STATS.get_ptr_mut(&key) {
        return Some(p);
    }
    if KFUNC_STATS.insert(&key, &FuncStat::default(), 0).is_err() {
        count(&KFUNC_DROPS, drops::FUNCS_FULL);
        return None;
    }
    if tgid != 0 {
        // Remember the comm now: a short-lived process is gone by report time.
        note_process(tgid);
    }
    KFUNC_STATS.get_ptr_mut(&key)
}

#[inline(always)]
fn count_call(flags: u32, ip: u64, tgid: u32) {
    if let Some(s) = stat_slot(flags, ip, tgid) {
        unsafe { (*s).calls += 1 };
    }
}

/// Count the call of the function `ip(flags)` tells. `None`: not traced.
#[inline(always)]
fn try_count(ip: impl FnOnce(u32) -> u64) -> Option<()> {
    let (flags, tgid, _) = traced()?;
    count_call(flags, ip(flags), tgid);
    Some(())
}

/// Count the call and stamp its entry for the return hook. `None`: not traced.
#[inline(always)]
fn try_latency_entry(ip: impl FnOnce(u32) -> u64) -> Option<()> {
    let (flags, tgid, tid) = traced()?;
    let ip = ip(flags);
    count_call(flags, ip, tgid);
    let key = StartKey { ip, tid, _pad: 0 };
    let now = unsafe { bpf_ktime_get_ns() };
    if KFUNC_STARTS.insert(&key, &now, 0).is_err() {
        count(&KFUNC_DROPS, drops::STARTS_FULL);
    }
    Some(())
}

/// Add the call's time to its function's total and histogram. `None`: the
/// entry was not stamped (not traced, or it began before the run).
#[inline(always)]
fn try_latency_return(ip: u64) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let key = StartKey {
        ip,
        tid: pid_tgid as u32,
        _pad: 0,
    };
    // Only calls whose entry passed the filters have a stamp.
    let start = KFUNC_STARTS.get_ptr(&key)?;
    let start = unsafe { *start };
    let _ = KFUNC_STARTS.remove(&key);
    let delta = unsafe { bpf_ktime_get_ns() }.wrapping_sub(start);
    let flags = FLAGS.load();
    let tgid = if flags & PER_PROCESS != 0 {
        current_tgid()
    } else {
        0
    };
    if let Some(s) = stat_slot(flags, ip, tgid) {
        unsafe {
            (*s).returns += 1;
            (*s).total_ns += delta;
        }
    }
    let hk = HistKey {
        ip,
        slot: log2_slot(delta),
        _pad: 0,
    };
    match KFUNC_HIST.get_ptr_mut(&hk) {
        Some(n) => unsafe { *n += 1 },
        None => {
            if KFUNC_HIST.insert(&hk, &1, 0).is_err() {
                count(&KFUNC_DROPS, drops::HIST_FULL);
            }
        }
    }
    Some(())
}

/// Count the call and the kernel stack it came from. `None`: not traced, or
/// the stack was not recorded (counted as a drop).
#[inline(always)]
fn try_stack<C: EbpfContext + StackIdContext>(ctx: &C, ip: impl FnOnce(u32) -> u64) -> Option<()> {
    let (flags, tgid, _) = traced()?;
    let ip = ip(flags);
    count_call(flags, ip, tgid);
    let Ok(id) = ctx.get_stackid(&KFUNC_STACKS, 0) else {
        count(&KFUNC_DROPS, drops::STACK_LOST);
        return None;
    };
    let key = StackKey {
        ip,
        stack_id: id as u32,
        _pad: 0,
    };
    match KFUNC_STACKCNT.get_ptr_mut(&key) {
        Some(n) => unsafe { *n += 1 },
        None => {
            if KFUNC_STACKCNT.insert(&key, &1, 0).is_err() {
                count(&KFUNC_DROPS, drops::STACK_COUNTS_FULL);
            }
        }
    }
    Some(())
}

#[kprobe]
pub fn kp_count(ctx: ProbeContext) -> u32 {
    let _ = try_count(|flags| kprobe_ip(&ctx, flags));
    0
}

#[kprobe]
pub fn kp_lat_entry(ctx: ProbeContext) -> u32 {
    let _ = try_latency_entry(|flags| kprobe_ip(&ctx, flags));
    0
}

#[kretprobe]
pub fn kp_lat_exit(ctx: RetProbeContext) -> u32 {
    let _ = try_latency_return(func_ip(&ctx));
    0
}

#[kprobe]
pub fn kp_stack(ctx: ProbeContext) -> u32 {
    let _ = try_stack(&ctx, |flags| kprobe_ip(&ctx, flags));
    0
}

#[fentry]
pub fn fe_count(ctx: FEntryContext) -> u32 {
    let _ = try_count(|_| func_ip(&ctx));
    0
}

#[fentry]
pub fn fe_lat_entry(ctx: FEntryContext) -> u32 {
    let _ = try_latency_entry(|_| func_ip(&ctx));
    0
}

#[fexit]
pub fn fx_lat_exit(ctx: FExitContext) -> u32 {
    let _ = try_latency_return(func_ip(&ctx));
    0
}

#[fentry]
pub fn fe_stack(ctx: FEntryContext) -> u32 {
    let _ = try_stack(&ctx, |_| func_ip(&ctx));
    0
}

// The slot copies, for kernels without bpf_get_func_ip.

#[inline(never)]
fn kp_lat_exit_in(_ctx: &RetProbeContext, slot: u32) -> u32 {
    let _ = try_latency_return(slot_ip(slot));
    0
}
slot_copies!(kretprobe, kp_lat_exit, RetProbeContext, kp_lat_exit_in);

#[inline(never)]
fn fe_count_in(_ctx: &FEntryContext, slot: u32) -> u32 {
    let _ = try_count(|_| slot_ip(slot));
    0
}
slot_copies!(fentry, fe_count, FEntryContext, fe_count_in);

#[inline(never)]
fn fe_lat_entry_in(_ctx: &FEntryContext, slot: u32) -> u32 {
    let _ = try_latency_entry(|_| slot_ip(slot));
    0
}
slot_copies!(fentry, fe_lat_entry, FEntryContext, fe_lat_entry_in);

#[inline(never)]
fn fx_lat_exit_in(_ctx: &FExitContext, slot: u32) -> u32 {
    let _ = try_latency_return(slot_ip(slot));
    0
}
slot_copies!(fexit, fx_lat_exit, FExitContext, fx_lat_exit_in);

#[inline(never)]
fn fe_stack_in(ctx: &FEntryContext, slot: u32) -> u32 {
    let _ = try_stack(ctx, |_| slot_ip(slot));
    0
}
slot_copies!(fentry, fe_stack, FEntryContext, fe_stack_in);
