//! The per-CPU counters of `tracer uprobe`, indexed by function (the attach
//! cookie), summed into plain data.
use anyhow::Result;
use aya::maps::{MapData, PerCpuArray};
use tracer_common::FuncStat;

use super::{read_array, Delta};

/// What the uprobes counted, indexed by function (the attach cookie).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FuncCounts {
    pub funcs: Vec<FuncStat>,
    /// `LOG2_SLOTS` slots per function (empty without --latency).
    pub hist: Vec<u64>,
    pub drops: Vec<u64>,
}

impl Delta for FuncCounts {
    fn since(&self, e: &FuncCounts) -> FuncCounts {
        FuncCounts {
            funcs: self.funcs.since(&e.funcs),
            hist: self.hist.since(&e.hist),
            drops: self.drops.since(&e.drops),
        }
    }
}

pub struct FuncCollector {
    stats: PerCpuArray<MapData, FuncStat>,
    hist: Option<PerCpuArray<MapData, u64>>,
    drops: PerCpuArray<MapData, u64>,
    n: usize,
}

impl FuncCollector {
    pub fn new(obj: &mut crate::bpf::Object, n: usize, latency: bool) -> Result<Self> {
        Ok(Self {
            stats: obj.take_map("UPROBE_STATS")?,
            hist: latency.then(|| obj.take_map("UPROBE_HIST")).transpose()?,
            drops: obj.take_map("UPROBE_DROPS")?,
            n,
        })
    }

    pub fn read(&self) -> Result<FuncCounts> {
        let mut funcs = read_array(&self.stats, "uprobe counters")?;
        funcs.truncate(self.n);
        let hist = match &self.hist {
            Some(h) => read_array(h, "uprobe histograms")?,
            None => Vec::new(),
        };
        let drops = read_array(&self.drops, "uprobe drop counters")?;
        Ok(FuncCounts { funcs, hist, drops })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::func_stat as fs;

    #[test]
    fn func_deltas() {
        let a = FuncCounts {
            funcs: vec![fs(5, 4, 100)],
            hist: vec![1, 2, 3],
            drops: vec![0, 1],
        };
        let b = FuncCounts {
            funcs: vec![fs(9, 8, 180)],
            hist: vec![1, 5, 3],
            drops: vec![0, 1],
        };
        let d = b.since(&a);
        assert_eq!(d.funcs[0], fs(4, 4, 80));
        assert_eq!(d.hist, vec![0, 3, 0]);
        assert_eq!(d.drops, vec![0, 0]);
        assert_eq!(b.since(&FuncCounts::default()), b);
    }
}
