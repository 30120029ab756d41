//! tracer as a non-root user holding CAP_BPF and CAP_PERFMON plus other
//! capabilities (setpriv, uid nobody): it works with each set; an
//! optimization that needs more (hiding the kernel's BTF in a throw-away mount
//! namespace needs CAP_SYS_ADMIN and CAP_SYS_CHROOT) never makes it fail; and
//! without enough, the error names what is missing.
mod common;

use std::{process::Command, time::Duration};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Capability numbers this process may hand on (its bounding set): a sandbox
/// may lack some (this CI machine's lacks CAP_SYS_RESOURCE).
fn bounding() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

const CAPS: &[(&str, u32)] = &[
    ("dac_override", 1),
    ("dac_read_search", 2),
    ("sys_chroot", 18),
    ("sys_ptrace", 19),
    ("sys_admin", 21),
    ("sys_resource", 24),
    ("perfmon", 38),
    ("bpf", 39),
];

/// `tracer ARGS` as uid/gid 65534 with exactly `caps` (those of them the
/// bounding set has; the ones left out are printed).
fn as_nobody(caps: &[&str], args: &[&str]) -> std::process::Output {
    let bnd = bounding();
    let kept: Vec<String> = caps
        .iter()
        .filter(|c| {
            let (_, n) = CAPS.iter().find(|(name, _)| name == *c).unwrap();
            let ok = bnd & (1 << n) != 0;
            if !ok {
                eprintln!("cap_{c} is not in this machine's bounding set: left out");
            }
            ok
        })
        .map(|c| format!("+{c}"))
        .collect();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if !kept.is_empty() {
        let set = kept.join(",");
        cmd.arg(format!("--inh-caps={set}"))
            .arg(format!("--ambient-caps={set}"));
    }
    cmd.arg("--").arg(env!("CARGO_BIN_EXE_tracer")).args(args);
    run(&mut cmd, LIMIT)
}

fn ensure_tracefs_mounted() {
    if !std::path::Path::new("/sys/kernel/tracing/events").is_dir() {
        let st = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status()
            .unwrap();
        assert!(st.success() || std::path::Path::new("/sys/kernel/tracing/events").is_dir());
    }
}

fn assert_counts(caps: &[&str], args: &[&str], expect: &str) {
    let out = as_nobody(caps, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "caps {caps:?}, tracer {args:?}: {text}"
    );
    assert!(
        text.contains(expect),
        "caps {caps:?}, tracer {args:?}: {text}"
    );
}

/// The commands that need only CAP_BPF and CAP_PERFMON work with every set
/// that holds them, whatever else it holds.
#[test]
fn works_with_bpf_and_perfmon_plus_anything() {
    let _l = shared_lock();
    let sets: &[&[&str]] = &[
        &["bpf", "perfmon"],
        &["bpf", "perfmon", "sys_admin"],
        &["bpf", "perfmon", "sys_resource"],
        &["bpf", "perfmon", "sys_admin", "sys_chroot"],
        &[
            "bpf",
            "perfmon",
            "sys_admin",
            "sys_chroot",
            "sys_resource",
            "sys_ptrace",
        ],
    ];
    for caps in sets {
        assert_counts(caps, &["syscalls", "-d", "0.3"], "SYSCALL");
        assert_counts(caps, &["syscalls", "-d", "0.3", "-L", "-x"], "SYSCALL");
        assert_counts(caps, &["info"], "raw tracepoints    yes");
    }
}

/// Reading tracefs (for tracepoints, fork following with `-- CMD`) needs
/// CAP_DAC_READ_SEARCH as well; with it, the tracepoint-based commands work,
/// alone or beside CAP_SYS_ADMIN without CAP_SYS_CHROOT (the set that used to
/// fail leaving the BTF-hiding namespace). Without it, the error says so.
#[test]
fn tracepoint_commands_with_dac_read_search() {
    let _l = shared_lock();
    ensure_tracefs_mounted();
    let out = as_nobody(&["bpf", "perfmon"], &["syscalls", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_DAC_READ_SEARCH"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for caps in [
        &["bpf", "perfmon", "dac_read_search"][..],
        &["bpf", "perfmon", "dac_read_search", "sys_admin"],
        &[
            "bpf",
            "perfmon",
            "dac_read_search",
            "sys_admin",
            "sys_chroot",
        ],
    ] {
        assert_counts(caps, &["syscalls", "--", "/bin/true"], "exit_group");
        assert_counts(caps, &["trace", "--", "/bin/true"], "exit_group(0)");
        assert_counts(caps, &["syscalls", "-d", "0.3", "-P"], "PID");
        assert_counts(
            caps,
            &["tracepoint", "sched:sched_process_exec", "--", "/bin/true"],
            "sched:sched_process_exec",
        );
    }
}

/// With CAP_SYS_ADMIN but not CAP_SYS_CHROOT tracer cannot come back from a
/// mount namespace: it loads the plain way and says so under -v.
#[test]
fn btf_hiding_is_skipped_and_said_under_verbose() {
    let _l = shared_lock();
    let out = as_nobody(
        &["bpf", "perfmon", "sys_admin"],
        &["-v", "syscalls", "-d", "0.2"],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading the plain way"), "{err}");
    assert!(err.contains("CAP_SYS_CHROOT"), "{err}");
}

/// uprobes: the kernel lets only CAP_SYS_ADMIN create them; with it they
/// count, without it the error says so.
#[test]
fn uprobes_need_sys_admin() {
    let _l = shared_lock();
    let fx = fixture_path();
    let probe = format!("{}:tracer_fixture_work", fx.display());
    let args = [
        "uprobe",
        probe.as_str(),
        "--",
        fx.to_str().unwrap(),
        "work",
        "5",
    ];
    let out = as_nobody(&["bpf", "perfmon", "dac_read_search"], &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CAP_SYS_ADMIN"),
        "{out:?}"
    );
    assert_counts(
        &["bpf", "perfmon", "dac_read_search", "sys_admin"],
        &args,
        "tracer_fixture_work",
    );
}

/// Without enough privileges: one line naming the missing capabilities, exit 1.
#[test]
fn missing_capabilities_are_named() {
    let _l = shared_lock();
    for (caps, names) in [
        (&[][..], "lacks CAP_BPF and CAP_PERFMON"),
        (&["bpf"], "lacks CAP_PERFMON"),
        (&["perfmon", "sys_resource"], "lacks CAP_BPF"),
    ] {
        let out = as_nobody(caps, &["syscalls", "-d", "0.1"]);
        assert_eq!(out.status.code(), Some(1), "{caps:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{caps:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
