//! The event stream of the streaming commands (`tracer trace`, `tracer exec`):
//! one ring buffer, and the per-CPU count of what did not reach it.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    macros::map,
    maps::{PerCpuArray, RingBuf},
    EbpfContext,
};
use tracer_common::event_lost;

use crate::maps::count;

/// The event stream. The object declares a small ring; user space sets the real
/// size at load (`--buffer-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Events (or parts of them) that did not reach user space, per CPU, indexed
/// by `tracer_common::event_lost`.
#[map]
pub static EVENT_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(event_lost::COUNT, 0);

/// Submit flags that wake the reader only once the ring is an eighth full. Waking
/// it for every record (the default when it keeps up) costs an interrupt and a
/// context switch per event; user space also drains the ring on a short timer,
/// so a quiet trace is still shown promptly.
#[inline(always)]
pub fn wakeup_flags() -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    if avail >= size / 8 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// A failed reserve: counted, and logged (debug level, only when the user asked
/// for it) on the 1st, 2nd, 4th, 8th... loss of each CPU so logging cannot flood.
#[inline(always)]
pub fn ring_full<C: EbpfContext>(ctx: &C) {
    let n = count(&EVENT_LOST, event_lost::RING_FULL);
    if n & n.wrapping_sub(1) == 0 {
        aya_log_ebpf::debug!(ctx, "event ring buffer full: {} events lost on this CPU", n);
    }
}
