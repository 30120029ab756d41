//! `tracer info`, completions and the man page, run for real.
mod common;

use std::{process::Command, time::Duration};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn info_json(cmd: &mut Command) -> serde_json::Value {
    let out = run(cmd, LIMIT);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn feature<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

/// On the host kernel (no CONFIG_KPROBES, fentry refused) tracer info says so,
/// with the reasons, and reports everything else available.
#[test]
fn host_capabilities() {
    let _l = exclusive_lock();
    let v = info_json(tracer().args(["info", "--json"]));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["kernel"], release.trim());
    assert_eq!(v["btf"], true);
    let kp = feature(&v, "kprobes");
    assert_eq!(kp["available"], false, "{v}");
    assert!(
        kp["reason"]
            .as_str()
            .unwrap()
            .contains("CONFIG_KPROBES is not set"),
        "{v}"
    );
    let fe = feature(&v, "fentry");
    assert_eq!(fe["available"], false, "{v}");
    assert!(fe["reason"].as_str().unwrap().contains("EPERM"), "{v}");
    for name in [
        "raw tracepoints",
        "tracepoints",
        "uprobes",
        "ring buffer",
        "per-CPU maps",
        "task storage",
        "bpf_get_func_ip",
        "stack traces",
    ] {
        assert_eq!(feature(&v, name)["available"], true, "{name}: {v}");
    }
    assert_nothing_loaded("after tracer info");
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
