//! `tracer info`: what this kernel lets tracer do, found by loading and
//! attaching tiny programs for real (like `bpftrace --info`), not by reading
//! the kernel config.
use std::path::Path;

use anyhow::Result;
use aya::{
    maps::MapType,
    programs::{FEntry, KProbe, ProgramType, TracePoint, UProbe},
    sys::{is_helper_supported, is_map_supported, BpfHelper},
    Btf, Ebpf, EbpfLoader,
};

use crate::{
    cli::InfoArgs,
    report::info::{Feature, Info},
    sys::{mountns, names, tracefs},
};

/// The errno buried in an error chain, as a name (EPERM), if there is one.
pub fn errno_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(names::errno_name(n as u32));
            }
        }
        cur = e.source();
    }
    None
}

fn outcome(name: &'static str, r: Result<(), String>) -> Feature {
    match r {
        Ok(()) => Feature {
            name,
            available: true,
            reason: None,
        },
        Err(reason) => Feature {
            name,
            available: false,
            reason: Some(reason),
        },
    }
}

/// Why a kprobe could not be attached, in words a user can act on.
pub fn kprobe_reason(err: &(dyn std::error::Error + 'static)) -> String {
    if !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        return "this kernel has no kprobe support (CONFIG_KPROBES is not set)".into();
    }
    match errno_in(err) {
        Some(e) => format!("attaching failed ({e})"),
        None => format!("attaching failed: {err}"),
    }
}

/// Why an fentry program could not be used.
pub fn fentry_reason(err: &(dyn std::error::Error + 'static), loading: bool) -> String {
    let what = if loading {
        "the kernel refused to load the program"
    } else {
        "attaching failed"
    };
    match errno_in(err) {
        Some(e) => format!("{what} ({e})"),
        None => format!("{what}: {err}"),
    }
}

fn probe_raw_tracepoint(ebpf: &mut Ebpf) -> Result<(), String> {
    crate::bpf::attach_raw_tracepoint(ebpf, "noop_enter", "sys_enter").map_err(|e| format!("{e:#}"))
}

fn probe_tracepoint(ebpf: &mut Ebpf) -> Result<(), String> {
    let prog: &mut TracePoint =
        crate::bpf::program(ebpf, "probe_tracepoint").map_err(|e| format!("{e:#}"))?;
    prog.load()
        .map_err(|e| format!("the kernel refused to load the program: {e}"))?;
    prog.attach("sched", "sched_process_exec")
        .map_err(|e| format!("attaching failed: {e}"))?;
    Ok(())
}

fn probe_kprobe(ebpf: &mut Ebpf) -> Result<(), String> {
    let prog: &mut KProbe =
        crate::bpf::program(ebpf, "probe_kprobe").map_err(|e| format!("{e:#}"))?;
    prog.load().map_err(|e| fentry_reason(&e, true))?;
    prog.attach("vfs_read", 0).map_err(|e| kprobe_reason(&e))?;
    Ok(())
}

fn probe_fentry(ebpf: &mut Ebpf, btf: Option<&Btf>) -> Result<(), String> {
    let btf = btf.ok_or("no kernel BTF (/sys/kernel/btf/vmlinux is missing)")?;
    let prog: &mut FEntry =
        crate::bpf::program(ebpf, "probe_fentry").map_err(|e| format!("{e:#}"))?;
    prog.load("vfs_read", btf)
        .map_err(|e| fentry_reason(&e, true))?;
    prog.attach().map_err(|e| fentry_reason(&e, false))?;
    Ok(())
}

fn probe_uprobe(ebpf: &mut Ebpf) -> Result<(), String> {
    let prog: &mut UProbe =
        crate::bpf::program(ebpf, "probe_uprobe").map_err(|e| format!("{e:#}"))?;
    prog.load()
        .map_err(|e| format!("the kernel refused to load the program: {e}"))?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| e.to_string())?;
    prog.attach(
        "main",
        &exe,
        aya::programs::uprobe::UProbeScope::AllProcesses,
    )
    .map_err(|e| format!("attaching failed: {e}"))?;
    Ok(())
}

fn map_probe(ty: MapType) -> Result<(), String> {
    match is_map_supported(ty) {
        Ok(true) => Ok(()),
        Ok(false) => Err("the kernel does not support this map type".into()),
        Err(e) => Err(format!("probing failed: {e}")),
    }
}

fn helper_probe(prog: ProgramType, helper: BpfHelper) -> Result<(), String> {
    match is_helper_supported(prog, helper) {
        Ok(true) => Ok(()),
        Ok(false) => Err("the kernel does not offer this helper to tracing programs".into()),
        Err(e) => Err(format!("probing failed: {e}")),
    }
}

/// The probes of `gather`; `may_mount`: inside the throw-away namespace, where
/// mounting tracefs to see whether it can be mounted leaves no trace.
fn probe_all(
    tracefs_before: Option<&str>,
    may_mount: bool,
) -> Result<(Option<String>, Vec<Feature>)> {
    let mountable = match tracefs_before {
        Some(_) => None,
        None if !may_mount => Some(Err(
            "not probed (mounting it to see needs CAP_SYS_ADMIN and CAP_SYS_CHROOT)".to_string(),
        )),
        None => Some(
            tracefs::ensure_mounted()
                .map(|_| ())
                .map_err(|e| format!("{e:#}")),
        ),
    };
    let btf = Btf::from_sys_fs().ok();
    let mut ebpf = EbpfLoader::new()
        .allow_unsupported_maps()
        .load(crate::bpf::object())?;
    let features = vec![
        outcome("raw tracepoints", probe_raw_tracepoint(&mut ebpf)),
        outcome("tracepoints", probe_tracepoint(&mut ebpf)),
        outcome("kprobes", probe_kprobe(&mut ebpf)),
        outcome("fentry", probe_fentry(&mut ebpf, btf.as_ref())),
        outcome("uprobes", probe_uprobe(&mut ebpf)),
        outcome("ring buffer", map_probe(MapType::RingBuf)),
        outcome(
            "per-CPU maps",
            map_probe(MapType::PerCpuArray).and(map_probe(MapType::PerCpuHash)),
        ),
        outcome("task storage", map_probe(MapType::TaskStorage)),
        outcome(
            "bpf_get_func_ip",
            helper_probe(ProgramType::KProbe, BpfHelper::BPF_FUNC_get_func_ip),
        ),
        outcome(
            "stack traces",
            map_probe(MapType::StackTrace).and(helper_probe(
                ProgramType::KProbe,
                BpfHelper::BPF_FUNC_get_stackid,
            )),
        ),
    ];
    drop(ebpf);
    let tracefs = match (tracefs_before, mountable) {
        (Some(p), _) => format!("mounted at {p}"),
        (None, Some(Ok(()))) => "not mounted; mountable (tracer mounts it when needed)".into(),
        (None, Some(Err(e))) => format!("not mounted, and mounting failed: {e}"),
        (None, None) => unreachable!(),
    };
    Ok((Some(tracefs), features))
}

/// Probe everything. Runs in a throw-away mount namespace, so mounting tracefs
/// to probe tracepoints leaves the system as it was; where that namespace is
/// not available (no CAP_SYS_ADMIN or CAP_SYS_CHROOT), probes in place and
/// does not try to mount tracefs.
pub fn gather() -> Result<Info> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let btf_path = Path::new("/sys/kernel/btf/vmlinux");
    let tracefs_before = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|p| Path::new(p).join("events").is_dir())
        .map(str::to_string);
    let gathered = match mountns::in_private_mount_ns(|| probe_all(tracefs_before.as_deref(), true))
    {
        Ok(r) => r?,
        Err(e) => {
            log::info!("probing in place: {e:#}");
            probe_all(tracefs_before.as_deref(), false)?
        }
    };
    Ok(Info {
        kernel,
        btf: btf_path.exists(),
        tracefs: gathered.0.unwrap_or_default(),
        features: gathered.1,
    })
}

pub fn run(args: InfoArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let info = gather()?;
    let text = if args.json {
        crate::report::info::json(&info) + "\n"
    } else {
        crate::report::info::text(&info)
    };
    let mut sink = super::Sink::new(None, false)?;
    sink.write(&text)?;
    Ok(0)
}
