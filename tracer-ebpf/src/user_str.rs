//! Strings read from user memory into fixed buffers, for the event records of
//! `tracer trace` and `tracer exec`.
use aya_ebpf::helpers::{bpf_probe_read_user, generated::bpf_probe_read_user_str};
use tracer_common::{EXEC_ARG_LEN, TRACE_STR_LEN};

/// Read the user string at `ptr` into `dst`; returns bytes read with the NUL, or
/// a negative errno, and whether the string was longer than `dst`.
#[inline(always)]
pub fn read_user_str(ptr: u64, dst: &mut [u8; TRACE_STR_LEN]) -> (i32, bool) {
    let n = unsafe {
        bpf_probe_read_user_str(
            dst.as_mut_ptr().cast(),
            TRACE_STR_LEN as u32,
            ptr as *const _,
        )
    };
    let mut truncated = false;
    if n == TRACE_STR_LEN as i64 {
        // Full buffer: either exactly TRACE_STR_LEN - 1 bytes or cut. The byte at
        // that position in user memory tells which.
        if let Ok(b) = unsafe { bpf_probe_read_user((ptr + TRACE_STR_LEN as u64 - 1) as *const u8) }
        {
            truncated = b != 0;
        }
    }
    (n as i32, truncated)
}

/// `read_user_str` for an exec argument slot.
#[inline(always)]
pub fn read_user_arg(ptr: u64, dst: &mut [u8; EXEC_ARG_LEN]) -> (i32, bool) {
    let n = unsafe {
        bpf_probe_read_user_str(
            dst.as_mut_ptr().cast(),
            EXEC_ARG_LEN as u32,
            ptr as *const _,
        )
    };
    (n as i32, n == EXEC_ARG_LEN as i64)
}
