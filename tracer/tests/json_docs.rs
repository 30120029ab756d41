//! The JSON outputs are documented in README.md ("JSON output"): run each
//! command and check its output against that description, both ways.
mod common;

use std::{collections::BTreeMap, time::Duration};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

#[path = "../../xtask/src/jsondoc.rs"]
#[allow(dead_code)]
mod jsondoc;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
}

/// Field path -> allowed types, for the README table under `heading`.
fn documented(heading: &str) -> BTreeMap<String, Vec<String>> {
    jsondoc::documented(&readme(), heading).unwrap_or_else(|e| panic!("{e}"))
}

/// Check `objects` against the documented fields; returns the paths seen.
fn check(heading: &str, objects: &[Value]) -> Vec<String> {
    jsondoc::check(&documented(heading), objects).unwrap_or_else(|e| panic!("{heading}: {e}"))
}

fn assert_covers(heading: &str, seen: &[String]) {
    let missing = jsondoc::uncovered(&documented(heading), seen);
    assert!(
        missing.is_empty(),
        "{heading}: documented {missing:?} never appeared in the runs"
    );
}

#[test]
fn syscalls_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer syscalls --json`";
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let mut seen = Vec::new();
    for args in [
        vec![
            "syscalls", "--json", "-P", "--errno", "-i", "0.2", "--", fx, "forks", "2", "10",
        ],
        vec!["syscalls", "--json", "-d", "0.3"],
        vec!["syscalls", "--json", "-P", "--show-cgroup", "-d", "0.3"],
    ] {
        let out = run(tracer().args(&args), LIMIT);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let objs = json_lines(report(&args, &out));
        assert!(!objs.is_empty());
        seen.extend(check(h, &objs));
    }
    assert_covers(h, &seen);
}

#[test]
fn info_json_matches_readme() {
    let _l = exclusive_lock();
    let h = "### `tracer info --json`";
    let out = run(tracer().args(["info", "--json"]), LIMIT);
    assert!(out.status.success());
    let seen = check(h, &json_lines(&out.stdout));
    assert_covers(h, &seen);
}

#[test]
fn uprobe_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer uprobe --json`";
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let probe = format!("{fx}:tracer_fixture_work");
    let mut seen = Vec::new();
    for args in [
        vec!["uprobe", &probe, "--json", "-L", "--", fx, "work", "20"],
        vec!["uprobe", &probe, "--json", "-i", "0.1", "-d", "0.35"],
    ] {
        let out = run(tracer().args(&args), LIMIT);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let objs = json_lines(report(&args, &out));
        assert!(!objs.is_empty());
        seen.extend(check(h, &objs));
    }
    assert_covers(h, &seen);
}

#[test]
fn tracepoint_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer tracepoint --json`";
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let report = std::env::temp_dir().join(format!("tracer-json-docs-tp-{}", std::process::id()));
    let report = report.to_str().unwrap();
    let args = [
        "tracepoint",
        "syscalls:sys_enter_write",
        "--hist",
        "count",
        "-P",
        "--show-cgroup",
        "--json",
        "-o",
        report,
        "--",
        fx,
        "writes",
        "10",
        "100",
    ];
    // The fixture writes to its stdout: keep that out of the report.
    let child = tracer()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let objs = json_lines(&std::fs::read(report).unwrap());
    let _ = std::fs::remove_file(report);
    assert!(!objs.is_empty());
    let seen = check(h, &objs);
    assert_covers(h, &seen);
}

#[test]
fn profile_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer profile --json`";
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let report = std::env::temp_dir().join(format!("tracer-json-docs-prof-{}", std::process::id()));
    let report = report.to_str().unwrap();
    let mut seen = Vec::new();
    for args in [
        vec![
            "profile", "-F", "199", "-i", "0.5", "--json", "-o", report, "--", fx, "cpu", "1200",
        ],
        vec![
            "profile",
            "--off-cpu",
            "--json",
            "-o",
            report,
            "--",
            fx,
            "offcpu",
            "5",
            "20",
        ],
        vec!["profile", "--json", "-o", report, "-d", "0.5"],
    ] {
        let child = tracer()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, LIMIT);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let objs = json_lines(&std::fs::read(report).unwrap());
        assert!(!objs.is_empty(), "{args:?}");
        seen.extend(check(h, &objs));
    }
    let _ = std::fs::remove_file(report);
    assert_covers(h, &seen);
}

#[test]
fn list_json_matches_readme() {
    let _l = shared_lock();
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    for (h, args) in [
        (
            "### `tracer list syscalls --json`",
            vec!["list", "syscalls", "--json"],
        ),
        (
            "### `tracer list tracepoints --json`",
            vec!["list", "tracepoints", "sched:*", "-v", "--json"],
        ),
        (
            "### `tracer list kprobes --json`",
            vec!["list", "kprobes", "--json"],
        ),
        (
            "### `tracer list uprobes --json`",
            vec!["list", "uprobes", fx, "--json"],
        ),
    ] {
        // output() reads while the child writes: these lists are long.
        let out = tracer().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let objs = json_lines(&out.stdout);
        assert!(!objs.is_empty(), "{args:?}");
        let seen = check(h, &objs);
        assert_covers(h, &seen);
    }
}

#[test]
fn trace_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer trace --json`";
    let mut seen = Vec::new();
    // The commands write to stderr too, where a launched command's report
    // goes: the reports go to a file instead.
    let file = std::env::temp_dir().join(format!("tracer-trace-doc-{}.json", std::process::id()));
    let report = file.to_str().unwrap();
    // Ordinary calls (paths, failures, a call that never returns) ...
    let out = run(
        tracer().args([
            "trace",
            "--json",
            "-T",
            "-o",
            report,
            "--",
            "sh",
            "-c",
            "cat /nonexistent-json-doc; exit 3",
        ]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    seen.extend(check(h, &json_lines(&std::fs::read(&file).unwrap())));
    // ... and a 4K ring that must overflow (tracer is stopped while the
    // fixture runs), so `lost` objects are certain to be checked too.
    let out = overflowing_trace(&["--json", "-o", report], 20_000);
    assert!(out.status.success(), "{out:?}");
    let objs = json_lines(&std::fs::read(&file).unwrap());
    assert!(
        objs.iter().any(|o| o["type"] == "lost"),
        "no `lost` object from an overflowing ring"
    );
    seen.extend(check(h, &objs));
    let _ = std::fs::remove_file(&file);
    assert_covers(h, &seen);
}

#[test]
fn exec_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer exec --json`";
    let fx = fixture_path();
    let (tr, _err) = start_attached(tracer().args(["exec", "--json", "-d", "2"]));
    let out = run(fixture().args(["execs", "2", "/bin/true", "x", "y"]), LIMIT);
    assert!(out.status.success());
    let _ = std::process::Command::new(fx.parent().unwrap().join("no-such-program")).status();
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let objs: Vec<Value> = json_lines(&out.stdout);
    let seen = check(h, &objs);
    // `lost` objects only appear under overload; their fields are the trace
    // command's, checked there. Everything else must have appeared.
    for path in documented(h)
        .keys()
        .filter(|p| !p.starts_with("lost") && *p != "without_paths")
    {
        assert!(
            seen.contains(path),
            "{h}: documented `{path}` never appeared"
        );
    }
}

#[test]
fn tcp_json_matches_readme() {
    let _l = shared_lock();
    let h = "### `tracer tcp --json`";
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let mut seen = Vec::new();
    for args in [
        vec!["tcp", "--json", "--", fx, "tcp", "2", "100", "::1"],
        vec!["tcp", "--json", "--connect", "--", fx, "tcp", "1", "10"],
        vec!["tcp", "--json", "--connect", "--", fx, "tcp-refused", "1"],
        vec!["tcp", "--json", "--accept", "--", fx, "tcp", "1", "10"],
        vec!["tcp", "--json", "--summary", "--", fx, "tcp", "2", "10"],
    ] {
        let out = run(tracer().args(&args), LIMIT);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let objs = json_lines(report(&args, &out));
        assert!(objs.len() > 1, "{args:?}: {out:?}");
        seen.extend(check(h, &objs));
    }
    assert_covers(h, &seen);
}
