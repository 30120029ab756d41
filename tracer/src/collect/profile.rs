//! `tracer profile`'s result as plain data: symbolized stacks and their
//! weights, with what was lost on the way. Built from the kernel's
//! (process, kernel stack, user stack) -> weight map and the symbolizer; read
//! by every renderer (table, folded, flame graph, pprof, JSON).
use std::collections::BTreeMap;

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
}

impl Profile {
    /// The sum of every stack's value.
    pub fn total(&self) -> u64 {
        self.stacks.iter().map(|s| s.value).sum()
    }
}
