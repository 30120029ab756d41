//! State shared by several hook families: the `FLAGS` and target globals, the
//! set of traced processes and what is known about them, the syscall filter,
//! the drop counters, and the one way to bump a per-CPU counter. Each family's
//! own maps live beside its hooks. Hash maps are declared with one entry: each
//! command sizes the ones it uses at load time (`bpf::load`), so no command
//! pays for preallocating another's tables.
use aya_ebpf::{
    macros::map,
    maps::{Array, CgroupArray, HashMap, PerCpuArray},
    Global,
};
use tracer_common::{drops, ProcInfo, MAX_CGROUPS, MAX_SYSCALLS, TASK_COMM_LEN};

/// `tracer_common::flags` bits, and the `tracer_common::lacks` bits of the
/// fallbacks this kernel needs.
#[unsafe(no_mangle)]
pub static FLAGS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static TARGET_UID: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static TARGET_COMM: Global<[u8; TASK_COMM_LEN]> = Global::new([0; TASK_COMM_LEN]);
/// The tracer's own tgid: never counted.
#[unsafe(no_mangle)]
pub static SELF_TGID: Global<u32> = Global::new(0);
/// Offset of `child_pid` in the `sched:sched_process_fork` record (from its format file).
#[unsafe(no_mangle)]
pub static FORK_CHILD_PID_OFFSET: Global<u32> = Global::new(44);

/// How many `CGROUP_FILTER` slots are filled (`flags::FILTER_CGROUP`).
#[unsafe(no_mangle)]
pub static CGROUP_COUNT: Global<u64> = Global::new(0);
/// The `--cgroup` directories (cgroup v2), filled by user space.
#[map]
pub static CGROUP_FILTER: CgroupArray = CgroupArray::with_max_entries(MAX_CGROUPS, 0);

/// Tgids of the traced processes (`flags::FILTER_TGID`), fed by fork when following.
#[map]
pub static TRACED_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(1, 0);
/// Per tgid: parent and comm, recorded at fork, exec or first count.
#[map]
pub static PROCS: HashMap<u32, ProcInfo> = HashMap::with_max_entries(1, 0);
/// Per syscall number: non-zero when wanted (`flags::FILTER_SYSCALL`); `tracer
/// syscalls` and `tracer trace`.
#[map]
pub static SYSCALL_FILTER: Array<u8> = Array::with_max_entries(MAX_SYSCALLS, 0);
/// Why an update was lost, by `tracer_common::drops` reason: written by the
/// syscall counters and by the process-following hooks (`procs.rs`).
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::COUNT, 0);

/// Add one to counter `index` of a per-CPU array of counters (what was
/// dropped or lost, by reason; a histogram's buckets) and return its new value
/// on this CPU. An index outside the array counts nothing and returns 0.
#[inline(always)]
pub fn count(map: &PerCpuArray<u64>, index: u32) -> u64 {
    match map.get_ptr_mut(index) {
        Some(p) => unsafe {
            *p += 1;
            *p
        },
        None => 0,
    }
}
