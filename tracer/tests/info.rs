//! `tracer info`, completions and the man page, run for real.
mod common;

use std::{path::Path, process::Command, time::Duration};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn info_json(cmd: &mut Command) -> serde_json::Value {
    let out = run(cmd, LIMIT);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The element of array `list` whose `key` is `name`.
fn element<'a>(
    v: &'a serde_json::Value,
    list: &str,
    key: &str,
    name: &str,
) -> &'a serde_json::Value {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[key] == name)
        .unwrap_or_else(|| panic!("no {name} in {list} of {v}"))
}

fn feature<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    element(v, "features", "name", name)
}

/// `tracer info` says what the running kernel offers, as found without tracer
/// (tests/common/kernel.rs): on the CI host (no kprobes, fentry refused), on
/// the Debian kernels of the VMs and on any distribution kernel. Both ways:
/// what the kernel has must be "available", what it lacks "unavailable", with
/// the reason.
#[test]
fn capabilities_match_the_kernel() {
    let _l = exclusive_lock();
    let v = info_json(tracer().args(["info", "--json"]));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["kernel"], release.trim());
    assert_eq!(v["btf"], Path::new(kernel::VMLINUX_BTF).exists(), "{v}");
    let mut checked = Vec::new();

    let kp = kernel::kprobes();
    eprintln!("kprobes here: {kp:?}");
    let f = feature(&v, "kprobes");
    checked.push("kprobes");
    match kp.attach {
        Ok(()) => assert_available(f, &format!("a kprobe on vfs_read could be made: {kp:?}")),
        Err(e) => {
            let reason = assert_unavailable(f, &format!("{kp:?}"));
            if !kp.pmu {
                assert!(reason.contains("no kprobe support"), "{reason} ({kp:?})");
            } else {
                assert!(reason.contains(&kernel::errno_name(e)), "{reason} ({kp:?})");
            }
            if kp.config == Some(false) {
                assert!(
                    reason.contains("CONFIG_KPROBES is not set"),
                    "{reason} ({kp:?})"
                );
            }
        }
    }

    let fe = kernel::fentry();
    eprintln!("fentry here: {fe:?}");
    let f = feature(&v, "fentry");
    checked.push("fentry");
    match fe {
        Ok(()) => assert_available(f, "an fentry program on vfs_read loaded and attached"),
        Err(why) => {
            let reason = assert_unavailable(f, &format!("{why:?}"));
            let want = match why {
                kernel::FentryFailure::NoBtf => "no kernel BTF".to_string(),
                kernel::FentryFailure::Load(e) => format!(
                    "the kernel refused to load the program ({})",
                    kernel::errno_name(e)
                ),
                kernel::FentryFailure::Attach(e) => {
                    format!("attaching failed ({})", kernel::errno_name(e))
                }
            };
            assert!(reason.contains(&want), "{reason}: expected {want:?}");
        }
    }

    // The rest, against bpftool's probes (and the uprobe PMU in sysfs).
    let b = kernel::bpftool_features();
    let prog = |t: &str| b["program_types"][format!("have_{t}_prog_type")] == true;
    let map = |t: &str| b["map_types"][format!("have_{t}_map_type")] == true;
    let helper = |h: &str| {
        b["helpers"]["kprobe_available_helpers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == h))
    };
    for (name, has) in [
        ("raw tracepoints", prog("raw_tracepoint")),
        ("tracepoints", prog("tracepoint")),
        (
            "uprobes",
            Path::new("/sys/bus/event_source/devices/uprobe/type").exists(),
        ),
        ("ring buffer", map("ringbuf")),
        ("per-CPU maps", map("percpu_array") && map("percpu_hash")),
        ("task storage", map("task_storage")),
        // bpftool has no probe for perf-event links; they came with the
        // cookie helper (Linux 5.15).
        ("BPF cookies", helper("bpf_get_attach_cookie")),
        ("bpf_get_func_ip", helper("bpf_get_func_ip")),
        (
            "stack traces",
            map("stack_trace") && helper("bpf_get_stackid"),
        ),
        // perf_event_open itself, asked directly: the kernel's CPU clock and
        // the hardware cycle counter, all processes on CPU 0.
        (
            "CPU sampling",
            prog("perf_event") && perf_event_opens(PERF_TYPE_SOFTWARE, 0),
        ),
        ("cycle counter", perf_event_opens(PERF_TYPE_HARDWARE, 0)),
    ] {
        let f = feature(&v, name);
        if has {
            assert_available(f, "bpftool finds it");
        } else {
            assert_unavailable(f, "bpftool does not find it");
        }
        checked.push(name);
    }
    // Every feature tracer reports was checked against the kernel.
    let mut listed: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    listed.sort();
    checked.sort();
    assert_eq!(listed, checked, "features without a check here");
    assert_nothing_loaded("after tracer info");
}

fn assert_available(f: &serde_json::Value, why: &str) {
    assert_eq!(f["available"], true, "{f}, but {why}");
    assert!(f["reason"].is_null(), "{f}");
}

/// The reason given.
fn assert_unavailable<'a>(f: &'a serde_json::Value, why: &str) -> &'a str {
    assert_eq!(f["available"], false, "{f}, but {why}");
    let reason = f["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "no reason given: {f}");
    reason
}

/// With tracefs unmounted, info reports it mountable and leaves it unmounted.
#[test]
fn tracefs_left_as_found() {
    let _l = shared_lock();
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         {} info || exit 91; test -e /sys/kernel/tracing/events && exit 92; exit 0",
        env!("CARGO_BIN_EXE_tracer")
    );
    let out = run(
        Command::new("unshare").args(["-m", "sh", "-c", &script]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not mounted; mountable"), "{text}");
    assert!(text.contains("tracepoints        yes"), "{text}");
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(tracer().args(["completions", shell]), LIMIT);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("syscalls"),
            "{shell}"
        );
    }
    let out = run(tracer().arg("man"), LIMIT);
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.contains(".TH tracer 1"), "{man}");
    assert!(
        man.contains("TRACER\\-SYSCALLS") || man.contains("TRACER-SYSCALLS"),
        "{man}"
    );
}

/// --color: never colours when not asked for, colours when forced.
#[test]
fn colour_choice() {
    let _l = shared_lock();
    let plain = run(tracer().args(["syscalls", "-d", "0.3"]), LIMIT);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains('\x1b'));
    let forced = run(
        tracer().args(["--color", "always", "syscalls", "-d", "0.3"]),
        LIMIT,
    );
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b[1mSYSCALL"));
    let err = run(
        tracer().args(["--color", "never", "syscalls", "-e", "nope"]),
        LIMIT,
    );
    assert!(!String::from_utf8_lossy(&err.stderr).contains('\x1b'));
}

/// On a 50-column terminal the histogram rows shrink to fit (run under a pty).
#[test]
fn histogram_fits_a_narrow_terminal() {
    let _l = shared_lock();
    let cmd = format!(
        "stty cols 50; {} --color never tracepoint syscalls:sys_enter_write --hist count -- sh -c '{} writes 1 100 5000 >/dev/null'",
        env!("CARGO_BIN_EXE_tracer"),
        fixture_path().display()
    );
    let out = run(
        Command::new("script").args(["-qec", &cmd, "/dev/null"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(" -> ")).collect();
    assert!(rows.len() >= 13, "{text}");
    for r in &rows {
        assert!(
            r.chars().count() <= 50,
            "row wider than the terminal: {r:?}"
        );
    }
    // Without a terminal the rows keep BCC's 40-star bars.
    let wide = run(
        tracer()
            .args([
                "tracepoint",
                "syscalls:sys_enter_write",
                "--hist",
                "count",
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                "{} writes 1 100 5000 >/dev/null",
                fixture_path().display()
            )),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&wide.stderr);
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("|{}|", "*".repeat(40)))),
        "{text}"
    );
}

fn command<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    element(v, "commands", "command", name)
}

/// Each command's path follows what the kernel has (per bpftool): the fast
/// path where the feature is there, the fallback (saying what is missing and
/// which kernel brings it) where it is not; TRACER_FALLBACK forces the
/// fallbacks, and says so.
#[test]
fn commands_say_which_path_they_take() {
    let _l = exclusive_lock();
    let b = kernel::bpftool_features();
    let map = |t: &str| b["map_types"][format!("have_{t}_map_type")] == true;
    let helper = |h: &str| {
        b["helpers"]["kprobe_available_helpers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == h))
    };
    let v = info_json(tracer().args(["info", "--json"]));
    let names: Vec<_> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "syscalls",
            "trace",
            "exec",
            "uprobe",
            "tracepoint",
            "kprobe",
            "serve",
            "profile",
            "tcp",
            "list"
        ]
    );
    // tcp wants the kernel's BTF for tcp_sock's offsets.
    let t = command(&v, "tcp");
    assert_eq!(
        t["works"],
        std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
        "{t}"
    );
    // profile samples on the cycle counter where there is one.
    let p = command(&v, "profile");
    assert_eq!(p["works"], true, "{p}");
    let cycles = perf_event_opens(PERF_TYPE_HARDWARE, 0);
    let path = p["path"].as_str().unwrap();
    assert_eq!(path.contains("on cycles"), cycles, "{p}");
    assert_eq!(path.contains("on cpu-clock"), !cycles, "{p}");
    for (name, fast) in [
        ("syscalls", map("task_storage")),
        ("serve", map("task_storage")),
        ("uprobe", helper("bpf_get_attach_cookie")),
        ("tracepoint", helper("bpf_get_attach_cookie")),
    ] {
        let c = command(&v, name);
        assert_eq!(c["works"], true, "{c}");
        assert_eq!(c["fallback"], !fast, "{c}");
        assert_eq!(c["missing"].is_null(), fast, "{c}");
    }
    let forced = info_json(
        tracer()
            .env("TRACER_FALLBACK", "task-storage,cookies")
            .args(["info", "--json"]),
    );
    let c = command(&forced, "syscalls");
    assert_eq!(c["fallback"], true, "{c}");
    assert!(c["path"].as_str().unwrap().contains("hash map"), "{c}");
    let m = c["missing"].as_str().unwrap();
    assert!(
        m.contains("task storage (Linux 5.11)") && m.contains("TRACER_FALLBACK"),
        "{c}"
    );
    let c = command(&forced, "uprobe");
    assert_eq!(c["fallback"], true, "{c}");
    assert!(c["path"].as_str().unwrap().contains("at most 64"), "{c}");
    assert!(c["missing"].as_str().unwrap().contains("Linux 5.15"), "{c}");
    let text = run(tracer().arg("info"), LIMIT);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("\nCOMMAND     PATH ON THIS KERNEL\n"),
        "{text}"
    );
    assert_nothing_loaded("after tracer info");
}

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;

/// Whether perf_event_open accepts event (`type_`, `config`) for every
/// process on CPU 0 (created disabled, closed at once).
fn perf_event_opens(type_: u32, config: u64) -> bool {
    // struct perf_event_attr: type, size, config; `disabled` is bit 0 of
    // the flags at byte 40. Unused bytes zero, as the kernel wants them.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&type_.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&config.to_ne_bytes());
    attr[40] = 1;
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), -1, 0, -1, 0) };
    if fd >= 0 {
        unsafe { libc::close(fd as i32) };
    }
    fd >= 0
}
