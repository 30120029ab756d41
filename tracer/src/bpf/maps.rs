//! Map operations aya 0.14 does not offer.
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{maps::MapData, Pod};

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

/// The `bpf_attr` of the element commands.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Take entry `key` out of hash map `map`: its value is copied into `value`
/// (one element per possible CPU for a per-CPU map) and the entry deleted in
/// the same call, under the kernel's bucket lock, so no update made through
/// the map's own operations falls between the read and the delete. `Ok(false)`
/// when there is no such entry.
///
/// Hash maps support this since Linux 5.14; on older kernels it fails with
/// EINVAL (or ENOTSUPP) and callers fall back to a lookup and a delete.
pub fn lookup_and_delete<K: Pod, V: Pod>(
    map: &MapData,
    key: &K,
    value: &mut [V],
) -> io::Result<bool> {
    // The kernel writes round_up(value_size, 8) bytes per CPU of a per-CPU map.
    debug_assert!(value.len() == 1 || size_of::<V>().is_multiple_of(8));
    let attr = ElemAttr {
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `attr` points at a live key and at a buffer of the size the
    // kernel writes for this map (the caller's map types match the map's).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            &attr as *const ElemAttr,
            size_of::<ElemAttr>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        return Ok(false);
    }
    Err(e)
}
