//! Map operations aya 0.14 does not offer: the batch commands (Linux 5.6+),
//! which read or delete thousands of entries of a hash map in one call
//! where aya's iterator makes two calls per entry.
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{maps::MapData, Pod};

/// `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The `bpf_attr` of the batch commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid batch attr whose pointers the callers made
    // point at buffers of the sizes the kernel reads and writes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Every entry of hash map `map`: its keys, and `per_key` values for each
/// (the number of possible CPUs for a per-CPU map, else 1), key i's values
/// at `values[i * per_key..(i + 1) * per_key]`. Entries added or removed
/// meanwhile may or may not be seen; the others are seen once each.
pub fn lookup_all<K: Pod + Default, V: Pod + Default>(
    map: &MapData,
    per_key: usize,
) -> io::Result<(Vec<K>, Vec<V>)> {
    // The kernel writes round_up(value_size, 8) bytes per CPU of a per-CPU map.
    debug_assert!(per_key == 1 || size_of::<V>().is_multiple_of(8));
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    let mut chunk = 4096usize;
    // A hash map's batch position is a bucket number.
    let (mut in_batch, mut out_batch) = (0u32, 0u32);
    let mut first = true;
    loop {
        let start = keys.len();
        keys.resize(start + chunk, K::default());
        values.resize((start + chunk) * per_key, V::default());
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::from_ref(&in_batch) as u64
            },
            out_batch: std::ptr::from_mut(&mut out_batch) as u64,
            keys: keys[start..].as_mut_ptr() as u64,
            values: values[start * per_key..].as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd,
            ..Default::default()
        };
        let res = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let got = attr.count as usize;
        keys.truncate(start + got);
        values.truncate((start + got) * per_key);
        match res {
            // (The kernel skips empty buckets itself: a call that copies
            // nothing without saying ENOENT would be a kernel bug; stop.)
            Ok(()) if got == 0 => break,
            Ok(()) => {}
            // The end of the map (the last entries, if any, are in this call's).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            // One bucket holds more entries than fit: a bigger chunk.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && got == 0 => {
                chunk *= 2;
                continue;
            }
            Err(e) => return Err(e),
        }
        in_batch = out_batch;
        first = false;
    }
    Ok((keys, values))
}

/// Write `values[i]` at `keys[i]`, in as few calls as the kernel allows
/// (an array's elements, a hash map's entries).
pub fn update_all<K: Pod, V: Pod>(map: &MapData, keys: &[K], values: &[V]) -> io::Result<()> {
    assert_eq!(keys.len(), values.len());
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let mut done = 0;
    while done < keys.len() {
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: (keys.len() - done) as u32,
            map_fd: fd,
            ..Default::default()
        };
        let res = bpf(BPF_MAP_UPDATE_BATCH, &mut attr);
        done += attr.count as usize;
        match res {
            Ok(()) => {}
            // Interrupted part way: go on from where it stopped.
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && attr.count > 0 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Delete `keys` from hash map `map`, in as few calls as the kernel allows
/// (it stops at a key that is not there: that one is skipped).
pub fn delete_all<K: Pod>(map: &MapData, keys: &[K]) -> io::Result<()> {
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let mut rest = keys;
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: rest.len() as u32,
            map_fd: fd,
            ..Default::default()
        };
        match bpf(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                rest = &rest[(attr.count as usize + 1).min(rest.len())..];
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An array map created with `BPF_F_MMAPABLE`, mapped into this process:
/// its elements read and written without a system call. The kernel's
/// programs update them meanwhile; reads and writes are single aligned
/// 64-bit accesses, or whole elements for keys written once.
pub struct Mmap<T> {
    ptr: *mut T,
    len: usize,
    bytes: usize,
    /// The map stays open as long as it is mapped here.
    _map: MapData,
}

// SAFETY: the mapping is shared memory owned by this value; the accesses
// below are volatile or atomic.
unsafe impl<T: Send> Send for Mmap<T> {}

impl<T: Pod> Mmap<T> {
    /// Map the `len` elements of array `map` (`len` must be its max_entries).
    pub fn new(map: MapData, len: usize) -> io::Result<Self> {
        // The kernel lays the elements out every round_up(size, 8) bytes.
        assert!(size_of::<T>().is_multiple_of(8) && len > 0);
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let bytes = (size_of::<T>() * len).div_ceil(page) * page;
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the map's fd, of the size the kernel allows.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
            bytes,
            _map: map,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Element `i` as it is now.
    pub fn get(&self, i: usize) -> T {
        assert!(i < self.len);
        // SAFETY: in bounds of the mapping; T is plain data.
        unsafe { std::ptr::read_volatile(self.ptr.add(i)) }
    }

    pub fn set(&mut self, i: usize, v: T) {
        assert!(i < self.len);
        // SAFETY: as in `get`.
        unsafe { std::ptr::write_volatile(self.ptr.add(i), v) }
    }
}

impl<T> Drop for Mmap<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.bytes) };
    }
}
