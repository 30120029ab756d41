//! `tracer profile`: CPU samples (a perf event per CPU) or off-CPU time (the
//! scheduler's switch tracepoint), stacks aggregated in the kernel, named at
//! each block by `sys::symbols`, rendered as a table, folded stacks, JSON, a
//! flame graph or a pprof profile.
use std::{
    cell::RefCell,
    collections::HashMap,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{bail, Context as _, Result};
use tracer_common::TASK_COMM_LEN;

use super::{
    clock,
    process::{self, Selection},
    run::{Counting, Head},
};
use crate::{
    bpf::{
        self,
        profile::{attach_generations, attach_off_cpu, attach_sampling, Sampler},
        unwind::{attach_walker, Tables, WalkerMaps},
        Object,
    },
    cli::{ProfileArgs, SampleEvent, Unwind},
    collect::profile::{named_losses, Frame, Kind, Profile, ProfileCollector, RawCounts, Stack},
    report::{self, BlockKind},
    sys::{symbols::Symbols, tracefs},
};

/// Entries of the weights map: distinct (process, thread name, stacks).
const COUNTS: u32 = 65536;
/// Processes whose mappings are tracked at once.
const PROCS: u32 = 32768;
/// Threads switched out at once (off-CPU).
const OFF_THREADS: u32 = 65536;
/// The ring of new-process notices: 16 bytes each (plus an 8-byte header).
const NOTICE_RING: u32 = 1 << 17;
/// Processes whose mappings the user-stack walker knows at once (8 KiB each).
const WALKED_PROCS: u32 = 2048;
/// Time spent placing tables per housekeeping call (every 10 ms).
const PLACING_BUDGET: std::time::Duration = std::time::Duration::from_millis(30);
/// Bytes of one row of the unwind tables.
const ROW_BYTES: u64 = size_of::<tracer_common::unwind::Row>() as u64;

/// A file given with --svg or --pprof: opened (so checked) before anything
/// is attached, written at the end.
#[derive(Debug)]
pub struct OutFile {
    pub path: PathBuf,
    file: RefCell<Option<File>>,
}

impl OutFile {
    fn create(path: &Path, what: &str) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot write the {what} to {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: RefCell::new(Some(file)),
        })
    }

    fn write(&self, bytes: &[u8]) -> Result<()> {
        let Some(mut f) = self.file.borrow_mut().take() else {
            return Ok(());
        };
        f.write_all(bytes)
            .and_then(|()| f.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[derive(Debug)]
pub struct Plan {
    pub selection: Selection,
    /// On-CPU samples at this rate, on the first of these events that works;
    /// `None`: off-CPU.
    pub sampling: Option<(u64, Vec<Sampler>)>,
    pub min_block_us: u64,
    pub stack_storage: u32,
    pub folded: bool,
    pub json: bool,
    pub top: Option<usize>,
    pub svg: Option<OutFile>,
    pub pprof: Option<OutFile>,
    /// Where `sched:sched_switch` keeps `next_pid` (off-CPU).
    next_pid_offset: Option<u64>,
    /// The deepest stack the kernel records (kernel.perf_event_max_stack).
    max_depth: usize,
    /// How user stacks are walked, and the tables' memory (MiB).
    unwind: Unwind,
    unwind_memory: u32,
}

/// The kernel's sampling rate limit.
fn max_sample_rate() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate").ok()?;
    text.trim().parse().ok()
}

/// The deepest stack `bpf_get_stackid` records: the stack map's 127 frames,
/// or less if kernel.perf_event_max_stack says so.
fn max_stack_depth() -> usize {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_stack")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok());
    sysctl.unwrap_or(127).min(127)
}

pub fn plan(a: &ProfileArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    crate::sys::privileges::check()?;
    let sampling = if a.off_cpu {
        None
    } else {
        if let Some(max) = max_sample_rate() {
            if a.frequency > max {
                bail!(
                    "-F {}: this kernel samples at most {max} times a second \
                     (kernel.perf_event_max_sample_rate); 49 or 99 is usual",
                    a.frequency
                );
            }
        }
        let samplers = match a.event {
            SampleEvent::Auto => vec![Sampler::Cycles, Sampler::CpuClock],
            SampleEvent::CpuClock => vec![Sampler::CpuClock],
            SampleEvent::Cycles => vec![Sampler::Cycles],
        };
        Some((a.frequency, samplers))
    };
    let next_pid_offset = if a.off_cpu {
        let tfs = tracefs::ensure_mounted()?;
        Some(tracefs::field_offset(&tfs, "sched", "sched_switch", "next_pid")? as u64)
    } else {
        None
    };
    Ok(Plan {
        selection,
        sampling,
        min_block_us: a.min_block,
        stack_storage: a.stack_storage_size,
        folded: a.folded,
        json: a.run.json,
        top: a.blocks.top.map(|t| t as usize),
        svg: a
            .svg
            .as_deref()
            .map(|p| OutFile::create(p, "flame graph"))
            .transpose()?,
        pprof: a
            .pprof
            .as_deref()
            .map(|p| OutFile::create(p, "pprof profile"))
            .transpose()?,
        next_pid_offset,
        max_depth: max_stack_depth(),
        // Off-CPU stacks are taken in the scheduler's tracepoint, whose
        // programs cannot tail-call the walker: frame pointers there.
        unwind: if a.off_cpu { Unwind::Fp } else { a.unwind },
        unwind_memory: a.unwind_memory,
    })
}

/// The walker's register model for this machine, with `task_struct.stack`
/// from the kernel's BTF (without it, samples taken in kernel mode get no
/// user stack; those taken in user mode still do).
fn unwind_arch() -> Vec<u64> {
    use tracer_common::unwind::arch;
    let mut v = arch::values();
    match crate::sys::btf::Btf::kernel().and_then(|b| b.member_offset("task_struct", "stack")) {
        Ok(off) => v[arch::TASK_STACK] = off,
        Err(e) => log::info!("no task_struct.stack offset: {e:#}"),
    }
    v.to_vec()
}

/// A run's maps, the names found so far, and what sampling runs on.
pub struct Live {
    collector: RefCell<ProfileCollector>,
    symbols: RefCell<Symbols>,
    /// The event sampled on and the number of CPUs (CPU profiles).
    sampler: Option<(Sampler, usize)>,
    started: SystemTime,
    /// tracer's comm, which a launched command has until its exec.
    own_comm: [u8; TASK_COMM_LEN],
    /// The summary block's profile, kept for `finish` (the flame graph and
    /// pprof files), so the final stacks are read and named once.
    summary: RefCell<Option<Profile>>,
    /// The user-stack walker's tables (not with --unwind fp).
    tables: Option<RefCell<Tables>>,
    /// When the tables last forgot the processes that are gone.
    pruned: std::cell::Cell<std::time::Instant>,
    /// Processes (and generations) whose tables wait to be placed.
    to_place: RefCell<std::collections::VecDeque<(u32, u32)>>,
}

impl Live {
    /// Read the mappings of the processes sampled for the first time (or
    /// that the walker found in code it did not know: a library loaded
    /// since), and give the walker their tables.
    ///
    /// Mappings are read for every notice at once (cheap, and a process may
    /// exit soon); building tables takes at most `PLACING_BUDGET` a call, the
    /// rest waiting for the next, so that a busy machine's new programs (a
    /// compiler's 150 MB library) do not hold the run loop past `-d`.
    fn take_notices(&self) {
        let notices = self.collector.borrow_mut().notices();
        let mut syms = self.symbols.borrow_mut();
        let mut waiting = self.to_place.borrow_mut();
        for n in notices {
            let read = n.refresh != 0 || !syms.knows(n.tgid, n.gen);
            if read && !syms.read_process(n.tgid, n.gen) {
                log::debug!("process {} gone before its mappings were read", n.tgid);
                continue;
            }
            if self.tables.is_some() {
                waiting.push_back((n.tgid, n.gen));
            }
        }
        let Some(t) = &self.tables else {
            return;
        };
        let t0 = std::time::Instant::now();
        while t0.elapsed() < PLACING_BUDGET {
            let Some((tgid, gen)) = waiting.pop_front() else {
                break;
            };
            t.borrow_mut().place(tgid, gen, &syms.mapped(tgid, gen));
        }
    }

    /// The frames of a user stack of `key`, innermost first.
    fn user_stack(&self, key: &tracer_common::profile::StackKey) -> Vec<u64> {
        match (&self.tables, key.uend) {
            (Some(t), e) if e != tracer_common::unwind::end::NONE => t.borrow().stack(key.ustack),
            _ => self.collector.borrow().frames(key.ustack),
        }
    }
}

/// This process's comm, as the kernel stores it.
fn own_comm() -> [u8; TASK_COMM_LEN] {
    let mut c = [0u8; TASK_COMM_LEN];
    if let Ok(t) = std::fs::read_to_string("/proc/self/comm") {
        let t = t.trim_end_matches('\n').as_bytes();
        let n = t.len().min(TASK_COMM_LEN - 1);
        c[..n].copy_from_slice(&t[..n]);
    }
    c
}

/// The samples of launched command `pid` taken before its exec, while it
/// was still tracer's child getting ready (tracer's comm, generation 0 of a
/// process that later exec'd): not the command's.
fn pre_exec_keys(
    counts: &RawCounts,
    pid: u32,
    own_comm: &[u8; TASK_COMM_LEN],
) -> Vec<tracer_common::profile::StackKey> {
    let execd = counts.weights.keys().any(|k| k.tgid == pid && k.gen > 0);
    if !execd {
        return Vec::new();
    }
    let first =
        |k: &&tracer_common::profile::StackKey| k.tgid == pid && k.gen == 0 && &k.comm == own_comm;
    counts.weights.keys().filter(first).copied().collect()
}

/// How a walked user stack ended, as reports name it.
fn end_name(e: u32) -> &'static str {
    use tracer_common::unwind::end;
    match e {
        end::COMPLETE => "complete",
        end::TRUNCATED => "truncated",
        end::NO_INFO => "no_unwind_info",
        end::TABLE_FULL => "table_full",
        end::UNREADABLE => "unreadable_stack",
        end::PENDING => "tables_pending",
        _ => "other",
    }
}

fn comm_of(c: &[u8; TASK_COMM_LEN]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

impl Plan {
    fn kind(&self, live: &Live) -> Kind {
        match (&self.sampling, live.sampler) {
            (Some((hz, _)), Some((s, _))) => Kind::Cpu {
                event: s.name().to_string(),
                hz: *hz,
            },
            _ => Kind::OffCpu {
                min_block_us: self.min_block_us,
            },
        }
    }

    /// The counts with their frames named.
    fn profile(&self, live: &Live, counts: &RawCounts, head: Head) -> Profile {
        let pre_exec = head
            .launched
            .map(|pid| pre_exec_keys(counts, pid, &live.own_comm));
        live.take_notices();
        let t0 = std::time::Instant::now();
        let collector = live.collector.borrow();
        let mut syms = live.symbols.borrow_mut();
        let mut frames: Vec<Frame> = Vec::new();
        let mut index: HashMap<Frame, usize> = HashMap::new();
        let mut intern = |f: Frame| {
            *index.entry(f.clone()).or_insert_with(|| {
                frames.push(f);
                frames.len() - 1
            })
        };
        let lost_frame = |what: &str, kernel: bool| Frame {
            name: format!("[lost {what} stack]"),
            module: "[lost]".into(),
            kernel,
            symbolized: false,
        };
        // By (id, walked): the kernel's stack ids and the walker's are apart.
        let mut raw: HashMap<(i32, bool), Vec<u64>> = HashMap::new();
        let mut ends: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let mut stacks = Vec::new();
        let efault = -libc::EFAULT;
        for (key, &value) in &counts.weights {
            if value == 0 || pre_exec.as_ref().is_some_and(|k| k.contains(key)) {
                continue;
            }
            if key.ustack >= 0 && !syms.knows(key.tgid, key.gen) {
                // Sampled before its notice was read: read it now if it runs.
                syms.read_process(key.tgid, key.gen);
            }
            let walked = key.uend != tracer_common::unwind::end::NONE;
            if walked {
                *ends.entry(end_name(key.uend)).or_default() += value;
            }
            let mut ids = Vec::new();
            let mut truncated = walked && key.uend == tracer_common::unwind::end::TRUNCATED;
            for (id, kernel) in [(key.ustack, false), (key.kstack, true)] {
                if id < 0 {
                    if id != efault {
                        ids.push(intern(lost_frame(
                            if kernel { "kernel" } else { "user" },
                            kernel,
                        )));
                    }
                    continue;
                }
                let addrs = raw.entry((id, walked && !kernel)).or_insert_with(|| {
                    if kernel {
                        collector.frames(id)
                    } else {
                        live.user_stack(key)
                    }
                });
                truncated |= !walked && addrs.len() >= self.max_depth;
                // Innermost first in the map; root first here.
                for (i, &a) in addrs.iter().enumerate().rev() {
                    let f = if kernel {
                        syms.kernel_frame(a, i == 0)
                    } else {
                        syms.user_frame(key.tgid, key.gen, a, i == 0)
                    };
                    ids.push(intern(f));
                }
            }
            stacks.push(Stack {
                pid: key.tgid,
                comm: comm_of(&key.comm),
                frames: ids,
                value,
                truncated,
                user_end: walked.then(|| end_name(key.uend)),
            });
        }
        log::info!(
            "{} stacks, {} frames named in {:.1} ms",
            stacks.len(),
            frames.len(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        Profile {
            kind: self.kind(live),
            seconds: head.seconds,
            frames,
            stacks,
            lost: named_losses(&counts.drops),
            ends,
            tables: live.tables.as_ref().map(|t| t.borrow().stats.clone()),
        }
    }

    /// The block's text: JSON, folded stacks or the table.
    fn text(&self, p: &Profile, head: Head) -> String {
        if self.json {
            report::profile::json(p, head.kind, &clock(), self.top, head.exit_code)
        } else if self.folded {
            report::profile::folded(p)
        } else {
            let mut t = String::new();
            if head.kind == BlockKind::Interval {
                t.push_str(&format!("[{}]\n", clock()));
            }
            t + &report::profile::table(p, self.top)
        }
    }

    fn title(&self, live: &Live) -> String {
        let whose = self.selection.describe();
        let whose = if whose.is_empty() {
            " (all processes)".to_string()
        } else {
            whose
        };
        match self.kind(live) {
            Kind::Cpu { event, hz } => format!("CPU profile{whose}, {event} at {hz} Hz"),
            Kind::OffCpu { min_block_us } => {
                format!("Off-CPU time{whose}, blocks of {min_block_us} us or more")
            }
        }
    }
}

impl Counting for Plan {
    type Live = Live;
    type Counts = RawCounts;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Object)> {
        let mut globals = self.selection.globals(0, true);
        if let Some(off) = self.next_pid_offset {
            globals.values.push(("SWITCH_NEXT_PID_OFFSET", off));
        }
        globals
            .values
            .push(("MIN_BLOCK_NS", self.min_block_us.saturating_mul(1000)));
        let off_cpu = self.sampling.is_none();
        let walking = self.unwind != Unwind::Fp;
        use tracer_common::unwind::mode;
        globals.values.push((
            "UNWIND_MODE",
            match self.unwind {
                Unwind::Fp => mode::FP,
                Unwind::Dwarf => mode::DWARF,
                Unwind::Auto => mode::AUTO,
            },
        ));
        globals.arrays.push(("UNWIND_ARCH", unwind_arch()));
        let rows = (u64::from(self.unwind_memory) << 20) / ROW_BYTES;
        let mut obj = bpf::load_following(
            globals,
            self.selection.targeted(),
            &[
                ("PROFILE_COUNTS", COUNTS),
                ("PROFILE_STACKS", self.stack_storage),
                ("PROFILE_PROCS", PROCS),
                ("PROFILE_NOTICES", NOTICE_RING),
                ("OFFCPU_STARTS", if off_cpu { OFF_THREADS } else { 1024 }),
                ("UNWIND_ROWS", if walking { rows as u32 } else { 1 }),
                ("UNWIND_PROCS", if walking { WALKED_PROCS } else { 1 }),
                (
                    "PROFILE_USTACKS",
                    if walking { self.stack_storage } else { 1 },
                ),
            ],
        )?;
        let collector = ProfileCollector::new(&mut obj)?;
        // Before sampling starts: every sample walks.
        let tables = if walking {
            let maps = WalkerMaps::new(&mut obj)?;
            attach_walker(&mut obj)?;
            Some(RefCell::new(Tables::new(maps)))
        } else {
            None
        };
        attach_generations(&mut obj)?;
        let sampler = match &self.sampling {
            Some((hz, samplers)) => Some(attach_sampling(&mut obj, samplers, *hz)?),
            None => {
                attach_off_cpu(&mut obj)?;
                None
            }
        };
        let live = Live {
            collector: RefCell::new(collector),
            symbols: RefCell::new(Symbols::new()),
            sampler,
            started: SystemTime::now(),
            own_comm: own_comm(),
            summary: RefCell::new(None),
            tables,
            pruned: std::cell::Cell::new(std::time::Instant::now()),
            to_place: RefCell::new(Default::default()),
        };
        Ok((live, obj))
    }

    fn what(&self, live: &Live) -> String {
        match (&self.sampling, live.sampler) {
            (Some((hz, _)), Some((s, cpus))) => format!(
                "on-CPU stacks at {hz} Hz ({}, {cpus} CPU{})",
                s.name(),
                if cpus == 1 { "" } else { "s" }
            ),
            _ => format!("off-CPU time (blocks of {} us or more)", self.min_block_us),
        }
    }

    fn read(&self, live: &Live) -> Result<RawCounts> {
        live.take_notices();
        live.collector.borrow().read()
    }

    fn keeps_house(&self) -> bool {
        true
    }

    /// Often: a process's samples wait for its tables from its first
    /// sample until they are placed (reading an empty ring costs no
    /// system call).
    fn housekeeping_period(&self) -> std::time::Duration {
        std::time::Duration::from_millis(10)
    }

    /// Read the mappings of new processes while they run; once a second,
    /// forget the tables' processes that are gone.
    fn housekeeping(&self, live: &mut Live) -> Result<Vec<u32>> {
        live.take_notices();
        if let Some(t) = &live.tables {
            if live.pruned.get().elapsed() >= std::time::Duration::from_secs(1) {
                t.borrow_mut().prune();
                live.pruned.set(std::time::Instant::now());
            }
        }
        Ok(Vec::new())
    }

    fn render(&self, live: &Live, head: Head, counts: &RawCounts) -> String {
        let p = self.profile(live, counts, head);
        let text = self.text(&p, head);
        if head.kind == BlockKind::Summary {
            *live.summary.borrow_mut() = Some(p);
        }
        text
    }

    fn finish(&self, live: &Live, head: Head, counts: &RawCounts) -> Result<()> {
        if self.svg.is_none() && self.pprof.is_none() {
            return Ok(());
        }
        let kept = live.summary.borrow_mut().take();
        let p = kept.unwrap_or_else(|| self.profile(live, counts, head));
        if let Some(f) = &self.svg {
            f.write(&report::profile::svg(&p, &self.title(live))?)?;
        }
        if let Some(f) = &self.pprof {
            let start = live
                .started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            f.write(&report::pprof::pprof(&p, start))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::profile::StackKey;

    use super::*;

    fn key(tgid: u32, gen: u32, comm: &str) -> StackKey {
        let mut c = [0u8; TASK_COMM_LEN];
        c[..comm.len()].copy_from_slice(comm.as_bytes());
        StackKey {
            tgid,
            gen,
            kstack: 1,
            ustack: 2,
            comm: c,
            uend: 0,
        }
    }

    #[test]
    fn launched_commands_lose_only_their_pre_exec_samples() {
        let mut own = [0u8; TASK_COMM_LEN];
        own[..6].copy_from_slice(b"tracer");
        let mut c = RawCounts::default();
        c.weights.insert(key(7, 0, "tracer"), 1);
        c.weights.insert(key(7, 1, "app"), 50);
        c.weights.insert(key(8, 0, "tracer"), 3);
        assert_eq!(pre_exec_keys(&c, 7, &own), vec![key(7, 0, "tracer")]);
        // First sampled after its exec: generation 0 is the command.
        c.weights.remove(&key(7, 1, "app"));
        c.weights.insert(key(7, 0, "app"), 50);
        c.weights.remove(&key(7, 0, "tracer"));
        assert!(pre_exec_keys(&c, 7, &own).is_empty());
        assert_eq!(comm_of(&key(1, 0, "app").comm), "app");
    }
}
