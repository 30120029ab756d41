//! Empty programs of each hook family, loaded and attached by `tracer info`
//! to find out, for real, what this kernel supports.
use aya_ebpf::{
    macros::{fentry, kprobe, tracepoint, uprobe},
    programs::{FEntryContext, ProbeContext, TracePointContext},
};

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[fentry]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[uprobe]
pub fn probe_uprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}
