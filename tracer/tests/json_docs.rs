//! The JSON outputs are documented in README.md ("JSON output"): run each
//! command and check its output against that description, both ways.
mod common;

use std::{collections::BTreeMap, time::Duration};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Field path -> allowed types, for the README table under `heading`.
fn documented(heading: &str) -> BTreeMap<String, Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no section {heading}"));
    let mut fields = BTreeMap::new();
    for line in readme[start..].lines().skip(1) {
        if line.starts_with("### ") || line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        if !line.starts_with("| `") || cells.len() < 2 {
            continue;
        }
        let path = cells[0]
            .trim_start_matches("| ")
            .trim_matches('`')
            .to_string();
        let types = cells[1]
            .replace("\\|", "|")
            .split('|')
            .map(|t| t.trim().to_string())
            .collect();
        fields.insert(path, types);
    }
    assert!(!fields.is_empty(), "no fields under {heading}");
    fields
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every (path, value) in `v`; array elements under `path[]`. Objects whose
/// documented type is `object` (free-form maps such as `errno`, `lost`) are not descended.
fn walk(
    v: &Value,
    path: &str,
    doc: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<(String, Value)>,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push((p.clone(), child.clone()));
                let free_form = doc.get(&p).is_some_and(|t| t == &["object"])
                    && !doc.keys().any(|d| d.starts_with(&format!("{p}.")));
                if !free_form {
                    walk(child, &p, doc, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, &format!("{path}[]"), doc, out);
            }
        }
        _ => {}
    }
}

/// Check `objects` against the documented fields; returns the paths seen.
fn check(heading: &str, objects: &[Value]) -> Vec<String> {
    let doc = documented(heading);
    let mut seen = Vec::new();
    for obj in objects {
        let mut fields = Vec::new();
        walk(obj, "", &doc, &mut fields);
        for (path, value) in fields {
            let types = doc.get(&path).unwrap_or_else(|| {
                panic!("{heading}: `{path}` is in the output but not documented")
            });
            let t = type_of(&value);
            assert!(
                types.iter().any(|d| d == t),
                "{heading}: `{path}` is {t}, documented as {types:?}"
            );
            seen.push(path);
        }
    }
    seen.sort();
    seen.dedup();
    seen
}

fn assert_covers(heading: &str, seen: &[String]) {
    for path in documented(heading).keys() {
        assert!(
            seen.contains(path),
            "{heading}: documented `{path}` never appeared in the runs"
        );
    }
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
        vec!["syscalls", "--json", "-P", "-d", "0.3"],
    ] {
        let out = run(tracer().args(&args), LIMIT);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let objs = json_lines(&out.stdout);
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
        let objs = json_lines(&out.stdout);
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
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let mut seen = Vec::new();
    // Ordinary calls (paths, failures, a call that never returns) ...
    let out = run(
        tracer().args([
            "trace",
            "--json",
            "-T",
            "--",
            "sh",
            "-c",
            "cat /nonexistent-json-doc; exit 3",
        ]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    seen.extend(check(h, &json_lines(&out.stdout)));
    // ... and a buffer too small for the rate, so events are lost.
    let out = run(
        tracer().args([
            "trace",
            "--json",
            "--buffer-size",
            "4096",
            "-e",
            "geteuid",
            "--",
            fx,
            "geteuid-timed",
            "200000",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    seen.extend(check(h, &json_lines(&out.stdout)));
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
