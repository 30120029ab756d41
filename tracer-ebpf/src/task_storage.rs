//! Task-local storage (`BPF_MAP_TYPE_TASK_STORAGE`, Linux 5.11+): per-thread
//! state that the kernel hangs off the task itself. A lookup is a pointer
//! chase through a per-map cache slot, far cheaper than a hash map keyed by
//! tid, and the kernel frees it when the thread exits. aya-ebpf 0.2 has no
//! wrapper for it, so this is one in its BTF-map style.
use core::{ffi::c_void, ptr};

use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get};

const BPF_MAP_TYPE_TASK_STORAGE: usize = 29;
const BPF_F_NO_PREALLOC: usize = 1;
const BPF_LOCAL_STORAGE_GET_F_CREATE: u64 = 1;

/// A BTF map definition, read by the loader from the `.maps` section.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; BPF_MAP_TYPE_TASK_STORAGE],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC],
}

// SAFETY: placeholder pointers patched by the loader, never dereferenced here.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
        }
    }

    /// The current thread's value; with `create`, a zeroed one is made if absent.
    #[inline(always)]
    pub fn current(&self, create: bool) -> Option<&mut T> {
        let flags = if create {
            BPF_LOCAL_STORAGE_GET_F_CREATE
        } else {
            0
        };
        let p = unsafe {
            bpf_task_storage_get(
                ptr::from_ref(self).cast_mut().cast::<c_void>(),
                bpf_get_current_task_btf(),
                ptr::null_mut(),
                flags,
            )
        };
        unsafe { p.cast::<T>().as_mut() }
    }
}
