//! `tracer uprobe`: one uprobe program and one uretprobe program, each attached
//! to every chosen function with the function's index as the attach cookie.
//! Kernels without cookies get the slot copies instead (slots.rs).
//! Counts (and, with the uretprobe, log2 latency histograms) per function in
//! per-CPU arrays sized by user space.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_get_attach_cookie},
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, PerCpuArray},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::{
    flags::UPROBE_LATENCY, log2_slot, uprobe_drops, FuncStartKey, FuncStat, LOG2_SLOTS,
};

use crate::{
    filter::is_traced,
    maps::{count, FLAGS},
};

// Sizes are set by user space at load time; one entry by default so that other
// commands loading the object pay nothing for these maps.
#[map]
pub static UPROBE_STATS: PerCpuArray<FuncStat> = PerCpuArray::with_max_entries(1, 0);
/// `LOG2_SLOTS` slots per function: function `f`'s slot `s` is at `f * LOG2_SLOTS + s`.
#[map]
pub static UPROBE_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static UPROBE_STARTS: HashMap<FuncStartKey, u64> = HashMap::with_max_entries(1, 0);
#[map]
pub static UPROBE_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(uprobe_drops::COUNT, 0);

#[inline(always)]
fn cookie<C: aya_ebpf::EbpfContext>(ctx: &C) -> u32 {
    unsafe { bpf_get_attach_cookie(ctx.as_ptr()) as u32 }
}

#[uprobe]
pub fn uprobe_count(ctx: ProbeContext) -> u32 {
    let _ = try_uprobe_count(|| cookie(&ctx));
    0
}

/// `uprobe_count` of function `func` (a slot copy's constant).
#[inline(never)]
fn uprobe_count_in(_ctx: &ProbeContext, func: u32) -> u32 {
    let _ = try_uprobe_count(|| func);
    0
}
slot_copies!(uprobe, uprobe_count, ProbeContext, uprobe_count_in);

/// Count the call of function `func` and, with `UPROBE_LATENCY`, stamp its
/// entry. `None`: not traced.
#[inline(always)]
fn try_uprobe_count(func: impl FnOnce() -> u32) -> Option<()> {
    let flags = FLAGS.load();
    if !is_traced(flags) {
        return None;
    }
    let func = func();
    if let Some(s) = UPROBE_STATS.get_ptr_mut(func) {
        unsafe { (*s).calls += 1 };
    }
    if flags & UPROBE_LATENCY != 0 {
        let key = FuncStartKey {
            tid: bpf_get_current_pid_tgid() as u32,
            func,
        };
        let now = unsafe { bpf_ktime_get_ns() };
        if UPROBE_STARTS.insert(&key, &now, 0).is_err() {
            count(&UPROBE_DROPS, uprobe_drops::STARTS_FULL);
        }
    }
    Some(())
}

/// Only attached with `--latency`. A thread has an entry only if its call passed
/// the filters, so no filter is needed here.
#[uretprobe]
pub fn uretprobe_latency(ctx: RetProbeContext) -> u32 {
    let _ = try_uretprobe_latency(cookie(&ctx));
    0
}

/// `uretprobe_latency` of function `func` (a slot copy's constant).
#[inline(never)]
fn uretprobe_latency_in(_ctx: &RetProbeContext, func: u32) -> u32 {
    let _ = try_uretprobe_latency(func);
    0
}
slot_copies!(
    uretprobe,
    uretprobe_latency,
    RetProbeContext,
    uretprobe_latency_in
);

/// Add the call's time to function `func`'s total and histogram. `None`: the
/// entry was not stamped.
#[inline(always)]
fn try_uretprobe_latency(func: u32) -> Option<()> {
    let key = FuncStartKey {
        tid: bpf_get_current_pid_tgid() as u32,
        func,
    };
    let start = UPROBE_STARTS.get_ptr(&key)?;
    let delta = unsafe { bpf_ktime_get_ns().wrapping_sub(*start) };
    let _ = UPROBE_STARTS.remove(&key);
    if let Some(s) = UPROBE_STATS.get_ptr_mut(func) {
        unsafe {
            (*s).returns += 1;
            (*s).total_ns += delta;
        }
    }
    let idx = func.wrapping_mul(LOG2_SLOTS).wrapping_add(log2_slot(delta));
    count(&UPROBE_HIST, idx);
    Some(())
}
