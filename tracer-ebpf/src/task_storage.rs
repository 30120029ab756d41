//! Task-local storage (`BPF_MAP_TYPE_TASK_STORAGE`, Linux 5.11+): per-thread
//! state that the kernel hangs off the task itself. A lookup is a pointer
//! chase through a per-map cache slot, far cheaper than a hash map keyed by
//! tid, and the kernel frees it when the thread exits. aya-ebpf 0.2 has no
//! wrapper for it, so this is one in its BTF-map style.
//!
//! Kernels before 5.11 have no task storage. There user space rewrites the
//! map's definition in the object before loading it (`bpf/compat.rs`): the
//! same map becomes a preallocated hash map keyed by thread id, which the
//! `*_by_tid` methods use. Which set a program calls is decided by the frozen
//! `FLAGS` global (`lacks` bits), so the verifier only ever sees the one that fits the map.
use core::{ffi::c_void, ptr};

use aya_ebpf::helpers::generated::{
    bpf_get_current_task_btf, bpf_map_delete_elem, bpf_map_lookup_elem, bpf_map_update_elem,
    bpf_task_storage_get,
};

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
                self.as_map(),
                bpf_get_current_task_btf(),
                ptr::null_mut(),
                flags,
            )
        };
        unsafe { p.cast::<T>().as_mut() }
    }

    fn as_map(&self) -> *mut c_void {
        ptr::from_ref(self).cast_mut().cast::<c_void>()
    }

    /// Fallback (the map is a hash map keyed by thread id): `tid`'s value.
    #[inline(always)]
    pub fn by_tid(&self, tid: u32) -> Option<&mut T> {
        let p = unsafe { bpf_map_lookup_elem(self.as_map(), ptr::from_ref(&tid).cast()) };
        unsafe { p.cast::<T>().as_mut() }
    }

    /// Fallback: set `tid`'s value. `Err`: the map is full.
    #[inline(always)]
    pub fn set_by_tid(&self, tid: u32, value: &T) -> Result<(), i64> {
        let r = unsafe {
            bpf_map_update_elem(
                self.as_map(),
                ptr::from_ref(&tid).cast(),
                ptr::from_ref(value).cast(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(r)
        }
    }

    /// Fallback: forget `tid`'s value.
    #[inline(always)]
    pub fn remove_by_tid(&self, tid: u32) {
        let _ = unsafe { bpf_map_delete_elem(self.as_map(), ptr::from_ref(&tid).cast()) };
    }
}
