//! What `tracer serve` reads besides the syscall counters: the per-syscall
//! duration histograms and the labelled call counters, read with the batch
//! commands (a few calls per scrape, not two per row).
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use aya::maps::{IterableMap as _, MapData, PerCpuArray, PerCpuHashMap};
use tracer_common::{LabelKey, SyscallHist, HIST_SLOTS};

use super::sum;
use crate::bpf::maps::{delete_all, lookup_all};

/// What a label in `LabelKey::label` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    Comm,
    Pid,
    Cgroup,
}

impl LabelKind {
    /// The label's value as the kernel wrote it: a comm, a tgid or a cgroup id.
    pub fn value(self, label: &[u8; 16]) -> Label {
        match self {
            LabelKind::Comm => Label::Comm(crate::sys::proc::comm_str(label)),
            LabelKind::Pid => Label::Pid(u32::from_ne_bytes(label[..4].try_into().unwrap())),
            LabelKind::Cgroup => Label::Cgroup(u64::from_ne_bytes(label[..8].try_into().unwrap())),
        }
    }
}

/// A label value as counted in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    Comm(String),
    Pid(u32),
    Cgroup(u64),
}

/// Everything read at one scrape, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Per syscall number with calls, its histogram slots.
    pub hist: BTreeMap<u32, [u64; HIST_SLOTS]>,
    /// (label, syscall) -> calls.
    pub labelled: BTreeMap<(Label, u32), u64>,
    /// Per syscall, the calls of rows the cap refused.
    pub overflow: BTreeMap<u32, u64>,
}

pub struct SeriesCollector {
    hist: Option<PerCpuArray<MapData, SyscallHist>>,
    labels: Option<(LabelKind, PerCpuHashMap<MapData, LabelKey, u64>)>,
    overflow: Option<PerCpuArray<MapData, u64>>,
    cpus: usize,
    /// With labels by process: processes found gone at the last read.
    doomed: BTreeSet<u32>,
}

impl SeriesCollector {
    pub fn new(
        obj: &mut crate::bpf::Object,
        hist: bool,
        labels: Option<LabelKind>,
    ) -> Result<Self> {
        Ok(Self {
            hist: hist.then(|| obj.take_map("SYSCALL_HIST")).transpose()?,
            overflow: labels.map(|_| obj.take_map("LABEL_OVERFLOW")).transpose()?,
            labels: labels
                .map(|k| obj.take_map("LABEL_STATS").map(|m| (k, m)))
                .transpose()?,
            cpus: crate::bpf::possible_cpus()?,
            doomed: BTreeSet::new(),
        })
    }

    /// Everything counted so far. With labels by process, the rows of
    /// processes gone at the previous read leave the kernel's table after
    /// this one (which holds their final counts), so the cap counts live
    /// processes and their series end with them; `gone(tgid)` says which.
    pub fn read(&mut self, gone: impl Fn(u32) -> bool) -> Result<Series> {
        let mut s = Series::default();
        if let Some(m) = &self.hist {
            let (keys, values) = lookup_all::<u32, SyscallHist>(m.map(), self.cpus)
                .context("reading the syscall duration histograms")?;
            for (nr, per_cpu) in keys.into_iter().zip(values.chunks_exact(self.cpus)) {
                let mut slots = [0u64; HIST_SLOTS];
                for h in per_cpu {
                    slots.iter_mut().zip(h.slots).for_each(|(a, b)| *a += b);
                }
                if slots.iter().any(|&n| n > 0) {
                    s.hist.insert(nr, slots);
                }
            }
        }
        if let Some((kind, m)) = &self.labels {
            let (keys, values) = lookup_all::<LabelKey, u64>(m.map(), self.cpus)
                .context("reading the labelled counters")?;
            for (k, per_cpu) in keys.iter().zip(values.chunks_exact(self.cpus)) {
                *s.labelled
                    .entry((kind.value(&k.label), k.syscall))
                    .or_default() += sum(per_cpu);
            }
            if *kind == LabelKind::Pid {
                let pid = |k: &LabelKey| u32::from_ne_bytes(k.label[..4].try_into().unwrap());
                let dead: Vec<LabelKey> = keys
                    .iter()
                    .filter(|k| self.doomed.contains(&pid(k)))
                    .copied()
                    .collect();
                delete_all(m.map(), &dead).context("deleting the rows of exited processes")?;
                let live: BTreeSet<u32> = keys.iter().map(pid).collect();
                self.doomed = live
                    .into_iter()
                    .filter(|p| !self.doomed.contains(p) && gone(*p))
                    .collect();
            }
        }
        if let Some(m) = &self.overflow {
            let (keys, values) = lookup_all::<u32, u64>(m.map(), self.cpus)
                .context("reading the overflow counters")?;
            for (nr, per_cpu) in keys.into_iter().zip(values.chunks_exact(self.cpus)) {
                let n = sum(per_cpu);
                if n > 0 {
                    s.overflow.insert(nr, n);
                }
            }
        }
        Ok(s)
    }
}
