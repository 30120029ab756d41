//! Attaching a loaded tracepoint program with a BPF cookie.
//!
//! aya 0.14's `TracePoint::attach` takes no cookie, and a tracepoint program
//! cannot tell which tracepoint fired otherwise (the kernel overwrites the
//! record's `common_type` with a pt_regs pointer before BPF runs). So this does
//! what aya does for uprobes: `perf_event_open` on the tracepoint, then
//! `BPF_LINK_CREATE` (BPF_PERF_EVENT) with the cookie. The returned fds own
//! the attachment: dropping them (or the process dying) detaches; nothing is pinned.
use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `PERF_FLAG_FD_CLOEXEC` from linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `BPF_LINK_CREATE` in `enum bpf_cmd`.
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_PERF_EVENT` in `enum bpf_attach_type`.
const BPF_PERF_EVENT: u32 = 41;

/// One attachment: the perf event and the link holding the program on it.
pub struct CookieLink {
    _link: OwnedFd,
    _perf: OwnedFd,
}

/// Attach `prog` to the tracepoint with tracefs id `tp_id`; the program reads
/// `cookie` with `bpf_get_attach_cookie`.
pub fn attach_tracepoint(prog: BorrowedFd<'_>, tp_id: u64, cookie: u64) -> io::Result<CookieLink> {
    // struct perf_event_attr: type @0 (u32), size @4 (u32), config @8,
    // sample_period @16; the rest zero. 128 bytes is a size every kernel since
    // 5.x accepts (larger than it knows is fine when the tail is zero).
    let mut attr = [0u64; 16];
    attr[0] = u64::from(PERF_TYPE_TRACEPOINT) | ((std::mem::size_of_val(&attr) as u64) << 32);
    attr[1] = tp_id;
    attr[2] = 1;
    let perf = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if perf < 0 {
        return Err(io::Error::last_os_error());
    }
    let perf = unsafe { OwnedFd::from_raw_fd(perf as i32) };
    // union bpf_attr, link_create: prog_fd @0, target_fd @4, attach_type @8,
    // flags @12, perf_event.bpf_cookie @16.
    let mut battr = [0u32; 16];
    battr[0] = prog.as_raw_fd() as u32;
    battr[1] = perf.as_raw_fd() as u32;
    battr[2] = BPF_PERF_EVENT;
    battr[4] = cookie as u32;
    battr[5] = (cookie >> 32) as u32;
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            battr.as_ptr(),
            std::mem::size_of_val(&battr) as libc::c_uint,
        )
    };
    if link < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CookieLink {
        _link: unsafe { OwnedFd::from_raw_fd(link as i32) },
        _perf: perf,
    })
}
