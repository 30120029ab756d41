//! The per-CPU counters of `tracer tracepoint`, indexed by tracepoint (the
//! attach cookie) and per process, summed into plain data.
use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap};
use tracer_common::{ProcInfo, TpProcKey, TpStat};

use super::{read_array, sub_slots as sub_vec, Delta};

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

fn sub_stat(a: &TpStat, b: &TpStat) -> TpStat {
    TpStat {
        count: a.count.saturating_sub(b.count),
        sum: a.sum.wrapping_sub(b.sum),
    }
}

impl Delta for TpCounts {
    fn since(&self, e: &TpCounts) -> TpCounts {
        let zero = TpStat::default();
        TpCounts {
            totals: self
                .totals
                .iter()
                .enumerate()
                .map(|(i, a)| sub_stat(a, e.totals.get(i).unwrap_or(&zero)))
                .collect(),
            by_process: self
                .by_process
                .iter()
                .map(|(k, a)| (*k, sub_stat(a, e.by_process.get(k).unwrap_or(&zero))))
                .collect(),
            hist: sub_vec(&self.hist, &e.hist),
            drops: sub_vec(&self.drops, &e.drops),
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
            procs: if per_process {
                Some(obj.take_map("TP_PROC_STATS")?)
            } else {
                None
            },
            hist: if hist {
                Some(obj.take_map("TP_HIST")?)
            } else {
                None
            },
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
        let add = |s: &mut TpStat, v: &TpStat| {
            s.count += v.count;
            s.sum = s.sum.wrapping_add(v.sum);
        };
        let mut by_process = BTreeMap::new();
        let mut totals = vec![TpStat::default(); self.n];
        if let Some(p) = &self.procs {
            for item in p.iter() {
                let (k, v) = item.context("reading per-process tracepoint counters")?;
                let mut s = TpStat::default();
                for cpu in v.iter() {
                    add(&mut s, cpu);
                }
                if let Some(t) = totals.get_mut(k.slot as usize) {
                    add(t, &s);
                }
                by_process.insert((k.tgid, k.slot), s);
            }
        } else {
            totals = read_array(&self.stats, "tracepoint counters", add)?;
            totals.truncate(self.n);
        }
        let hist = match &self.hist {
            Some(h) => read_array(h, "tracepoint histograms", |s, v| *s += v)?,
            None => Vec::new(),
        };
        let drops = read_array(&self.drops, "tracepoint drop counters", |s, v| *s += v)?;
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
