//! `tracer exec`: every execve/execveat system-wide, on the syscall tracepoints
//! of those two calls only (no program runs for other syscalls). The entry reads
//! the filename and the first arguments while the old memory still exists; the
//! exit adds the result and the new comm and sends one `ExecEvent`.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_user, generated::bpf_probe_read_kernel as probe_read_kernel_raw,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
};
use tracer_common::{
    event_flags, event_kind, event_lost,
    flags::{FILTER_CGROUP, FILTER_COMM, FILTER_TGID, FILTER_UID},
    ExecEvent, EXEC_ARGS, EXEC_MAX_ARGC,
};

use crate::{
    filter::{current_ids, current_tgid, in_cgroups, task_tid},
    maps::{count, FLAGS, FORK_CHILD_PID_OFFSET, SELF_TGID, TARGET_COMM, TARGET_UID, TRACED_TGIDS},
    ring::{ring_full, EVENTS, EVENT_LOST},
    user_str::{read_user_arg, read_user_str},
};

/// Per thread: the exec in progress. Sized by user space (1 entry unless used).
#[map]
pub static EXEC_PENDING: HashMap<u32, ExecEvent> = HashMap::with_max_entries(1, 0);

#[map]
static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Child pid -> parent tgid, from `sched_process_fork`. A cache: the least
/// recently used entries make room; user space reads /proc for those it lacks.
#[map]
pub static EXEC_PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(1, 0);

/// Byte offset of syscall argument `i` in a `syscalls:sys_enter_*` record
/// (`struct syscall_trace_enter`: 8-byte header, int nr, then the arguments).
const fn arg_offset(i: usize) -> usize {
    16 + 8 * i
}

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn exec_enter(ctx: TracePointContext) -> i32 {
    let _ = try_exec_enter(&ctx, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn execat_enter(ctx: TracePointContext) -> i32 {
    let _ = try_exec_enter(&ctx, 1);
    0
}

/// Keep the exec's file name and first arguments for `exec_exit`. `None`:
/// filtered out, or the record could not be read.
fn try_exec_enter(ctx: &TracePointContext, filename_arg: usize) -> Option<()> {
    let flags = FLAGS.load();
    // The pending exec is keyed by the kernel's thread id; the event carries
    // the ids user space knows (they differ in a PID namespace).
    let key = bpf_get_current_pid_tgid() as u32;
    let (tid, tgid) = current_ids();
    if tgid == SELF_TGID.load() {
        return None;
    }
    // -p / -- CMD: only the traced processes and the children they fork.
    if flags & FILTER_TGID != 0 && TRACED_TGIDS.get_ptr(tgid).is_none() {
        return None;
    }
    let uid = bpf_get_current_uid_gid() as u32;
    if flags & FILTER_UID != 0 && uid != TARGET_UID.load() {
        return None;
    }
    if flags & FILTER_CGROUP != 0 && !in_cgroups() {
        return None;
    }
    let ev = EXEC_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *ev };
    ev.kind = event_kind::EXEC;
    ev.nr = unsafe { ctx.read_at::<i32>(8) }.ok()? as u32;
    ev.tgid = tgid;
    ev.tid = tid;
    ev.uid = uid;
    ev.enter_ns = unsafe { bpf_ktime_get_ns() };
    ev.flags = 0;
    match unsafe { EXEC_PARENTS.get(&tgid) } {
        Some(&ppid) => {
            ev.ppid = ppid;
            ev.flags |= event_flags::PPID_KNOWN;
        }
        None => ev.ppid = 0,
    }
    let filename: u64 = unsafe { ctx.read_at(arg_offset(filename_arg)) }.ok()?;
    let argv: u64 = unsafe { ctx.read_at(arg_offset(filename_arg + 1)) }.ok()?;
    let (len, cut) = read_user_str(filename, &mut ev.filename);
    ev.filename_len = len;
    if cut {
        ev.flags |= event_flags::STR0_TRUNCATED;
    }
    ev.argc = 0;
    ev.arg_len = [0; EXEC_ARGS];
    for i in 0..EXEC_ARGS {
        let p = match unsafe { bpf_probe_read_user((argv + 8 * i as u64) as *const u64) } {
            Ok(p) if p != 0 => p,
            _ => break,
        };
        let (len, _) = read_user_arg(p, &mut ev.args[i]);
        ev.arg_len[i] = len;
        ev.argc = i as u32 + 1;
    }
    if ev.argc == EXEC_ARGS as u32 {
        for i in EXEC_ARGS as u32..EXEC_MAX_ARGC {
            match unsafe { bpf_probe_read_user((argv + 8 * i as u64) as *const u64) } {
                Ok(p) if p != 0 => ev.argc = i + 1,
                _ => break,
            }
        }
    }
    if EXEC_PENDING.insert(&key, &*ev, 0).is_err() {
        count(&EVENT_LOST, event_lost::PENDING_FULL);
    }
    Some(())
}

#[tracepoint(category = "syscalls", name = "sys_exit_execve")]
pub fn exec_exit(ctx: TracePointContext) -> i32 {
    let _ = try_exec_exit(&ctx);
    0
}

/// Send the exec's record, with its result and new comm.
fn try_exec_exit(ctx: &TracePointContext) -> Option<()> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(pending) = EXEC_PENDING.get_ptr(&tid) else {
        return None;
    };
    let comm = bpf_get_current_comm().unwrap_or_default();
    let wanted = FLAGS.load() & FILTER_COMM == 0 || comm == TARGET_COMM.load();
    if wanted {
        match EVENTS.reserve::<ExecEvent>(0) {
            Some(mut e) => {
                let ev = unsafe { &mut *e.as_mut_ptr() };
                unsafe {
                    probe_read_kernel_raw(
                        (ev as *mut ExecEvent).cast(),
                        size_of::<ExecEvent>() as u32,
                        pending.cast(),
                    )
                };
                ev.ret = unsafe { ctx.read_at::<i64>(arg_offset(0)) }.unwrap_or(0);
                ev.exit_ns = unsafe { bpf_ktime_get_ns() };
                ev.comm = comm;
                ev.tgid = current_tgid();
                e.submit(0);
            }
            None => ring_full(ctx),
        }
    }
    let _ = EXEC_PENDING.remove(&tid);
    Some(())
}

/// `sched:sched_process_fork`: remember every child's parent for the exec records.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn exec_fork(ctx: TracePointContext) -> i32 {
    if let Ok(child) = unsafe { ctx.read_at::<u32>(FORK_CHILD_PID_OFFSET.load() as usize) } {
        let _ = EXEC_PARENTS.insert(&child, &current_tgid(), 0);
    }
    0
}

/// The same in a PID namespace (`flags::PIDNS`): the child's id in tracer's
/// namespace is read from the child task, the raw tracepoint's second argument.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn exec_fork_ns(ctx: RawTracePointContext) -> i32 {
    let child = task_tid(ctx.arg(1));
    if child != 0 {
        let _ = EXEC_PARENTS.insert(&child, &current_tgid(), 0);
    }
    0
}
