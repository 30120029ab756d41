//! `tracer profile`'s attach: a sampling perf event per online CPU running
//! `profile_cpu`, or the scheduler's switch tracepoint running
//! `offcpu_switch`; and the exec hook that starts a process's next generation.
use anyhow::{Context as _, Result};
use aya::programs::{
    perf_event::{HardwareEvent, PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    PerfEvent,
};

use super::{program, Object};

/// What the CPU samples are taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    /// The kernel's CPU clock (software): works everywhere.
    CpuClock,
    /// The CPU's cycle counter (hardware).
    Cycles,
}

impl Sampler {
    /// The event's name, as perf calls it.
    pub fn name(self) -> &'static str {
        match self {
            Sampler::CpuClock => "cpu-clock",
            Sampler::Cycles => "cycles",
        }
    }

    pub(crate) fn config(self) -> PerfEventConfig {
        match self {
            Sampler::CpuClock => PerfEventConfig::Software(SoftwareEvent::CpuClock),
            Sampler::Cycles => PerfEventConfig::Hardware(HardwareEvent::CpuCycles),
        }
    }
}

/// The CPUs online now.
pub fn online_cpus() -> Result<Vec<u32>> {
    aya::util::online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))
}

/// Sample `hz` times a second on every online CPU with `profile_cpu`, on
/// the first of `samplers` this machine has (a CPU without a cycle counter,
/// or a VM, refuses the hardware event). Returns the one used and the CPUs.
pub fn attach_sampling(
    obj: &mut Object,
    samplers: &[Sampler],
    hz: u64,
) -> Result<(Sampler, usize)> {
    let cpus = online_cpus()?;
    let prog: &mut PerfEvent = program(obj.ebpf(), "profile_cpu")?;
    prog.load()
        .context("the kernel refused to load the sampling program")?;
    let mut last_err = None;
    'samplers: for &s in samplers {
        let mut links = Vec::new();
        for &cpu in &cpus {
            match prog.attach(
                s.config(),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(hz),
                false,
            ) {
                Ok(l) => links.push(l),
                Err(e) => {
                    log::info!("sampling on {} refused on cpu {cpu}: {e}", s.name());
                    for l in links {
                        let _ = prog.detach(l);
                    }
                    let errno = super::errno_in(&e);
                    let e = anyhow::Error::new(e);
                    last_err = Some(match (s, errno.as_deref()) {
                        (Sampler::Cycles, Some("ENOENT" | "EOPNOTSUPP" | "ENODEV")) => e.context(
                            "this machine has no CPU cycle counter for perf events (most VMs \
                             have none): sample on -e cpu-clock",
                        ),
                        _ => e.context(format!("cannot sample on {} (perf_event_open)", s.name())),
                    });
                    continue 'samplers;
                }
            }
        }
        return Ok((s, cpus.len()));
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no sampling event given")))
}

/// Off-CPU: run `offcpu_switch` at every context switch.
pub fn attach_off_cpu(obj: &mut Object) -> Result<()> {
    obj.attach_tracepoint("offcpu_switch", "sched", "sched_switch")
}

/// A sampled process that execs, or whose pid is freed, starts a new
/// generation of mappings.
pub fn attach_generations(obj: &mut Object) -> Result<()> {
    obj.attach_raw_tracepoint("profile_exec", "sched_process_exec")?;
    obj.attach_raw_tracepoint("profile_exit", "sched_process_exit")
}
