//! The per-CPU counters of `tracer tracepoint`, indexed by tracepoint (the
//! attach cookie) and per process, summed into plain data.
use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap};
use tracer_common::{ProcInfo, TpProcKey, TpStat};

use super::{read_array, sum, Counter as _, Delta};

/// What the tracepoint program counted, indexed by tracepoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TpCounts {
    pub totals: Vec<TpStat>,
    /// Per process (with -P): (tgid, tracepoint) -> counters.
    pub by_process: BTreeMap<(u32, u32), TpStat>,
    /// `LOG2_SLOTS` slots per tracepoint (empty without --hist).
    pub hist: Vec<u64>,
    pub drops: Vec<u64>,
}

impl Delta for TpCounts {
    fn since(&self, e: &TpCounts) -> TpCounts {
        TpCounts {
            totals: self.totals.since(&e.totals),
            by_process: self.by_process.since(&e.by_process),
            hist: self.hist.since(&e.hist),
            drops: self.drops.since(&e.drops),
        }
    }
}

pub struct TpCollector {
    stats: PerCpuArray<MapData, TpStat>,
    procs: Option<PerCpuHashMap<MapData, TpProcKey, TpStat>>,
    /// `PROCS`: what the kernel recorded about processes at fork and exec.
    records: HashMap<MapData, u32, ProcInfo>,
    hist: Option<PerCpuArray<MapData, u64>>,
    drops: PerCpuArray<MapData, u64>,
    n: usize,
}

impl TpCollector {
    pub fn new(
        obj: &mut crate::bpf::Object,
        n: usize,
        per_process: bool,
        hist: bool,
    ) -> Result<Self> {
        Ok(Self {
            stats: obj.take_map("TP_STATS")?,
            procs: per_process
                .then(|| obj.take_map("TP_PROC_STATS"))
                .transpose()?,
            hist: hist.then(|| obj.take_map("TP_HIST")).transpose()?,
            drops: obj.take_map("TP_DROPS")?,
            records: obj.take_map("PROCS")?,
            n,
        })
    }

    /// What the kernel recorded about processes (parent, comm) at fork and exec.
    pub fn procs(&self) -> BTreeMap<u32, ProcInfo> {
        self.records.iter().filter_map(|r| r.ok()).collect()
    }

    pub fn read(&self) -> Result<TpCounts> {
        let mut by_process = BTreeMap::new();
        let mut totals = vec![TpStat::default(); self.n];
        if let Some(p) = &self.procs {
            for item in p.iter() {
                let (k, v) = item.context("reading per-process tracepoint counters")?;
                let s = sum(&v);
                if let Some(t) = totals.get_mut(k.slot as usize) {
                    t.add(&s);
                }
                by_process.insert((k.tgid, k.slot), s);
            }
        } else {
            totals = read_array(&self.stats, "tracepoint counters")?;
            totals.truncate(self.n);
        }
        let hist = match &self.hist {
            Some(h) => read_array(h, "tracepoint histograms")?,
            None => Vec::new(),
        };
        let drops = read_array(&self.drops, "tracepoint drop counters")?;
        Ok(TpCounts {
            totals,
            by_process,
            hist,
            drops,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::slots_of;
    use tracer_common::LOG2_SLOTS;

    #[test]
    fn tp_deltas_and_slots() {
        let mut a = TpCounts {
            totals: vec![TpStat { count: 2, sum: 10 }],
            ..TpCounts::default()
        };
        a.by_process.insert((7, 0), TpStat { count: 2, sum: 10 });
        let mut b = a.clone();
        b.totals[0] = TpStat { count: 5, sum: 4 };
        b.by_process.insert((7, 0), TpStat { count: 5, sum: 4 });
        b.by_process.insert((8, 0), TpStat { count: 1, sum: 1 });
        let d = b.since(&a);
        assert_eq!(d.totals[0].count, 3);
        assert_eq!(d.totals[0].sum as i64, -6);
        assert_eq!(d.by_process[&(8, 0)].count, 1);
        let n = LOG2_SLOTS as usize;
        let mut flat = vec![0; 2 * n];
        flat[n + 3] = 9;
        assert_eq!(slots_of(&flat, 1)[3], 9);
        assert_eq!(slots_of(&flat, 5), vec![0; n]);
    }
}
