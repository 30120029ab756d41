//! Attaching the kernel-function programs with one of two backends: kprobes
//! (perf kprobe PMU; one program attached to every function) or fentry/fexit
//! (BTF trampolines; the program is loaded once per function, since a load
//! names its target, and each link is kept after the program object is reused).
//!
//! Errors are sorted in two kinds: the backend cannot work on this kernel at
//! all (no kprobe PMU, no BTF, the kernel refuses the program), or one
//! function cannot be attached (notrace, missing from BTF, ...). The first
//! lets the caller try the other backend, the second is listed to the user.
use std::{path::Path, time::Instant};

use aya::{
    programs::{fentry::FEntryLink, fexit::FExitLink, FEntry, FExit, KProbe, ProgramError},
    Btf, Ebpf,
};

use crate::sys::names::errno_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kprobe,
    Fentry,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Kprobe => "kprobe",
            Backend::Fentry => "fentry",
        }
    }

    /// The one line telling the user what is used.
    pub fn describe(self) -> &'static str {
        match self {
            Backend::Kprobe => "kprobe/kretprobe (perf kprobe PMU)",
            Backend::Fentry => "fentry/fexit (BTF trampolines)",
        }
    }
}

/// What the programs do at each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Count,
    Latency,
    Stack,
}

/// Names of the (entry, return) programs of a backend and job.
pub fn program_names(backend: Backend, job: Job) -> (&'static str, Option<&'static str>) {
    match (backend, job) {
        (Backend::Kprobe, Job::Count) => ("kp_count", None),
        (Backend::Kprobe, Job::Latency) => ("kp_lat_entry", Some("kp_lat_exit")),
        (Backend::Kprobe, Job::Stack) => ("kp_stack", None),
        (Backend::Fentry, Job::Count) => ("fe_count", None),
        (Backend::Fentry, Job::Latency) => ("fe_lat_entry", Some("fx_lat_exit")),
        (Backend::Fentry, Job::Stack) => ("fe_stack", None),
    }
}

/// Links that outlive their program object (fentry); dropping them detaches.
#[derive(Default)]
pub struct Links {
    fentry: Vec<FEntryLink>,
    fexit: Vec<FExitLink>,
}

/// The outcome of attaching with one backend.
#[derive(Default)]
pub struct Attached {
    pub links: Links,
    pub functions: Vec<String>,
    /// Functions that could not be attached, with the reason.
    pub failed: Vec<(String, String)>,
    /// Seconds spent attaching.
    pub seconds: f64,
}

/// The errno of an error (searching its sources), as `EPERM`.
pub fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.raw_os_error().map(|n| errno_name(n as u32));
        }
        cur = err.source();
    }
    None
}

fn refused(e: &ProgramError) -> String {
    match errno_of(e) {
        Some(n) => format!("the kernel refused to load the program ({n})"),
        None => format!("the kernel refused to load the program ({e})"),
    }
}

fn attach_failure(e: &ProgramError) -> String {
    match errno_of(e) {
        Some(n) if n == "ENOENT" => "no such function (ENOENT)".into(),
        Some(n) if n == "EADDRNOTAVAIL" => {
            "several kernel functions have this name (EADDRNOTAVAIL)".into()
        }
        Some(n) => format!("the kernel refused to attach ({n})"),
        None => format!("{e}"),
    }
}

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

/// Why kprobes cannot work here at all, if that can be told before trying.
pub fn kprobe_unavailable() -> Option<String> {
    if Path::new(KPROBE_PMU).exists() {
        return None;
    }
    Some(match kernel_config("CONFIG_KPROBES") {
        Some(false) | None => {
            "this kernel has no kprobe support (CONFIG_KPROBES is not set)".to_string()
        }
        Some(true) => format!("the kprobe PMU is missing ({KPROBE_PMU})"),
    })
}

/// A boolean kernel config option from /proc/config.gz or /boot/config-$(uname -r),
/// None when neither can be read (then a missing PMU is taken as "not set").
fn kernel_config(option: &str) -> Option<bool> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let text = std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
    Some(text.lines().any(|l| l == format!("{option}=y")))
}

/// Attach `funcs` with `backend`. `Err(reason)` when the backend cannot work on
/// this kernel (nothing was attached); otherwise the functions attached and
/// those that failed. `progress(done, total)` is called after each function.
pub fn attach(
    ebpf: &mut Ebpf,
    backend: Backend,
    job: Job,
    funcs: &[String],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Attached, String> {
    let started = Instant::now();
    let mut out = match backend {
        Backend::Kprobe => attach_kprobes(ebpf, job, funcs, progress)?,
        Backend::Fentry => attach_fentry(ebpf, job, funcs, progress)?,
    };
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn kprobe_prog<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut KProbe, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())
}

fn attach_kprobes(
    ebpf: &mut Ebpf,
    job: Job,
    funcs: &[String],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Attached, String> {
    if let Some(why) = kprobe_unavailable() {
        return Err(why);
    }
    let (entry, ret) = program_names(Backend::Kprobe, job);
    kprobe_prog(ebpf, entry)?.load().map_err(|e| refused(&e))?;
    if let Some(r) = ret {
        kprobe_prog(ebpf, r)?.load().map_err(|e| refused(&e))?;
    }
    let mut out = Attached::default();
    for (i, f) in funcs.iter().enumerate() {
        let res = (|| -> Result<(), String> {
            let id = kprobe_prog(ebpf, entry)?
                .attach(f, 0)
                .map_err(|e| attach_failure(&e))?;
            if let Some(r) = ret {
                if let Err(e) = kprobe_prog(ebpf, r)?.attach(f, 0) {
                    let _ = kprobe_prog(ebpf, entry)?.detach(id);
                    return Err(format!("return probe: {}", attach_failure(&e)));
                }
            }
            Ok(())
        })();
        match res {
            Ok(()) => out.functions.push(f.clone()),
            Err(why) => out.failed.push((f.clone(), why)),
        }
        progress(i + 1, funcs.len());
    }
    Ok(out)
}

/// A load error that means fentry cannot work on this kernel at all.
fn backend_wide(e: &ProgramError) -> bool {
    matches!(
        errno_of(e).as_deref(),
        Some("EPERM" | "EACCES" | "EOPNOTSUPP" | "ENOTSUPP" | "E524")
    )
}

fn attach_fentry(
    ebpf: &mut Ebpf,
    job: Job,
    funcs: &[String],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Attached, String> {
    let btf = Btf::from_sys_fs().map_err(|e| {
        format!("no kernel BTF to attach with (/sys/kernel/btf/vmlinux: {e}); the kernel needs CONFIG_DEBUG_INFO_BTF")
    })?;
    let (entry, ret) = program_names(Backend::Fentry, job);
    let mut out = Attached::default();
    for (i, f) in funcs.iter().enumerate() {
        let res = (|| -> Result<(), Result<String, String>> {
            // Err(Ok(why)): this function failed; Err(Err(why)): the backend cannot work.
            let fail = |e: ProgramError, what: &str| {
                if backend_wide(&e) {
                    Err(refused(&e))
                } else if let ProgramError::Btf(b) = &e {
                    Ok(format!("not in the kernel's BTF ({b})"))
                } else {
                    Ok(format!(
                        "{what}: {}",
                        errno_of(&e).unwrap_or_else(|| e.to_string())
                    ))
                }
            };
            let p: &mut FEntry = ebpf
                .program_mut(entry)
                .ok_or(Err(format!("program {entry} missing")))?
                .try_into()
                .map_err(|e: ProgramError| Err(e.to_string()))?;
            p.load(f, &btf).map_err(|e| fail(e, "load refused"))?;
            let link = p.attach().and_then(|id| p.take_link(id));
            let _ = p.unload();
            let link = link.map_err(|e| fail(e, "attach refused"))?;
            if let Some(r) = ret {
                let p: &mut FExit = ebpf
                    .program_mut(r)
                    .ok_or(Err(format!("program {r} missing")))?
                    .try_into()
                    .map_err(|e: ProgramError| Err(e.to_string()))?;
                p.load(f, &btf).map_err(|e| fail(e, "fexit load refused"))?;
                let rlink = p.attach().and_then(|id| p.take_link(id));
                let _ = p.unload();
                let rlink = rlink.map_err(|e| fail(e, "fexit attach refused"))?;
                out.links.fexit.push(rlink);
            }
            out.links.fentry.push(link);
            Ok(())
        })();
        match res {
            Ok(()) => out.functions.push(f.clone()),
            Err(Ok(why)) => out.failed.push((f.clone(), why)),
            Err(Err(why)) => {
                if out.functions.is_empty() {
                    return Err(why);
                }
                out.failed.push((f.clone(), why));
            }
        }
        progress(i + 1, funcs.len());
    }
    Ok(out)
}
