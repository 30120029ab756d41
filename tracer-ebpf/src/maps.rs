//! The maps and globals shared by several programs. Hash maps are declared
//! with one entry: each command sizes the ones it uses at load time
//! (`bpf::load`), so no command pays for preallocating another's tables.
use crate::task_storage::TaskStorage;
use aya_ebpf::{
    macros::{btf_map, map},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    Global,
};
use tracer_common::{
    drops, ErrnoKey, ProcInfo, ProcKey, SyscallStart, SyscallStat, MAX_SYSCALLS, TASK_COMM_LEN,
};

/// `tracer_common::flags` bits.
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

#[map]
pub static SYSCALL_STATS: PerCpuArray<SyscallStat> = PerCpuArray::with_max_entries(MAX_SYSCALLS, 0);
#[map]
pub static PROC_STATS: PerCpuHashMap<ProcKey, SyscallStat> = PerCpuHashMap::with_max_entries(1, 0);
#[map]
pub static ERRNO_STATS: PerCpuHashMap<ErrnoKey, u64> = PerCpuHashMap::with_max_entries(1, 0);
/// Per-thread syscall entry (id, time), for the exit hook.
#[btf_map]
pub static STARTS: TaskStorage<SyscallStart> = TaskStorage::new();
#[map]
pub static TRACED_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(1, 0);
#[map]
pub static PROCS: HashMap<u32, ProcInfo> = HashMap::with_max_entries(1, 0);
#[map]
pub static SYSCALL_FILTER: Array<u8> = Array::with_max_entries(MAX_SYSCALLS, 0);
/// Tgids of exited processes (`flags::EXIT_NOTICES`): one `u32` per record.
/// Sized by the command that reads it.
#[map]
pub static PROC_EXITS: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::COUNT, 0);

#[inline(always)]
pub fn count_drop(reason: u32) {
    if let Some(p) = DROPS.get_ptr_mut(reason) {
        unsafe { *p += 1 };
    }
}
