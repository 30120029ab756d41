//! What the running kernel offers, found without tracer and without aya, so that
//! the `info` and `kprobe` tests hold on any kernel: the kprobe PMU in sysfs and
//! a real kprobe made with perf_event_open(2); kernel BTF and a real load of a
//! two-instruction fentry program with bpf(2); the kernel config; and
//! `bpftool feature probe` for the rest.
use std::{ffi::CString, path::Path, process::Command};

pub const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The errno's name, as tracer prints it (EPERM).
pub fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        libc::ENOTSUP => "ENOTSUP",
        libc::E2BIG => "E2BIG",
        libc::EBUSY => "EBUSY",
        libc::ESRCH => "ESRCH",
        libc::EFAULT => "EFAULT",
        libc::ENOSYS => "ENOSYS",
        libc::ENODEV => "ENODEV",
        _ => return format!("E{e}"),
    }
    .to_string()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The kernel config's text, from /proc/config.gz or /boot/config-RELEASE;
/// None when neither is there.
pub fn kernel_config() -> Option<String> {
    if Path::new("/proc/config.gz").exists() {
        let out = Command::new("gzip")
            .args(["-dc", "/proc/config.gz"])
            .output()
            .expect("gzip reads /proc/config.gz");
        assert!(out.status.success(), "gzip -dc /proc/config.gz: {out:?}");
        return Some(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()
}

/// Whether the config sets a boolean option (`=y`); None without a config.
pub fn config_enabled(option: &str) -> Option<bool> {
    let text = kernel_config()?;
    Some(text.lines().any(|l| l == format!("{option}=y")))
}

/// What kprobes can do here.
#[derive(Debug)]
pub struct Kprobes {
    /// The kprobe PMU is in sysfs.
    pub pmu: bool,
    /// CONFIG_KPROBES, when the config can be read.
    pub config: Option<bool>,
    /// Creating a kprobe on `vfs_read` with perf_event_open: Ok, or the errno.
    pub attach: Result<(), i32>,
}

impl Kprobes {
    pub fn available(&self) -> bool {
        self.attach.is_ok()
    }
}

/// Find out, by creating (and closing at once) a kprobe on `vfs_read`.
pub fn kprobes() -> Kprobes {
    let pmu = Path::new(KPROBE_PMU).exists();
    let config = config_enabled("CONFIG_KPROBES");
    if config == Some(false) {
        assert!(
            !pmu,
            "the config says CONFIG_KPROBES is not set, yet {KPROBE_PMU} exists"
        );
    }
    let attach = if pmu {
        perf_kprobe("vfs_read")
    } else {
        Err(libc::ENOENT)
    };
    Kprobes {
        pmu,
        config,
        attach,
    }
}

/// perf_event_open of the kprobe PMU on `func` (what `perf probe`, bpftrace and
/// aya all do); the event is closed again.
fn perf_kprobe(func: &str) -> Result<(), i32> {
    let ty: u32 = std::fs::read_to_string(KPROBE_PMU)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let name = CString::new(func).unwrap();
    // struct perf_event_attr, PERF_ATTR_SIZE_VER1: type, size, config, ...,
    // flags at 40 (bit 0: disabled), config1 (kprobe_func) at 56, config2
    // (probe_offset) at 64.
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&ty.to_ne_bytes());
    attr[4..8].copy_from_slice(&72u32.to_ne_bytes());
    attr[40..48].copy_from_slice(&1u64.to_ne_bytes());
    attr[56..64].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            8 as libc::c_ulong, // PERF_FLAG_FD_CLOEXEC
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Where a test load of an fentry program stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum FentryFailure {
    /// No /sys/kernel/btf/vmlinux.
    NoBtf,
    /// BPF_PROG_LOAD failed with this errno.
    Load(i32),
    /// Attaching (BPF_RAW_TRACEPOINT_OPEN) failed with this errno.
    Attach(i32),
}

/// Load an fentry program on `vfs_read` (`r0 = 0; exit`, GPL) and attach it,
/// with bpf(2) directly; everything is closed again.
pub fn fentry() -> Result<(), FentryFailure> {
    let Ok(btf) = std::fs::read(VMLINUX_BTF) else {
        return Err(FentryFailure::NoBtf);
    };
    let id = btf_func_id(&btf, "vfs_read").expect("vfs_read is in the kernel's BTF");
    // mov64 r0, 0; exit
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    // union bpf_attr for BPF_PROG_LOAD: prog_type 0, insn_cnt 4, insns 8,
    // license 16, expected_attach_type 68, attach_btf_id 108.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&26u32.to_ne_bytes()); // BPF_PROG_TYPE_TRACING
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[68..72].copy_from_slice(&24u32.to_ne_bytes()); // BPF_TRACE_FENTRY
    attr[108..112].copy_from_slice(&id.to_ne_bytes());
    let prog = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len() as u32) }; // BPF_PROG_LOAD
    if prog < 0 {
        return Err(FentryFailure::Load(errno()));
    }
    // BPF_RAW_TRACEPOINT_OPEN: name 0 (NULL for tracing programs), prog_fd 8.
    let mut attr = [0u8; 16];
    attr[8..12].copy_from_slice(&(prog as u32).to_ne_bytes());
    let link = unsafe { libc::syscall(libc::SYS_bpf, 17, attr.as_ptr(), attr.len() as u32) };
    let r = if link < 0 {
        Err(FentryFailure::Attach(errno()))
    } else {
        unsafe { libc::close(link as i32) };
        Ok(())
    };
    unsafe { libc::close(prog as i32) };
    r
}

/// The type id of the function `name` in a BTF blob (kind FUNC).
pub fn btf_func_id(btf: &[u8], name: &str) -> Option<u32> {
    let u32_at = |at: usize| u32::from_le_bytes(btf[at..at + 4].try_into().unwrap());
    assert_eq!(&btf[0..2], &[0x9f, 0xeb], "not little-endian BTF");
    let hdr_len = u32_at(4) as usize;
    let (type_off, type_len) = (u32_at(8) as usize, u32_at(12) as usize);
    let str_off = u32_at(16) as usize;
    let strings = &btf[hdr_len + str_off..];
    let name_at = |off: usize| {
        let s = &strings[off..];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
    let mut id = 1;
    while at < end {
        let (name_off, info) = (u32_at(at) as usize, u32_at(at + 4));
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if kind == 12 && name_at(name_off) == name.as_bytes() {
            return Some(id);
        }
        // What follows the 12-byte common part, per kind (linux/btf.h).
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
            k => panic!("BTF kind {k} unknown to this reader"),
        };
        at += 12 + extra;
        id += 1;
    }
    None
}

/// `bpftool feature probe kernel -j`: program and map types, helpers.
pub fn bpftool_features() -> serde_json::Value {
    let out = Command::new("bpftool")
        .args(["feature", "probe", "kernel", "-j"])
        .output()
        .expect("bpftool probes the kernel's BPF features (cargo xtask setup installs it)");
    assert!(out.status.success(), "bpftool feature probe: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}
