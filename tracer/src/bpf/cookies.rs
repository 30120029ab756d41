//! Attaching uprobes and tracepoints with a BPF cookie: the index of the
//! function or tracepoint, which the program uses as its slot.
use std::{os::fd::AsFd as _, path::Path};

use anyhow::{Context as _, Result};
use aya::programs::{
    uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    TracePoint, UProbe,
};

use super::{cookie_link, program, Object};

/// One place to put a uprobe: a file and an offset in it, named for errors.
pub struct Site<'a> {
    pub target: &'a Path,
    pub file_offset: u64,
    pub name: &'a str,
}

/// Load uprobe program `prog` and attach it to every site, site i with cookie i.
pub fn attach_uprobes(obj: &mut Object, prog: &str, sites: &[Site]) -> Result<()> {
    let p: &mut UProbe = program(obj.ebpf(), prog)?;
    p.load()
        .with_context(|| format!("the kernel refused to load program {prog}"))?;
    for (i, site) in sites.iter().enumerate() {
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(site.file_offset),
            cookie: Some(i as u64),
        };
        p.attach(point, site.target, UProbeScope::AllProcesses)
            .with_context(|| {
                use crate::sys::privileges::{has, CAP_SYS_ADMIN};
                format!(
                    "attaching a uprobe to {} in {} (file offset {:#x}){}",
                    site.name,
                    site.target.display(),
                    site.file_offset,
                    if has(CAP_SYS_ADMIN) {
                        ""
                    } else {
                        " (the kernel lets only root or CAP_SYS_ADMIN create uprobes)"
                    }
                )
            })?;
    }
    Ok(())
}

/// Load tracepoint program `prog` and attach it to every tracepoint
/// `(tracefs id, name)`, the i-th with cookie i.
pub fn attach_tracepoints(
    obj: &mut Object,
    prog: &str,
    tracepoints: &[(u32, String)],
) -> Result<()> {
    let p: &mut TracePoint = program(obj.ebpf(), prog)?;
    p.load()
        .with_context(|| format!("the kernel refused to load program {prog}"))?;
    let fd = p.fd()?.as_fd();
    let mut links = Vec::new();
    for (i, (id, name)) in tracepoints.iter().enumerate() {
        links.push(
            cookie_link::attach_tracepoint(fd, u64::from(*id), i as u64)
                .with_context(|| format!("attaching to tracepoint {name}"))?,
        );
    }
    obj.hold(links);
    Ok(())
}
