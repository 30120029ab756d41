//! Older kernels: what this one lacks of what the fast paths use, found by
//! probing it (never by its version number), and the object rewritten to fit.
//!
//! - No task-local storage (before 5.11): the `STARTS` map definition in the
//!   object's BTF is rewritten into a preallocated hash map (keyed by thread
//!   id: task storage's key is an int too), so loading it does not fail, and
//!   the programs use it as such (`lacks` bits of the `FLAGS` global).
//! - No BPF cookies or perf-event links (before 5.15): slot copies of the
//!   uprobe and tracepoint programs.
//! - No `bpf_get_func_ip` (before 5.15): kprobes read the address from the
//!   registers; kretprobes and fentry/fexit use slot copies.
//!
//! `TRACER_FALLBACK=task-storage,cookies,func-ip` (or `all`) forces fallbacks
//! on a kernel that has everything: for tests and `cargo xtask bench`.
use std::sync::OnceLock;

use anyhow::{bail, Context as _, Result};
use aya::{
    programs::ProgramType,
    sys::{is_helper_supported, BpfHelper},
};
use object::{Object as _, ObjectSection as _};
use tracer_common::lacks;

use crate::sys::btf::{str_at, u32_at, Types, KIND_ARRAY, KIND_PTR, KIND_STRUCT, KIND_VAR};

/// What a fallback is called in `TRACER_FALLBACK`, and its bit.
const NAMES: [(&str, u32); 4] = [
    ("task-storage", lacks::TASK_STORAGE),
    ("cookies", lacks::COOKIES),
    ("func-ip", lacks::FUNC_IP),
    ("ia32", lacks::IA32),
];

/// The `tracer_common::lacks` bits for this kernel (probed once), plus the
/// fallbacks `TRACER_FALLBACK` forces.
pub fn lacks() -> Result<u32> {
    static PROBED: OnceLock<u32> = OnceLock::new();
    let probed = *PROBED.get_or_init(probe);
    Ok(probed | forced_now()?)
}

/// The fallbacks `TRACER_FALLBACK` forces (on top of what the kernel lacks).
pub fn forced_now() -> Result<u32> {
    forced(std::env::var("TRACER_FALLBACK").ok().as_deref())
}

fn forced(var: Option<&str>) -> Result<u32> {
    let mut bits = 0;
    for word in var.unwrap_or_default().split(',').map(str::trim) {
        bits |= match word {
            "" => 0,
            "all" => NAMES.iter().fold(0, |b, (_, bit)| b | bit),
            w => match NAMES.iter().find(|(n, _)| *n == w) {
                Some((_, bit)) => *bit,
                None => bail!(
                    "TRACER_FALLBACK: unknown fallback `{w}` (known: task-storage, cookies, func-ip, ia32, all)"
                ),
            },
        };
    }
    Ok(bits)
}

fn probe() -> u32 {
    // Before 5.11 BPF maps are charged to RLIMIT_MEMLOCK (64 KiB by default
    // before 5.16), not to the memory cgroup: lift it, as bpftrace and libbpf
    // do, before anything is created. Refused only without CAP_SYS_RESOURCE,
    // where loading fails anyway with its own message.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::info!(
            "cannot lift RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
    let missing = |what: &str, r: Result<bool, String>| match r {
        Ok(has) => !has,
        Err(e) => {
            log::info!("probing {what} failed ({e}); assuming the kernel has it");
            false
        }
    };
    let helper_for =
        |p, h| is_helper_supported(p, h).map_err(|e: aya::programs::ProgramError| e.to_string());
    let helper = |h| helper_for(ProgramType::KProbe, h);
    let mut bits = 0;
    // The raw tracepoints use task storage through these two helpers (5.11;
    // the map type alone came to LSM programs first). Asking for the helpers
    // is also far cheaper than aya's map-type probe, which parses the kernel's
    // BTF (a quarter of a second on a busy machine).
    let storage = [
        BpfHelper::BPF_FUNC_task_storage_get,
        BpfHelper::BPF_FUNC_get_current_task_btf,
    ];
    if storage
        .into_iter()
        .any(|h| missing("task storage", helper_for(ProgramType::RawTracePoint, h)))
    {
        bits |= lacks::TASK_STORAGE;
    }
    let perf_link = aya::features().bpf_perf_link();
    if !perf_link || missing("cookies", helper(BpfHelper::BPF_FUNC_get_attach_cookie)) {
        bits |= lacks::COOKIES;
    }
    if missing("bpf_get_func_ip", helper(BpfHelper::BPF_FUNC_get_func_ip)) {
        bits |= lacks::FUNC_IP;
    }
    if ia32_status_offset().is_none() {
        bits |= lacks::IA32;
    }
    log::debug!("kernel lacks: {bits:#x}");
    bits
}

/// Where an i386 syscall is marked (`TS_COMPAT`) in a task: the byte offset
/// of `thread_info.status` in `task_struct` (thread_info is its first member
/// with CONFIG_THREAD_INFO_IN_TASK; `status` follows `flags`, and since
/// 5.11 `syscall_work` sits between them). `None` where no syscall can be an i386 one
/// (not x86_64, or a kernel without IA32 emulation), or the kernel has no BTF
/// to say where the member is: then every call counts as a native one
/// (`tracer info` says why). Read once.
pub fn ia32_status_offset() -> Option<u32> {
    static OFFSET: OnceLock<Result<u32, String>> = OnceLock::new();
    let found = OFFSET.get_or_init(|| {
        let r = find_ia32_status_offset();
        if let Err(e) = &r {
            log::info!("i386 syscalls are not told apart: {e}");
        }
        r
    });
    found.as_ref().ok().copied()
}

/// Why i386 syscalls are not told apart on this machine, if they are not.
pub fn ia32_missing(lacks: u32) -> Option<String> {
    (lacks & lacks::IA32 != 0).then(|| match ia32_status_offset() {
        None => find_ia32_status_offset().err().unwrap_or_default(),
        Some(_) => "forced off (TRACER_FALLBACK=ia32)".into(),
    })
}

fn find_ia32_status_offset() -> Result<u32, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err(format!("no i386 ABI on {}", std::env::consts::ARCH));
    }
    let btf = crate::sys::btf::Btf::kernel().map_err(|e| format!("{e:#}"))?;
    // The `abi.vsyscall32` sysctl comes with IA32 emulation; so do these
    // functions, but BTF has them only where they are not `noinstr` (6.9's
    // ia32_sys_call is; 5.10's do_int80_syscall_32 is not).
    let entries = ["ia32_sys_call", "do_int80_emulation", "do_int80_syscall_32"];
    let sysctl = std::path::Path::new("/proc/sys/abi/vsyscall32").exists();
    if !sysctl && !entries.iter().any(|f| btf.has_function(f)) {
        return Err("the kernel has no IA32 emulation (CONFIG_IA32_EMULATION)".into());
    }
    let ti = btf.member_offset("task_struct", "thread_info");
    let status = btf.member_offset("thread_info", "status");
    match (ti, status) {
        (Ok(a), Ok(b)) => Ok((a + b) as u32),
        (Err(e), _) | (_, Err(e)) => Err(format!("{e:#}")),
    }
}

/// The programs each fallback uses slot copies of (`tracer-ebpf/src/slots.rs`).
const SLOT_FAMILIES: [(u32, &[&str]); 2] = [
    (
        lacks::COOKIES,
        &["uprobe_count", "uretprobe_latency", "tracepoint_event"],
    ),
    (
        lacks::FUNC_IP,
        &[
            "kp_lat_exit",
            "fe_count",
            "fe_lat_entry",
            "fx_lat_exit",
            "fe_stack",
        ],
    ),
];

/// `object` without the slot copies this kernel does not need: their symbols
/// lose their function type, so aya does not take them for programs. It
/// would otherwise copy each copy's shared body into it at every start (512
/// programs: 6 ms here), for programs only older kernels load.
pub fn without_unneeded_slots(object: &[u8], lacks: u32) -> Result<Vec<u8>> {
    let unneeded: Vec<String> = SLOT_FAMILIES
        .iter()
        .filter(|(bit, _)| lacks & bit == 0)
        .flat_map(|(_, progs)| progs.iter().map(|p| format!("{p}_slot_")))
        .collect();
    let names = &object[section(object, ".strtab")?];
    let mut out = object.to_vec();
    // Elf64_Sym: st_name (u32), st_info (u8: bind << 4 | type), st_other,
    // st_shndx (u16), st_value, st_size: 24 bytes.
    for at in section(object, ".symtab")?.step_by(24) {
        let name = str_at(names, u32_at(object, at)?);
        const STT_FUNC: u8 = 2;
        if object[at + 4] & 0xf == STT_FUNC && unneeded.iter().any(|p| name.starts_with(p.as_str()))
        {
            out[at + 4] &= 0xf0; // STT_NOTYPE
        }
    }
    Ok(out)
}

/// BPF map types, as `enum bpf_map_type` numbers them.
const BPF_MAP_TYPE_HASH: u32 = 1;

/// `object` with the BTF-defined map `map` (a task storage map) turned into a
/// preallocated hash map: its `type` field made `BPF_MAP_TYPE_HASH` and its
/// `map_flags` 0. Its size is set at load (`max_entries` is 0 in the object).
///
/// A BTF map definition is a struct of pointers to arrays whose lengths are
/// the values (`type: *const [i32; 29]`), so this rewrites two array lengths
/// in place. It refuses when either array type is shared with anything else.
pub fn task_storage_as_hash(object: &[u8], map: &str) -> Result<Vec<u8>> {
    let btf_range = section(object, ".BTF")?;
    let start = btf_range.start;
    let btf = &object[btf_range];
    let types = Types::parse(btf)?;
    let var = types
        .find(KIND_VAR, map)
        .with_context(|| format!("no BTF variable {map} in tracer's BPF object"))?;
    let def = types.resolve(types.get(var)?.type_ref)?;
    let def_ty = types.get(def)?;
    if def_ty.kind != KIND_STRUCT {
        bail!("BTF of {map} is not a map definition struct");
    }
    let mut out = object.to_vec();
    for (field, value) in [("type", BPF_MAP_TYPE_HASH), ("map_flags", 0)] {
        let member = types
            .members(def_ty, btf)
            .find(|m| types.name(m.0) == field)
            .with_context(|| format!("{map} has no {field} field"))?;
        let ptr = types.get(member.1)?;
        if ptr.kind != KIND_PTR {
            bail!("{map}.{field} is not a pointer");
        }
        let array = types.get(ptr.type_ref)?;
        if array.kind != KIND_ARRAY {
            bail!("{map}.{field} does not point to an array");
        }
        for id in [member.1, ptr.type_ref] {
            let users = types.references(btf, id);
            if users != 1 {
                bail!("{map}.{field}'s BTF type {id} is used {users} times: cannot rewrite it");
            }
        }
        // struct btf_array { type, index_type, nelems } follows the header.
        let nelems = start + array.offset + 12 + 8;
        out[nelems..nelems + 4].copy_from_slice(&value.to_le_bytes());
    }
    Ok(out)
}

/// Where section `name` of ELF `object` is in it.
fn section(object: &[u8], name: &str) -> Result<std::ops::Range<usize>> {
    let elf = object::File::parse(object).context("parsing tracer's BPF object")?;
    let (start, len) = elf
        .section_by_name(name)
        .and_then(|s| s.file_range())
        .with_context(|| format!("tracer's BPF object has no {name} section"))?;
    Ok(start as usize..(start + len) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of the array `map`'s `field` points to, in `object`'s BTF.
    fn field_len(object: &[u8], map: &str, field: &str) -> u32 {
        let btf = &object[section(object, ".BTF").unwrap()];
        let types = Types::parse(btf).unwrap();
        let var = types.find(KIND_VAR, map).unwrap();
        let def = types.get(types.resolve(types.get(var).unwrap().type_ref).unwrap());
        let def = def.unwrap();
        let member = types
            .members(def, btf)
            .find(|m| types.name(m.0) == field)
            .unwrap();
        let array = types.get(types.get(member.1).unwrap().type_ref).unwrap();
        u32_at(btf, array.offset + 20).unwrap()
    }

    #[test]
    fn starts_becomes_a_preallocated_hash_map() {
        let object = super::super::object(0).unwrap();
        assert_eq!(field_len(&object, "STARTS", "type"), 29, "task storage");
        assert_eq!(
            field_len(&object, "STARTS", "map_flags"),
            1,
            "BPF_F_NO_PREALLOC"
        );
        let patched = task_storage_as_hash(&object, "STARTS").unwrap();
        assert_eq!(patched.len(), object.len());
        assert_eq!(field_len(&patched, "STARTS", "type"), BPF_MAP_TYPE_HASH);
        assert_eq!(field_len(&patched, "STARTS", "map_flags"), 0);
        // Nothing else moved: the key, value and max_entries are as they were.
        assert_eq!(
            field_len(&patched, "STARTS", "max_entries"),
            field_len(&object, "STARTS", "max_entries")
        );
        let changed = object.iter().zip(&*patched).filter(|(a, b)| a != b).count();
        assert!(changed <= 8, "{changed} bytes changed");
        assert!(task_storage_as_hash(&object, "NO_SUCH_MAP").is_err());
    }

    /// The programs aya finds in `object` whose names contain `_slot_`.
    fn slot_programs(object: &[u8]) -> usize {
        use object::ObjectSymbol as _;
        let elf = object::File::parse(object).unwrap();
        elf.symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text)
            .filter(|s| s.name().is_ok_and(|n| n.contains("_slot_")))
            .count()
    }

    #[test]
    fn slot_copies_only_where_needed() {
        let full = super::super::OBJECT;
        let per_family = tracer_common::SLOTS as usize;
        assert_eq!(slot_programs(full), 8 * per_family);
        let none = without_unneeded_slots(full, 0).unwrap();
        assert_eq!(none.len(), full.len());
        assert_eq!(slot_programs(&none), 0);
        let cookies = without_unneeded_slots(full, lacks::COOKIES).unwrap();
        assert_eq!(slot_programs(&cookies), 3 * per_family);
        let func_ip = without_unneeded_slots(full, lacks::FUNC_IP).unwrap();
        assert_eq!(slot_programs(&func_ip), 5 * per_family);
        let all = without_unneeded_slots(full, lacks::COOKIES | lacks::FUNC_IP).unwrap();
        assert_eq!(all, full);
    }

    #[test]
    fn forced_fallbacks() {
        assert_eq!(forced(None).unwrap(), 0);
        assert_eq!(forced(Some("")).unwrap(), 0);
        assert_eq!(forced(Some("task-storage")).unwrap(), lacks::TASK_STORAGE);
        assert_eq!(
            forced(Some("cookies, func-ip")).unwrap(),
            lacks::COOKIES | lacks::FUNC_IP
        );
        assert_eq!(
            forced(Some("all")).unwrap(),
            lacks::TASK_STORAGE | lacks::COOKIES | lacks::FUNC_IP | lacks::IA32
        );
        assert_eq!(forced(Some("ia32")).unwrap(), lacks::IA32);
        let e = forced(Some("cookie")).unwrap_err().to_string();
        assert!(e.contains("unknown fallback `cookie`"), "{e}");
    }
}
