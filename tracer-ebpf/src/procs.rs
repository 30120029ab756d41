//! Following processes: the kernel-side set of traced tgids, fed by fork and
//! pruned at thread exit, and the per-process facts (parent, comm) reports need.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm},
    macros::{map, raw_tracepoint, tracepoint},
    maps::RingBuf,
    programs::{RawTracePointContext, TracePointContext},
};
use tracer_common::{
    drops,
    flags::{EXIT_NOTICES, FOLLOW_FORKS},
    ProcInfo,
};

use crate::{
    filter::{current_ids, current_tgid, is_traced, task_tid},
    maps::{count, DROPS, FLAGS, FORK_CHILD_PID_OFFSET, PROCS, TRACED_TGIDS},
};

/// Tgids of exited processes (`flags::EXIT_NOTICES`): one `u32` per record.
/// Sized by the command that reads it (`tracer syscalls -P`).
#[map]
pub static PROC_EXITS: RingBuf = RingBuf::with_byte_size(4096, 0);

/// `sched:sched_process_fork`: a child of a traced task is traced too.
/// For a new thread the child pid is a tid of an already traced tgid; it is
/// added anyway (cheap) and removed when that thread exits.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> i32 {
    let _ = try_sched_process_fork(&ctx);
    0
}

#[inline(always)]
fn try_sched_process_fork(ctx: &TracePointContext) -> Option<()> {
    let child = unsafe { ctx.read_at::<u32>(FORK_CHILD_PID_OFFSET.load() as usize) }.ok()?;
    fork_of(child)
}

/// The same, when tracer runs in a PID namespace (`flags::PIDNS`): the
/// record's pid is the kernel's global one, so the child's id in tracer's
/// namespace is read from the child task (the raw tracepoint's second
/// argument).
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork_ns(ctx: RawTracePointContext) -> i32 {
    let child: u64 = ctx.arg(1);
    let _ = fork_of(task_tid(child));
    0
}

/// The current task forked `child` (its id as user space numbers it).
#[inline(always)]
fn fork_of(child: u32) -> Option<()> {
    let flags = FLAGS.load();
    if child == 0 || !is_traced(flags) {
        return None;
    }
    let tgid = current_tgid();
    if flags & FOLLOW_FORKS != 0 && TRACED_TGIDS.insert(&child, &1, 0).is_err() {
        count(&DROPS, drops::TRACED_FULL);
    }
    // The child starts in its parent's cgroup (unless cloned into another
    // one: its exec or its first counted call corrects that).
    let info = ProcInfo {
        ppid: tgid,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or_default(),
        cgroup: unsafe { bpf_get_current_cgroup_id() },
    };
    let _ = PROCS.insert(&child, &info, 0);
    Some(())
}

/// `sched_process_exec`: remember the new comm (and the cgroup) of a traced process.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    let _ = try_sched_process_exec();
    0
}

#[inline(always)]
fn try_sched_process_exec() -> Option<()> {
    let flags = FLAGS.load();
    if !is_traced(flags) {
        return None;
    }
    let tgid = current_tgid();
    let comm = bpf_get_current_comm().unwrap_or_default();
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    match PROCS.get_ptr_mut(&tgid) {
        Some(info) => unsafe {
            (*info).comm = comm;
            (*info).cgroup = cgroup;
        },
        None => {
            let info = ProcInfo {
                ppid: 0,
                _pad: 0,
                comm,
                cgroup,
            };
            let _ = PROCS.insert(&tgid, &info, 0);
        }
    }
    Some(())
}

/// The current process `tgid` gets a new counting row: record its comm, if
/// nothing is recorded yet (a short-lived process is gone by report time),
/// and the cgroup it is in now (it may have moved since its fork or exec).
/// Called once per new row, not per event.
#[inline(always)]
pub fn note_process(tgid: u32) {
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    match PROCS.get_ptr_mut(&tgid) {
        Some(info) => unsafe { (*info).cgroup = cgroup },
        None => {
            let info = ProcInfo {
                ppid: 0,
                _pad: 0,
                comm: bpf_get_current_comm().unwrap_or_default(),
                cgroup,
            };
            // BPF_NOEXIST: what fork or exec recorded meanwhile stays.
            let _ = PROCS.insert(&tgid, &info, BPF_NOEXIST as u64);
        }
    }
}

/// `sched_process_exit`: drop a followed thread's entry. A process's own entry
/// (tid == tgid) stays until user space sees the process gone, so a leader
/// that exits before its other threads does not stop their counting.
///
/// With `EXIT_NOTICES`, the exit of a known process's leader is sent to user
/// space. It is only a hint (other threads may still be running, or finishing
/// their last syscall): user space checks that the whole group is gone before
/// it takes the process's rows out of the maps.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    let (tid, tgid) = current_ids();
    if tgid == 0 {
        // Outside tracer's PID namespace (flags::PIDNS): nothing of it is kept.
        return 0;
    }
    if tid != tgid {
        let _ = TRACED_TGIDS.remove(&tid);
        // The fork hook cannot tell threads from processes and records both;
        // a thread's entry is of no use once the thread is gone.
        let _ = PROCS.remove(&tid);
        return 0;
    }
    if FLAGS.load() & EXIT_NOTICES != 0
        && PROCS.get_ptr(&tgid).is_some()
        && PROC_EXITS.output::<u32>(tgid, 0).is_err()
    {
        count(&DROPS, drops::EXITS_LOST);
    }
    0
}
