//! End-to-end: `tracer list`.
mod common;

use common::*;

fn list(args: &[&str]) -> String {
    // output() reads while the child writes: a long list would fill a pipe.
    let out = tracer().arg("list").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn syscalls_of_this_arch() {
    let text = list(&["syscalls"]);
    let names: Vec<&str> = text.lines().collect();
    assert!(
        names.contains(&"read") && names.contains(&"openat"),
        "{text}"
    );
    // The syscalls crate's table, and on x86_64 the two newer than it.
    let mut want: Vec<&str> = syscalls::Sysno::iter().map(|s| s.name()).collect();
    if cfg!(target_arch = "x86_64") {
        want.extend(["listns", "rseq_slice_yield"]);
    }
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, want);
    let json = json_lines(list(&["syscalls", "listns", "--json"]).as_bytes());
    if cfg!(target_arch = "x86_64") {
        assert_eq!(json[0]["nr"], 470);
    }
    let text = list(&["syscalls", "open*"]);
    assert!(text.lines().all(|l| l.starts_with("open")), "{text}");
    assert!(text.lines().any(|l| l == "openat"), "{text}");
    let json = json_lines(list(&["syscalls", "openat", "--json"]).as_bytes());
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["name"], "openat");
    assert_eq!(json[0]["nr"], syscalls::Sysno::openat.id() as u64);
}

#[test]
fn tracepoints_and_fields() {
    let text = list(&["tracepoints"]);
    assert!(
        text.lines().any(|l| l == "sched:sched_process_exec"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.contains(':')));
    let text = list(&["tracepoints", "sched:sched_process_fork", "-v"]);
    assert_eq!(text.lines().next(), Some("sched:sched_process_fork"));
    assert!(
        text.lines().any(|l| l.trim() == "pid_t child_pid"),
        "{text}"
    );
    let json = json_lines(
        list(&[
            "tracepoints",
            "sched:sched_process_fork",
            "--fields",
            "--json",
        ])
        .as_bytes(),
    );
    let fields = json[0]["fields"].as_array().unwrap();
    let child = fields.iter().find(|f| f["name"] == "child_pid").unwrap();
    assert_eq!(child["size"], 4);
    assert_eq!(child["numeric"], true);
}

#[test]
fn kernel_functions() {
    let text = list(&["kprobes", "vfs_read"]);
    assert_eq!(text, "vfs_read\n");
    let n = list(&["kprobes", "vfs_*"]).lines().count();
    assert!(n > 5, "{n}");
}

#[test]
fn user_functions() {
    let fx = fixture_path().display().to_string();
    let text = list(&["uprobes", &fx]);
    assert!(text.lines().any(|l| l == "tracer_fixture_work"), "{text}");
    let text = list(&["uprobes", &fx, "tracer_fixture_*"]);
    assert_eq!(text, "tracer_fixture_work\n");
    let text = list(&["uprobes", "libc"]);
    assert!(text.lines().any(|l| l == "malloc"), "libc has malloc");
    let json = json_lines(list(&["uprobes", "libc", "malloc", "--json"]).as_bytes());
    assert_eq!(json.len(), 1);
    assert!(
        json[0]["target"].as_str().unwrap().contains("libc.so"),
        "{}",
        json[0]
    );
    let out = tracer()
        .args(["list", "uprobes", "/etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ELF"));
}
