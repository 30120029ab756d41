//! `tracer info`: what this kernel lets tracer do, found by loading and
//! attaching tiny programs for real (like `bpftrace --info`), not by reading
//! the kernel config.
use std::path::Path;

use anyhow::Result;

use crate::{
    bpf::features,
    cli::InfoArgs,
    report::info::{self, Feature, Info, Tracefs},
    sys::{mountns, tracefs},
};

/// The probes of `gather`; `may_mount`: inside the throw-away namespace, where
/// mounting tracefs to see whether it can be mounted leaves no trace.
fn probe_all(tracefs_before: Option<&str>, may_mount: bool) -> Result<(Tracefs, Vec<Feature>)> {
    // Mounted before the probes run: the tracepoint probe needs it.
    let tracefs = match tracefs_before {
        Some(p) => Tracefs::Mounted(p.to_string()),
        None if !may_mount => Tracefs::NotProbed,
        None => match tracefs::ensure_mounted() {
            Ok(_) => Tracefs::Mountable,
            Err(e) => Tracefs::Unmountable(e),
        },
    };
    let features = features::probe_all()?
        .iter()
        .map(|(name, outcome)| info::feature(name, outcome))
        .collect();
    Ok((tracefs, features))
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
        tracefs: info::tracefs(&gathered.0),
        features: gathered.1,
    })
}

pub fn run(args: InfoArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let info = gather()?;
    let text = if args.json {
        info::json(&info) + "\n"
    } else {
        info::text(&info)
    };
    super::Sink::new(None, false)?.write(&text)?;
    Ok(0)
}
