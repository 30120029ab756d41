//! `tracer tracepoint`: one generic program attached to every chosen
//! tracepoint with the tracepoint's index as the attach cookie. It finds what
//! to do in `TP_CONFIG[cookie]`, counts the event and, with `--hist` / `--sum`,
//! reads one numeric field at the offset the format file gave. (The record's
//! `common_type` cannot identify the tracepoint: the kernel stores a pt_regs
//! pointer over the common fields before running BPF.)
use aya_ebpf::{
    helpers::generated::bpf_get_attach_cookie,
    macros::{map, tracepoint},
    maps::{Array, PerCpuArray, PerCpuHashMap},
    programs::TracePointContext,
    EbpfContext as _,
};
use tracer_common::{
    flags::PER_PROCESS, log2_slot, tp_drops, tp_mode, TpConfig, TpProcKey, TpStat, LOG2_SLOTS,
};

use crate::{
    filter::{current_tgid, is_traced},
    maps::{count, FLAGS},
    procs::note_process,
};

// Sized by user space at load time (one entry by default, see uprobe.rs).
#[map]
pub static TP_CONFIG: Array<TpConfig> = Array::with_max_entries(1, 0);
#[map]
pub static TP_STATS: PerCpuArray<TpStat> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static TP_PROC_STATS: PerCpuHashMap<TpProcKey, TpStat> = PerCpuHashMap::with_max_entries(1, 0);
/// `LOG2_SLOTS` slots per tracepoint; slot 0 counts negative values.
#[map]
pub static TP_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static TP_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(tp_drops::COUNT, 0);

/// The field's value, sign-extended when signed.
#[inline(always)]
fn field(ctx: &TracePointContext, cfg: &TpConfig) -> Option<u64> {
    let off = cfg.offset as usize;
    let signed = cfg.signed != 0;
    let v = unsafe {
        match cfg.size {
            1 => match ctx.read_at::<u8>(off) {
                Ok(v) if signed => v as i8 as i64 as u64,
                Ok(v) => v as u64,
                Err(_) => return None,
            },
            2 => match ctx.read_at::<u16>(off) {
                Ok(v) if signed => v as i16 as i64 as u64,
                Ok(v) => v as u64,
                Err(_) => return None,
            },
            4 => match ctx.read_at::<u32>(off) {
                Ok(v) if signed => v as i32 as i64 as u64,
                Ok(v) => v as u64,
                Err(_) => return None,
            },
            _ => match ctx.read_at::<u64>(off) {
                Ok(v) => v,
                Err(_) => return None,
            },
        }
    };
    Some(v)
}

#[tracepoint]
pub fn tracepoint_event(ctx: TracePointContext) -> u32 {
    let _ = try_tracepoint_event(&ctx, || unsafe {
        bpf_get_attach_cookie(ctx.as_ptr()) as u32
    });
    0
}

/// `tracepoint_event` for tracepoint `slot` (a slot copy's constant; kernels
/// without cookies).
#[inline(never)]
fn tracepoint_event_in(ctx: &TracePointContext, slot: u32) -> u32 {
    let _ = try_tracepoint_event(ctx, || slot);
    0
}
slot_copies!(
    tracepoint,
    tracepoint_event,
    TracePointContext,
    tracepoint_event_in
);

/// Count the event and add its field to the sum or histogram. `None`: not
/// traced, or the field could not be read (counted as a drop).
#[inline(always)]
fn try_tracepoint_event(ctx: &TracePointContext, slot: impl FnOnce() -> u32) -> Option<()> {
    let flags = FLAGS.load();
    if !is_traced(flags) {
        return None;
    }
    let cfg = *TP_CONFIG.get(slot())?;
    let mut value = 0u64;
    if cfg.mode != tp_mode::COUNT {
        match field(ctx, &cfg) {
            Some(v) => value = v,
            None => {
                count(&TP_DROPS, tp_drops::READ_FAILED);
                return None;
            }
        }
    }
    if flags & PER_PROCESS != 0 {
        let key = TpProcKey {
            tgid: current_tgid(),
            slot: cfg.slot,
        };
        match TP_PROC_STATS.get_ptr_mut(&key) {
            Some(s) => unsafe {
                (*s).count += 1;
                (*s).sum = (*s).sum.wrapping_add(value);
            },
            None => {
                let s = TpStat {
                    count: 1,
                    sum: value,
                };
                if TP_PROC_STATS.insert(&key, &s, 0).is_err() {
                    count(&TP_DROPS, tp_drops::PROCS_FULL);
                } else {
                    // Its comm and cgroup, for the report (`--show-cgroup`).
                    note_process(key.tgid);
                }
            }
        }
    } else if let Some(s) = TP_STATS.get_ptr_mut(cfg.slot) {
        unsafe {
            (*s).count += 1;
            (*s).sum = (*s).sum.wrapping_add(value);
        }
    }
    if cfg.mode == tp_mode::HIST {
        let slot = if cfg.signed != 0 && (value as i64) < 0 {
            0
        } else {
            log2_slot(value)
        };
        let idx = cfg.slot.wrapping_mul(LOG2_SLOTS).wrapping_add(slot);
        count(&TP_HIST, idx);
    }
    Some(())
}
