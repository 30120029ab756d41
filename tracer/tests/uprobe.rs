//! End-to-end: `tracer uprobe` on the fixture, whose calls are known exactly.
mod common;

use std::{path::PathBuf, process::Output, time::Duration};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn fixture_str() -> String {
    fixture_path().display().to_string()
}

fn summary(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "tracer failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks = json_lines(&out.stdout);
    let last = blocks.last().expect("a summary object").clone();
    assert_eq!(last["type"], "summary");
    last
}

/// The summary of a run with `-- CMD`: the command owns stdout, so the report
/// is on stderr.
fn launched_summary(out: &Output) -> serde_json::Value {
    assert!(
        json_lines(&out.stdout).is_empty(),
        "report on stdout: {out:?}"
    );
    summary(&Output {
        stdout: out.stderr.clone(),
        ..out.clone()
    })
}

fn function<'a>(block: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    block["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {block}"))
}

/// Calls of `tracer_fixture_work` by `fixture work N`, launched with `-- CMD`.
fn work_calls(n: u64, extra: &[&str]) -> serde_json::Value {
    let fx = fixture_str();
    let probe = format!("{fx}:tracer_fixture_work");
    let n = n.to_string();
    let mut args = vec!["uprobe", &probe, "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", &fx, "work", &n]);
    launched_summary(&run(tracer().args(&args), LIMIT))
}

#[test]
fn counts_a_function_exactly_with_command() {
    let _l = shared_lock();
    let s = work_calls(1234, &[]);
    assert_eq!(function(&s, "tracer_fixture_work")["calls"], 1234);
    assert_eq!(s["exit_code"], 0);
    let s = work_calls(0, &[]);
    assert_eq!(function(&s, "tracer_fixture_work")["calls"], 0);
}

/// -p counts only that process: a second, untraced fixture running the same
/// function at the same time is not counted.
#[test]
fn pid_filter_counts_only_that_process() {
    let _l = shared_lock();
    let mut traced = Waiting::start(&["work", "777"]);
    let mut other = Waiting::start(&["work", "500"]);
    let pid = traced.pid().to_string();
    let probe = format!("{}:tracer_fixture_work", fixture_str());
    let (tr, _err) = start_attached(tracer().args(["uprobe", &probe, "-p", &pid, "--json"]));
    other.go();
    traced.go();
    other.wait();
    traced.wait();
    let s = summary(&wait_output(tr, LIMIT));
    assert_eq!(function(&s, "tracer_fixture_work")["calls"], 777);
}

/// libc's malloc through the library name: the fixture's N calls on top of what
/// the same program does with 0 iterations (libc and Rust start-up).
#[test]
fn malloc_in_libc_by_library_name() {
    let _l = shared_lock();
    let fx = fixture_str();
    let calls = |n: &str| {
        let s = launched_summary(&run(
            tracer().args(["uprobe", "libc:malloc", "--json", "--", &fx, "malloc", n]),
            LIMIT,
        ));
        function(&s, "malloc")["calls"].as_u64().unwrap()
    };
    let base = calls("0");
    assert!(base > 0, "start-up makes some mallocs");
    assert_eq!(calls("0"), base, "start-up mallocs are deterministic");
    assert_eq!(calls("2500"), base + 2500);
    // A glob that also matches malloc's aliases (__libc_malloc, ...) probes the
    // function once, shown under its public name, with the same count.
    let s = launched_summary(&run(
        tracer().args([
            "uprobe",
            "libc:*malloc",
            "--json",
            "--",
            &fx,
            "malloc",
            "2500",
        ]),
        LIMIT,
    ));
    assert_eq!(
        function(&s, "malloc")["calls"].as_u64().unwrap(),
        base + 2500
    );
    let addresses: Vec<&str> = s["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["address"].as_str().unwrap())
        .collect();
    let mut unique = addresses.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), addresses.len(), "one probe per address: {s}");
}

/// With --latency every call has a measured return: N samples in the histogram.
#[test]
fn latency_histogram_has_one_sample_per_call() {
    let _l = shared_lock();
    let s = work_calls(300, &["--latency"]);
    let f = function(&s, "tracer_fixture_work");
    assert_eq!(f["calls"], 300);
    assert_eq!(f["latency"]["count"], 300);
    let buckets = f["latency"]["buckets"].as_array().unwrap();
    let samples: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(samples, 300);
    for b in buckets {
        let (low, high) = (b["low"].as_u64().unwrap(), b["high"].as_u64().unwrap());
        assert!(low <= high && (high + 1).is_power_of_two(), "{b}");
    }
    assert!(f["latency"]["total"].as_u64().unwrap() > 0);
}

/// The text report: funccount's table and funclatency's histogram.
#[test]
fn text_report_layout() {
    let _l = shared_lock();
    let fx = fixture_str();
    let probe = format!("{fx}:tracer_fixture_work");
    let out = run(
        tracer().args(["uprobe", "-L", &probe, "--", &fx, "work", "42"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "the command prints nothing: {out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("FUNC                                    COUNT\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{:<36} {:>8}\n", "tracer_fixture_work", 42)),
        "{text}"
    );
    assert!(
        text.contains(
            "Function = tracer_fixture_work\n     nsecs               : count     distribution\n"
        ),
        "{text}"
    );
    assert!(text.contains(", count: 42\n"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Tracing 1 function for"), "{err}");
}

fn fails_with(args: &[&str], wanted: &[&str]) {
    let out = run(tracer().args(args), LIMIT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for w in wanted {
        assert!(err.contains(w), "stderr lacks `{w}`: {err}");
    }
    assert!(err.lines().count() <= 2, "short message: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn errors_say_what_to_do() {
    let _l = shared_lock();
    let fx = fixture_str();
    fails_with(&["uprobe", "/no/such/binary:main"], &["no such file"]);
    fails_with(&["uprobe", "/etc/passwd:main"], &["not an ELF"]);
    fails_with(
        &["uprobe", &format!("{fx}:tracer_fixture_wrok")],
        &[
            "no function `tracer_fixture_wrok`",
            "did you mean",
            "tracer_fixture_work",
        ],
    );
    fails_with(&["uprobe", "libc:mallocc"], &["did you mean", "malloc"]);
    fails_with(
        &["uprobe", "no-such-lib-xyz:f"],
        &["cannot find `no-such-lib-xyz`"],
    );
    fails_with(&["uprobe", "malloc"], &["TARGET:PATTERN"]);
    fails_with(
        &["uprobe", &format!("{fx}:nothing_matches_*")],
        &["matches `nothing_matches_*`"],
    );
}

#[test]
fn stripped_binary_without_debuglink_is_refused() {
    let _l = shared_lock();
    let dir = std::env::temp_dir().join(format!("tracer-uprobe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stripped: PathBuf = dir.join("fixture-stripped");
    let st = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(fixture_path())
        .status()
        .expect("strip (binutils) is needed for this test");
    assert!(st.success());
    let st = std::process::Command::new("objcopy")
        .args(["--remove-section", ".gnu_debuglink"])
        .arg(&stripped)
        .status()
        .expect("objcopy (binutils) is needed for this test");
    assert!(st.success());
    let probe = format!("{}:tracer_fixture_work", stripped.display());
    fails_with(&["uprobe", &probe], &["stripped", "no .gnu_debuglink"]);
    // A raw address still works on a stripped binary: the same function's address
    // from the unstripped one, counted exactly.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args([
            "list",
            "uprobes",
            &fixture_str(),
            "tracer_fixture_work",
            "--json",
        ])
        .output()
        .unwrap();
    let v = json_lines(&out.stdout);
    let addr = v[0]["address"].as_str().unwrap().to_string();
    let probe = format!("{}:{addr}", stripped.display());
    let s = launched_summary(&run(
        tracer().args([
            "uprobe",
            &probe,
            "--json",
            "--",
            stripped.to_str().unwrap(),
            "work",
            "99",
        ]),
        LIMIT,
    ));
    assert_eq!(function(&s, &addr)["calls"], 99);
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a run (latency: uprobe and uretprobe) nothing of ours stays loaded.
#[test]
fn nothing_left_attached() {
    let _l = exclusive_lock();
    let _ = work_calls(10, &["--latency"]);
    assert_nothing_loaded("after tracer uprobe --latency");
}

/// Relative paths (the probe target, `-- ./CMD`, `-o FILE`) mean the same
/// files after loading as before: loading must not move the working directory.
#[test]
fn relative_paths_from_the_working_directory() {
    let _l = shared_lock();
    let dir = std::env::temp_dir().join(format!("tracer-uprobe-rel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture_path(), dir.join("fx")).unwrap();
    let out = run(
        tracer().current_dir(&dir).args([
            "uprobe",
            "./fx:tracer_fixture_work",
            "--json",
            "-o",
            "report.json",
            "--",
            "./fx",
            "work",
            "17",
        ]),
        LIMIT,
    );
    let text = std::fs::read(dir.join("report.json")).unwrap_or_default();
    let s = summary(&Output {
        stdout: text,
        ..out
    });
    assert_eq!(function(&s, "tracer_fixture_work")["calls"], 17);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With -p, a bare library name is the library that process has mapped.
/// Counted from "go" on: N mallocs plus those of reading the line and exiting,
/// which a run with 0 iterations measures.
#[test]
fn library_name_resolved_in_the_process() {
    let _l = shared_lock();
    let calls = |n: &str| {
        let mut fx = Waiting::start(&["malloc", n]);
        let pid = fx.pid().to_string();
        let (tr, _err) =
            start_attached(tracer().args(["uprobe", "libc.so.6:malloc", "-p", &pid, "--json"]));
        fx.go();
        fx.wait();
        let s = summary(&wait_output(tr, LIMIT));
        let f = function(&s, "malloc");
        assert!(f["target"].as_str().unwrap().contains("libc.so.6"), "{f}");
        f["calls"].as_u64().unwrap()
    };
    let base = calls("0");
    assert_eq!(calls("300"), base + 300);
}

/// `tracer list uprobes TARGET GLOB --json` objects.
fn listed(target: &str, glob: &str) -> Vec<serde_json::Value> {
    let out = tracer()
        .args(["list", "uprobes", target, glob, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    json_lines(&out.stdout)
}

/// A Rust function of the fixture is listed, probed and reported by its
/// demangled name (no hash), and a pattern on the mangled symbol finds it too.
#[test]
fn rust_function_by_demangled_name() {
    let _l = shared_lock();
    let fx = fixture_str();
    let name = "fixture::geteuid_loop";
    let text = String::from_utf8(
        tracer()
            .args(["list", "uprobes", &fx, "fixture::geteuid*"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(text, format!("{name}\n"));
    let v = listed(&fx, name);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["name"], name);
    let symbol = v[0]["symbol"].as_str().unwrap().to_string();
    assert!(
        symbol.starts_with("_ZN7fixture12geteuid_loop") || symbol.starts_with("_R"),
        "a mangled Rust symbol (legacy or v0): {symbol}"
    );
    // `fixture geteuid N` calls geteuid_loop once.
    let calls = |pattern: &str| {
        let probe = format!("{fx}:{pattern}");
        let s = launched_summary(&run(
            tracer().args(["uprobe", &probe, "--json", "--", &fx, "geteuid", "10"]),
            LIMIT,
        ));
        assert_eq!(s["functions"].as_array().unwrap().len(), 1, "{s}");
        function(&s, name)["calls"].as_u64().unwrap()
    };
    assert_eq!(calls(name), 1);
    assert_eq!(calls("fixture::geteuid_*"), 1);
    assert_eq!(calls(&symbol), 1);
    assert_eq!(calls(&format!("{}*", &symbol[..symbol.len() - 3])), 1);
    // The text report's FUNC column.
    let probe = format!("{fx}:{name}");
    let out = run(
        tracer().args(["uprobe", &probe, "--", &fx, "geteuid-timed", "10"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("{name:<36} {:>8}\n", 1)), "{text}");
}

/// A tiny C++ program, built with g++ into a fresh directory.
fn cpp_app(dir: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join("app.cc");
    std::fs::write(
        &src,
        r#"#include <cstdlib>
namespace app {
struct Server { int handle(int x); };
__attribute__((noinline)) int Server::handle(int x) { return x * 3; }
__attribute__((noinline)) int handler(int x) { return x + 1; }
}
int main(int argc, char **argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 0;
    app::Server s;
    volatile int sum = 0;
    for (int i = 0; i < n; i++) {
        sum = sum + app::handler(i);
        if (i % 2 == 0) sum = sum + s.handle(i);
    }
    return 0;
}
"#,
    )
    .unwrap();
    let bin = dir.join("app");
    let st = std::process::Command::new("g++")
        .args(["-O0", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("g++ is needed for this test");
    assert!(st.success());
    bin
}

/// C++ functions are shown demangled, with their parameter types, and are
/// probed by either name.
#[test]
fn cpp_functions_by_demangled_name() {
    let _l = shared_lock();
    let dir = std::env::temp_dir().join(format!("tracer-uprobe-cpp-{}", std::process::id()));
    let app = cpp_app(&dir).display().to_string();
    let names: Vec<String> = listed(&app, "app::*")
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app::Server::handle(int)", "app::handler(int)"]);
    let v = listed(&app, "_ZN3app7handler*");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["name"], "app::handler(int)");
    assert_eq!(v[0]["symbol"], "_ZN3app7handlerEi");
    let summary_of = |pattern: &str| {
        let probe = format!("{app}:{pattern}");
        launched_summary(&run(
            tracer().args(["uprobe", &probe, "--json", "--", &app, "7"]),
            LIMIT,
        ))
    };
    let s = summary_of("app::*");
    assert_eq!(function(&s, "app::handler(int)")["calls"], 7);
    assert_eq!(function(&s, "app::Server::handle(int)")["calls"], 4);
    for pattern in ["app::handler(int)", "_ZN3app7handlerEi", "_ZN3app7handler*"] {
        let s = summary_of(pattern);
        assert_eq!(s["functions"].as_array().unwrap().len(), 1, "{s}");
        assert_eq!(function(&s, "app::handler(int)")["calls"], 7, "{pattern}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kernels without BPF cookies (before 5.15) give each function its own slot
/// copy of the programs. Forced here: two functions called a known, different
/// number of times keep their own counts and latencies, and more functions
/// than there are copies is refused in one line.
#[test]
fn without_cookies_each_function_keeps_its_own_counts() {
    let _l = shared_lock();
    let fx = fixture_str();
    let (work, main) = (format!("{fx}:tracer_fixture_work"), format!("{fx}:main"));
    let out = run(
        tracer().env("TRACER_FALLBACK", "cookies").args([
            "uprobe",
            &work,
            &main,
            "--json",
            "--latency",
            "--",
            &fx,
            "work",
            "30",
        ]),
        LIMIT,
    );
    let s = launched_summary(&out);
    for (name, calls) in [("tracer_fixture_work", 30), ("main", 1)] {
        let f = function(&s, name);
        assert_eq!(f["calls"], calls, "{name}: {f}");
        assert_eq!(f["latency"]["count"], calls, "{name}: {f}");
    }
    let out = run(
        tracer()
            .env("TRACER_FALLBACK", "cookies")
            .args(["uprobe", "libc:s*", "-d", "0.1"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no BPF cookies (Linux 5.15)"), "{err}");
    assert!(err.contains("at most 64"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
