//! Per-CPU syscall counters summed into `Counts`, and the rows of exited
//! processes taken out of the kernel's maps during the run.
use std::collections::{BTreeMap, BTreeSet};

use super::{named_drops, read_array, sum, Counter as _, Delta};
use crate::bpf::maps::{delete_all, lookup_all};
use anyhow::{Context as _, Result};
use aya::maps::{HashMap, IterableMap as _, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use tracer_common::{drops, ErrnoKey, ProcInfo, ProcKey, SyscallStat};

/// Names of the `DROPS` reasons, for reports: each one makes counts low.
/// (`drops::EXITS_LOST` does not: a lost exit notice only delays taking a
/// process's rows out of the kernel; the command warns about it apart.)
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

impl Counts {
    /// Add one per-process row (its per-CPU values summed) to the totals and
    /// to its process.
    fn add_process_row(&mut self, k: &ProcKey, per_cpu: &[SyscallStat]) {
        let s = sum(per_cpu);
        self.by_syscall.entry(k.syscall).or_default().add(&s);
        let p = self.by_process.entry(k.tgid).or_default();
        p.entry(k.syscall).or_default().add(&s);
    }

    /// Add one errno row (its per-CPU values summed).
    fn add_errno_row(&mut self, k: &ErrnoKey, per_cpu: &[u64]) {
        *self.errnos.entry((k.tgid, k.syscall, k.errno)).or_default() += sum(per_cpu);
    }

    pub fn named_drops(&self) -> Vec<(&'static str, u64)> {
        named_drops(&DROP_NAMES, &self.drops)
    }
}

impl Delta for Counts {
    fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            by_syscall: self.by_syscall.since(&earlier.by_syscall),
            by_process: self.by_process.since(&earlier.by_process),
            errnos: self.errnos.since(&earlier.errnos),
            drops: self.drops.since(&earlier.drops),
        }
    }
}

/// Handles on the counting maps, taken out of the loaded object.
pub struct Collector {
    stats: PerCpuArray<MapData, SyscallStat>,
    proc_stats: Option<PerCpuHashMap<MapData, ProcKey, SyscallStat>>,
    errnos: Option<PerCpuHashMap<MapData, ErrnoKey, u64>>,
    drops: PerCpuArray<MapData, u64>,
    procs: HashMap<MapData, u32, ProcInfo>,
    exits: Option<Exits>,
    /// Possible CPUs: the number of values of a per-CPU entry.
    cpus: usize,
}

/// How often (in calls of `drain_exited`: every 2 s at one call per 100 ms)
/// every process the maps know is checked, not only those the kernel said exited: this catches processes
/// whose notice was lost (ring full) or whose leader exited before the run.
const SWEEP_EVERY: u32 = 20;

/// Processes that exited, and what was taken out of the maps for them.
struct Exits {
    /// `PROC_EXITS`: tgids whose group leader exited.
    ring: RingBuf<MapData>,
    /// Leaders that exited in processes not all gone yet (other threads run).
    pending: BTreeSet<u32>,
    /// The counts of the processes taken out (by_syscall, by_process, errnos).
    drained: Counts,
    drained_procs: BTreeMap<u32, ProcInfo>,
    /// Possible CPUs: the number of values of a per-CPU entry.
    cpus: usize,
    /// Calls of `drain_exited` so far.
    drains: u32,
}

impl Collector {
    /// `exit_notices`: the programs send exited processes through
    /// `PROC_EXITS` (`flags::EXIT_NOTICES`); `drain_exited` takes their rows
    /// out of the kernel maps.
    pub fn new(
        obj: &mut crate::bpf::Object,
        per_process: bool,
        errnos: bool,
        exit_notices: bool,
    ) -> Result<Self> {
        let exits = if exit_notices {
            Some(Exits {
                ring: obj.take_map("PROC_EXITS")?,
                pending: BTreeSet::new(),
                drained: Counts::default(),
                drained_procs: BTreeMap::new(),
                cpus: crate::bpf::possible_cpus()?,
                drains: 0,
            })
        } else {
            None
        };
        Ok(Self {
            stats: obj.take_map("SYSCALL_STATS")?,
            proc_stats: per_process
                .then(|| obj.take_map("PROC_STATS"))
                .transpose()?,
            errnos: errnos.then(|| obj.take_map("ERRNO_STATS")).transpose()?,
            drops: obj.take_map("DROPS")?,
            procs: obj.take_map("PROCS")?,
            exits,
            cpus: crate::bpf::possible_cpus()?,
        })
    }

    /// Everything counted so far: what the kernel maps hold, plus the rows of
    /// exited processes already taken out of them.
    pub fn read(&self) -> Result<Counts> {
        let mut c = match &self.exits {
            Some(x) => x.drained.clone(),
            None => Counts::default(),
        };
        if let Some(ps) = &self.proc_stats {
            for item in ps.iter() {
                let (k, v) = item.context("reading per-process counters")?;
                c.add_process_row(&k, &v);
            }
        } else {
            // One batch call, not one per syscall number, where the kernel
            // has batch lookups of arrays (Debian's 5.10 says ENOTSUPP).
            let rows: Vec<(u32, SyscallStat)> =
                match lookup_all::<u32, SyscallStat>(self.stats.map(), self.cpus) {
                    Ok((nrs, values)) => nrs
                        .into_iter()
                        .zip(values.chunks_exact(self.cpus).map(sum))
                        .collect(),
                    Err(e) => {
                        log::debug!("batch lookup of the syscall counters: {e}; one by one");
                        (0..)
                            .zip(read_array(&self.stats, "syscall counters")?)
                            .collect()
                    }
                };
            for (nr, s) in rows {
                if s.calls > 0 || s.errors > 0 {
                    c.by_syscall.insert(nr, s);
                }
            }
        }
        if let Some(es) = &self.errnos {
            for item in es.iter() {
                let (k, v) = item.context("reading errno counters")?;
                c.add_errno_row(&k, &v);
            }
        }
        let drops = read_array(&self.drops, "drop counters")?;
        c.drops.iter_mut().zip(drops).for_each(|(d, v)| *d = v);
        Ok(c)
    }

    /// What the kernel recorded about processes (parent, comm) at fork and
    /// exec, including the processes taken out of its maps.
    pub fn procs(&self) -> BTreeMap<u32, ProcInfo> {
        let mut all = match &self.exits {
            Some(x) => x.drained_procs.clone(),
            None => BTreeMap::new(),
        };
        all.extend(self.procs.iter().filter_map(|r| r.ok()));
        all
    }

    /// What the kernel recorded about process `tgid`, taken out of its maps
    /// or not.
    pub fn proc_info(&self, tgid: u32) -> Option<ProcInfo> {
        let drained = self.exits.as_ref().and_then(|x| x.drained_procs.get(&tgid));
        drained.copied().or_else(|| self.procs.get(&tgid, 0).ok())
    }

    /// Take the rows of every process that has exited out of the kernel maps
    /// (`PROC_STATS`, `ERRNO_STATS`, `PROCS`) into user space, so the maps
    /// hold live processes only; `read` adds them back. Call it often (every
    /// 100 ms): the kernel's notices wait in a ring buffer until then.
    ///
    /// A notice only says that a process's leader exited. `gone(tgid)` says
    /// whether the whole process is gone (`proc::group_gone`); until it is,
    /// the process waits in `pending`. Once it is gone, nothing can update its
    /// rows any more, so reading them and then deleting them cannot lose a
    /// count. (A pid reused by a process that makes a syscall in the few
    /// milliseconds between the two could; with pids handed out in turn, that
    /// takes all the other pids used up in between.) The map is read and the
    /// rows deleted with the batch commands: a few calls per drain, not two
    /// per row, so draining keeps up with thousands of exits a second.
    ///
    /// Returns the tgids taken out, for the traced set to forget them too.
    pub fn drain_exited(&mut self, gone: impl Fn(u32) -> bool) -> Result<Vec<u32>> {
        let Some(x) = &mut self.exits else {
            return Ok(Vec::new());
        };
        let t0 = std::time::Instant::now();
        while let Some(item) = x.ring.next() {
            if let Ok(b) = <[u8; 4]>::try_from(&item[..]) {
                x.pending.insert(u32::from_ne_bytes(b));
            }
        }
        x.drains = x.drains.wrapping_add(1);
        let sweep = x.drains % SWEEP_EVERY == 0;
        // Gone first, rows next: every row a gone process made is in the maps
        // by the time they are read.
        let mut dead: BTreeSet<u32> = x.pending.iter().copied().filter(|&t| gone(t)).collect();
        x.pending.retain(|t| !dead.contains(t));
        if !sweep && dead.is_empty() {
            return Ok(Vec::new());
        }
        let (proc_keys, proc_values) = match &self.proc_stats {
            Some(m) => lookup_all::<ProcKey, SyscallStat>(m.map(), x.cpus)
                .context("reading the per-process counters")?,
            None => Default::default(),
        };
        let (errno_keys, errno_values) = match &self.errnos {
            Some(m) => lookup_all::<ErrnoKey, u64>(m.map(), x.cpus)
                .context("reading the errno counters")?,
            None => Default::default(),
        };
        if sweep {
            // A process found gone here may have made its last row after the
            // read above: the next sweep takes that row. The fork hook
            // records threads in PROCS too: a live thread's tid is not a
            // process (`gone` says so), and its entry goes as well.
            let mut known: BTreeSet<u32> = proc_keys.iter().map(|k| k.tgid).collect();
            known.extend(errno_keys.iter().map(|k| k.tgid).filter(|&t| t != 0));
            known.extend(self.procs.keys().filter_map(|k| k.ok()));
            dead.extend(known.into_iter().filter(|&t| gone(t)));
        }
        if dead.is_empty() {
            return Ok(Vec::new());
        }
        let mut taken = 0;
        if let Some(m) = &mut self.proc_stats {
            let mut keys = Vec::new();
            for (k, v) in proc_keys.iter().zip(proc_values.chunks_exact(x.cpus)) {
                if dead.contains(&k.tgid) {
                    x.drained.add_process_row(k, v);
                    keys.push(*k);
                }
            }
            delete_all(m.map(), &keys).context("deleting per-process counters")?;
            taken = keys.len();
        }
        if let Some(m) = &mut self.errnos {
            let mut keys = Vec::new();
            for (k, v) in errno_keys.iter().zip(errno_values.chunks_exact(x.cpus)) {
                if dead.contains(&k.tgid) {
                    x.drained.add_errno_row(k, v);
                    keys.push(*k);
                }
            }
            delete_all(m.map(), &keys).context("deleting errno counters")?;
        }
        for &tgid in &dead {
            if let Ok(info) = self.procs.get(&tgid, 0) {
                x.drained_procs.insert(tgid, info);
                let _ = self.procs.remove(&tgid);
            }
        }
        log::debug!(
            "drained {} exited processes ({taken} rows of {}) in {:.1} ms; {} waiting",
            dead.len(),
            proc_keys.len(),
            t0.elapsed().as_secs_f64() * 1e3,
            x.pending.len(),
        );
        Ok(dead.into_iter().collect())
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
        assert_eq!(sum(&[st(1, 0, 5), st(2, 1, 5)]), st(3, 1, 10));
    }
}
