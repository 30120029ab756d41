//! End-to-end: `tracer tracepoint` against fixtures whose events are known exactly.
mod common;

use std::{process::Stdio, time::Duration};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn fixture_str() -> String {
    fixture_path().display().to_string()
}

fn summary(out: &std::process::Output, stdout: &[u8]) -> serde_json::Value {
    assert!(
        out.status.success(),
        "tracer failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks = json_lines(stdout);
    let last = blocks.last().expect("a summary object").clone();
    assert_eq!(last["type"], "summary");
    last
}

fn event<'a>(block: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    block["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["tracepoint"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {block}"))
}

/// -p on a fixture that spawns K children (each execs /bin/true): exactly K
/// execs, all by the children (followed through fork).
#[test]
fn exec_count_with_pid_follows_children() {
    let _l = shared_lock();
    let k = 4;
    let mut fx = Waiting::start(&["execs", &k.to_string()]);
    let pid = fx.pid().to_string();
    let (tr, _err) = start_attached(tracer().args([
        "tracepoint",
        "sched:sched_process_exec",
        "-p",
        &pid,
        "--json",
    ]));
    fx.go();
    fx.wait();
    let out = wait_output(tr, LIMIT);
    let s = summary(&out, &out.stdout);
    assert_eq!(event(&s, "sched:sched_process_exec")["count"], k);
}

/// -- CMD counts the command's own execve too: K + 1; per process, one exec each.
#[test]
fn exec_count_with_command_per_process() {
    let _l = shared_lock();
    let fx = fixture_str();
    let out = run(
        tracer().args([
            "tracepoint",
            "sched:sched_process_exec",
            "-P",
            "--json",
            "--",
            &fx,
            "execs",
            "3",
        ]),
        LIMIT,
    );
    // The command owns stdout: the report is on stderr.
    assert!(json_lines(&out.stdout).is_empty(), "{out:?}");
    let s = summary(&out, &out.stderr);
    assert_eq!(event(&s, "sched:sched_process_exec")["count"], 4);
    assert_eq!(s["exit_code"], 0);
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 4, "{s}");
    assert!(procs.iter().all(|p| p["count"] == 1), "{s}");
    assert_eq!(
        procs.iter().filter(|p| p["comm"] == "true").count(),
        3,
        "{s}"
    );
    assert_eq!(
        procs.iter().filter(|p| p["comm"] == "fixture").count(),
        1,
        "{s}"
    );
}

/// Runs `fixture writes SIZES...` (its stdout to /dev/null) under tracer with
/// `extra` args; tracer's own report goes to a file.
fn writes(sizes: &[u64], extra: &[&str]) -> serde_json::Value {
    let fx = fixture_str();
    let report = std::env::temp_dir().join(format!(
        "tracer-tp-{}-{}.json",
        std::process::id(),
        extra.join("_")
    ));
    let mut args: Vec<String> = ["tracepoint", "syscalls:sys_enter_write", "--json", "-o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(report.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--".to_string(), fx, "writes".to_string()]);
    args.extend(sizes.iter().map(u64::to_string));
    let child = tracer()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, LIMIT);
    let text = std::fs::read(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    summary(&out, &text)
}

/// --hist count: each write size lands in its log2 bucket, counted exactly.
#[test]
fn hist_of_write_sizes() {
    let _l = shared_lock();
    let sizes = [0, 1, 100, 1000, 5000, 5000, 70000];
    let s = writes(&sizes, &["--hist", "count"]);
    let e = event(&s, "syscalls:sys_enter_write");
    assert_eq!(e["count"], sizes.len());
    assert_eq!(e["sum"], sizes.iter().sum::<u64>());
    assert_eq!(e["hist"]["field"], "count");
    assert_eq!(e["hist"]["negative"], 0);
    let got: Vec<(u64, u64, u64)> = e["hist"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["low"].as_u64().unwrap(),
                b["high"].as_u64().unwrap(),
                b["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1, 2),
            (64, 127, 1),
            (512, 1023, 1),
            (4096, 8191, 2),
            (65536, 131071, 1)
        ]
    );
}

/// --sum count -P: the bytes the fixture asked to write, in its own row.
#[test]
fn sum_per_process() {
    let _l = shared_lock();
    let s = writes(&[10, 20, 30, 4000], &["--sum", "count", "-P"]);
    assert_eq!(s["field"], "count");
    let procs = s["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{s}");
    assert_eq!(procs[0]["comm"], "fixture");
    assert_eq!(procs[0]["count"], 4);
    assert_eq!(procs[0]["sum"], 4060);
}

/// The text layout of a histogram run (BCC funclatency's).
#[test]
fn text_histogram() {
    let _l = shared_lock();
    let fx = fixture_str();
    let report = std::env::temp_dir().join(format!("tracer-tp-text-{}", std::process::id()));
    let child = tracer()
        .args([
            "tracepoint",
            "syscalls:sys_enter_write",
            "--hist",
            "count",
            "-o",
        ])
        .arg(&report)
        .args(["--", &fx, "writes", "600", "700"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_file(&report);
    assert!(
        text.contains(&format!("{:<36} {:>8}\n", "syscalls:sys_enter_write", 2)),
        "{text}"
    );
    assert!(
        text.contains("Event = syscalls:sys_enter_write, field count\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "       512 -> 1023       : 2        |****************************************|\n"
        ),
        "{text}"
    );
}

fn fails_with(args: &[&str], wanted: &[&str]) {
    let out = run(tracer().args(args), LIMIT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for w in wanted {
        assert!(err.contains(w), "stderr lacks `{w}`: {err}");
    }
    assert!(err.lines().count() <= 2, "short message: {err}");
}

#[test]
fn errors_say_what_to_do() {
    let _l = shared_lock();
    fails_with(
        &["tracepoint", "sched:sched_process_exex"],
        &["did you mean", "sched:sched_process_exec"],
    );
    fails_with(&["tracepoint", "sched_process_exec"], &["CATEGORY:NAME"]);
    fails_with(
        &["tracepoint", "syscalls:sys_enter_write", "--hist", "cnt"],
        &["no field `cnt`", "count"],
    );
    fails_with(
        &["tracepoint", "syscalls:sys_enter_write", "--sum", "buf"],
        &["not a number"],
    );
    fails_with(&["tracepoint", "nope:*"], &["no tracepoint matches"]);
}

#[test]
fn nothing_left_attached() {
    let _l = exclusive_lock();
    let _ = writes(&[1], &["--hist", "count", "-P"]);
    assert_nothing_loaded("after tracer tracepoint");
}

/// Kernels without BPF cookies (before 5.15) give each tracepoint its own
/// slot copy of the program. Forced here: two tracepoints keep their own
/// counts, a histogram still reads its field, and more tracepoints than there
/// are copies is refused in one line.
#[test]
fn without_cookies_each_tracepoint_keeps_its_own_counts() {
    let _l = shared_lock();
    let fx = fixture_str();
    // The summary of `tracer tracepoint ARGS --json -- fixture CMD` without cookies.
    let without_cookies = |args: &[&str], cmd: &[&str]| {
        let mut c = tracer();
        c.env("TRACER_FALLBACK", "cookies")
            .arg("tracepoint")
            .args(args);
        let out = run(c.args(["--json", "--", &fx]).args(cmd), LIMIT);
        summary(&out, &out.stderr)
    };
    let s = without_cookies(
        &["syscalls:sys_enter_getppid", "sched:sched_process_exec"],
        &["forks", "2", "50"],
    );
    assert_eq!(event(&s, "syscalls:sys_enter_getppid")["count"], 100, "{s}");
    assert_eq!(event(&s, "sched:sched_process_exec")["count"], 1, "{s}");
    let s = without_cookies(
        &["syscalls:sys_enter_write", "--sum", "count"],
        &["writes", "100", "5000"],
    );
    let e = event(&s, "syscalls:sys_enter_write");
    assert_eq!(
        (e["count"].as_u64(), e["sum"].as_u64()),
        (Some(2), Some(5100)),
        "{s}"
    );
    let out = run(
        tracer().env("TRACER_FALLBACK", "cookies").args([
            "tracepoint",
            "syscalls:sys_enter_s*",
            "-d",
            "0.1",
        ]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no BPF cookies (Linux 5.15)"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
