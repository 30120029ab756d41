//! Loading the embedded object and attaching its programs. Every link is owned
//! by the returned `Ebpf`: dropping it (or the process dying, even by SIGKILL)
//! detaches everything, since nothing is pinned.
pub mod cookie_link;
pub mod features;
pub mod kprobe;
pub mod logs;
pub mod maps;

use anyhow::{Context as _, Result};
use aya::{
    programs::{RawTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};

/// The object `build.rs` built from `tracer-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// The embedded object, for loaders other than `load` (e.g. `tracer info`).
pub fn object() -> &'static [u8] {
    OBJECT
}

/// Values written into the object's read-only globals before it is loaded.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub flags: u32,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
    pub fork_child_pid_offset: Option<u32>,
}

/// Load the object with `globals`; `map_sizes` overrides max_entries (maps a run
/// does not use are shrunk to one entry so start-up stays fast).
pub fn load(globals: &Globals, map_sizes: &[(&'static str, u32)]) -> Result<Ebpf> {
    let self_tgid = std::process::id();
    let mut loader = loader_without_kernel_btf();
    // STARTS is task-local storage, which aya creates but has no user-space type for.
    loader.allow_unsupported_maps();
    loader
        .override_global("FLAGS", &globals.flags, true)
        .override_global("TARGET_UID", &globals.target_uid, true)
        .override_global("TARGET_COMM", &globals.target_comm, true)
        .override_global("SELF_TGID", &self_tgid, true);
    let offset;
    if let Some(o) = globals.fork_child_pid_offset {
        offset = o;
        loader.override_global("FORK_CHILD_PID_OFFSET", &offset, true);
    }
    // aya-log: off (and its ring one page) unless the user asked for debug logs.
    let log_level = logs::bpf_level();
    loader.override_global(aya_log::LEVEL, &log_level, false);
    if !logs::wanted() {
        loader.map_max_entries("AYA_LOGS", 4096);
    }
    for (name, size) in map_sizes {
        loader.map_max_entries(name, *size);
    }
    loader
        .load(OBJECT)
        .context("the kernel refused to create tracer's BPF maps")
}

/// Program `name` of the object, as its concrete type.
pub fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?;
    Ok(prog.try_into()?)
}

/// Load program `name` and attach it to raw tracepoint `tp`.
pub fn attach_raw_tracepoint(ebpf: &mut Ebpf, name: &str, tp: &str) -> Result<()> {
    let prog: &mut RawTracePoint = program(ebpf, name)?;
    prog.load()
        .with_context(|| format!("the kernel refused to load program {name}"))?;
    prog.attach(tp)
        .with_context(|| format!("attaching {name} to raw tracepoint {tp}"))?;
    Ok(())
}

/// Load program `name` and attach it to tracepoint `category:tp`.
pub fn attach_tracepoint(ebpf: &mut Ebpf, name: &str, category: &str, tp: &str) -> Result<()> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.load()
        .with_context(|| format!("the kernel refused to load program {name}"))?;
    prog.attach(category, tp)
        .with_context(|| format!("attaching {name} to tracepoint {category}:{tp}"))?;
    Ok(())
}

/// The errno buried in an error chain (the first `io::Error` that carries
/// one), as a name: `EPERM`.
pub fn errno_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(n) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(crate::sys::names::errno_name(n as u32));
        }
        cur = e.source();
    }
    None
}

/// An `EbpfLoader` that has not read the kernel's BTF.
///
/// aya 0.14's `EbpfLoader::new()` always reads and parses /sys/kernel/btf/vmlinux
/// (5.5 MB here: about 16 MB of peak memory and several ms), which only CO-RE
/// relocations need; these programs use none. So the loader is created in a
/// throw-away mount namespace where that file reads as empty. Anywhere this
/// cannot be done (no CAP_SYS_ADMIN, threads already running), it falls back
/// to the plain loader.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    let made = crate::sys::mountns::in_private_mount_ns(|| {
        let hidden = crate::sys::mountns::bind(c"/dev/null", c"/sys/kernel/btf/vmlinux");
        log::debug!("kernel BTF hidden from the loader: {hidden}");
        EbpfLoader::new()
    });
    made.unwrap_or_else(|e| {
        log::info!("cannot hide the kernel's BTF from the loader, loading the plain way: {e:#}");
        EbpfLoader::new()
    })
}
