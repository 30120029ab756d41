//! The feature probes behind `tracer info`: what this kernel lets tracer do,
//! found by loading and attaching tiny programs for real (like `bpftrace
//! --info`) and by asking the kernel about map types and helpers, not by
//! reading the kernel config.
use std::path::Path;

use anyhow::Result;
use aya::{
    maps::MapType,
    programs::{
        perf_event::{PerfEventScope, SamplePolicy},
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
        FEntry, KProbe, PerfEvent, ProgramError, ProgramType, TracePoint, UProbe,
    },
    sys::{is_helper_supported, is_map_supported, BpfHelper, SyscallError},
    Btf, Ebpf, EbpfLoader,
};
use thiserror::Error;

use super::{errno_in, profile::Sampler};

/// Which step of trying a program failed, as the user reads it.
const LOAD: &str = "the kernel refused to load the program";
const ATTACH: &str = "attaching failed";

/// Why a feature is not available here.
#[derive(Debug, Error)]
pub enum Missing {
    /// Something before the kernel had a say (the program is not in the
    /// object), or a failure told by the helper that tried (raw tracepoints).
    #[error("{0:#}")]
    Failed(anyhow::Error),
    #[error("this kernel has no kprobe support (CONFIG_KPROBES is not set)")]
    NoKprobes,
    #[error("no kernel BTF (/sys/kernel/btf/vmlinux is missing)")]
    NoBtf,
    /// The kernel refused with an errno, told by its name: `(EPERM)`.
    #[error("{step} ({errno})")]
    Errno {
        step: &'static str,
        errno: String,
        source: ProgramError,
    },
    /// The kernel refused, told in aya's words.
    #[error("{step}: {source}")]
    Refused {
        step: &'static str,
        source: ProgramError,
    },
    /// Finding this executable (the uprobe target) failed.
    #[error(transparent)]
    Exe(#[from] std::io::Error),
    #[error("the kernel does not support this map type")]
    MapType,
    #[error("the kernel does not offer this helper to tracing programs")]
    Helper,
    #[error("no hardware cycle counter for perf events here (most VMs have none)")]
    NoCycles,
    #[error("the kernel cannot link programs to perf events (BPF_LINK_CREATE)")]
    PerfLink,
    #[error("probing failed: {0}")]
    MapProbe(SyscallError),
    #[error("probing failed: {0}")]
    HelperProbe(ProgramError),
}

impl Missing {
    /// The kernel refused `step`: by errno name when the error has one.
    fn by_errno(step: &'static str, source: ProgramError) -> Self {
        match errno_in(&source) {
            Some(errno) => Missing::Errno {
                step,
                errno,
                source,
            },
            None => Missing::Refused { step, source },
        }
    }

    fn refused(step: &'static str) -> impl FnOnce(ProgramError) -> Self {
        move |source| Missing::Refused { step, source }
    }
}

/// The outcome of every probe, in the order `tracer info` lists them. Loads
/// the embedded object itself; the caller makes sure tracefs is mounted
/// first if it can be (the tracepoint probe needs it).
pub fn probe_all() -> Result<Vec<(&'static str, Result<(), Missing>)>> {
    let btf = Btf::from_sys_fs().ok();
    // The probes count nothing: the programs need no i386 offset.
    let lacks = super::compat::lacks()? | tracer_common::lacks::IA32;
    let mut loader = EbpfLoader::new();
    loader
        .allow_unsupported_maps()
        .override_global("FLAGS", &lacks, true);
    if lacks & tracer_common::lacks::TASK_STORAGE != 0 {
        // The hash map STARTS becomes here needs a size (task storage has none).
        loader.map_max_entries("STARTS", 1);
    }
    let mut ebpf = loader.load(&super::object(lacks)?)?;
    Ok(vec![
        ("raw tracepoints", raw_tracepoint(&mut ebpf)),
        ("tracepoints", tracepoint(&mut ebpf)),
        ("kprobes", kprobe(&mut ebpf)),
        ("fentry", fentry(&mut ebpf, btf.as_ref())),
        ("uprobes", uprobe(&mut ebpf)),
        ("ring buffer", map_type(MapType::RingBuf)),
        (
            "per-CPU maps",
            map_type(MapType::PerCpuArray).and(map_type(MapType::PerCpuHash)),
        ),
        ("task storage", map_type(MapType::TaskStorage)),
        (
            "BPF cookies",
            helper(ProgramType::KProbe, BpfHelper::BPF_FUNC_get_attach_cookie).and(
                if aya::features().bpf_perf_link() {
                    Ok(())
                } else {
                    Err(Missing::PerfLink)
                },
            ),
        ),
        (
            "bpf_get_func_ip",
            helper(ProgramType::KProbe, BpfHelper::BPF_FUNC_get_func_ip),
        ),
        ("CPU sampling", sampling(&mut ebpf, Sampler::CpuClock)),
        ("cycle counter", sampling(&mut ebpf, Sampler::Cycles)),
        (
            "stack traces",
            map_type(MapType::StackTrace)
                .and(helper(ProgramType::KProbe, BpfHelper::BPF_FUNC_get_stackid)),
        ),
    ])
}

fn raw_tracepoint(ebpf: &mut Ebpf) -> Result<(), Missing> {
    super::attach_raw_tracepoint(ebpf, "noop_enter", "sys_enter").map_err(Missing::Failed)
}

fn tracepoint(ebpf: &mut Ebpf) -> Result<(), Missing> {
    let prog: &mut TracePoint =
        super::program(ebpf, "probe_tracepoint").map_err(Missing::Failed)?;
    prog.load().map_err(Missing::refused(LOAD))?;
    prog.attach("sched", "sched_process_exec")
        .map_err(Missing::refused(ATTACH))?;
    Ok(())
}

fn kprobe(ebpf: &mut Ebpf) -> Result<(), Missing> {
    let prog: &mut KProbe = super::program(ebpf, "probe_kprobe").map_err(Missing::Failed)?;
    prog.load().map_err(|e| Missing::by_errno(LOAD, e))?;
    prog.attach("vfs_read", 0).map_err(|e| {
        if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
            Missing::by_errno(ATTACH, e)
        } else {
            Missing::NoKprobes
        }
    })?;
    Ok(())
}

fn fentry(ebpf: &mut Ebpf, btf: Option<&Btf>) -> Result<(), Missing> {
    let btf = btf.ok_or(Missing::NoBtf)?;
    let prog: &mut FEntry = super::program(ebpf, "probe_fentry").map_err(Missing::Failed)?;
    prog.load("vfs_read", btf)
        .map_err(|e| Missing::by_errno(LOAD, e))?;
    prog.attach().map_err(|e| Missing::by_errno(ATTACH, e))?;
    Ok(())
}

fn uprobe(ebpf: &mut Ebpf) -> Result<(), Missing> {
    let prog: &mut UProbe = super::program(ebpf, "probe_uprobe").map_err(Missing::Failed)?;
    prog.load().map_err(Missing::refused(LOAD))?;
    // tracer's own entry point: it is there even when the binary is stripped
    // (the static release has no symbols to look `main` up by).
    let exe = std::fs::read_link("/proc/self/exe")?;
    let offset = crate::sys::elf::entry_offset(&exe).map_err(Missing::Failed)?;
    let point = UProbeAttachPoint {
        location: UProbeAttachLocation::AbsoluteOffset(offset),
        cookie: None,
    };
    prog.attach(point, &exe, UProbeScope::AllProcesses)
        .map_err(Missing::refused(ATTACH))?;
    Ok(())
}

/// `profile_cpu` on a perf event sampling once a second on the first online
/// CPU (dropped with the object).
fn sampling(ebpf: &mut Ebpf, s: Sampler) -> Result<(), Missing> {
    let prog: &mut PerfEvent = super::program(ebpf, "profile_cpu").map_err(Missing::Failed)?;
    if prog.fd().is_err() {
        prog.load().map_err(Missing::refused(LOAD))?;
    }
    let cpus = super::profile::online_cpus().map_err(Missing::Failed)?;
    let cpu = cpus.first().copied().unwrap_or(0);
    let scope = PerfEventScope::AllProcessesOneCpu { cpu };
    match prog.attach(s.config(), scope, SamplePolicy::Frequency(1), false) {
        Ok(_) => Ok(()),
        Err(e) => match (s, errno_in(&e).as_deref()) {
            (Sampler::Cycles, Some("ENOENT" | "EOPNOTSUPP" | "ENODEV")) => Err(Missing::NoCycles),
            _ => Err(Missing::by_errno(ATTACH, e)),
        },
    }
}

fn map_type(ty: MapType) -> Result<(), Missing> {
    match is_map_supported(ty) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Missing::MapType),
        Err(e) => Err(Missing::MapProbe(e)),
    }
}

fn helper(prog: ProgramType, helper: BpfHelper) -> Result<(), Missing> {
    match is_helper_supported(prog, helper) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Missing::Helper),
        Err(e) => Err(Missing::HelperProbe(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_reads_as_before() {
        assert_eq!(
            Missing::NoKprobes.to_string(),
            "this kernel has no kprobe support (CONFIG_KPROBES is not set)"
        );
        let e = || ProgramError::AlreadyAttached;
        assert_eq!(
            Missing::Errno {
                step: LOAD,
                errno: "EPERM".into(),
                source: e()
            }
            .to_string(),
            "the kernel refused to load the program (EPERM)"
        );
        assert_eq!(
            Missing::by_errno(ATTACH, e()).to_string(),
            format!("attaching failed: {}", e())
        );
        assert_eq!(
            Missing::Failed(anyhow::anyhow!("inner").context("outer")).to_string(),
            "outer: inner"
        );
        let io = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            Missing::from(io).to_string(),
            std::io::Error::from_raw_os_error(2).to_string()
        );
    }
}
