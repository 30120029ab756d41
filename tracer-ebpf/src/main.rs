//! The kernel side of tracer: small, boring programs that filter in the kernel
//! and aggregate into per-CPU maps. User space decides what to attach.
#![no_std]
#![no_main]

mod exec;
mod filter;
mod kprobe;
mod maps;
mod probe;
mod procs;
mod ring;
mod syscalls;
mod task_storage;
mod trace;
mod tracepoint;
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
