//! Per-CPU counters of `tracer uprobe` and `tracer tracepoint`, summed into
//! plain data. Counters only grow, so an interval is `now.since(&before)`.
use std::collections::BTreeMap;

use super::{sub_slots as sub_vec, Delta};
use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap};
use tracer_common::{FuncStat, ProcInfo, TpProcKey, TpStat, LOG2_SLOTS};

fn read_array<V: aya::Pod + Default>(
    map: &PerCpuArray<MapData, V>,
    what: &str,
    mut add: impl FnMut(&mut V, &V),
) -> Result<Vec<V>> {
    map.iter()
        .map(|v| {
            let v = v.with_context(|| format!("reading {what}"))?;
            let mut s = V::default();
            for cpu in v.iter() {
                add(&mut s, cpu);
            }
            Ok(s)
        })
        .collect()
}

/// Log2 slots of item `i` in a flat `LOG2_SLOTS`-per-item array.
pub fn slots_of(flat: &[u64], i: usize) -> Vec<u64> {
    let n = LOG2_SLOTS as usize;
    flat.get(i * n..(i + 1) * n)
        .map(<[u64]>::to_vec)
        .unwrap_or_else(|| vec![0; n])
}

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
        let zero = FuncStat::default();
        FuncCounts {
            funcs: self
                .funcs
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let b = e.funcs.get(i).unwrap_or(&zero);
                    FuncStat {
                        calls: a.calls.saturating_sub(b.calls),
                        returns: a.returns.saturating_sub(b.returns),
                        total_ns: a.total_ns.saturating_sub(b.total_ns),
                    }
                })
                .collect(),
            hist: sub_vec(&self.hist, &e.hist),
            drops: sub_vec(&self.drops, &e.drops),
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
            hist: if latency {
                Some(obj.take_map("UPROBE_HIST")?)
            } else {
                None
            },
            drops: obj.take_map("UPROBE_DROPS")?,
            n,
        })
    }

    pub fn read(&self) -> Result<FuncCounts> {
        let mut funcs = read_array(&self.stats, "uprobe counters", |s, v| {
            s.calls += v.calls;
            s.returns += v.returns;
            s.total_ns += v.total_ns;
        })?;
        funcs.truncate(self.n);
        let hist = match &self.hist {
            Some(h) => read_array(h, "uprobe histograms", |s, v| *s += v)?,
            None => Vec::new(),
        };
        let drops = read_array(&self.drops, "uprobe drop counters", |s, v| *s += v)?;
        Ok(FuncCounts { funcs, hist, drops })
    }
}

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

    #[test]
    fn func_deltas() {
        let a = FuncCounts {
            funcs: vec![FuncStat {
                calls: 5,
                returns: 4,
                total_ns: 100,
            }],
            hist: vec![1, 2, 3],
            drops: vec![0, 1],
        };
        let b = FuncCounts {
            funcs: vec![FuncStat {
                calls: 9,
                returns: 8,
                total_ns: 180,
            }],
            hist: vec![1, 5, 3],
            drops: vec![0, 1],
        };
        let d = b.since(&a);
        assert_eq!(
            d.funcs[0],
            FuncStat {
                calls: 4,
                returns: 4,
                total_ns: 80
            }
        );
        assert_eq!(d.hist, vec![0, 3, 0]);
        assert_eq!(d.drops, vec![0, 0]);
        assert_eq!(b.since(&FuncCounts::default()), b);
    }

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
