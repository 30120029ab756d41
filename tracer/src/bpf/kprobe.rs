//! Attaching the kernel-function programs with one of two backends: kprobes
//! (perf kprobe PMU; one program attached to every function) or fentry/fexit
//! (BTF trampolines; the program is loaded once per function, since a load
//! names its target, and each link is kept after the program object is reused).
//!
//! Errors are sorted in two kinds: the backend cannot work on this kernel at
//! all (no kprobe PMU, no BTF, the kernel refuses the program), or one
//! function cannot be attached (notrace, missing from BTF, ...): `AttachError`
//! lets the caller try the other backend (`attach_first` does), `FuncError`
//! is listed to the user.
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::Instant,
};

use aya::{
    maps::{Array, MapError},
    programs::{
        fentry::FEntryLink, fexit::FExitLink, FEntry, FExit, KProbe, Program, ProgramError,
    },
    Btf, BtfError, Ebpf,
};
use thiserror::Error;
use tracer_common::{lacks, SLOTS};

use super::errno_in;

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

pub use crate::cli::Measure;

/// Names of the (entry, return) programs of a backend and measure.
pub fn program_names(backend: Backend, measure: Measure) -> (&'static str, Option<&'static str>) {
    match (backend, measure) {
        (Backend::Kprobe, Measure::Count) => ("kp_count", None),
        (Backend::Kprobe, Measure::Latency) => ("kp_lat_entry", Some("kp_lat_exit")),
        (Backend::Kprobe, Measure::Stack) => ("kp_stack", None),
        (Backend::Fentry, Measure::Count) => ("fe_count", None),
        (Backend::Fentry, Measure::Latency) => ("fe_lat_entry", Some("fx_lat_exit")),
        (Backend::Fentry, Measure::Stack) => ("fe_stack", None),
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
    pub failed: Vec<(String, FuncError)>,
    /// Seconds spent attaching.
    pub seconds: f64,
}

/// Why a backend cannot work on this kernel at all: nothing was attached with
/// it, and the other backend may do.
#[derive(Debug, Error)]
pub enum AttachError {
    #[error("this kernel has no kprobe support (CONFIG_KPROBES is not set)")]
    NoKprobes,
    #[error("the kprobe PMU is missing ({KPROBE_PMU})")]
    NoKprobePmu,
    #[error(
        "no kernel BTF to attach with (/sys/kernel/btf/vmlinux: {0}); the kernel needs \
         CONFIG_DEBUG_INFO_BTF"
    )]
    NoBtf(#[source] BtfError),
    /// The kernel refused the program (told by errno name when there is one).
    #[error("the kernel refused to load the program ({})", errno_or_message(.0))]
    Refused(#[source] ProgramError),
    #[error("program {0} missing from the object")]
    NoProgram(&'static str),
    /// The program in the object is not of the expected type.
    #[error("{0}")]
    Program(#[source] ProgramError),
}

/// Why one function could not be attached (the others may have been).
#[derive(Debug, Error)]
pub enum FuncError {
    #[error("no such function (ENOENT)")]
    NoSuchFunction(#[source] ProgramError),
    #[error("several kernel functions have this name (EADDRNOTAVAIL)")]
    Ambiguous(#[source] ProgramError),
    /// The kernel refused the kprobe with this errno.
    #[error("the kernel refused to attach ({errno})")]
    KprobeRefused { errno: String, source: ProgramError },
    /// A kprobe failure without an errno, in aya's words.
    #[error("{0}")]
    Kprobe(#[source] ProgramError),
    /// The entry probe attached, the return probe did not (the entry probe
    /// was detached again).
    #[error("return probe: {0}")]
    ReturnProbe(Box<FuncError>),
    /// fentry/fexit: the function has no BTF type to load the program against.
    #[error("not in the kernel's BTF ({0})")]
    NotInBtf(#[source] BtfError),
    /// fentry/fexit: the kernel refused at `stage` (`fexit load refused`, ...).
    #[error("{stage}: {}", errno_or_message(.source))]
    Trampoline {
        stage: &'static str,
        source: ProgramError,
    },
    /// No `bpf_get_func_ip` here, and every slot copy is taken.
    #[error(
        "this kernel has no bpf_get_func_ip (Linux 5.15), so each function needs its own \
         copy of the program{} and tracer has {SLOTS}",
        if *.fentry { "" } else { " for --latency" }
    )]
    NoSlot { fentry: bool },
    /// Not in /proc/kallsyms: the address a slot copy reports is unknown.
    #[error("no address in /proc/kallsyms")]
    NoAddress,
    /// What would make the whole backend unusable, met after some functions
    /// were attached already.
    #[error(transparent)]
    Backend(#[from] AttachError),
}

/// `EPERM`, or the error's message when it carries no errno.
fn errno_or_message(e: &ProgramError) -> String {
    errno_in(e).unwrap_or_else(|| e.to_string())
}

impl FuncError {
    /// A kprobe that could not be attached, sorted by errno.
    fn kprobe(e: ProgramError) -> Self {
        match errno_in(&e).as_deref() {
            Some("ENOENT") => FuncError::NoSuchFunction(e),
            Some("EADDRNOTAVAIL") => FuncError::Ambiguous(e),
            Some(n) => FuncError::KprobeRefused {
                errno: n.to_string(),
                source: e,
            },
            None => FuncError::Kprobe(e),
        }
    }

    /// An fentry/fexit failure at `stage`: of this function, or (Err) of the
    /// whole backend.
    fn trampoline(e: ProgramError, stage: &'static str) -> Result<Self, AttachError> {
        if backend_wide(&e) {
            Err(AttachError::Refused(e))
        } else if let ProgramError::Btf(b) = e {
            Ok(FuncError::NotInBtf(b))
        } else {
            Ok(FuncError::Trampoline { stage, source: e })
        }
    }
}

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

/// Why kprobes cannot work here at all, if that can be told before trying.
pub fn kprobe_unavailable() -> Option<AttachError> {
    if Path::new(KPROBE_PMU).exists() {
        return None;
    }
    Some(match kernel_config("CONFIG_KPROBES") {
        Some(false) | None => AttachError::NoKprobes,
        Some(true) => AttachError::NoKprobePmu,
    })
}

/// A boolean kernel config option from /proc/config.gz or /boot/config-$(uname -r),
/// None when neither can be read (then a missing PMU is taken as "not set").
fn kernel_config(option: &str) -> Option<bool> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let text = std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
    Some(text.lines().any(|l| l == format!("{option}=y")))
}

/// Progress of `attach_first`, for a display of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachProgress {
    /// Trying `Backend` begins.
    Trying(Backend),
    /// `done` of `total` functions tried with the current backend.
    Tried { done: usize, total: usize },
    /// The current backend is done with (used or not).
    Finished,
}

/// No backend of `attach_first` could attach any function: why not, per
/// backend (`kprobes: ...; fentry: ...`), kprobes first whatever the order
/// tried, so the message reads the same everywhere.
#[derive(Debug, Error)]
pub enum NoBackend {
    /// The one backend the user asked for.
    #[error("cannot trace kernel functions with --backend {}: {reasons}", .backend.name())]
    Forced { backend: Backend, reasons: String },
    /// Every backend.
    #[error(
        "cannot trace kernel functions on this kernel: {reasons}\n\
         tracer needs a kernel with kprobes (CONFIG_KPROBES=y) or with BTF and fentry \
         (CONFIG_DEBUG_INFO_BTF=y, Linux 5.5+)"
    )]
    All { reasons: String },
}

/// Attach `funcs` with the first of `backends` that attaches at least one of
/// them (the ones that fail are listed in the result's `failed`). `progress`
/// hears when each backend begins, after each function, and when each
/// backend is done with.
pub fn attach_first(
    obj: &mut super::Object,
    backends: &[Backend],
    measure: Measure,
    funcs: &[String],
    progress: &mut dyn FnMut(AttachProgress),
) -> Result<(Backend, Attached), NoBackend> {
    let mut reasons = Vec::new();
    // (The report reads kallsyms again after attaching, for the symbols the
    // attach itself creates; this map only needs the functions' addresses.)
    let kallsyms = (obj.lacks & lacks::FUNC_IP != 0).then(super::kernel_symbols);
    let mut slots = kallsyms.as_ref().map(Slots::new);
    // Without bpf_get_func_ip fentry needs a slot copy per function, kprobes
    // only for --latency: the automatic choice tries kprobes first there.
    let mut order = backends.to_vec();
    if slots.is_some() && order == [Backend::Fentry, Backend::Kprobe] {
        order.reverse();
    }
    for &backend in &order {
        progress(AttachProgress::Trying(backend));
        // A backend that attached nothing gave its slots back.
        if let Some(s) = slots.as_mut() {
            s.used = 0;
        }
        let r = attach(
            obj.ebpf(),
            backend,
            measure,
            funcs,
            slots.as_mut(),
            &mut |done, total| progress(AttachProgress::Tried { done, total }),
        );
        progress(AttachProgress::Finished);
        let label = match backend {
            Backend::Kprobe => "kprobes",
            Backend::Fentry => "fentry",
        };
        match r {
            Ok(a) if !a.functions.is_empty() => return Ok((backend, a)),
            Ok(a) => reasons.push(format!(
                "{label}: none of the {} functions could be attached ({})",
                funcs.len(),
                a.failed
                    .first()
                    .map(|(f, why)| format!("{f}: {why}"))
                    .unwrap_or_default()
            )),
            Err(why) => reasons.push(format!("{label}: {why}")),
        }
    }
    Err(give_up(backends, reasons))
}

/// The error of `attach_first` when every one of `backends` failed.
fn give_up(backends: &[Backend], mut reasons: Vec<String>) -> NoBackend {
    reasons.sort_by(|a, b| b.cmp(a));
    let reasons = reasons.join("; ");
    match backends {
        [backend] => NoBackend::Forced {
            backend: *backend,
            reasons,
        },
        _ => NoBackend::All { reasons },
    }
}

/// Where the kernel has no `bpf_get_func_ip`: the slot copies handed out so
/// far and the functions' addresses, which copy n finds in `KFUNC_SLOT_IPS[n]`.
struct Slots<'a> {
    used: u32,
    addresses: HashMap<&'a str, u64>,
}

impl<'a> Slots<'a> {
    fn new(kallsyms: &'a BTreeMap<u64, String>) -> Slots<'a> {
        // kprobes and fentry attach by name to the first of equal names:
        // the lowest address.
        let mut addresses = HashMap::new();
        for (addr, name) in kallsyms {
            addresses.entry(name.as_str()).or_insert(*addr);
        }
        Slots { used: 0, addresses }
    }

    /// The next slot for `func`, its address written where the copy reads it.
    fn take(&mut self, ebpf: &mut Ebpf, func: &str, fentry: bool) -> Result<u32, FuncError> {
        if self.used >= SLOTS {
            return Err(FuncError::NoSlot { fentry });
        }
        let addr = *self.addresses.get(func).ok_or(FuncError::NoAddress)?;
        let map_error = |e| FuncError::Kprobe(ProgramError::MapError(e));
        let map = ebpf
            .map_mut("KFUNC_SLOT_IPS")
            .ok_or(map_error(MapError::InvalidName {
                name: "KFUNC_SLOT_IPS".into(),
            }))?;
        let mut ips: Array<_, u64> = Array::try_from(map).map_err(map_error)?;
        ips.set(self.used, addr, 0).map_err(map_error)?;
        self.used += 1;
        Ok(self.used - 1)
    }
}

/// Attach `funcs` with `backend`. `Err` when the backend cannot work on this
/// kernel (nothing was attached); otherwise the functions attached and those
/// that failed. `progress(done, total)` is called after each function.
fn attach(
    ebpf: &mut Ebpf,
    backend: Backend,
    measure: Measure,
    funcs: &[String],
    slots: Option<&mut Slots>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Attached, AttachError> {
    let started = Instant::now();
    let mut out = match backend {
        Backend::Kprobe => attach_kprobes(ebpf, measure, funcs, slots, progress)?,
        Backend::Fentry => attach_fentry(ebpf, measure, funcs, slots, progress)?,
    };
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Program `name` of the object, as type `T`.
fn prog<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, AttachError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(AttachError::NoProgram(name))?
        .try_into()
        .map_err(AttachError::Program)
}

/// Slot copy `slot` of program `name` (`fe_count` -> `fe_count_slot_3`).
fn slot_prog<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
    slot: u32,
) -> Result<&'a mut T, AttachError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(&super::slot_copy(name, slot as usize))
        .ok_or(AttachError::NoProgram(name))?
        .try_into()
        .map_err(AttachError::Program)
}

fn attach_kprobes(
    ebpf: &mut Ebpf,
    measure: Measure,
    funcs: &[String],
    mut slots: Option<&mut Slots>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Attached, AttachError> {
    if let Some(why) = kprobe_unavailable() {
        return Err(why);
    }
    let (entry, ret) = program_names(Backend::Kprobe, measure);
    prog::<KProbe>(ebpf, entry)?
        .load()
        .map_err(AttachError::Refused)?;
    if let (Some(r), None) = (ret, &slots) {
        prog::<KProbe>(ebpf, r)?
            .load()
            .map_err(AttachError::Refused)?;
    }
    let mut out = Attached::default();
    for (i, f) in funcs.iter().enumerate() {
        let res = (|| -> Result<(), FuncError> {
            // Without bpf_get_func_ip the return probe is this function's slot copy.
            let ret_slot = match (ret, slots.as_mut()) {
                (Some(_), Some(s)) => Some(s.take(ebpf, f, false)?),
                _ => None,
            };
            let id = prog::<KProbe>(ebpf, entry)?
                .attach(f, 0)
                .map_err(FuncError::kprobe)?;
            if let Some(r) = ret {
                let p: &mut KProbe = match ret_slot {
                    Some(n) => {
                        let p: &mut KProbe = slot_prog(ebpf, r, n)?;
                        p.load().map_err(AttachError::Refused)?;
                        p
                    }
                    None => prog(ebpf, r)?,
                };
                if let Err(e) = p.attach(f, 0) {
                    let _ = prog::<KProbe>(ebpf, entry)?.detach(id);
                    return Err(FuncError::ReturnProbe(Box::new(FuncError::kprobe(e))));
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
        errno_in(e).as_deref(),
        Some("EPERM" | "EACCES" | "EOPNOTSUPP" | "ENOTSUPP" | "E524")
    )
}

fn attach_fentry(
    ebpf: &mut Ebpf,
    measure: Measure,
    funcs: &[String],
    mut slots: Option<&mut Slots>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Attached, AttachError> {
    let btf = Btf::from_sys_fs().map_err(AttachError::NoBtf)?;
    let (entry, ret) = program_names(Backend::Fentry, measure);
    let mut out = Attached::default();
    for (i, f) in funcs.iter().enumerate() {
        // Err(Ok(why)): this function failed; Err(Err(why)): the backend cannot work.
        let res = (|| -> Result<(), Result<FuncError, AttachError>> {
            let fail = |stage| move |e: ProgramError| FuncError::trampoline(e, stage);
            // Without bpf_get_func_ip: this function's slot copies.
            let slot = match slots.as_mut() {
                Some(s) => Some(s.take(ebpf, f, true).map_err(Ok)?),
                None => None,
            };
            let p: &mut FEntry = match slot {
                Some(n) => slot_prog(ebpf, entry, n),
                None => prog(ebpf, entry),
            }
            .map_err(Err)?;
            p.load(f, &btf).map_err(fail("load refused"))?;
            let link = p.attach().and_then(|id| p.take_link(id));
            let _ = p.unload();
            let link = link.map_err(fail("attach refused"))?;
            if let Some(r) = ret {
                let p: &mut FExit = match slot {
                    Some(n) => slot_prog(ebpf, r, n),
                    None => prog(ebpf, r),
                }
                .map_err(Err)?;
                p.load(f, &btf).map_err(fail("fexit load refused"))?;
                let rlink = p.attach().and_then(|id| p.take_link(id));
                let _ = p.unload();
                let rlink = rlink.map_err(fail("fexit attach refused"))?;
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
                out.failed.push((f.clone(), FuncError::Backend(why)));
            }
        }
        progress(i + 1, funcs.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use aya::sys::SyscallError;

    use super::*;

    fn errno(n: i32) -> ProgramError {
        ProgramError::SyscallError(SyscallError {
            call: "bpf_prog_load",
            io_error: std::io::Error::from_raw_os_error(n),
        })
    }

    #[test]
    fn function_failures_read_as_before() {
        let s = |e: FuncError| e.to_string();
        assert_eq!(
            s(FuncError::NoSlot { fentry: true }),
            "this kernel has no bpf_get_func_ip (Linux 5.15), so each function needs its own \
             copy of the program and tracer has 64"
        );
        assert_eq!(
            s(FuncError::NoSlot { fentry: false }),
            "this kernel has no bpf_get_func_ip (Linux 5.15), so each function needs its own \
             copy of the program for --latency and tracer has 64"
        );
        assert_eq!(
            s(FuncError::kprobe(errno(libc::ENOENT))),
            "no such function (ENOENT)"
        );
        assert_eq!(
            s(FuncError::kprobe(errno(libc::EADDRNOTAVAIL))),
            "several kernel functions have this name (EADDRNOTAVAIL)"
        );
        assert_eq!(
            s(FuncError::kprobe(errno(libc::EINVAL))),
            "the kernel refused to attach (EINVAL)"
        );
        assert_eq!(
            s(FuncError::kprobe(ProgramError::NotLoaded)),
            "the program is not loaded"
        );
        assert_eq!(
            s(FuncError::ReturnProbe(Box::new(FuncError::kprobe(errno(
                libc::ENOENT
            ))))),
            "return probe: no such function (ENOENT)"
        );
        let t = |e, stage| FuncError::trampoline(e, stage).map(|e| e.to_string());
        assert_eq!(
            t(errno(libc::EINVAL), "fexit attach refused").unwrap(),
            "fexit attach refused: EINVAL"
        );
        assert_eq!(
            t(ProgramError::NotLoaded, "load refused").unwrap(),
            "load refused: the program is not loaded"
        );
        let backend = FuncError::trampoline(errno(libc::EPERM), "load refused").unwrap_err();
        assert_eq!(
            backend.to_string(),
            "the kernel refused to load the program (EPERM)"
        );
        assert_eq!(
            FuncError::from(backend).to_string(),
            "the kernel refused to load the program (EPERM)"
        );
    }

    #[test]
    fn backend_errors_read_as_before() {
        assert_eq!(
            AttachError::NoKprobes.to_string(),
            "this kernel has no kprobe support (CONFIG_KPROBES is not set)"
        );
        assert_eq!(
            AttachError::NoKprobePmu.to_string(),
            "the kprobe PMU is missing (/sys/bus/event_source/devices/kprobe/type)"
        );
        assert_eq!(
            AttachError::Refused(ProgramError::NotLoaded).to_string(),
            "the kernel refused to load the program (the program is not loaded)"
        );
        assert_eq!(
            AttachError::NoProgram("kp_count").to_string(),
            "program kp_count missing from the object"
        );
    }

    #[test]
    fn no_backend_messages() {
        let forced = give_up(
            &[Backend::Kprobe],
            vec![format!("kprobes: {}", AttachError::NoKprobes)],
        );
        assert_eq!(
            forced.to_string(),
            "cannot trace kernel functions with --backend kprobe: kprobes: this kernel has no \
             kprobe support (CONFIG_KPROBES is not set)"
        );
        // Tried fentry first, told kprobes first.
        let all = give_up(
            &[Backend::Fentry, Backend::Kprobe],
            vec![
                format!("fentry: {}", AttachError::Refused(errno(libc::EPERM))),
                format!("kprobes: {}", AttachError::NoKprobes),
            ],
        );
        assert!(matches!(all, NoBackend::All { .. }));
        assert_eq!(
            all.to_string(),
            "cannot trace kernel functions on this kernel: kprobes: this kernel has no kprobe \
             support (CONFIG_KPROBES is not set); fentry: the kernel refused to load the program \
             (EPERM)\ntracer needs a kernel with kprobes (CONFIG_KPROBES=y) or with BTF and \
             fentry (CONFIG_DEBUG_INFO_BTF=y, Linux 5.5+)"
        );
    }

    #[test]
    fn errors_go_into_anyhow() {
        fn anyhow_ok<E: std::error::Error + Send + Sync + 'static>() {}
        anyhow_ok::<NoBackend>();
        anyhow_ok::<AttachError>();
        anyhow_ok::<FuncError>();
    }
}
