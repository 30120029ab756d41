//! Everything that touches aya or the bpf() syscall: loading the embedded
//! object, every kind of attach, filling maps, the traced-process set.
//! Every link is owned by the returned [`Object`]: dropping it (or the
//! process dying, even by SIGKILL) detaches everything, since nothing is pinned.
pub mod compat;
pub mod cookie_link;
pub mod cookies;
pub mod features;
pub mod kprobe;
pub mod logs;
pub mod maps;
pub mod profile;
pub mod traced;
pub mod unwind;

use std::any::Any;

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, MapData},
    programs::{RawTracePoint, TracePoint},
    Ebpf, EbpfLoader, Pod,
};

/// The object `build.rs` built from `tracer-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// The embedded object as this kernel can load it (`lacks`: the fallbacks
/// it needs, from `compat::lacks`), for `load` and for `tracer info`.
pub fn object(lacks: u32) -> Result<Vec<u8>> {
    let mut object = compat::without_unneeded_slots(OBJECT, lacks)?;
    if lacks & tracer_common::lacks::TASK_STORAGE != 0 {
        object = compat::task_storage_as_hash(&object, "STARTS")?;
    }
    Ok(object)
}

/// The name of program `prog`'s slot copy `n` (`tracer-ebpf/src/slots.rs`).
pub fn slot_copy(prog: &str, n: usize) -> String {
    format!("{prog}_slot_{n}")
}

/// Entries of the syscall entry-time hash map where task storage is missing:
/// one per thread inside a syscall at once.
const STARTS_BY_TID: u32 = 65536;

/// Values written into the object's read-only globals before it is loaded.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub flags: u32,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
    pub fork_child_pid_offset: Option<u32>,
    /// One command's own `u64` globals (`tracer profile`'s offsets and limits).
    pub values: Vec<(&'static str, u64)>,
    /// One command's own `[u64; N]` globals (`tracer tcp`'s offsets and ports).
    pub arrays: Vec<(&'static str, Vec<u64>)>,
    /// The `--cgroup` directories (cgroup v2), with `flags::FILTER_CGROUP`.
    pub cgroups: Vec<std::path::PathBuf>,
}

/// The loaded object and everything attached from it. Dropping it detaches
/// everything: the links held apart first, then the object's own.
pub struct Object {
    links: Vec<Box<dyn Any>>,
    ebpf: Ebpf,
    /// The fallbacks this object was loaded with (`tracer_common::lacks`).
    lacks: u32,
    /// The `FLAGS` global it was loaded with.
    flags: u32,
}

impl Object {
    /// Take map `name` out of the object as its concrete type (collectors
    /// keep it; the map lives as long as they do).
    pub fn take_map<T: TryFrom<aya::maps::Map>>(&mut self, name: &str) -> Result<T>
    where
        T::Error: std::error::Error + Send + Sync + 'static,
    {
        let map = self
            .ebpf
            .take_map(name)
            .with_context(|| format!("map {name} missing from the object"))?;
        T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
    }

    /// Hold `thing` (a map whose contents must live, such as a tail-call
    /// array: the kernel empties one when user space closes it) until the
    /// object is dropped.
    pub fn keep<T: Any>(&mut self, thing: T) {
        self.links.push(Box::new(thing));
    }

    /// Take array map `name` (made with `BPF_F_MMAPABLE`, `len` elements)
    /// out of the object, mapped into this process.
    pub fn take_mmap<V: Pod>(&mut self, name: &str, len: usize) -> Result<maps::Mmap<V>> {
        let map = self
            .ebpf
            .take_map(name)
            .with_context(|| format!("map {name} missing from the object"))?;
        let aya::maps::Map::Array(data) = map else {
            anyhow::bail!("map {name} is not an array");
        };
        maps::Mmap::new(data, len).with_context(|| format!("mapping {name} into memory"))
    }

    /// Write `(index, value)` pairs into array map `name`.
    pub fn fill_array<V: Pod>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = (u32, V)>,
    ) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} missing from the object"))?;
        let mut array: Array<&mut MapData, V> = Array::try_from(map)?;
        for (i, v) in items {
            array
                .set(i, v, 0)
                .with_context(|| format!("filling {name}[{i}]"))?;
        }
        Ok(())
    }

    /// Load program `name` and attach it to raw tracepoint `tp`.
    pub fn attach_raw_tracepoint(&mut self, name: &str, tp: &str) -> Result<()> {
        attach_raw_tracepoint(&mut self.ebpf, name, tp)
    }

    /// Load program `name` (if not yet loaded) and attach it to tracepoint `category:tp`.
    pub fn attach_tracepoint(&mut self, name: &str, category: &str, tp: &str) -> Result<()> {
        attach_tracepoint(&mut self.ebpf, name, category, tp)
    }

    /// Attach program `name` to `sched:sched_process_fork`: in a PID
    /// namespace its `NAME_ns` twin, on the raw tracepoint (the record's child
    /// pid is the kernel's global one; the twin reads the child task's).
    pub fn attach_fork(&mut self, name: &str) -> Result<()> {
        if self.flags & tracer_common::flags::PIDNS != 0 {
            self.attach_raw_tracepoint(&format!("{name}_ns"), "sched_process_fork")
        } else {
            self.attach_tracepoint(name, "sched", "sched_process_fork")
        }
    }

    /// Keep `link` attached for as long as the object lives.
    pub fn hold(&mut self, link: impl Any) {
        self.links.push(Box::new(link));
    }

    pub(crate) fn ebpf(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Where syscall entry times live in a hash map (no task storage), a
    /// thread that exits inside a call must give its entry back: attach the
    /// hook that does. Nothing to do elsewhere.
    pub fn attach_entry_cleanup(&mut self) -> Result<()> {
        if self.lacks & tracer_common::lacks::TASK_STORAGE != 0 {
            self.attach_raw_tracepoint("sys_thread_exit", "sched_process_exit")?;
        }
        Ok(())
    }
}

/// The kernel's symbols (/proc/kallsyms) by address; empty if unreadable.
pub fn kernel_symbols() -> std::collections::BTreeMap<u64, String> {
    aya::util::kernel_symbols().unwrap_or_default()
}

/// The number of possible CPUs: how many values a per-CPU map entry holds.
pub fn possible_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))
}

/// Size of the traced-process set and the per-process records when used.
const PROCESS_TABLE: u32 = 32768;

/// Load the object for a run over `globals.flags`'s processes: with `follow`,
/// the fork/exec/exit hooks are attached (following children, recording comms
/// for per-process rows) and the traced set and process records are sized.
/// `map_sizes` come after and win.
pub fn load_following(
    mut globals: Globals,
    follow: bool,
    map_sizes: &[(&'static str, u32)],
) -> Result<Object> {
    let targeted = globals.flags & tracer_common::flags::FILTER_TGID != 0;
    if follow && globals.fork_child_pid_offset.is_none() {
        globals.fork_child_pid_offset = Some(fork_child_pid_offset()?);
    }
    let big = |on: bool| if on { PROCESS_TABLE } else { 1 };
    let mut sizes = vec![("TRACED_TGIDS", big(targeted)), ("PROCS", big(follow))];
    sizes.extend_from_slice(map_sizes);
    let mut obj = load(&globals, &sizes)?;
    if follow {
        obj.attach_fork("sched_process_fork")?;
        obj.attach_raw_tracepoint("sched_process_exec", "sched_process_exec")?;
        obj.attach_raw_tracepoint("sched_process_exit", "sched_process_exit")?;
    }
    Ok(obj)
}

/// Where `sched:sched_process_fork` records the child's pid (from its format file).
pub fn fork_child_pid_offset() -> Result<u32> {
    let tfs = crate::sys::tracefs::ensure_mounted()?;
    let off = crate::sys::tracefs::field_offset(&tfs, "sched", "sched_process_fork", "child_pid")?;
    Ok(off as u32)
}

/// Load the object with `globals`; `map_sizes` overrides max_entries (maps a run
/// does not use are shrunk to one entry so start-up stays fast).
pub fn load(globals: &Globals, map_sizes: &[(&'static str, u32)]) -> Result<Object> {
    let self_tgid = std::process::id();
    let lacks = compat::lacks()?;
    let object = object(lacks)?;
    let mut loader = loader_without_kernel_btf();
    // STARTS is task-local storage, which aya creates but has no user-space type for.
    loader.allow_unsupported_maps();
    if lacks & tracer_common::lacks::TASK_STORAGE != 0 {
        let timed = globals.flags & tracer_common::flags::EXIT_HOOK != 0;
        loader.map_max_entries("STARTS", if timed { STARTS_BY_TID } else { 1 });
    }
    // The settings and what the kernel lacks share the one global every
    // program has loaded anyway (tracer_common::flags, tracer_common::lacks).
    let mut flags = globals.flags | lacks;
    let pidns_offsets;
    if crate::sys::pidns::own_is_nested()? {
        flags |= tracer_common::flags::PIDNS;
        pidns_offsets = crate::sys::pidns::offsets()?;
        loader.override_global("PIDNS_OFFSETS", pidns_offsets.as_slice(), true);
    }
    loader
        .override_global("FLAGS", &flags, true)
        .override_global("TARGET_UID", &globals.target_uid, true)
        .override_global("TARGET_COMM", &globals.target_comm, true)
        .override_global("SELF_TGID", &self_tgid, true);
    let status_offset;
    if flags & tracer_common::lacks::IA32 == 0 {
        if let Some(o) = compat::ia32_status_offset() {
            status_offset = o;
            loader.override_global("IA32_STATUS_OFFSET", &status_offset, true);
        }
    }
    let offset;
    if let Some(o) = globals.fork_child_pid_offset {
        offset = o;
        loader.override_global("FORK_CHILD_PID_OFFSET", &offset, true);
    }
    for (name, v) in &globals.values {
        loader.override_global(name, v, true);
    }
    for (name, v) in &globals.arrays {
        loader.override_global(name, v.as_slice(), true);
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
    let ebpf = loader
        .load(&object)
        .context("the kernel refused to create tracer's BPF maps")?;
    let mut ebpf = ebpf;
    fill_cgroups(&mut ebpf, &globals.cgroups)?;
    Ok(Object {
        links: Vec::new(),
        ebpf,
        lacks,
        flags,
    })
}

/// Put the `--cgroup` directories into `CGROUP_FILTER`.
fn fill_cgroups(ebpf: &mut Ebpf, cgroups: &[std::path::PathBuf]) -> Result<()> {
    if cgroups.is_empty() {
        return Ok(());
    }
    let map = ebpf
        .map_mut("CGROUP_FILTER")
        .context("map CGROUP_FILTER missing from the object")?;
    let mut array: aya::maps::CgroupArray<&mut MapData> = aya::maps::CgroupArray::try_from(map)?;
    for (i, dir) in cgroups.iter().enumerate() {
        let f = std::fs::File::open(dir)
            .with_context(|| format!("cannot open cgroup {}", dir.display()))?;
        array
            .set(i as u32, f, 0)
            .with_context(|| format!("the kernel refused cgroup {}", dir.display()))?;
    }
    Ok(())
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

/// Load program `name` (if not yet loaded) and attach it to tracepoint `category:tp`.
pub fn attach_tracepoint(ebpf: &mut Ebpf, name: &str, category: &str, tp: &str) -> Result<()> {
    let prog: &mut TracePoint = program(ebpf, name)?;
    if prog.fd().is_err() {
        prog.load()
            .with_context(|| format!("the kernel refused to load program {name}"))?;
    }
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
