//! `--cgroup PATH` and `--container ID|NAME` on the commands that select
//! processes: a fixture moved into a cgroup v2 group the test creates (named
//! like a container's, for --container) is counted exactly, and an identical
//! fixture outside it is not (decided in the kernel).
mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
/// Calls of sched_get_priority_max (nothing else on the machine makes it)
/// inside the cgroup, and outside it.
const INSIDE: u64 = 777;
const OUTSIDE: u64 = 333;

/// A cgroup v2 group of the test's own, removed (empty) when dropped, with
/// the parents it was made in.
struct Group {
    dir: PathBuf,
    /// Its path relative to the cgroup v2 mount.
    name: String,
}

impl Group {
    fn new(test: &str) -> Self {
        Self::at(&format!("tracer-test-{test}-{}", std::process::id()))
    }

    /// The group at `name` below the cgroup v2 mount, and its parents.
    fn at(name: &str) -> Self {
        let dir = cgroup2_mount().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Group {
            dir,
            name: name.to_string(),
        }
    }

    /// A group named as Docker's systemd driver names a container's
    /// (`docker-<64 hex>.scope`; `runtime` gives another runtime's prefix),
    /// inside a group of the test's own. Returns it and the id.
    fn container(test: &str, runtime: &str) -> (Self, String) {
        let id = random_id();
        let g = Self::at(&format!(
            "tracer-test-{test}-{}/{runtime}-{id}.scope",
            std::process::id()
        ));
        (g, id)
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
}

impl Drop for Group {
    fn drop(&mut self) {
        // The group, then the parents made for it (those still holding
        // another test's group stay: rmdir refuses).
        let mount = cgroup2_mount();
        let mut dir = self.dir.as_path();
        while dir.starts_with(&mount) && dir != mount {
            let _ = std::fs::remove_dir(dir);
            dir = dir.parent().unwrap();
        }
    }
}

/// A container id: 64 random hex digits.
fn random_id() -> String {
    let uuid = || std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    let id: String = (uuid() + &uuid())
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(id.len(), 64);
    id
}

/// A runtime's state directory made by the test (what Docker keeps under
/// /var/lib/docker, Podman under /var/lib/containers/storage), removed when
/// dropped.
struct State(PathBuf);

impl State {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-test-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        State(dir)
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.0.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// tracer reading the runtimes' state from these directories only (none
/// for `None`), not the machine's.
fn with_state(docker: Option<&State>, podman: Option<&State>) -> Command {
    let mut cmd = tracer();
    let root = |s: Option<&State>| s.map_or(PathBuf::new(), |s| s.0.clone());
    cmd.env("TRACER_DOCKER_ROOT", root(docker))
        .env("TRACER_PODMAN_ROOT", root(podman));
    cmd
}

fn run_outside(args: &[&str]) {
    let st = fixture()
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

/// tracer (`cmd`), attached, while a fixture inside the group and an
/// identical one outside make their calls; then Ctrl-C. Its stdout.
fn traced(g: &Group, cmd: &mut Command) -> Vec<u8> {
    traced_runs(
        g,
        cmd,
        &format!("rare {INSIDE}"),
        &["rare", &OUTSIDE.to_string()],
    )
    .0
}

/// tracer (`cmd`), attached, while `fixture INSIDE` runs to its end inside
/// the group and `fixture OUTSIDE` outside it; then Ctrl-C. Its stdout, and
/// the pid of the fixture inside.
fn traced_runs(g: &Group, cmd: &mut Command, inside: &str, outside: &[&str]) -> (Vec<u8>, u32) {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
    let (child, _err) = start_attached(cmd);
    let fx = g.spawn_inside(inside);
    let pid = fx.id();
    assert!(fx.wait_with_output().unwrap().status.success());
    run_outside(outside);
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, LIMIT);
    assert!(out.status.success(), "{args:?}: {out:?}");
    (out.stdout, pid)
}

#[test]
fn syscalls_counts_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("sys");
    let out = traced(
        &g,
        tracer().args(["syscalls", "--cgroup", &g.name, "--json"]),
    );
    assert_eq!(rare_calls(&out), Some(INSIDE));
}

#[test]
fn trace_streams_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("trace");
    let abs = g.dir.to_str().unwrap().to_string();
    let out = traced(
        &g,
        tracer().args([
            "trace",
            "--cgroup",
            &abs,
            "-e",
            "sched_get_priority_max",
            "--json",
        ]),
    );
    let n = json_lines(&out)
        .iter()
        .filter(|o| o["type"] == "syscall" && o["syscall"] == "sched_get_priority_max")
        .count() as u64;
    assert_eq!(n, INSIDE);
}

/// `tracer tcp --container`: the connections of a fixture in a Docker-like
/// container cgroup, not those of an identical fixture outside; the owner
/// test runs where the task is known (connect, accept), so both sockets of
/// each connection count.
#[test]
fn tcp_shows_only_the_containers_connections() {
    let _l = shared_lock();
    let (g, id) = Group::container("tcp", "docker");
    let (out, pid) = traced_runs(
        &g,
        tracer().args(["tcp", "--container", &id[..12], "--json"]),
        "tcp 4 500",
        &["tcp", "3", "500"],
    );
    let closes: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|o| o["type"] == "tcp" && o["event"] == "close")
        .collect();
    assert_eq!(closes.len(), 8, "{closes:#?}");
    assert!(
        closes.iter().all(|c| c["pid"] == pid
            && c["rx_bytes"].as_u64().unwrap() + c["tx_bytes"].as_u64().unwrap() == 600),
        "{closes:#?}"
    );
}

#[test]
fn tracepoint_counts_only_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("tp");
    let out = traced(
        &g,
        tracer().args([
            "tracepoint",
            "syscalls:sys_enter_sched_get_priority_max",
            "--cgroup",
            &g.name,
            "--json",
        ]),
    );
    assert_eq!(tracepoint_count(&out), INSIDE);
}

/// The events a `tracer tracepoint --json` run counted, all tracepoints.
fn tracepoint_count(out: &[u8]) -> u64 {
    let last = json_lines(out).pop().unwrap();
    last["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum::<u64>()
}

/// The sched_get_priority_max calls of the last `tracer syscalls --json` block.
fn rare_calls(out: &[u8]) -> Option<u64> {
    let last = json_lines(out).pop().unwrap();
    syscall(&last, "sched_get_priority_max").map(|r| r["calls"].as_u64().unwrap())
}

#[test]
fn syscalls_counts_only_the_container_by_id_prefix() {
    let _l = shared_lock();
    let (g, id) = Group::container("ctr", "docker");
    let out = traced(
        &g,
        with_state(None, None).args(["syscalls", "--container", &id[..12], "--json"]),
    );
    assert_eq!(rare_calls(&out), Some(INSIDE));
}

#[test]
fn syscalls_counts_only_the_container_by_docker_name() {
    let _l = shared_lock();
    let (g, id) = Group::container("dname", "docker");
    let name = format!("tracer-test-web-{}", std::process::id());
    let docker = State::new("docker");
    docker.write(
        &format!("containers/{id}/config.v2.json"),
        &format!(r#"{{"ID":"{id}","Name":"/{name}","State":{{"Running":true}}}}"#),
    );
    let out = traced(
        &g,
        with_state(Some(&docker), None).args(["syscalls", "--container", &name, "--json"]),
    );
    assert_eq!(rare_calls(&out), Some(INSIDE));
}

#[test]
fn tracepoint_counts_only_the_container_by_podman_name() {
    let _l = shared_lock();
    let (g, id) = Group::container("pname", "libpod");
    let name = format!("tracer-test-db-{}", std::process::id());
    let podman = State::new("podman");
    podman.write(
        "overlay-containers/containers.json",
        &format!(r#"[{{"id":"{id}","names":["{name}"],"image":"x"}}]"#),
    );
    let out = traced(
        &g,
        with_state(None, Some(&podman)).args([
            "tracepoint",
            "syscalls:sys_enter_sched_get_priority_max",
            "--container",
            &name,
            "--json",
        ]),
    );
    assert_eq!(tracepoint_count(&out), INSIDE);
}

#[test]
fn bad_containers_are_one_clear_line() {
    let _l = shared_lock();
    // Two containers whose ids share their first 8 digits.
    let (a, id) = Group::container("bad", "docker");
    let twin = format!("{}{}", &id[..8], &random_id()[8..]);
    let b = Group::at(&format!(
        "tracer-test-bad-{}/docker-{twin}.scope",
        std::process::id()
    ));
    fails_as(
        with_state(None, None).args(["syscalls", "--container", "no-such-container", "-d", "1"]),
        1,
        "--container no-such-container: no such container among the",
    );
    let mut ids = [&id[..12], &twin[..12]];
    ids.sort();
    let ambiguous = format!(
        "ambiguous, it matches 2: {} (Docker), {} (Docker); give more of the id",
        ids[0], ids[1]
    );
    fails_as(
        with_state(None, None).args(["syscalls", "--container", &id[..8], "-d", "1"]),
        1,
        &ambiguous,
    );
    fails_as(
        with_state(None, None).args(["trace", "--container", &id[..3], "-d", "1"]),
        1,
        "an id prefix needs at least 4 hex digits",
    );
    // Named in Docker's state, but without a cgroup: not running.
    let stopped = random_id();
    let docker = State::new("docker-stopped");
    docker.write(
        &format!("containers/{stopped}/config.v2.json"),
        r#"{"Name":"/tracer-test-stopped"}"#,
    );
    fails_as(
        with_state(Some(&docker), None).args([
            "exec",
            "--container",
            "tracer-test-stopped",
            "-d",
            "1",
        ]),
        1,
        &format!(
            "Docker container tracer-test-stopped ({}) has no cgroup under {}: it is not running",
            &stopped[..12],
            cgroup2_mount().display()
        ),
    );
    drop((a, b));
}

/// tracer run with `args` by `sh -c SCRIPT`, in a mount namespace of its own
/// (`unshare -m`: what the script mounts or unmounts stays there);
/// `$TRACER` in the script is tracer.
fn in_own_mounts(script: &str) -> Command {
    require_root();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("TRACER", env!("CARGO_BIN_EXE_tracer"));
    cmd
}

#[test]
fn containers_need_cgroup_v2_and_a_container() {
    let _l = shared_lock();
    let mount = cgroup2_mount();
    let m = mount.display();
    // No cgroup v2 mounted.
    fails_as(
        &mut in_own_mounts(&format!(
            "umount {m} && exec \"$TRACER\" syscalls --container web -d 1"
        )),
        1,
        "--container web: cgroup v2 is not mounted here",
    );
    // No container cgroups: in a cgroup namespace whose root is an empty
    // group of the test's own (other tests' fake containers are outside it).
    let g = Group::new("none");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > {m}/{}/cgroup.procs && exec unshare --cgroup --mount --propagation private \
             sh -c 'umount {m} && mount -t cgroup2 none {m} && \
             exec \"$TRACER\" syscalls --container web -d 1'",
            g.name
        ))
        .env("TRACER", env!("CARGO_BIN_EXE_tracer"));
    fails_as(
        &mut cmd,
        1,
        &format!("--container web: no container cgroups on this machine (looked 8 levels deep under {m} for docker-ID.scope,"),
    );
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

/// `tracer ARGS -P --show-cgroup --json -- sh -c ...`, where the launched
/// shell moves itself into `g`, then execs `fixture rare 50`: the one
/// process's JSON object. Both are gone when the report is printed (no /proc
/// to ask): the cgroup comes from what the kernel recorded.
fn launched_in(g: &Group, args: &[&str]) -> Value {
    let file = std::env::temp_dir().join(format!(
        "tracer-test-{}-{}.json",
        g.name.replace('/', "-"),
        std::process::id()
    ));
    let out = run(
        tracer()
            .args(args)
            .args(["-P", "--show-cgroup", "--json", "-o"])
            .arg(&file)
            .args(["--", "sh", "-c"])
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec {} rare 50",
                g.dir.display(),
                fixture_path().display()
            )),
        LIMIT,
    );
    let report = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{out:?}");
    let last = json_lines(&report.unwrap()).pop().unwrap();
    let procs = last["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{last}");
    procs[0].clone()
}

#[test]
fn per_process_rows_show_the_cgroup() {
    let _l = shared_lock();
    let g = Group::new("show");
    let p = launched_in(&g, &["syscalls"]);
    assert_eq!(p["cgroup"], format!("/{}", g.name), "{p}");
    assert_eq!(
        syscall(&p, "sched_get_priority_max").map(|r| r["calls"].clone()),
        Some(50.into())
    );
    let p = launched_in(
        &g,
        &["tracepoint", "syscalls:sys_enter_sched_get_priority_max"],
    );
    assert_eq!(p["cgroup"], format!("/{}", g.name), "{p}");
    assert_eq!(p["count"], 50, "{p}");
}

/// The same in text: a last CGROUP column, system-wide, where the fixture
/// inside the group has its group and the one outside does not.
#[test]
fn per_process_table_has_a_cgroup_column() {
    let _l = shared_lock();
    let g = Group::new("showtxt");
    let out = traced(
        &g,
        tracer().args([
            "syscalls",
            "-P",
            "--show-cgroup",
            "--all",
            "-e",
            "sched_get_priority_max",
        ]),
    );
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("PID"));
    let head = lines.next().unwrap_or_default();
    assert!(head.ends_with(" COUNT CGROUP"), "{text}");
    let path = format!(" /{}", g.name);
    let ours: Vec<&str> = lines.filter(|l| l.ends_with(&path)).collect();
    assert_eq!(ours.len(), 1, "{text}");
    let count: Vec<&str> = ours[0].split_whitespace().collect();
    assert_eq!(count[2], INSIDE.to_string(), "{text}");
    assert!(
        text.lines().any(
            |l| l.split_whitespace().nth(2) == Some(&OUTSIDE.to_string()) && !l.ends_with(&path)
        ),
        "the fixture outside, in another cgroup: {text}"
    );
}
