//! `tracer trace`: one ring buffer record per completed syscall of the traced
//! processes. `sys_enter` saves the arguments (and reads path arguments from user
//! memory while they are still there) per thread; `sys_exit` sends the record.
//! Every record that cannot be sent is counted in `EVENT_LOST`, per CPU.
use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::bpf_probe_read_kernel as probe_read_kernel_raw,
        generated::bpf_probe_read_user_str,
    },
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::RawTracePointContext,
};
use tracer_common::{
    abi, event_flags, event_kind, event_lost, flags::FILTER_SYSCALL, path_spec, SyscallEvent,
    TracePending, MAX_SYSCALLS, SYSCALL_NRS, TRACE_ARGV_MAX, TRACE_MAX_STR, TRACE_STR_LEN,
};

use crate::{
    filter::{current_ids, is_traced},
    maps::{count, FLAGS, SYSCALL_FILTER},
    ring::{ring_full, wakeup_flags, EVENTS, EVENT_LOST},
    syscalls::syscall_index,
    user_str::read_user_str,
};

/// Per syscall number: which arguments are strings (`tracer_common::path_spec`).
#[map]
pub static PATH_ARGS: Array<u32> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// Per thread: the call in progress. Sized by user space (1 entry unless tracing).
#[map]
pub static TRACE_PENDING: HashMap<u32, TracePending> = HashMap::with_max_entries(1, 0);

/// The path arguments of a thread's call in progress.
#[repr(C)]
#[derive(Copy, Clone)]
pub struct StrSlot {
    pub len: [i32; TRACE_MAX_STR],
    pub flags: u32,
    pub _pad: u32,
    pub buf: [[u8; TRACE_STR_LEN]; TRACE_MAX_STR],
}

#[map]
pub static TRACE_STRINGS: HashMap<u32, StrSlot> = HashMap::with_max_entries(1, 0);

/// Where a `StrSlot` is filled before it is copied into `TRACE_STRINGS` (too big for the stack).
#[map]
static STR_SCRATCH: PerCpuArray<StrSlot> = PerCpuArray::with_max_entries(1, 0);

/// Where an exec's argv elements are gathered: twice `TRACE_STR_LEN`, so that a
/// read of up to `TRACE_STR_LEN` bytes at any offset below `TRACE_STR_LEN` stays
/// inside (the verifier checks that); the first half is what is kept.
#[map]
static ARGV_SCRATCH: PerCpuArray<[u8; 2 * TRACE_STR_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// Ring buffer records with their strings: a call with one string argument.
#[repr(C)]
struct EventWithOneString {
    head: SyscallEvent,
    strs: [[u8; TRACE_STR_LEN]; 1],
}

/// A call with two string arguments (rename, link, an exec's path and argv).
#[repr(C)]
struct EventWithTwoStrings {
    head: SyscallEvent,
    strs: [[u8; TRACE_STR_LEN]; 2],
}

/// Read the argv array at `argv` into `dst`: its first elements (up to
/// `TRACE_ARGV_MAX`), each with its NUL, as many as fit. Returns the bytes kept,
/// or a negative errno when not even the array could be read; marks in `flags`
/// a cut last element (`STR1_TRUNCATED`) and elements left out (`ARGV_MORE`).
#[inline(always)]
fn read_argv(argv: u64, dst: &mut [u8; TRACE_STR_LEN], flags: &mut u32) -> i32 {
    *flags |= event_flags::STR1_ARGV;
    let Some(buf) = ARGV_SCRATCH.get_ptr_mut(0) else {
        return -12; // ENOMEM: cannot happen (a one-entry per-CPU array)
    };
    let buf = unsafe { &mut *buf };
    let mut off = 0usize;
    for i in 0..=TRACE_ARGV_MAX {
        let p = match unsafe { bpf_probe_read_user((argv + 8 * i as u64) as *const u64) } {
            Ok(p) => p,
            Err(e) if i == 0 => return e as i32,
            Err(_) => {
                *flags |= event_flags::ARGV_MORE;
                break;
            }
        };
        if p == 0 {
            break;
        }
        if i == TRACE_ARGV_MAX || off >= TRACE_STR_LEN {
            *flags |= event_flags::ARGV_MORE;
            break;
        }
        let at = off & (TRACE_STR_LEN - 1);
        let n = unsafe {
            bpf_probe_read_user_str(
                buf.as_mut_ptr().add(at).cast(),
                TRACE_STR_LEN as u32,
                p as *const _,
            )
        };
        if n <= 0 {
            *flags |= event_flags::ARGV_MORE;
            break;
        }
        let n = n as usize;
        // Cut: it ends beyond what is kept, or filled the whole read and the
        // byte after it in user memory is not the NUL.
        let cut = at + n > TRACE_STR_LEN
            || (n == TRACE_STR_LEN
                && unsafe { bpf_probe_read_user((p + TRACE_STR_LEN as u64 - 1) as *const u8) }
                    .is_ok_and(|b| b != 0));
        if cut {
            *flags |= event_flags::STR1_TRUNCATED;
            off = TRACE_STR_LEN;
        } else {
            off = at + n;
        }
    }
    unsafe {
        probe_read_kernel_raw(
            dst.as_mut_ptr().cast(),
            TRACE_STR_LEN as u32,
            buf.as_ptr().cast(),
        )
    };
    off.min(TRACE_STR_LEN) as i32
}

#[inline(always)]
fn read_strings(spec: u32, args: &[u64; 6], slot: &mut StrSlot) -> u32 {
    slot.flags = 0;
    let mut n = 0;
    let Some(&ptr) = args.get((path_spec::arg(spec, 0) as usize).wrapping_sub(1)) else {
        return 0;
    };
    let (len, cut) = read_user_str(ptr, &mut slot.buf[0]);
    slot.len[0] = len;
    if cut {
        slot.flags |= event_flags::STR0_TRUNCATED;
    }
    n += 1;
    let Some(&ptr) = args.get((path_spec::arg(spec, 1) as usize).wrapping_sub(1)) else {
        return n;
    };
    if spec & path_spec::ARGV != 0 {
        slot.len[1] = read_argv(ptr, &mut slot.buf[1], &mut slot.flags);
        return n + 1;
    }
    let (len, cut) = read_user_str(ptr, &mut slot.buf[1]);
    slot.len[1] = len;
    if cut {
        slot.flags |= event_flags::STR1_TRUNCATED;
    }
    n + 1
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn trace_enter(ctx: RawTracePointContext) -> i32 {
    let _ = try_trace_enter(&ctx);
    0
}

/// Keep the call's arguments (and read its strings) for `trace_exit`. `None`:
/// not traced.
#[inline(always)]
fn try_trace_enter(ctx: &RawTracePointContext) -> Option<()> {
    let flags = FLAGS.load();
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_traced(flags) {
        return None;
    }
    let tid = pid_tgid as u32;
    let nr = syscall_index(flags, ctx.arg(1));
    if nr >= MAX_SYSCALLS {
        return None;
    }
    if flags & FILTER_SYSCALL != 0 {
        match SYSCALL_FILTER.get(nr) {
            Some(&on) if on != 0 => {}
            _ => return None,
        }
    }
    let regs: *const pt_regs = ctx.arg(0);
    // x86_64 syscall arguments: rdi, rsi, rdx, r10, r8, r9; i386 ones: ebx,
    // ecx, edx, esi, edi, ebp (the low halves). (Reading the kernel's own
    // pt_regs does not fail in practice; if it did, the call is still
    // reported, with zeros.) Only the 88 bytes from bp to di of the 168-byte
    // struct are read.
    let window = unsafe { (regs as *const u8).add(REGS_WINDOW_START) } as *const [u64; 11];
    let i386 = nr / SYSCALL_NRS == abi::I386;
    let args = match unsafe { bpf_probe_read_kernel(window) } {
        Ok(w) if i386 => [w[1], w[7], w[8], w[9], w[10], w[0]].map(|r| r & 0xffff_ffff),
        Ok(w) => [w[10], w[9], w[8], w[3], w[5], w[4]],
        Err(_) => [0; 6],
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let spec = PATH_ARGS.get(nr).copied().unwrap_or(0);
    let mut nstr = 0;
    if spec != 0 {
        // A thread's string slot stays from call to call (overwritten in place,
        // removed when the thread exits): no map update on the hot path.
        match TRACE_STRINGS.get_ptr_mut(&tid) {
            Some(slot) => nstr = read_strings(spec, &args, unsafe { &mut *slot }),
            None => {
                if let Some(slot) = STR_SCRATCH.get_ptr_mut(0) {
                    let slot = unsafe { &mut *slot };
                    nstr = read_strings(spec, &args, slot);
                    if TRACE_STRINGS.insert(&tid, slot, 0).is_err() {
                        count(&EVENT_LOST, event_lost::STRINGS_FULL);
                        nstr = TRACE_MAX_STR as u32 + 1;
                    }
                }
            }
        }
    }
    // Likewise the entry record: written in place, marked consumed at exit.
    match TRACE_PENDING.get_ptr_mut(&tid) {
        Some(p) => {
            let p = unsafe { &mut *p };
            p.nr = nr;
            p.nstr = nstr;
            p.enter_ns = now;
            p.args = args;
        }
        None => {
            let pending = TracePending {
                nr,
                nstr,
                enter_ns: now,
                args,
            };
            if TRACE_PENDING.insert(&tid, &pending, 0).is_err() {
                count(&EVENT_LOST, event_lost::PENDING_FULL);
            }
        }
    }
    Some(())
}

/// x86_64 `struct pt_regs`: bp at 32, bx 40, r11 48, r10 56, r9 64, r8 72,
/// ax 80, cx 88, dx 96, si 104, di 112. The syscall arguments are di, si, dx,
/// r10, r8, r9 (x86_64) or bx, cx, dx, si, di, bp (i386).
const REGS_WINDOW_START: usize = core::mem::offset_of!(pt_regs, rbp);
const _: () = assert!(core::mem::offset_of!(pt_regs, rdi) == REGS_WINDOW_START + 10 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, rsi) == REGS_WINDOW_START + 9 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, rdx) == REGS_WINDOW_START + 8 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, rcx) == REGS_WINDOW_START + 7 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, r10) == REGS_WINDOW_START + 3 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, r8) == REGS_WINDOW_START + 5 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, r9) == REGS_WINDOW_START + 4 * 8);
const _: () = assert!(core::mem::offset_of!(pt_regs, rbx) == REGS_WINDOW_START + 8);

/// `TracePending::nr` of a thread that is not inside a traced call.
const NO_CALL: u32 = u32::MAX;

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn trace_exit(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    emit(&ctx, ret, 0);
    0
}

/// A thread that dies inside a call (exit, exit_group, a fatal signal) never
/// reaches sys_exit: its call is sent here, as strace's `= ?`.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn trace_task_exit(ctx: RawTracePointContext) -> i32 {
    emit(&ctx, 0, event_flags::NO_RETURN);
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = TRACE_PENDING.remove(&tid);
    let _ = TRACE_STRINGS.remove(&tid);
    0
}

/// A thread other than the leader that execs takes over the leader's pid (the
/// kernel's de_thread): move its call in progress (the execve) to the new tid,
/// so that sys_exit finds it.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn trace_exec_tid(ctx: RawTracePointContext) -> i32 {
    let _ = try_trace_exec_tid(&ctx);
    0
}

#[inline(always)]
fn try_trace_exec_tid(ctx: &RawTracePointContext) -> Option<()> {
    let old: u32 = ctx.arg::<u64>(1) as u32;
    let tid = bpf_get_current_pid_tgid() as u32;
    if old == tid {
        return None;
    }
    if let Some(p) = TRACE_PENDING.get_ptr(&old) {
        let p = unsafe { *p };
        if TRACE_PENDING.insert(&tid, &p, 0).is_err() {
            count(&EVENT_LOST, event_lost::PENDING_FULL);
        }
        let _ = TRACE_PENDING.remove(&old);
    }
    if let Some(s) = TRACE_STRINGS.get_ptr(&old) {
        // Too big for the stack: copied through the scratch slot.
        if let Some(scratch) = STR_SCRATCH.get_ptr_mut(0) {
            unsafe { probe_read_kernel_raw(scratch.cast(), size_of::<StrSlot>() as u32, s.cast()) };
            if TRACE_STRINGS.insert(&tid, unsafe { &*scratch }, 0).is_err() {
                count(&EVENT_LOST, event_lost::STRINGS_FULL);
            }
        }
        let _ = TRACE_STRINGS.remove(&old);
    }
    Some(())
}

#[inline(always)]
fn fill(head: &mut SyscallEvent, p: &TracePending, ret: i64, flags: u32) {
    let (tid, tgid) = current_ids();
    head.kind = event_kind::SYSCALL;
    head.nr = p.nr;
    head.tgid = tgid;
    head.tid = tid;
    head.enter_ns = p.enter_ns;
    head.exit_ns = unsafe { bpf_ktime_get_ns() };
    head.args = p.args;
    head.ret = ret;
    head.nstr = 0;
    head.flags = flags;
    head.str_len = [0; TRACE_MAX_STR];
}

/// A path that was not yet paged in at entry (fresh .rodata) cannot be read by a
/// non-sleeping program; the kernel has faulted it in by the time the call
/// returns, so read it again then, into the record.
#[inline(always)]
fn retry_at_exit(
    nr: u32,
    i: usize,
    args: &[u64; 6],
    dst: &mut [u8; TRACE_STR_LEN],
    head: &mut SyscallEvent,
) {
    let spec = PATH_ARGS.get(nr).copied().unwrap_or(0);
    if spec & path_spec::NO_RETRY != 0 {
        return;
    }
    let byte = path_spec::arg(spec, i as u32);
    let Some(&ptr) = args.get((byte as usize).wrapping_sub(1)) else {
        return;
    };
    let (len, cut) = read_user_str(ptr, dst);
    if let Some(l) = head.str_len.get_mut(i) {
        *l = len;
    }
    if cut {
        head.flags |= if i == 0 {
            event_flags::STR0_TRUNCATED
        } else {
            event_flags::STR1_TRUNCATED
        };
    }
}

#[inline(always)]
fn emit<C: aya_ebpf::EbpfContext>(ctx: &C, ret: i64, flags: u32) {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(pp) = TRACE_PENDING.get_ptr_mut(&tid) else {
        return;
    };
    let p = unsafe { *pp };
    if p.nr == NO_CALL {
        return;
    }
    unsafe { (*pp).nr = NO_CALL };
    if p.nstr == 0 {
        match EVENTS.reserve::<SyscallEvent>(0) {
            Some(mut e) => {
                let head = unsafe { &mut *e.as_mut_ptr() };
                fill(head, &p, ret, flags);
                e.submit(wakeup_flags());
            }
            None => ring_full(ctx),
        }
        return;
    }
    let slot = if p.nstr as usize > TRACE_MAX_STR {
        None
    } else {
        TRACE_STRINGS.get_ptr(&tid)
    };
    let Some(slot) = slot else {
        // The strings could not be kept at entry (already counted).
        match EVENTS.reserve::<SyscallEvent>(0) {
            Some(mut e) => {
                let head = unsafe { &mut *e.as_mut_ptr() };
                fill(head, &p, ret, flags | event_flags::STR_MISSING);
                e.submit(wakeup_flags());
            }
            None => ring_full(ctx),
        }
        return;
    };
    let slot = unsafe { &*slot };
    if p.nstr == 1 {
        match EVENTS.reserve::<EventWithOneString>(0) {
            Some(mut e) => {
                let ev = unsafe { &mut *e.as_mut_ptr() };
                fill(&mut ev.head, &p, ret, flags | slot.flags);
                ev.head.nstr = 1;
                ev.head.str_len = slot.len;
                unsafe {
                    probe_read_kernel_raw(
                        ev.strs.as_mut_ptr().cast(),
                        TRACE_STR_LEN as u32,
                        slot.buf.as_ptr().cast(),
                    )
                };
                if slot.len[0] < 0 {
                    retry_at_exit(p.nr, 0, &p.args, &mut ev.strs[0], &mut ev.head);
                }
                e.submit(wakeup_flags());
            }
            None => ring_full(ctx),
        }
    } else {
        match EVENTS.reserve::<EventWithTwoStrings>(0) {
            Some(mut e) => {
                let ev = unsafe { &mut *e.as_mut_ptr() };
                fill(&mut ev.head, &p, ret, flags | slot.flags);
                ev.head.nstr = 2;
                ev.head.str_len = slot.len;
                unsafe {
                    probe_read_kernel_raw(
                        ev.strs.as_mut_ptr().cast(),
                        2 * TRACE_STR_LEN as u32,
                        slot.buf.as_ptr().cast(),
                    )
                };
                if slot.len[0] < 0 {
                    retry_at_exit(p.nr, 0, &p.args, &mut ev.strs[0], &mut ev.head);
                }
                if slot.len[1] < 0 {
                    retry_at_exit(p.nr, 1, &p.args, &mut ev.strs[1], &mut ev.head);
                }
                e.submit(wakeup_flags());
            }
            None => ring_full(ctx),
        }
    }
}
