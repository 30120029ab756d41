//! `tracer profile`'s result as plain data: symbolized stacks and their
//! weights, with what was lost on the way. Built from the kernel's
//! (process, kernel stack, user stack) -> weight map and the symbolizer; read
//! by every renderer (table, folded, flame graph, pprof, JSON).
use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, IterableMap as _, MapData, PerCpuArray, RingBuf, StackTraceMap};
use tracer_common::profile::{drops, Notice, StackKey};

use super::{read_array, Delta};
use crate::bpf::maps::lookup_all;

/// What a profile's values measure.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// On-CPU samples: each stack's value is a number of samples of `event`
    /// (`cpu-clock` or `cycles`), taken `hz` times a second on every CPU.
    Cpu { event: String, hz: u64 },
    /// Off-CPU time: each stack's value is nanoseconds spent switched out
    /// (blocked or preempted) there, counting switches of at least
    /// `min_block_us` microseconds.
    OffCpu { min_block_us: u64 },
}

/// One frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// The function (demangled), or `module+0xOFFSET` when it cannot be named
    /// (the offset into the file for user frames, the address for kernel ones).
    pub name: String,
    /// Where the frame is: a file's base name (`libc.so.6`, `fixture`),
    /// `[kernel]` or a kernel module (`[ext4]`), `[vdso]`, `[unknown]`.
    pub module: String,
    /// A kernel frame (shown with `_[k]` in folded stacks).
    pub kernel: bool,
    /// Whether `name` is a symbol; false for `module+0xOFFSET`.
    pub symbolized: bool,
}

/// One distinct stack of one process and its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// The process (tgid).
    pub pid: u32,
    /// The name of the thread the stack was taken in.
    pub comm: String,
    /// Indexes into [`Profile::frames`], root (outermost caller) first: the
    /// user frames, then the kernel frames (the leaf is last).
    pub frames: Vec<usize>,
    /// Samples ([`Kind::Cpu`]) or nanoseconds ([`Kind::OffCpu`]).
    pub value: u64,
    /// The user or kernel stack filled the unwinder's depth limit, so its
    /// outermost callers are likely missing.
    pub truncated: bool,
    /// How the walker's user stack ended (a name of `Profile::ends`); None
    /// when the stack was not walked (`--unwind fp`, no user mode).
    pub user_end: Option<&'static str>,
}

/// A whole profile, or one interval of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub kind: Kind,
    /// Seconds the profile covers.
    pub seconds: f64,
    /// Every distinct frame once; stacks refer to them by index.
    pub frames: Vec<Frame>,
    pub stacks: Vec<Stack>,
    /// What the kernel side could not record, by reason (`counts_full`:
    /// samples not counted at all; `kernel_stack_lost`, `user_stack_lost`:
    /// samples counted without that stack, the stack map being full or
    /// its hash colliding; ...). Empty when nothing was lost.
    pub lost: BTreeMap<&'static str, u64>,
    /// How the user stacks the walker took ended, in samples (or
    /// nanoseconds) by reason: `complete`, `truncated`, `no_unwind_info`,
    /// `table_full`, `unreadable_stack`, `tables_pending`. Empty with
    /// `--unwind fp`.
    pub ends: BTreeMap<&'static str, u64>,
    /// The walker's tables (None with `--unwind fp`).
    pub tables: Option<TableStats>,
}

/// What the user-stack walker's tables held at the end of a profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStats {
    /// Objects with a table, and their rows (rules).
    pub objects: usize,
    pub rows: u64,
    /// Rows `--unwind-memory` holds (0 until the first table is placed).
    pub capacity_rows: u64,
    /// Objects without unwind information, and whose table did not fit.
    pub no_info: usize,
    pub full: usize,
    /// Time spent reading `.eh_frame` and writing rows, in milliseconds.
    pub build_ms: f64,
    /// Processes whose mappings did not fit in the kernel's map.
    pub procs_full: usize,
}

impl Profile {
    /// The sum of every stack's value.
    pub fn total(&self) -> u64 {
        self.stacks.iter().map(|s| s.value).sum()
    }
}

/// The kernel's weights as read: (process, generation, comm, stack ids) ->
/// samples or nanoseconds, and what was dropped by reason
/// (`tracer_common::profile::drops`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawCounts {
    pub weights: BTreeMap<StackKey, u64>,
    pub drops: [u64; drops::COUNT as usize],
}

impl Delta for RawCounts {
    fn since(&self, earlier: &Self) -> Self {
        let mut drops = self.drops;
        drops
            .iter_mut()
            .zip(earlier.drops)
            .for_each(|(d, e)| *d = d.saturating_sub(e));
        Self {
            weights: self.weights.since(&earlier.weights),
            drops,
        }
    }
}

/// Names of the kernel's drop reasons, as reports show them.
pub const DROP_NAMES: [(u32, &str); 4] = [
    (drops::COUNTS_FULL, "counts_full"),
    (drops::KSTACK_LOST, "kernel_stack_lost"),
    (drops::USTACK_LOST, "user_stack_lost"),
    (drops::PROCS_FULL, "processes_full"),
];

/// The maps of a profile run.
pub struct ProfileCollector {
    counts: HashMap<MapData, StackKey, u64>,
    stacks: StackTraceMap<MapData>,
    drops: PerCpuArray<MapData, u64>,
    notices: RingBuf<MapData>,
}

impl ProfileCollector {
    pub fn new(obj: &mut crate::bpf::Object) -> Result<Self> {
        Ok(Self {
            counts: obj.take_map("PROFILE_COUNTS")?,
            stacks: obj.take_map("PROFILE_STACKS")?,
            drops: obj.take_map("PROFILE_DROPS")?,
            notices: obj.take_map("PROFILE_NOTICES")?,
        })
    }

    /// Every weight so far (one batch read: a profile reads rarely).
    pub fn read(&self) -> Result<RawCounts> {
        let (keys, values) = lookup_all::<StackKey, u64>(self.counts.map(), 1)
            .context("reading the profile's counts")?;
        let mut c = RawCounts::default();
        for (k, v) in keys.into_iter().zip(values) {
            *c.weights.entry(k).or_default() += v;
        }
        let drops = read_array(&self.drops, "drop counters")?;
        c.drops.iter_mut().zip(drops).for_each(|(d, v)| *d = v);
        Ok(c)
    }

    /// The addresses of a recorded stack, innermost first (empty for a
    /// negative id: no stack).
    pub fn frames(&self, stack_id: i32) -> Vec<u64> {
        if stack_id < 0 {
            return Vec::new();
        }
        let stack = self.stacks.get(&(stack_id as u32), 0).ok();
        stack.map_or_else(Vec::new, |st| st.frames().iter().map(|f| f.ip).collect())
    }

    /// The processes (and generations) sampled for the first time since the
    /// last call.
    pub fn notices(&mut self) -> Vec<Notice> {
        let mut out = Vec::new();
        while let Some(item) = self.notices.next() {
            if item.len() >= size_of::<Notice>() {
                // The ring's records are 8-byte aligned.
                out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Notice>()) });
            }
        }
        out
    }
}

/// `RawCounts::drops` as named losses, only those that happened.
pub fn named_losses(drops: &[u64]) -> BTreeMap<&'static str, u64> {
    super::named_drops(&DROP_NAMES, drops).into_iter().collect()
}
