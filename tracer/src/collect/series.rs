//! What `tracer serve` reads besides the syscall counters: the per-syscall
//! duration histograms, and the labelled call counters, whose rows are read
//! straight from memory shared with the kernel (no system call per row).
use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, Queue};
use tracer_common::{LabelKey, SyscallHist, HIST_SLOTS};

use super::sum;
use crate::bpf::maps::Mmap;

/// What a label in `LabelKey::label` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    Comm,
    Pid,
    Cgroup,
}

/// The tgid of a `--by pid` key.
pub fn pid_of(key: &LabelKey) -> u32 {
    u32::from_ne_bytes(key.label[..4].try_into().unwrap())
}

/// The cgroup id of a `--by cgroup` key.
pub fn cgroup_of(key: &LabelKey) -> u64 {
    u64::from_ne_bytes(key.label[..8].try_into().unwrap())
}

/// Everything read at one scrape, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Per syscall number asked for, its histogram slots (if any call returned).
    pub hist: Vec<(u32, [u64; HIST_SLOTS])>,
    /// (label, syscall) -> calls, in row order.
    pub labelled: Vec<(LabelKey, u64)>,
    /// Per syscall, the calls of rows the cap refused.
    pub overflow: Vec<(u32, u64)>,
}

/// The labelled counters' maps.
struct Labels {
    kind: LabelKind,
    keys: Mmap<LabelKey>,
    counts: Mmap<u64>,
    index: HashMap<MapData, LabelKey, u32>,
    free: Queue<MapData, u32>,
    overflow: PerCpuArray<MapData, u64>,
    /// With labels by process: processes found gone at the last read.
    doomed: BTreeSet<u32>,
}

pub struct SeriesCollector {
    hist: Option<PerCpuArray<MapData, SyscallHist>>,
    labels: Option<Labels>,
}

impl SeriesCollector {
    /// `rows`: the labelled counters' rows (the series cap).
    pub fn new(
        obj: &mut crate::bpf::Object,
        hist: bool,
        labels: Option<LabelKind>,
        rows: u32,
    ) -> Result<Self> {
        let labels = match labels {
            Some(kind) => {
                let mut free: Queue<MapData, u32> = obj.take_map("LABEL_FREE")?;
                // Every row is free: the kernel takes them in order.
                for row in 0..rows {
                    free.push(row, 0).context("filling the free-row queue")?;
                }
                Some(Labels {
                    kind,
                    keys: obj.take_mmap("LABEL_KEYS", rows as usize)?,
                    counts: obj.take_mmap("LABEL_COUNTS", rows as usize)?,
                    index: obj.take_map("LABEL_INDEX")?,
                    free,
                    overflow: obj.take_map("LABEL_OVERFLOW")?,
                    doomed: BTreeSet::new(),
                })
            }
            None => None,
        };
        Ok(Self {
            hist: hist.then(|| obj.take_map("SYSCALL_HIST")).transpose()?,
            labels,
        })
    }

    /// Everything counted so far: the histograms of `syscalls` (those with
    /// calls), every labelled row with calls, and with `overflowed` the
    /// overflow counters of `syscalls`.
    ///
    /// With labels by process, the rows of processes found gone at the
    /// previous read are taken back after this one (which holds their final
    /// counts): their series end, and the kernel hands the rows out again.
    /// `gone(tgid)` says which processes are gone.
    pub fn read(
        &mut self,
        syscalls: &[u32],
        overflowed: bool,
        gone: impl Fn(u32) -> bool,
    ) -> Result<Series> {
        let mut s = Series::default();
        if let Some(m) = &self.hist {
            for &nr in syscalls {
                let Ok(per_cpu) = m.get(&nr, 0) else {
                    continue;
                };
                let mut slots = [0u64; HIST_SLOTS];
                for h in per_cpu.iter() {
                    slots.iter_mut().zip(h.slots).for_each(|(a, b)| *a += b);
                }
                if slots.iter().any(|&n| n > 0) {
                    s.hist.push((nr, slots));
                }
            }
        }
        let Some(l) = &mut self.labels else {
            return Ok(s);
        };
        let mut retire = Vec::new();
        for row in 0..l.counts.len() {
            let n = l.counts.get(row);
            if n == 0 {
                continue;
            }
            let key = l.keys.get(row);
            if l.kind == LabelKind::Pid && l.doomed.contains(&pid_of(&key)) {
                retire.push((row, key));
            }
            s.labelled.push((key, n));
        }
        if l.kind == LabelKind::Pid {
            // Out of the index first (no new call can find the row), then
            // zeroed, then free for the kernel to hand out again. A gone
            // process makes no more calls, so none lands in the row after.
            for (row, key) in &retire {
                let _ = l.index.remove(key);
                l.counts.set(*row, 0);
                l.free
                    .push(*row as u32, 0)
                    .context("returning a row to the kernel")?;
            }
            let retired: BTreeSet<u32> = retire.iter().map(|(_, k)| pid_of(k)).collect();
            let live: BTreeSet<u32> = s.labelled.iter().map(|(k, _)| pid_of(k)).collect();
            l.doomed = live
                .into_iter()
                .filter(|p| !retired.contains(p) && gone(*p))
                .collect();
        }
        if overflowed {
            for &nr in syscalls {
                if let Ok(v) = l.overflow.get(&nr, 0) {
                    let n = sum(&v);
                    if n > 0 {
                        s.overflow.push((nr, n));
                    }
                }
            }
        }
        Ok(s)
    }
}
