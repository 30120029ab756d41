//! The kernel side of tracer: small, boring programs that filter in the kernel
//! and aggregate into per-CPU maps. User space decides what to attach.
//!
//! One module per hook family, each with its own maps beside its hooks;
//! `maps.rs` holds only what several families share, `ring.rs` the event ring
//! buffer. A hook with real logic is a thin `#[hook]` wrapper over a `try_*`
//! function that returns `None` where it stops early (filtered out, nothing
//! to record), as in kunai and aya-template; the wrapper returns 0.
#![no_std]
#![no_main]
// `${concat(...)}` names the slot copies of programs (slots.rs).
#![feature(macro_metavar_expr_concat)]
// `atomic_xadd` for the counters several CPUs share (syscalls.rs): bpfel's
// core has no 64-bit atomic types.
#![feature(core_intrinsics)]
#![allow(internal_features)]

// First: the macro is used by the hook modules below.
#[macro_use]
mod slots;

mod exec;
mod filter;
mod kprobe;
mod maps;
mod probe;
mod procs;
mod profile;
mod ring;
mod syscalls;
mod task_storage;
mod tcp;
mod trace;
mod tracepoint;
mod unwind;
mod uprobe;
mod user_str;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
