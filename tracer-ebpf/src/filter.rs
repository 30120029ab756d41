//! The one place that decides "is this task traced?".
use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid};
use tracer_common::{
    flags::{EXCLUDE_SELF, FILTER_CGROUP, FILTER_COMM, FILTER_TGID, FILTER_UID},
    MAX_CGROUPS,
};

use crate::maps::{CGROUP_COUNT, CGROUP_FILTER, SELF_TGID, TARGET_COMM, TARGET_UID, TRACED_TGIDS};

/// The current task's process id.
#[inline(always)]
pub fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
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
