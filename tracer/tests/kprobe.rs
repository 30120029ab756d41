//! `tracer kprobe` on the host. The kernel here may lack both backends (the CI
//! host has no kprobes and refuses fentry): then the run must fail with one
//! clear line per backend and leave nothing loaded. Where a backend works,
//! the same test checks exact counts instead. The kprobe/fentry paths proper
//! are tested on real kernels by `cargo xtask vm-test`.
mod common;

use std::{path::Path, time::Duration};

use common::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn kprobe_vfs_read_counts_or_explains_both_backends() {
    let _lock = exclusive_lock();
    let fixture = fixture_path();
    let out = run(
        tracer()
            .args(["kprobe", "--json", "vfs_read", "--"])
            .arg(&fixture)
            .args(["read-zero", "100"]),
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    if Path::new("/sys/bus/event_source/devices/kprobe").exists() || out.status.success() {
        assert!(out.status.success(), "tracer failed: {err}");
        let blocks = json_lines(&out.stdout);
        let last = blocks.last().expect("no JSON output");
        let row = last["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == "vfs_read");
        assert_eq!(
            row.map(|r| r["calls"].as_u64().unwrap()),
            Some(100),
            "{last}"
        );
    } else {
        assert_eq!(out.status.code(), Some(1), "stderr: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("tracer: "))
            .unwrap_or_else(|| panic!("no error line: {err}"));
        assert!(
            line.contains("kprobes: this kernel has no kprobe support (CONFIG_KPROBES is not set)"),
            "{line}"
        );
        assert!(
            line.contains("; fentry: the kernel refused to load the program (E"),
            "{line}"
        );
        assert!(line.find("kprobes:") < line.find("fentry:"), "{line}");
        assert!(err.lines().count() <= 3, "too long: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_nothing_loaded("after tracer kprobe vfs_read");
}

#[test]
fn unknown_function_suggests_close_names() {
    let _lock = shared_lock();
    let out = run(
        tracer().args(["kprobe", "vfs_raed"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no kernel function named `vfs_raed`"), "{err}");
    assert!(
        err.contains("did you mean") && err.contains("vfs_read"),
        "{err}"
    );
    let out = run(
        tracer().args(["kprobe", "zzz_no_such_*"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no traceable kernel function matches `zzz_no_such_*`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn max_probes_limits_globs() {
    let _lock = shared_lock();
    let out = run(
        tracer().args(["kprobe", "--max-probes", "3", "vfs_*"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("more than --max-probes 3"), "{err}");
}
