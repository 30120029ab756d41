//! Reading the kernel-function maps (`KFUNC_*`) into plain data.
use std::collections::BTreeMap;

use super::{named_drops, read_array, sum, Counter as _, Delta};
use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, StackTraceMap};
use tracer_common::{
    kfunc::{drops, FuncKey, FuncStat, HistKey, StackKey},
    ProcInfo,
};

/// Names of the `KFUNC_DROPS` reasons, for reports.
pub const DROP_NAMES: [(u32, &str); 5] = [
    (drops::FUNCS_FULL, "function table full"),
    (drops::HIST_FULL, "histogram table full"),
    (drops::STARTS_FULL, "entry table full"),
    (drops::STACK_LOST, "stack not recorded"),
    (drops::STACK_COUNTS_FULL, "stack table full"),
];

/// Everything counted so far, summed over CPUs. Keys hold function addresses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KCounts {
    /// (ip, tgid or 0) -> counters.
    pub stats: BTreeMap<(u64, u32), FuncStat>,
    /// (ip, log2 slot as `tracer_common::log2_slot` computes it) -> calls.
    pub hist: BTreeMap<(u64, u32), u64>,
    /// (ip, stack id) -> calls.
    pub stacks: BTreeMap<(u64, u32), u64>,
    pub drops: [u64; drops::COUNT as usize],
}

impl Delta for KCounts {
    fn since(&self, earlier: &KCounts) -> KCounts {
        KCounts {
            stats: self.stats.since(&earlier.stats),
            hist: self.hist.since(&earlier.hist),
            stacks: self.stacks.since(&earlier.stacks),
            drops: self.drops.since(&earlier.drops),
        }
    }
}

impl KCounts {
    pub fn named_drops(&self) -> Vec<(&'static str, u64)> {
        named_drops(&DROP_NAMES, &self.drops)
    }
}

pub struct KCollector {
    stats: PerCpuHashMap<MapData, FuncKey, FuncStat>,
    hist: Option<PerCpuHashMap<MapData, HistKey, u64>>,
    stack_counts: Option<PerCpuHashMap<MapData, StackKey, u64>>,
    stacks: Option<StackTraceMap<MapData>>,
    drops: PerCpuArray<MapData, u64>,
    procs: Option<HashMap<MapData, u32, ProcInfo>>,
}

impl KCollector {
    /// `per_process`: also read the comms the kernel recorded (`PROCS`).
    pub fn new(
        obj: &mut crate::bpf::Object,
        latency: bool,
        stacks: bool,
        per_process: bool,
    ) -> Result<Self> {
        Ok(Self {
            stats: obj.take_map("KFUNC_STATS")?,
            hist: latency.then(|| obj.take_map("KFUNC_HIST")).transpose()?,
            stack_counts: stacks.then(|| obj.take_map("KFUNC_STACKCNT")).transpose()?,
            stacks: stacks.then(|| obj.take_map("KFUNC_STACKS")).transpose()?,
            drops: obj.take_map("KFUNC_DROPS")?,
            procs: per_process.then(|| obj.take_map("PROCS")).transpose()?,
        })
    }

    pub fn read(&self) -> Result<KCounts> {
        let mut c = KCounts::default();
        for item in self.stats.iter() {
            let (k, v) = item.context("reading function counters")?;
            c.stats.entry((k.ip, k.tgid)).or_default().add(&sum(&v));
        }
        if let Some(h) = &self.hist {
            for item in h.iter() {
                let (k, v) = item.context("reading histograms")?;
                *c.hist.entry((k.ip, k.slot)).or_default() += sum(&v);
            }
        }
        if let Some(s) = &self.stack_counts {
            for item in s.iter() {
                let (k, v) = item.context("reading stack counters")?;
                *c.stacks.entry((k.ip, k.stack_id)).or_default() += sum(&v);
            }
        }
        let drops = read_array(&self.drops, "drop counters")?;
        c.drops.iter_mut().zip(drops).for_each(|(d, v)| *d = v);
        Ok(c)
    }

    /// What the kernel recorded per tgid (at first count, fork or exec).
    pub fn procs(&self) -> BTreeMap<u32, ProcInfo> {
        let Some(p) = &self.procs else {
            return BTreeMap::new();
        };
        p.iter().filter_map(|r| r.ok()).collect()
    }

    /// The addresses of a recorded stack, innermost first.
    pub fn frames(&self, stack_id: u32) -> Vec<u64> {
        let stack = self.stacks.as_ref().and_then(|m| m.get(&stack_id, 0).ok());
        stack.map_or_else(Vec::new, |st| st.frames().iter().map(|f| f.ip).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::func_stat as fs;

    #[test]
    fn delta() {
        let mut a = KCounts::default();
        a.stats.insert((0x10, 0), fs(3, 3, 30));
        a.hist.insert((0x10, 5), 3);
        a.drops[drops::STACK_LOST as usize] = 1;
        let mut b = a.clone();
        b.stats.insert((0x10, 0), fs(5, 4, 50));
        b.stats.insert((0x20, 0), fs(1, 0, 0));
        b.hist.insert((0x10, 5), 4);
        b.drops[drops::STACK_LOST as usize] = 3;
        let d = b.since(&a);
        assert_eq!(d.stats[&(0x10, 0)], fs(2, 1, 20));
        assert_eq!(d.stats[&(0x20, 0)].calls, 1);
        assert_eq!(d.hist[&(0x10, 5)], 1);
        assert_eq!(d.named_drops(), vec![("stack not recorded", 2)]);
    }
}
