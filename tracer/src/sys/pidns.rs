//! tracer's PID namespace: whether it is the initial one, and where the
//! kernel keeps a task's pids in the namespaces it belongs to (for the
//! programs that must number tasks as tracer's namespace does: the
//! `flags::PIDNS` path of `tracer-ebpf/src/filter.rs`).
use anyhow::{Context as _, Result};
use std::os::unix::fs::MetadataExt as _;
use tracer_common::pidns;

use super::btf::Btf;

/// The inode number of tracer's own PID namespace.
pub fn own_inum() -> Result<u64> {
    let path = "/proc/self/ns/pid";
    let meta = std::fs::metadata(path).with_context(|| format!("cannot stat {path}"))?;
    Ok(meta.ino())
}

/// Whether tracer runs in a PID namespace other than the initial one (a
/// container without the host's pids, `unshare -p`): its pids are not the
/// kernel's global ones. `TRACER_PIDNS=1` takes that path anyway (the
/// tests and the bench measure it on the host).
pub fn own_is_nested() -> Result<bool> {
    if std::env::var_os("TRACER_PIDNS").is_some_and(|v| v == "1") {
        return Ok(true);
    }
    Ok(own_inum()? != pidns::INIT_INUM)
}

/// The `PIDNS_OFFSETS` global: struct members from the running kernel's
/// BTF, and tracer's namespace's inode number.
pub fn offsets() -> Result<Vec<u64>> {
    let btf = Btf::kernel().context(
        "tracer runs in a PID namespace: numbering tasks as it does needs the kernel's BTF",
    )?;
    let mut v = vec![0; pidns::COUNT];
    for (i, strukt, member) in [
        (pidns::TASK_GROUP_LEADER, "task_struct", "group_leader"),
        (pidns::TASK_THREAD_PID, "task_struct", "thread_pid"),
        (pidns::PID_LEVEL, "pid", "level"),
        (pidns::PID_NUMBERS, "pid", "numbers"),
        (pidns::UPID_NR, "upid", "nr"),
        (pidns::UPID_NS, "upid", "ns"),
    ] {
        v[i] = btf.member_offset(strukt, member)?;
    }
    v[pidns::UPID_SIZE] = btf.struct_size("upid")?;
    v[pidns::NS_INUM] =
        btf.member_offset("pid_namespace", "ns")? + btf.member_offset("ns_common", "inum")?;
    v[pidns::INUM] = own_inum()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_the_running_kernel() {
        let v = offsets().unwrap();
        // `struct upid { int nr; struct pid_namespace *ns; }` on 64-bit.
        assert_eq!(v[pidns::UPID_SIZE], 16);
        assert_eq!(v[pidns::UPID_NR], 0);
        assert_eq!(v[pidns::UPID_NS], 8);
        assert!(v[pidns::PID_NUMBERS] > v[pidns::PID_LEVEL]);
        assert!(v[pidns::TASK_THREAD_PID] > 0 && v[pidns::TASK_GROUP_LEADER] > 0);
        assert_eq!(v[pidns::INUM], own_inum().unwrap());
    }
}
