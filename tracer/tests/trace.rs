//! End-to-end tests of `tracer trace` and `tracer exec`: the real binary, as
//! root, against fixture programs whose calls are known exactly.
mod common;

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A fresh directory for one test, holding a file `exists`.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("exists"), b"x").unwrap();
    dir
}

const FILE_CALLS: &str = "openat,close,newfstatat,access,unlink,mkdir,rename,rmdir";

/// The lines `fixture files DIR` must produce (see tracer-fixtures), `fd` being
/// the descriptor the first openat returned.
fn expected_file_lines(pid: u32, dir: &Path, fd: i64) -> Vec<String> {
    let d = dir.display();
    let enoent = "-1 ENOENT (No such file or directory)";
    let long = format!("{d}{}", "/d".repeat(150));
    vec![
        format!("{pid:<5} openat(AT_FDCWD, \"{d}/exists\", O_RDONLY|O_CLOEXEC) = {fd}"),
        format!("{pid:<5} close({fd}) = 0"),
        format!("{pid:<5} openat(AT_FDCWD, \"{d}/missing\", O_RDONLY) = {enoent}"),
        format!("{pid:<5} newfstatat(AT_FDCWD, \"{d}/exists\", PTR, 0) = 0"),
        format!("{pid:<5} access(\"{d}/missing\", F_OK) = {enoent}"),
        format!("{pid:<5} unlink(\"{d}/missing\") = {enoent}"),
        format!("{pid:<5} mkdir(\"{d}/sub\", 0755) = 0"),
        format!("{pid:<5} rename(\"{d}/sub\", \"{d}/moved\") = 0"),
        format!("{pid:<5} rmdir(\"{d}/moved\") = 0"),
        // 255 bytes are kept; the rest is marked.
        format!(
            "{pid:<5} openat(AT_FDCWD, \"{}\"..., O_RDONLY) = {enoent}",
            &long[..255]
        ),
    ]
}

/// Replace the stat buffer address (it varies) by PTR.
fn mask_pointer(line: &str) -> String {
    match line.find("newfstatat(") {
        Some(_) => {
            let parts: Vec<&str> = line.splitn(2, ", 0x").collect();
            if parts.len() == 2 {
                let rest = parts[1].split_once(',').map(|(_, r)| r).unwrap_or("");
                format!("{}, PTR,{rest}", parts[0])
            } else {
                line.to_string()
            }
        }
        None => line.to_string(),
    }
}

#[test]
fn trace_pid_prints_exactly_the_fixture_calls() {
    let _lock = shared_lock();
    let dir = scratch("files");
    let out = dir.join("trace.out");
    let mut fx = Waiting::start(&["files", dir.to_str().unwrap()]);
    let pid = fx.pid();
    let (tracer, mut err) = start_attached(
        tracer()
            .args(["trace", "-p", &pid.to_string(), "-e", FILE_CALLS, "-o"])
            .arg(&out),
    );
    fx.go();
    fx.wait();
    let status = wait_output(tracer, LIMIT);
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(status.status.success(), "tracer failed: {rest}");
    assert!(!rest.contains("lost"), "nothing may be lost here: {rest}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<String> = text.lines().map(mask_pointer).collect();
    assert!(!lines.is_empty(), "no output; stderr: {rest}");
    let fd: i64 = lines[0]
        .rsplit_once("= ")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("first line is not a successful openat: {}", lines[0]));
    assert!(fd >= 3, "{}", lines[0]);
    assert_eq!(
        lines,
        expected_file_lines(pid, &dir, fd),
        "\nfull output:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_command_json_and_exit_code() {
    let _lock = shared_lock();
    let dir = scratch("json");
    let out = run(
        tracer()
            .args(["trace", "--json", "-T", "-e", "openat,unlink", "--"])
            .arg(fixture_path())
            .args(["files", dir.to_str().unwrap()]),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The command owns stdout: the report is on stderr.
    assert!(json_lines(&out.stdout).is_empty(), "{out:?}");
    let objs = json_lines(&out.stderr);
    let d = dir.display().to_string();
    let ours: Vec<&serde_json::Value> = objs
        .iter()
        .filter(|o| o["type"] == "syscall")
        .filter(|o| {
            o["paths"][0]["value"]
                .as_str()
                .is_some_and(|p| p.starts_with(&d))
        })
        .collect();
    let summary: Vec<(&str, &str, i64, Option<&str>)> = ours
        .iter()
        .map(|o| {
            (
                o["syscall"].as_str().unwrap(),
                o["paths"][0]["value"].as_str().unwrap(),
                o["ret"].as_i64().unwrap(),
                o["errno"].as_str(),
            )
        })
        .collect();
    let exists = format!("{d}/exists");
    let missing = format!("{d}/missing");
    let long = format!("{d}{}", "/d".repeat(150));
    let fd = summary.first().map(|s| s.2).unwrap_or(-1);
    assert!(fd >= 3, "{summary:?}");
    assert_eq!(
        summary,
        vec![
            ("openat", exists.as_str(), fd, None),
            ("openat", missing.as_str(), -2, Some("ENOENT")),
            ("unlink", missing.as_str(), -2, Some("ENOENT")),
            ("openat", &long[..255], -2, Some("ENOENT")),
        ]
    );
    assert_eq!(ours[3]["paths"][0]["truncated"], true);
    assert_eq!(ours[1]["paths"][0]["truncated"], false);
    assert!(ours.iter().all(|o| o["duration_ns"].as_u64().is_some()));
    assert!(ours.iter().all(|o| o["pid"] == ours[0]["pid"]));
    let last = objs.last().expect("a summary line");
    assert_eq!(last["type"], "summary");
    assert_eq!(last["lost"], 0);
    let n = objs.iter().filter(|o| o["type"] == "syscall").count() as u64;
    assert_eq!(last["events"], n);

    // The traced command's exit code is tracer's.
    let out = run(
        tracer().args(["trace", "-e", "exit_group", "--", "sh", "-c", "exit 3"]),
        LIMIT,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.ends_with("exit_group(3) = ?")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_follows_forks() {
    let _lock = shared_lock();
    let dir = scratch("forks");
    let out_file = dir.join("out");
    let out = run(
        tracer()
            .args(["trace", "-e", "getppid", "-o"])
            .arg(&out_file)
            .arg("--")
            .arg(fixture_path())
            .args(["forks", "3", "5"]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 15, "{text}");
    let mut pids: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(lines.iter().all(|l| l.contains("getppid() = ")), "{text}");
    pids.dedup();
    assert_eq!(pids.len(), 3, "three children, five calls each: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Events made faster than a 4 KiB ring can hold: everything is either
/// delivered or counted as lost, and the loss is reported.
#[test]
fn trace_lost_events_are_counted_exactly() {
    let _lock = shared_lock();
    let dir = scratch("stress");
    let out_file = dir.join("out");
    let n: u64 = 300_000;
    let out = overflowing_trace(&["-o", out_file.to_str().unwrap()], n);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    let delivered = text
        .lines()
        .filter(|l| l.ends_with(" geteuid() = 0"))
        .count() as u64;
    let lost: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("tracer: lost "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `tracer: lost N events` line on stderr: {stderr}"));
    assert!(stderr.contains("raise --buffer-size"), "{stderr}");
    assert!(
        lost > 0 && delivered > 0,
        "delivered {delivered}, lost {lost}"
    );
    assert_eq!(
        delivered + lost,
        n,
        "delivered {delivered} + lost {lost} != {n}"
    );
    // The in-stream markers add up to the same total.
    let marked: u64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("--- tracer: lost "))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(marked, lost, "in-stream lost markers");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start `tracer exec ARGS --json`, run `f`, stop tracer with SIGINT; its JSON objects.
fn exec_events(args: &[&str], f: impl FnOnce()) -> Vec<serde_json::Value> {
    let (mut child, mut err) = start_attached(tracer().arg("exec").arg("--json").args(args));
    // Read stdout as it comes: system-wide, other execs on the machine can fill a pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    f();
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, LIMIT);
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(out.status.success(), "tracer exec failed: {rest}");
    json_lines(&reader.join().unwrap())
}

fn run_fixture(args: &[&str]) -> u32 {
    let mut c = fixture().args(args).stdout(Stdio::null()).spawn().unwrap();
    let pid = c.id();
    assert!(c.wait().unwrap().success());
    pid
}

#[test]
fn exec_sees_every_child_with_its_argv() {
    let _lock = shared_lock();
    let k = 5;
    let mut parent = 0;
    let events = exec_events(&[], || {
        parent = run_fixture(&["execs", &k.to_string(), "/bin/true", "alpha", "b c"]);
    });
    let mut kids: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "exec" && e["ppid"] == parent)
        .collect();
    kids.sort_by_key(|e| e["argv"][3].as_str().unwrap_or("").to_string());
    assert_eq!(kids.len(), k, "{events:#?}");
    for (i, e) in kids.iter().enumerate() {
        assert_eq!(e["filename"], "/bin/true");
        assert_eq!(
            e["argv"],
            serde_json::json!(["/bin/true", "alpha", "b c", i.to_string()])
        );
        assert_eq!(e["argc"], 4);
        assert_eq!(e["ret"], 0);
        assert_eq!(e["comm"], "true");
        assert_eq!(e["uid"], 0);
    }
    // The fixture's own exec is there too, with its parent (this test).
    let me = std::process::id();
    assert!(
        events
            .iter()
            .any(|e| e["pid"] == parent && e["ppid"] == me && e["argv"][1] == "execs"),
        "fixture's own exec missing"
    );
}

/// `tracer exec -- CMD`: the execs of CMD and its children, no others, and
/// CMD's exit code; the JSON ends with the summary line.
#[test]
fn exec_of_a_launched_command_only() {
    let _lock = shared_lock();
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    // Execs elsewhere on the machine meanwhile must not show up.
    let noise = std::thread::spawn(|| {
        for _ in 0..20 {
            let _ = std::process::Command::new("/bin/true").status();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let out = run(
        tracer().args(["exec", "--json", "--", fx, "execs", "3", "/bin/true", "x"]),
        LIMIT,
    );
    noise.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // With -- CMD the report is on stderr; stdout is the command's.
    let events = json_lines(&out.stderr);
    let execs: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "exec").collect();
    assert_eq!(
        execs.len(),
        4,
        "the fixture's exec and its 3 children: {events:#?}"
    );
    assert_eq!(execs[0]["argv"][1], "execs");
    let fixture_pid = execs[0]["pid"].clone();
    for e in &execs[1..] {
        assert_eq!(e["ppid"], fixture_pid, "{e}");
        assert_eq!(e["filename"], "/bin/true");
    }
    let summary = events.last().unwrap();
    assert_eq!(summary["type"], "summary", "{events:#?}");
    assert_eq!(summary["events"], 4);
    let failed = run(tracer().args(["exec", "--", "sh", "-c", "exit 7"]), LIMIT);
    assert_eq!(failed.status.code(), Some(7), "{failed:?}");
}

#[test]
fn exec_filters_by_comm_and_reports_failures() {
    let _lock = shared_lock();
    let mut parent = 0;
    let events = exec_events(&["--comm", "true"], || {
        parent = run_fixture(&["execs", "3", "/bin/true", "x"]);
        let st = Command::new("sh")
            .args(["-c", "exec /nonexistent/tracer-exec a 2>/dev/null"])
            .status()
            .unwrap();
        assert!(!st.success());
    });
    let execs: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "exec").collect();
    assert!(execs.iter().all(|e| e["comm"] == "true"), "{execs:#?}");
    assert_eq!(
        execs.iter().filter(|e| e["ppid"] == parent).count(),
        3,
        "{execs:#?}"
    );

    // A failed exec keeps the old comm and carries the errno.
    let events = exec_events(&["--comm", "sh"], || {
        let st = Command::new("sh")
            .args(["-c", "exec /nonexistent/tracer-exec a 2>/dev/null"])
            .status()
            .unwrap();
        assert!(!st.success());
    });
    let failed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["filename"] == "/nonexistent/tracer-exec")
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0]["ret"], -2);
    assert_eq!(failed[0]["errno"], "ENOENT");
    assert_eq!(
        failed[0]["argv"],
        serde_json::json!(["/nonexistent/tracer-exec", "a"])
    );
}

/// The cgroup v2 mount point (unified or hybrid layout).
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("cgroup2 must be mounted for the --cgroup test (CI has it)")
}

#[test]
fn exec_filters_by_cgroup() {
    let _lock = shared_lock();
    let cg = cgroup2_root().join(format!("tracer-e2e-{}", std::process::id()));
    std::fs::create_dir(&cg).expect("creating a cgroup");
    let fx = fixture_path();
    let events = exec_events(&["--cgroup", cg.to_str().unwrap()], || {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec {} execs 2 /bin/true incg",
            cg.display(),
            fx.display()
        );
        assert!(Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success());
        run_fixture(&["execs", "2", "/bin/true", "outcg"]);
    });
    let _ = std::fs::remove_dir(&cg);
    let execs: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "exec").collect();
    let with = |w: &str| execs.iter().filter(|e| e["argv"][1] == w).count();
    assert_eq!(with("incg"), 2, "{execs:#?}");
    assert_eq!(with("outcg"), 0, "{execs:#?}");
    // Everything seen ran in the cgroup: the fixture itself and its two children.
    assert_eq!(execs.len(), 3, "{execs:#?}");
}

#[test]
fn exec_filters_by_user() {
    let _lock = shared_lock();
    let events = exec_events(&["-u", "65534"], || {
        let st = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "/bin/true",
                "as-nobody",
            ])
            .status()
            .expect("setpriv (util-linux) runs the command as another user");
        assert!(st.success());
        assert!(Command::new("/bin/true")
            .arg("as-root")
            .status()
            .unwrap()
            .success());
    });
    let execs: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "exec").collect();
    assert!(execs.iter().all(|e| e["uid"] == 65534), "{execs:#?}");
    let with = |w: &str| execs.iter().filter(|e| e["argv"][1] == w).count();
    assert_eq!(with("as-nobody"), 1, "{execs:#?}");
    assert_eq!(with("as-root"), 0, "{execs:#?}");
}

/// The BPF programs and maps a running process holds (from /proc/PID/fdinfo),
/// as ("prog_id" | "map_id", id).
fn bpf_ids_of(pid: u32) -> Vec<(String, u64)> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for l in text.lines() {
            for key in ["prog_id", "map_id"] {
                if let Some(v) = l.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                    if let Ok(id) = v.trim().parse() {
                        ids.push((key.to_string(), id));
                    }
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Wait (briefly: the kernel frees asynchronously) until none of `ids` exists.
fn assert_gone(ids: &[(String, u64)], context: &str) {
    let exists = |(kind, id): &(String, u64)| {
        let what = if kind == "prog_id" { "prog" } else { "map" };
        Command::new("bpftool")
            .args([what, "show", "id", &id.to_string()])
            .output()
            .expect("bpftool is needed to check what is loaded")
            .status
            .success()
    };
    let start = std::time::Instant::now();
    loop {
        let left: Vec<_> = ids.iter().filter(|i| exists(i)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{context}: still loaded: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whatever way tracer ends (its targets exit, Ctrl-C, SIGKILL), none of the
/// programs and maps it loaded stays in the kernel. Checked by id, so other
/// tracer processes on the machine do not matter.
#[test]
fn trace_and_exec_leave_nothing_loaded() {
    let _lock = shared_lock();
    let mut fx = Waiting::start(&["syscalls", "3", "0"]);
    let (child, _err) = start_attached(tracer().args([
        "trace",
        "-e",
        "getppid",
        "-o",
        "/dev/null",
        "-p",
        &fx.pid().to_string(),
    ]));
    let ids = bpf_ids_of(child.id());
    assert!(
        ids.iter().any(|(k, _)| k == "prog_id") && ids.iter().any(|(k, _)| k == "map_id"),
        "{ids:?}"
    );
    fx.go();
    fx.wait();
    let out = wait_output(child, LIMIT);
    assert!(out.status.success());
    assert_gone(&ids, "after tracer trace -p ended with its target");

    let (child, _err) = start_attached(tracer().args(["exec"]));
    let ids = bpf_ids_of(child.id());
    assert!(ids.len() >= 6, "{ids:?}");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, LIMIT);
    assert!(out.status.success());
    assert_gone(&ids, "after tracer exec and Ctrl-C");

    let (mut child, _err) = start_attached(tracer().args(["exec"]));
    let ids = bpf_ids_of(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone(&ids, "after tracer exec was killed with SIGKILL");
}

#[test]
fn trace_sees_every_thread() {
    let _lock = shared_lock();
    // Through a file: `run` reads the pipes only at the end, and 400 objects fill one.
    let dir = scratch("threads");
    let file = dir.join("out.json");
    let out = run(
        tracer()
            .args(["trace", "--json", "-e", "getppid", "-o"])
            .arg(&file)
            .arg("--")
            .arg(fixture_path())
            .args(["threads", "4", "100"]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objs = json_lines(&std::fs::read(&file).unwrap());
    let calls: Vec<&serde_json::Value> = objs.iter().filter(|o| o["type"] == "syscall").collect();
    assert_eq!(calls.len(), 400);
    let tids: std::collections::BTreeSet<u64> =
        calls.iter().map(|o| o["tid"].as_u64().unwrap()).collect();
    let pids: std::collections::BTreeSet<u64> =
        calls.iter().map(|o| o["pid"].as_u64().unwrap()).collect();
    assert_eq!(
        (tids.len(), pids.len()),
        (4, 1),
        "four threads of one process"
    );
    assert!(
        !tids.contains(pids.iter().next().unwrap()),
        "the main thread makes no getppid calls"
    );
    assert_eq!(objs.last().unwrap()["events"], 400);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A thread that is not the leader execs: the kernel gives it the leader's pid
/// in the middle of the call, and its execve is still reported, once.
#[test]
fn trace_exec_from_a_thread() {
    let _lock = shared_lock();
    let dir = scratch("thread-exec");
    let file = dir.join("out");
    let out = run(
        tracer()
            .args(["trace", "-e", "execve,exit_group", "-o"])
            .arg(&file)
            .arg("--")
            .arg(fixture_path())
            .args(["thread-exec", "/bin/true"]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains(" execve(\"") && lines[0].ends_with(") = 0"),
        "{text}"
    );
    assert!(
        lines[1].contains(" execve(\"/bin/true\", ") && lines[1].ends_with(") = 0"),
        "{text}"
    );
    assert!(lines[2].ends_with(" exit_group(0) = ?"), "{text}");
    let pid = |l: &str| l.split_whitespace().next().unwrap().to_string();
    assert!(
        lines.iter().all(|l| pid(l) == pid(lines[0])),
        "one process throughout: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The BPF programs' aya-log messages (a full ring buffer is logged at debug
/// level) reach stderr with -vv, and not at all by default.
#[test]
fn bpf_logs_only_when_asked() {
    let _lock = shared_lock();
    let run_with = |verbose: &[&str]| {
        let mut extra = vec!["-o", "/dev/null"];
        extra.extend_from_slice(verbose);
        let out = overflowing_trace(&extra, 100_000);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let quiet = run_with(&[]);
    assert!(
        quiet.contains("tracer: lost "),
        "the loss is reported anyway: {quiet}"
    );
    assert!(!quiet.contains("ring buffer full: "), "{quiet}");
    let verbose = run_with(&["-vv"]);
    assert!(
        verbose
            .lines()
            .any(|l| l.contains("tracer_ebpf")
                && l.contains("event ring buffer full: 1 events lost")),
        "{verbose}"
    );
}

/// The syscall names of each thread in `strace -f -o FILE` output, threads in
/// the order they first appear. A call strace shows `<unfinished ...>` counts
/// where it started; its `<... resumed>` line, signals and exits are skipped.
fn strace_sequences(text: &str) -> Vec<Vec<String>> {
    let mut order: Vec<&str> = Vec::new();
    let mut seqs: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        let Some((tid, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("<...") || rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        let i = order.iter().position(|t| *t == tid).unwrap_or_else(|| {
            order.push(tid);
            seqs.push(Vec::new());
            order.len() - 1
        });
        seqs[i].push(name.to_string());
    }
    seqs
}

/// `tracer trace -- ls -la /etc` makes the same calls in the same order, per
/// thread, as `strace -f` shows, and decodes execve's argv as strace does.
#[test]
fn trace_matches_strace_call_for_call() {
    let _lock = shared_lock();
    let dir = scratch("ls-strace");
    let cmd = ["ls", "-la", "/etc"];
    let st_file = dir.join("strace.out");
    let st = run(
        Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&st_file)
            .arg("--")
            .args(cmd),
        LIMIT,
    );
    assert!(st.status.success(), "strace failed: {st:?}");
    let st_text = std::fs::read_to_string(&st_file).unwrap();
    let tr_file = dir.join("trace.json");
    let tr = run(
        tracer()
            .args(["trace", "--json", "-o"])
            .arg(&tr_file)
            .arg("--")
            .args(cmd),
        LIMIT,
    );
    assert!(
        tr.status.success(),
        "{}",
        String::from_utf8_lossy(&tr.stderr)
    );
    let objs = json_lines(&std::fs::read(&tr_file).unwrap());
    assert_eq!(objs.last().unwrap()["lost"], 0, "nothing may be lost here");
    let calls: Vec<&serde_json::Value> = objs.iter().filter(|o| o["type"] == "syscall").collect();
    let mut tids: Vec<u64> = Vec::new();
    let mut ours: Vec<Vec<String>> = Vec::new();
    for c in &calls {
        let tid = c["tid"].as_u64().unwrap();
        let i = tids.iter().position(|t| *t == tid).unwrap_or_else(|| {
            tids.push(tid);
            ours.push(Vec::new());
            tids.len() - 1
        });
        ours[i].push(c["syscall"].as_str().unwrap().to_string());
    }
    let theirs = strace_sequences(&st_text);
    assert_eq!(ours.len(), theirs.len(), "threads: {ours:?} vs {theirs:?}");
    for (t, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if a != b {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "thread {t}: tracer and strace part at call {at} of {} / {}: tracer {:?}, strace {:?}",
                a.len(),
                b.len(),
                &a[at.saturating_sub(2)..(at + 3).min(a.len())],
                &b[at.saturating_sub(2)..(at + 3).min(b.len())]
            );
        }
    }
    assert!(ours[0].len() > 50, "{ours:?}");
    // execve, with its file name and argv exactly as strace prints them.
    assert_eq!(calls[0]["syscall"], "execve");
    let text = calls[0]["text"].as_str().unwrap();
    let st_exec = st_text.lines().next().unwrap();
    let st_args = st_exec
        .split_once("execve(")
        .and_then(|(_, r)| r.split_once("], "))
        .map(|(a, _)| format!("{a}], "))
        .unwrap_or_else(|| panic!("strace's first line is not an execve: {st_exec}"));
    assert!(st_args.ends_with(r#"["ls", "-la", "/etc"], "#), "{st_exec}");
    assert!(
        text.starts_with(&st_args),
        "tracer {text:?}, strace {st_exec:?}"
    );
    assert_eq!(calls[0]["argv"], serde_json::json!(cmd));
    assert_eq!(calls[0]["argv_truncated"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process options every command shares work for `trace` too: --comm
/// and -u filter the calls in the kernel.
#[test]
fn trace_filters_by_comm_and_user() {
    let _lock = shared_lock();
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let calls = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["trace", "--json", "-e", "getppid"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", fx, "syscalls", "7", "0"]);
        let out = run(tracer().args(&args), LIMIT);
        assert!(out.status.success(), "{out:?}");
        json_lines(&out.stderr)
            .into_iter()
            .filter(|e| e["type"] == "syscall")
            .collect()
    };
    // The fixture's comm is the file name's first 15 bytes.
    let comm: String = Path::new(fx)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    assert_eq!(calls(&["--comm", &comm]).len(), 7);
    assert_eq!(calls(&["--comm", "not-the-fixture"]).len(), 0);
    assert_eq!(calls(&["-u", "0"]).len(), 7);
    assert_eq!(calls(&["-u", "65534"]).len(), 0);
}
