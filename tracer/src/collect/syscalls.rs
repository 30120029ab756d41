//! Per-CPU syscall counters summed into `Counts`, and the traced-process set.
use std::collections::BTreeMap;

use super::take;
use anyhow::{Context as _, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap},
    Ebpf,
};
use tracer_common::{drops, ErrnoKey, ProcInfo, ProcKey, SyscallStat};

/// Names of the `DROPS` reasons, for reports.
pub const DROP_NAMES: [(u32, &str); 5] = [
    (drops::STARTS_FULL, "entry table full"),
    (drops::PROCS_FULL, "per-process table full"),
    (drops::ERRNO_FULL, "errno table full"),
    (drops::TRACED_FULL, "traced-process set full"),
    (drops::BAD_SYSCALL, "syscall number out of range"),
];

/// Everything counted so far, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Per syscall number, over all counted processes.
    pub by_syscall: BTreeMap<u32, SyscallStat>,
    /// Per process, then per syscall (only when counting per process).
    pub by_process: BTreeMap<u32, BTreeMap<u32, SyscallStat>>,
    /// (tgid or 0, syscall, errno) -> failures.
    pub errnos: BTreeMap<(u32, u32, u32), u64>,
    pub drops: [u64; drops::COUNT as usize],
}

fn add(a: &mut SyscallStat, b: &SyscallStat) {
    a.calls += b.calls;
    a.errors += b.errors;
    a.total_ns += b.total_ns;
}

fn sub(a: &SyscallStat, b: &SyscallStat) -> SyscallStat {
    SyscallStat {
        calls: a.calls.saturating_sub(b.calls),
        errors: a.errors.saturating_sub(b.errors),
        total_ns: a.total_ns.saturating_sub(b.total_ns),
    }
}

fn sub_map<K: Ord + Copy, V: Default + Clone>(
    now: &BTreeMap<K, V>,
    before: &BTreeMap<K, V>,
    f: impl Fn(&V, &V) -> V,
) -> BTreeMap<K, V> {
    now.iter()
        .map(|(k, v)| (*k, f(v, before.get(k).unwrap_or(&V::default()))))
        .collect()
}

impl Counts {
    /// What was counted between `earlier` and `self` (counters only grow).
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut drops = self.drops;
        for (d, e) in drops.iter_mut().zip(earlier.drops) {
            *d = d.saturating_sub(e);
        }
        Counts {
            by_syscall: sub_map(&self.by_syscall, &earlier.by_syscall, sub),
            by_process: self
                .by_process
                .iter()
                .map(|(pid, m)| {
                    let empty = BTreeMap::new();
                    let before = earlier.by_process.get(pid).unwrap_or(&empty);
                    (*pid, sub_map(m, before, sub))
                })
                .collect(),
            errnos: sub_map(&self.errnos, &earlier.errnos, |a, b| a.saturating_sub(*b)),
            drops,
        }
    }

    /// Non-zero drop counters with their names.
    pub fn named_drops(&self) -> Vec<(&'static str, u64)> {
        DROP_NAMES
            .iter()
            .filter_map(|(i, name)| {
                let n = self.drops[*i as usize];
                (n > 0).then_some((*name, n))
            })
            .collect()
    }
}

/// Sum per-CPU values.
fn sum_stats(values: &[SyscallStat]) -> SyscallStat {
    let mut s = SyscallStat::default();
    for v in values {
        add(&mut s, v);
    }
    s
}

/// Handles on the counting maps, taken out of the loaded object.
pub struct Collector {
    stats: PerCpuArray<MapData, SyscallStat>,
    proc_stats: Option<PerCpuHashMap<MapData, ProcKey, SyscallStat>>,
    errnos: Option<PerCpuHashMap<MapData, ErrnoKey, u64>>,
    drops: PerCpuArray<MapData, u64>,
    procs: HashMap<MapData, u32, ProcInfo>,
}

impl Collector {
    pub fn new(ebpf: &mut Ebpf, per_process: bool, errnos: bool) -> Result<Self> {
        Ok(Self {
            stats: take(ebpf, "SYSCALL_STATS")?,
            proc_stats: if per_process {
                Some(take(ebpf, "PROC_STATS")?)
            } else {
                None
            },
            errnos: if errnos {
                Some(take(ebpf, "ERRNO_STATS")?)
            } else {
                None
            },
            drops: take(ebpf, "DROPS")?,
            procs: take(ebpf, "PROCS")?,
        })
    }

    pub fn read(&self) -> Result<Counts> {
        let mut c = Counts::default();
        if let Some(ps) = &self.proc_stats {
            for item in ps.iter() {
                let (k, v) = item.context("reading per-process counters")?;
                let s = sum_stats(&v);
                add(c.by_syscall.entry(k.syscall).or_default(), &s);
                add(
                    c.by_process
                        .entry(k.tgid)
                        .or_default()
                        .entry(k.syscall)
                        .or_default(),
                    &s,
                );
            }
        } else {
            for (nr, v) in self.stats.iter().enumerate() {
                let s = sum_stats(&v.context("reading syscall counters")?);
                if s.calls > 0 || s.errors > 0 {
                    c.by_syscall.insert(nr as u32, s);
                }
            }
        }
        if let Some(es) = &self.errnos {
            for item in es.iter() {
                let (k, v) = item.context("reading errno counters")?;
                *c.errnos.entry((k.tgid, k.syscall, k.errno)).or_default() += v.iter().sum::<u64>();
            }
        }
        for (i, v) in self.drops.iter().enumerate() {
            c.drops[i] = v.context("reading drop counters")?.iter().sum();
        }
        Ok(c)
    }

    /// What the kernel recorded about processes (parent, comm) at fork and exec.
    pub fn procs(&self) -> BTreeMap<u32, ProcInfo> {
        self.procs.iter().filter_map(|r| r.ok()).collect()
    }
}

/// The kernel-side set of traced processes.
pub struct TracedSet {
    map: HashMap<MapData, u32, u8>,
}

impl TracedSet {
    pub fn new(ebpf: &mut Ebpf) -> Result<Self> {
        Ok(Self {
            map: take(ebpf, "TRACED_TGIDS")?,
        })
    }

    pub fn insert(&mut self, tgid: u32) -> Result<()> {
        self.map
            .insert(tgid, 1, 0)
            .with_context(|| format!("adding pid {tgid} to the traced set"))
    }

    /// Remove the processes that are gone (or zombies); returns how many remain.
    pub fn prune(&mut self, alive: impl Fn(u32) -> bool) -> usize {
        let keys: Vec<u32> = self.map.keys().filter_map(|k| k.ok()).collect();
        let mut left = 0;
        for k in keys {
            if alive(k) {
                left += 1;
            } else {
                let _ = self.map.remove(&k);
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(calls: u64, errors: u64, total_ns: u64) -> SyscallStat {
        SyscallStat {
            calls,
            errors,
            total_ns,
        }
    }

    #[test]
    fn delta_between_reads() {
        let mut a = Counts::default();
        a.by_syscall.insert(0, st(5, 1, 100));
        a.by_process.entry(9).or_default().insert(0, st(5, 1, 100));
        a.errnos.insert((0, 0, 2), 1);
        a.drops[0] = 2;
        let mut b = a.clone();
        b.by_syscall.insert(0, st(8, 1, 150));
        b.by_syscall.insert(1, st(1, 0, 0));
        b.by_process.entry(9).or_default().insert(0, st(8, 1, 150));
        b.by_process.entry(10).or_default().insert(1, st(1, 0, 0));
        b.errnos.insert((0, 0, 2), 4);
        b.drops[0] = 5;
        let d = b.since(&a);
        assert_eq!(d.by_syscall[&0], st(3, 0, 50));
        assert_eq!(d.by_syscall[&1], st(1, 0, 0));
        assert_eq!(d.by_process[&9][&0], st(3, 0, 50));
        assert_eq!(d.by_process[&10][&1], st(1, 0, 0));
        assert_eq!(d.errnos[&(0, 0, 2)], 3);
        assert_eq!(d.named_drops(), vec![("entry table full", 3)]);
        assert_eq!(b.since(&Counts::default()), b);
    }

    #[test]
    fn per_cpu_sum() {
        assert_eq!(sum_stats(&[st(1, 0, 5), st(2, 1, 5)]), st(3, 1, 10));
    }
}
