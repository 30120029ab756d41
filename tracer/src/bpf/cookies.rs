//! Attaching uprobes and tracepoints with a BPF cookie: the index of the
//! function or tracepoint, which the program uses as its slot. Where the
//! kernel has no cookies (before 5.15), the i-th site gets the program's i-th
//! slot copy instead (`tracer-ebpf/src/slots.rs`), attached the plain way
//! (aya uses a perf-event bpf_link where there is one, else the perf event's
//! `PERF_EVENT_IOC_SET_BPF`: either way the fds own the attachment).
use std::{os::fd::AsFd as _, path::Path};

use anyhow::{bail, Context as _, Result};
use aya::programs::{
    uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    TracePoint, UProbe,
};
use tracer_common::{lacks, SLOTS};

use super::{attach_tracepoint, cookie_link, program, slot_copy, Object};

/// One place to put a uprobe: a file and an offset in it, named for errors.
pub struct Site<'a> {
    pub target: &'a Path,
    pub file_offset: u64,
    pub name: &'a str,
}

/// Whether `obj` identifies sites by slot copies; an error if there are more
/// sites than copies.
fn by_slots(obj: &Object, sites: usize, what: &str) -> Result<bool> {
    if obj.lacks & lacks::COOKIES == 0 {
        return Ok(false);
    }
    if sites > SLOTS as usize {
        bail!(
            "this kernel has no BPF cookies (Linux 5.15), so each of the {sites} {what} \
             needs its own program and tracer has {SLOTS}: name at most {SLOTS} at once"
        );
    }
    Ok(true)
}

/// Load uprobe program `prog` and attach it to every site, site i with cookie
/// i (or its i-th slot copy).
pub fn attach_uprobes(obj: &mut Object, prog: &str, sites: &[Site]) -> Result<()> {
    let slots = by_slots(obj, sites.len(), "functions")?;
    for (i, site) in sites.iter().enumerate() {
        let name = if slots {
            slot_copy(prog, i)
        } else {
            prog.to_string()
        };
        let p: &mut UProbe = program(obj.ebpf(), &name)?;
        if p.fd().is_err() {
            p.load()
                .with_context(|| format!("the kernel refused to load program {name}"))?;
        }
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(site.file_offset),
            cookie: (!slots).then_some(i as u64),
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
/// `(tracefs id, category:name)`, the i-th with cookie i (or its i-th slot copy).
pub fn attach_tracepoints(
    obj: &mut Object,
    prog: &str,
    tracepoints: &[(u32, String)],
) -> Result<()> {
    if by_slots(obj, tracepoints.len(), "tracepoints")? {
        for (i, (_, name)) in tracepoints.iter().enumerate() {
            let (category, event) = name.split_once(':').unwrap_or(("", name));
            attach_tracepoint(obj.ebpf(), &slot_copy(prog, i), category, event)?;
        }
        return Ok(());
    }
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
