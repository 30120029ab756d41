//! `tracer profile`'s user-stack walker: the rules of `.eh_frame`, as tables
//! user space derives per object (`UNWIND_ROWS`) and places per process
//! (`UNWIND_PROCS`), so that programs built without frame pointers (most of
//! Debian's) unwind to their entry point. Where an object has no table,
//! frame pointers are followed (`mode::AUTO`).
//!
//! A walk runs in `profile_unwind_1`, a few frames a run, tail-calling
//! itself until the stack ends: each run's loops stay small for the
//! verifier of 5.10 (one program walking 127 frames is refused: a million
//! instructions). The walk's
//! state (registers, frames so far, the sample's key) lives in a per-CPU
//! slot: a perf event program does not nest on its CPU. The stack is then
//! stored by the hash of its frames, and the sample counted under its id.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_user},
    macros::{map, perf_event},
    maps::{Array, HashMap, PerCpuArray, ProgramArray},
    programs::PerfEventContext,
    EbpfContext as _,
};
use tracer_common::{
    profile::{drops, Notice, StackKey},
    unwind::{
        arch, cfa, end, mode, reg, table, Mapping, ProcMaps, Row, UserStack, MAX_FRAMES,
        MAX_MAPPINGS,
    },
};

use crate::{maps::count, profile::PROFILE_DROPS};

/// `tracer_common::unwind::mode`.
#[unsafe(no_mangle)]
static UNWIND_MODE: u64 = mode::FP;
/// The register model, by `tracer_common::unwind::arch` index.
#[unsafe(no_mangle)]
static UNWIND_ARCH: [u64; arch::COUNT] = [0; arch::COUNT];

/// Every object's rows, each object's together (`Mapping::first`).
#[map]
pub static UNWIND_ROWS: Array<Row> = Array::with_max_entries(1, 0);
/// Per process (tgid): its executable mappings.
#[map]
pub static UNWIND_PROCS: HashMap<u32, ProcMaps> = HashMap::with_max_entries(1, 0);
/// Walked stacks, by id (the low 31 bits of their hash).
#[map]
pub static PROFILE_USTACKS: HashMap<u32, UserStack> = HashMap::with_max_entries(1, 0);
#[map]
static UNWIND_STATE: PerCpuArray<State> = PerCpuArray::with_max_entries(1, 0);

/// Frames walked per run of the walker.
const FRAMES_PER_STAGE: usize = 4;
/// Steps of the binary searches: 256 mappings, 16M rows per object.
const MAPPING_STEPS: usize = 9;
const ROW_STEPS: usize = 24;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A walk in progress.
#[repr(C)]
pub struct State {
    pc: u64,
    sp: u64,
    fp: u64,
    key: StackKey,
    /// What the sample weighs (1 for a CPU sample).
    weight: u64,
    /// Why frame pointers were followed (`end::NO_INFO`, `end::TABLE_FULL`,
    /// `end::PENDING`; 0: they were not): a walk that then does not complete
    /// ended for that (a pending one, however it ended).
    fallback: u32,
    _pad: u32,
    stack: UserStack,
}

#[inline(always)]
fn arch(i: usize) -> u64 {
    unsafe { core::ptr::read_volatile(&UNWIND_ARCH[i]) }
}

#[inline(always)]
fn unwind_mode() -> u64 {
    unsafe { core::ptr::read_volatile(&UNWIND_MODE) }
}

/// Whether samples walk user stacks here (not `--unwind fp`).
#[inline(always)]
pub fn walking() -> bool {
    unwind_mode() != mode::FP
}

#[inline(always)]
fn kread(addr: u64) -> Option<u64> {
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
}

#[inline(always)]
fn uread(addr: u64) -> Option<u64> {
    unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
}

/// The user registers of the sampled task: the sample's own when it was
/// taken in user mode, else those saved at the top of the task's kernel
/// stack on its entry. `None`: a kernel thread (no user mode).
#[inline(always)]
fn user_regs(regs: u64) -> Option<(u64, u64, u64)> {
    let user = |base: u64| {
        kread(base + arch(arch::MODE))
            .is_some_and(|m| m & arch(arch::MODE_MASK) == arch(arch::MODE_USER))
    };
    let base = if user(regs) {
        regs
    } else {
        let task = unsafe { bpf_get_current_task() };
        let stack = kread(task + arch(arch::TASK_STACK))?;
        let base = stack + arch(arch::THREAD_SIZE) - arch(arch::PT_REGS_SIZE);
        if !user(base) {
            return None;
        }
        base
    };
    Some((
        kread(base + arch(arch::PC))?,
        kread(base + arch(arch::SP))?,
        kread(base + arch(arch::FP))?,
    ))
}

/// Start walking the sampled task's user stack for `key`: true when the
/// walk took over (it counts the sample); false to count it without one.
#[inline(always)]
pub fn start(ctx: &PerfEventContext, key: &StackKey, weight: u64) -> bool {
    let Some(st) = UNWIND_STATE.get_ptr_mut(0) else {
        return false;
    };
    let st = unsafe { &mut *st };
    // A perf event program's context is, at run time, the kernel's
    // `bpf_perf_event_data_kern`, whose first member points at the sample's
    // registers (the verifier rewrites constant-offset reads of
    // `bpf_perf_event_data::regs`; the offsets here come from a global).
    let Some(regs) = kread(ctx.as_ptr() as u64) else {
        return false;
    };
    let Some((pc, sp, fp)) = user_regs(regs) else {
        return false;
    };
    st.pc = pc;
    st.sp = sp;
    st.fp = fp;
    st.key = *key;
    st.weight = weight;
    st.fallback = 0;
    st.stack.len = 0;
    st.stack.hash = FNV_OFFSET;
    unsafe { WALK_STAGE_1.tail_call(ctx, 0) };
    // Not taken (no program in the slot): count without the user stack.
    false
}

/// The walker: `profile_unwind_1` walks `FRAMES_PER_STAGE` frames and
/// tail-calls itself through `WALK_STAGE_1` (slot 0) until the stack ends
/// (at most 33 runs, the kernel's tail-call limit: 132 frames, more than
/// `MAX_FRAMES`). One program, verified once: 16 distinct stage programs
/// (no program in an array it calls through) took 2.3 s to load on 6.18.
/// The array refers back to its program; the kernel empties it when
/// tracer's last fd to it closes.
#[map]
pub static WALK_STAGE_1: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[perf_event]
pub fn profile_unwind_1(ctx: PerfEventContext) -> u32 {
    stage(&ctx, Some(&WALK_STAGE_1))
}
const _: () = assert!(33 * FRAMES_PER_STAGE > MAX_FRAMES);

/// One stage: a few frames, then the next stage (or the end).
#[inline(always)]
fn stage(ctx: &PerfEventContext, next: Option<&ProgramArray>) -> u32 {
    let Some(st) = UNWIND_STATE.get_ptr_mut(0) else {
        return 0;
    };
    let st = unsafe { &mut *st };
    for _ in 0..FRAMES_PER_STAGE {
        if let Some(e) = step(st) {
            finish(st, e);
            return 0;
        }
    }
    if let Some(next) = next {
        unsafe { next.tail_call(ctx, 0) };
    }
    // The last stage, or the next one missing: as deep as a walk goes.
    finish(st, end::TRUNCATED);
    0
}

/// Record the current frame and move to its caller; `Some(end)` when the
/// walk ends here.
#[inline(always)]
fn step(st: &mut State) -> Option<u32> {
    let n = st.stack.len as usize;
    if n >= MAX_FRAMES {
        return Some(end::TRUNCATED);
    }
    let pc = st.pc;
    st.stack.ips[n] = pc;
    st.stack.len = n as u32 + 1;
    st.stack.hash = (st.stack.hash ^ pc).wrapping_mul(FNV_PRIME);
    // A caller's frame is found by its call instruction, before the
    // return address (a call may be a function's last instruction).
    let at = if n == 0 { pc } else { pc - 1 };
    // A pc taken from the registers or from tables is code: outside every
    // mapping, it is in one mapped since they were read (a library being
    // loaded). One reached by frame pointers in code without them may be
    // any number.
    let trusted = n == 0 || st.fallback == 0;
    let m = match mapping(st.key.tgid, st.key.gen, at, trusted) {
        Found::In(m) => m,
        Found::Outside => return Some(end::NO_INFO),
        Found::Asked => return Some(end::PENDING),
        // Not placed yet (its first samples): frame pointers, the walk
        // reported pending however it ends.
        Found::Unknown => Mapping {
            first: PENDING,
            ..Mapping::default()
        },
    };
    // The frame's rule, or why there is none: an object without a table,
    // or a pc its table does not cover (code without an FDE: node's
    // builtins, hand-written assembly).
    let rule = match m.first {
        table::FULL => Err(end::TABLE_FULL),
        PENDING => Err(end::PENDING),
        table::NONE => Err(end::NO_INFO),
        _ => {
            let x = at.wrapping_sub(m.bias);
            match row(m.first, m.rows, x as u32) {
                Some(r) if x <= u32::MAX as u64 && r.cfa != cfa::NONE => Ok(r),
                _ => Err(end::NO_INFO),
            }
        }
    };
    let (ra, sp, fp) = match rule {
        Err(why) => {
            if unwind_mode() != mode::AUTO {
                return Some(why);
            }
            // Frame pointers; a walk that goes wrong from here ended for
            // want of a table.
            if st.fallback != end::PENDING {
                st.fallback = why;
            }
            if st.fp == 0 {
                return Some(end::COMPLETE);
            }
            let cfa = st.fp.wrapping_add(arch(arch::FP_CFA_OFF));
            let ra = uread(cfa.wrapping_add(arch(arch::FP_RA_OFF)));
            let fp = uread(cfa.wrapping_add(arch(arch::FP_FP_OFF)));
            match (ra, fp) {
                (Some(ra), Some(fp)) => (ra, cfa, fp),
                _ => return Some(why),
            }
        }
        Ok(row) => {
            let cfa = match row.cfa {
                cfa::SP => st.sp.wrapping_add(row.cfa_off as i64 as u64),
                cfa::FP => st.fp.wrapping_add(row.cfa_off as i64 as u64),
                cfa::PLT => {
                    let after_push = if pc & 15 >= 11 { 8 } else { 0 };
                    st.sp.wrapping_add(row.cfa_off as i64 as u64 + after_push)
                }
                cfa::SP_X8 => st.sp.wrapping_add((row.cfa_off as i64 as u64) << 3),
                cfa::FP_DEREF => match uread(st.fp.wrapping_add(row.cfa_off as i64 as u64)) {
                    Some(c) => c,
                    None => return Some(end::UNREADABLE),
                },
                cfa::END => return Some(end::COMPLETE),
                _ => return Some(end::NO_INFO),
            };
            let ra = match row.ra {
                reg::AT_CFA => uread(cfa.wrapping_add(row.ra_off as i64 as u64)),
                reg::UNDEFINED => return Some(end::COMPLETE),
                _ => return Some(end::NO_INFO),
            };
            let Some(ra) = ra else {
                return Some(end::UNREADABLE);
            };
            let saved = match row.fp {
                reg::AT_CFA => Some(cfa),
                reg::AT_FP => Some(st.fp),
                _ => None,
            };
            let fp = match (row.fp, saved) {
                (_, Some(base)) => match uread(base.wrapping_add(row.fp_off as i64 as u64)) {
                    Some(fp) => fp,
                    None => return Some(end::UNREADABLE),
                },
                // Unchanged (or not recoverable: left as it is, as perf does).
                (_, None) => st.fp,
            };
            (ra, cfa, fp)
        }
    };
    if ra == 0 {
        return Some(end::COMPLETE);
    }
    st.pc = ra;
    st.sp = sp;
    st.fp = fp;
    None
}

/// `Mapping::first` of the stand-in for a process not placed yet (never a
/// table's first row: rows are fewer).
const PENDING: u32 = u32::MAX - 2;

/// Where an address is among a process's mappings.
enum Found {
    In(Mapping),
    /// In none of them: a bad address.
    Outside,
    /// In none of them, for an address that is code: a library loaded
    /// since they were read. User space is asked, once, to read them again.
    Asked,
    /// The process (this generation of it) has no mappings placed yet.
    Unknown,
}

/// The mapping of process `tgid` (its generation `gen`) that holds `addr`;
/// `code`: the address is known to be code (see `Found::Asked`).
#[inline(always)]
fn mapping(tgid: u32, gen: u32, addr: u64, code: bool) -> Found {
    let Some(pm) = UNWIND_PROCS.get_ptr_mut(&tgid) else {
        return Found::Unknown;
    };
    let (len, pgen) = unsafe { ((*pm).len as usize, (*pm).gen) };
    if pgen != gen {
        return Found::Unknown;
    }
    // Read through the map value's address, so the verifier need not
    // track the search's index.
    let base = unsafe { core::ptr::addr_of!((*pm).maps) } as u64;
    let (mut lo, mut hi) = (0usize, len.min(MAX_MAPPINGS));
    for _ in 0..MAPPING_STEPS {
        if lo >= hi {
            break;
        }
        let mid = (lo + hi) / 2;
        let Ok(m) = (unsafe {
            bpf_probe_read_kernel((base + (mid * size_of::<Mapping>()) as u64) as *const Mapping)
        }) else {
            return Found::Outside;
        };
        if addr < m.start {
            hi = mid;
        } else if addr >= m.end {
            lo = mid + 1;
        } else {
            return Found::In(m);
        }
    }
    if !code {
        return Found::Outside;
    }
    unsafe {
        if (*pm).asked == 0 {
            (*pm).asked = 1;
            let n = Notice {
                tgid,
                gen,
                refresh: 1,
                _pad: 0,
            };
            crate::profile::send_notice(&n);
        }
    }
    Found::Asked
}

/// The last row of an object's `rows` rows (from `first`) at or before
/// `pc`.
#[inline(always)]
fn row(first: u32, rows: u32, pc: u32) -> Option<Row> {
    let (mut lo, mut hi) = (0u32, rows);
    for _ in 0..ROW_STEPS {
        if lo >= hi {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        let r = UNWIND_ROWS.get(first.wrapping_add(mid))?;
        if r.pc <= pc {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 {
        return None;
    }
    UNWIND_ROWS.get(first.wrapping_add(lo - 1)).copied()
}

/// Store the walked stack (once per distinct stack) and count the sample
/// under its id.
#[inline(always)]
fn finish(st: &mut State, mut how: u32) {
    // A walk that went through a process not yet placed is pending however
    // it ended: its frame-pointer frames from there cannot be trusted to be
    // whole (a frame-pointer chain of code built without them may end on a
    // zero fp that is no outermost frame).
    if st.fallback == end::PENDING
        || (how != end::COMPLETE && how != end::TRUNCATED && st.fallback != 0)
    {
        how = st.fallback;
    }
    // FNV's low half depends only on the frames' low halves: fold the high
    // half in, or frames that differ above bit 31 share ids.
    let h = st.stack.hash;
    let id = ((h ^ (h >> 32)) as u32) & 0x7fff_ffff;
    let mut key = st.key;
    key.uend = how;
    key.ustack = id as i32;
    match unsafe { PROFILE_USTACKS.get(&id) } {
        Some(s) if s.hash != st.stack.hash || s.len != st.stack.len => {
            // Another stack has this id: counted without the user stack.
            count(&PROFILE_DROPS, drops::USTACK_LOST);
            key.ustack = -1;
        }
        Some(_) => {}
        None => {
            if let Err(e) = PROFILE_USTACKS.insert(&id, &st.stack, BPF_NOEXIST as u64) {
                // -EEXIST: another CPU stored a stack there first.
                if e != -17 {
                    count(&PROFILE_DROPS, drops::USTACK_LOST);
                    key.ustack = -1;
                }
            }
        }
    }
    crate::profile::add(&key, st.weight);
}
