//! `--cgroup PATH` on the commands that select processes: a fixture moved
//! into a cgroup v2 group the test creates is counted exactly, and an
//! identical fixture outside it is not (decided in the kernel).
mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
/// Calls of sched_get_priority_max (nothing else on the machine makes it)
/// inside the cgroup, and outside it.
const INSIDE: u64 = 777;
const OUTSIDE: u64 = 333;

/// A cgroup v2 group of the test's own, removed (empty) when dropped.
struct Group {
    dir: PathBuf,
    /// Its path relative to the cgroup v2 mount.
    name: String,
}

impl Group {
    fn new(test: &str) -> Self {
        let name = format!("tracer-test-{test}-{}", std::process::id());
        let dir = cgroup2_mount().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Group { dir, name }
    }

    /// `fixture ARGS` started inside the group (a shell moves itself in,
    /// then execs the fixture: the pid is the fixture's).
    fn spawn_inside(&self, args: &str) -> std::process::Child {
        let procs = self.dir.join("cgroup.procs");
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && exec {} {args}",
                procs.display(),
                fixture_path().display()
            ))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `fixture ARGS` run to its end inside the group.
    fn run_inside(&self, args: &str) {
        let st = self.spawn_inside(args).wait().unwrap();
        assert!(st.success());
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn run_outside(args: &[&str]) {
    let st = fixture()
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

/// tracer with `args`, attached, while a fixture inside the group and an
/// identical one outside make their calls; then Ctrl-C. Its stdout.
fn traced(g: &Group, args: &[&str]) -> Vec<u8> {
    let (child, _err) = start_attached(tracer().args(args));
    g.run_inside(&format!("rare {INSIDE}"));
    run_outside(&["rare", &OUTSIDE.to_string()]);
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, LIMIT);
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

#[test]
fn syscalls_counts_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("sys");
    let out = traced(&g, &["syscalls", "--cgroup", &g.name, "--json"]);
    let last = json_lines(&out).pop().unwrap();
    let calls = syscall(&last, "sched_get_priority_max").map(|r| r["calls"].as_u64().unwrap());
    assert_eq!(calls, Some(INSIDE), "{last}");
}

#[test]
fn trace_streams_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("trace");
    let abs = g.dir.to_str().unwrap().to_string();
    let out = traced(
        &g,
        &[
            "trace",
            "--cgroup",
            &abs,
            "-e",
            "sched_get_priority_max",
            "--json",
        ],
    );
    let n = json_lines(&out)
        .iter()
        .filter(|o| o["type"] == "syscall" && o["syscall"] == "sched_get_priority_max")
        .count() as u64;
    assert_eq!(n, INSIDE);
}

#[test]
fn tracepoint_counts_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("tp");
    let out = traced(
        &g,
        &[
            "tracepoint",
            "syscalls:sys_enter_sched_get_priority_max",
            "--cgroup",
            &g.name,
            "--json",
        ],
    );
    let last = json_lines(&out).pop().unwrap();
    let count = last["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(count, INSIDE, "{last}");
}

#[test]
fn profile_samples_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("prof");
    let (child, _err) =
        start_attached(tracer().args(["profile", "-F", "199", "--cgroup", &g.name, "--json"]));
    let mut outside = fixture()
        .args(["cpu", "1500"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut inside = g.spawn_inside("cpu 1500");
    let pid = u64::from(inside.id());
    assert!(inside.wait().unwrap().success());
    let _ = outside.wait();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, LIMIT);
    assert!(out.status.success());
    let last: Value = json_lines(&out.stdout).pop().unwrap();
    let pids: Vec<u64> = last["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64().unwrap())
        .collect();
    assert!(pids.len() > 3, "{pids:?}");
    assert!(
        pids.iter().all(|p| *p == pid),
        "stacks of processes outside the cgroup (inside: {pid}): {pids:?}"
    );
}

/// A named cgroup v1 hierarchy mounted by the test, unmounted when dropped.
struct V1(PathBuf);

impl Drop for V1 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn bad_cgroups_are_one_clear_line() {
    let _l = exclusive_lock();
    fails_with(
        &["syscalls", "--cgroup", "/tmp", "-d", "1"],
        1,
        "is not a cgroup directory",
    );
    fails_with(
        &["syscalls", "--cgroup", "no-such-group-here", "-d", "1"],
        1,
        "no such cgroup",
    );
    let v1 = V1(std::env::temp_dir().join(format!("tracer-v1-{}", std::process::id())));
    std::fs::create_dir_all(&v1.0).unwrap();
    let st = Command::new("mount")
        .args(["-t", "cgroup", "-o", "none,name=tracertest", "cgroup"])
        .arg(&v1.0)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a named cgroup v1 hierarchy");
    fails_with(
        &["syscalls", "--cgroup", v1.0.to_str().unwrap(), "-d", "1"],
        1,
        "is a cgroup v1 hierarchy",
    );
    drop(v1);
    assert_nothing_loaded("after refused --cgroup runs");
}
