//! The one place that decides "is this task traced?".
//!
//! It also says who a task is, in the numbers user space uses: when tracer
//! runs in a PID namespace other than the initial one (`flags::PIDNS`: a
//! container without the host's pids, `unshare -p`), every pid the programs
//! compare with user space's (`-p`, `-- CMD`, the tracer's own) or report
//! (rows, events) is the one tracer's namespace gives the task, read from the
//! task's `struct pid` at offsets taken from the kernel's BTF. A task outside
//! that namespace is 0, as `getppid()` is for a parent outside it.
//! (`bpf_get_ns_current_pid_tgid` answers for the current task only, and only
//! when it is in exactly that namespace, not in one nested below it; fork's
//! child is not the current task.) Thread ids that only key the programs' own
//! per-thread state stay the kernel's global ones.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_probe_read_kernel,
    },
    macros::map,
    maps::{Array, PerCpuArray},
};
use tracer_common::{
    flags::{EXCLUDE_SELF, FILTER_CGROUP, FILTER_COMM, FILTER_TGID, FILTER_UID, PIDNS},
    pidns, MAX_CGROUPS,
};

use crate::maps::{
    CGROUP_COUNT, CGROUP_FILTER, FLAGS, SELF_TGID, TARGET_COMM, TARGET_UID, TRACED_TGIDS,
};

/// Offsets by `tracer_common::pidns` index, from the running kernel's BTF
/// (written before load with `flags::PIDNS`).
#[unsafe(no_mangle)]
static PIDNS_OFFSETS: [u64; pidns::COUNT] = [0; pidns::COUNT];

/// Where tracer's namespace sits, once a task of it was seen: its level + 1
/// (0: not found yet) and its `struct pid_namespace *`.
#[map]
static PIDNS_FOUND: Array<[u64; 2]> = Array::with_max_entries(1, 0);

#[inline(always)]
fn off(i: usize) -> u64 {
    unsafe { core::ptr::read_volatile(&PIDNS_OFFSETS[i]) }
}

#[inline(always)]
fn kread<T>(addr: u64) -> Option<T> {
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// `task`'s id (its thread's, or with `process` its process's) in tracer's
/// PID namespace; `None` when the task is not in it or below it.
#[inline(always)]
fn ns_pid(task: u64, process: bool) -> Option<u32> {
    let task = if process {
        kread::<u64>(task + off(pidns::TASK_GROUP_LEADER))?
    } else {
        task
    };
    let pid = kread::<u64>(task + off(pidns::TASK_THREAD_PID))?;
    if pid == 0 {
        return None;
    }
    let level = kread::<u32>(pid + off(pidns::PID_LEVEL))? as u64;
    let upid = |l: u64| pid + off(pidns::PID_NUMBERS) + l * off(pidns::UPID_SIZE);
    let found = PIDNS_FOUND.get_ptr_mut(0)?;
    let [known, ns] = unsafe { *found };
    if known != 0 {
        let l = known - 1;
        if level < l || kread::<u64>(upid(l) + off(pidns::UPID_NS))? != ns {
            return None;
        }
        return kread::<i32>(upid(l) + off(pidns::UPID_NR)).map(|n| n as u32);
    }
    // Not found yet: look for the level whose namespace is tracer's.
    for l in 0..pidns::MAX_LEVELS {
        if l > level {
            break;
        }
        let nsp = kread::<u64>(upid(l) + off(pidns::UPID_NS))?;
        if kread::<u32>(nsp + off(pidns::NS_INUM))? as u64 == off(pidns::INUM) {
            unsafe { *found = [l + 1, nsp] };
            return kread::<i32>(upid(l) + off(pidns::UPID_NR)).map(|n| n as u32);
        }
    }
    None
}

/// The thread id of `task` (a `struct task_struct *`) as user space numbers
/// it: fork's child.
#[inline(always)]
pub fn task_tid(task: u64) -> u32 {
    ns_pid(task, false).unwrap_or(0)
}

/// The current task's process id, as user space numbers it.
#[inline(always)]
pub fn current_tgid() -> u32 {
    current_ids().1
}

/// Tasks seen on this CPU with their ids in tracer's namespace, one slot per
/// value of the global tid's low bits: the walk of `ns_pid` costs several
/// reads of kernel memory (about 400 ns a syscall here), and a CPU runs a few
/// tasks for many calls. A task is known by its `task_struct` address and its
/// global ids together: a freed task_struct is soon reused, a pid only after
/// pid_max others, so both at once name one task.
#[map]
static PIDNS_SEEN: PerCpuArray<[u64; 3]> = PerCpuArray::with_max_entries(PIDNS_SLOTS, 0);
const PIDNS_SLOTS: u32 = 64;

/// The current task's thread and process ids as user space numbers them:
/// `(tid, tgid)`.
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let global = bpf_get_current_pid_tgid();
    if FLAGS.load() & PIDNS == 0 {
        return (global as u32, (global >> 32) as u32);
    }
    let task = unsafe { bpf_get_current_task() };
    let last = PIDNS_SEEN.get_ptr_mut(global as u32 % PIDNS_SLOTS);
    if let Some(last) = last {
        let [t, g, ids] = unsafe { *last };
        if t == task && g == global {
            return (ids as u32, (ids >> 32) as u32);
        }
    }
    let tid = ns_pid(task, false).unwrap_or(0);
    let tgid = ns_pid(task, true).unwrap_or(0);
    if let Some(last) = last {
        unsafe { *last = [task, global, u64::from(tgid) << 32 | u64::from(tid)] };
    }
    (tid, tgid)
}

/// Whether the current task passes the process filters. `flags` is the `FLAGS`
/// global: it lives in frozen read-only data, so the verifier prunes every
/// branch a run does not use, and a system-wide count calls no helper at all.
#[inline(always)]
pub fn is_traced(flags: u32) -> bool {
    if flags & (EXCLUDE_SELF | FILTER_TGID) != 0 {
        let tgid = current_tgid();
        if flags & EXCLUDE_SELF != 0 && tgid == SELF_TGID.load() {
            return false;
        }
        if flags & FILTER_TGID != 0 && TRACED_TGIDS.get_ptr(tgid).is_none() {
            return false;
        }
    }
    if flags & FILTER_UID != 0 && bpf_get_current_uid_gid() as u32 != TARGET_UID.load() {
        return false;
    }
    if flags & FILTER_CGROUP != 0 && !in_cgroups() {
        return false;
    }
    if flags & FILTER_COMM != 0 {
        match bpf_get_current_comm() {
            Ok(comm) => {
                if comm != TARGET_COMM.load() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Whether the current task is in one of the `--cgroup` cgroups or below
/// one (`bpf_current_task_under_cgroup`, cgroup v2).
#[inline(always)]
pub fn in_cgroups() -> bool {
    let n = CGROUP_COUNT.load() as u32;
    for i in 0..MAX_CGROUPS {
        if i >= n {
            break;
        }
        if let Ok(true) = CGROUP_FILTER.current_task_under_cgroup(i) {
            return true;
        }
    }
    false
}
