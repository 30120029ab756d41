//! `tracer kprobe`, on whatever kernel runs the tests. What the kernel offers
//! is found without tracer (tests/common/kernel.rs: a kprobe made with
//! perf_event_open, an fentry program loaded with bpf(2)), and each backend is
//! held to it both ways: where it works here, tracer must count vfs_read
//! exactly with it; where it does not, tracer must fail with one clear line
//! giving the same reason, and leave nothing loaded. On the CI host (no
//! kprobes, fentry refused) that is the failure; on a distribution kernel
//! (and in `cargo xtask vm-test`'s Debian kernels) the counts.
mod common;

use std::time::Duration;

use common::{kernel::FentryFailure, *};

const LIMIT: Duration = Duration::from_secs(60);
const READS: u64 = 100;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// How a backend fares here, as found without tracer: Ok, or the parts that
/// tracer's reason must contain.
type Expected = Result<(), Vec<String>>;

fn expected_kprobe() -> Expected {
    let k = kernel::kprobes();
    eprintln!("kprobes here: {k:?}");
    match k.attach {
        Ok(()) => Ok(()),
        Err(_) if !k.pmu => {
            let mut parts = vec!["kprobes: this kernel has no kprobe support".to_string()];
            if k.config == Some(false) {
                parts.push("(CONFIG_KPROBES is not set)".into());
            }
            Err(parts)
        }
        Err(e) => Err(vec!["kprobes: ".into(), kernel::errno_name(e)]),
    }
}

fn expected_fentry() -> Expected {
    let f = kernel::fentry();
    eprintln!("fentry here: {f:?}");
    match f {
        Ok(()) => Ok(()),
        Err(FentryFailure::NoBtf) => Err(vec!["fentry: no kernel BTF".into()]),
        Err(FentryFailure::Load(e)) => Err(vec![
            "fentry: ".into(),
            "load".into(),
            format!("({})", kernel::errno_name(e)),
        ]),
        Err(FentryFailure::Attach(e)) => Err(vec!["fentry: ".into(), kernel::errno_name(e)]),
    }
}

fn assert_contains_all(line: &str, parts: &[String]) {
    for part in parts {
        assert!(line.contains(part.as_str()), "{line}: expected {parts:?}");
    }
}

/// `tracer kprobe [--backend B] --json vfs_read -p FIXTURE` while the fixture
/// makes exactly READS reads: the backend used and the count.
fn count_reads(backend: Option<&str>) -> (String, Option<u64>) {
    let mut fx = Waiting::start(&["read-zero", &READS.to_string()]);
    let pid = fx.pid().to_string();
    let mut cmd = tracer();
    cmd.arg("kprobe");
    if let Some(b) = backend {
        cmd.args(["--backend", b]);
    }
    let (child, _err) = start_attached(cmd.args(["--json", "vfs_read", "-p", &pid]));
    fx.go();
    fx.wait();
    let out = wait_output(child, LIMIT);
    assert!(out.status.success(), "{backend:?}: {}", stderr(&out));
    let blocks = json_lines(&out.stdout);
    let last = blocks.last().expect("no JSON output");
    let calls = last["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "vfs_read")
        .and_then(|r| r["calls"].as_u64());
    (
        last["backend"].as_str().unwrap_or_default().to_string(),
        calls,
    )
}

/// `tracer kprobe [--backend B] vfs_read -- FIXTURE`, expected to fail: its
/// error line, and all of stderr.
fn failure(backend: Option<&str>) -> (String, String) {
    let mut cmd = tracer();
    cmd.arg("kprobe");
    if let Some(b) = backend {
        cmd.args(["--backend", b]);
    }
    let out = run(
        cmd.args(["--json", "vfs_read", "--"])
            .arg(fixture_path())
            .args(["read-zero", &READS.to_string()]),
        LIMIT,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{backend:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.lines().count() <= 3, "too long: {err}");
    assert!(out.stdout.is_empty(), "no report expected: {out:?}");
    let line = err
        .lines()
        .find(|l| l.starts_with("tracer: "))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_string();
    (line, err)
}

#[test]
fn kprobe_vfs_read_counts_or_explains_each_backend() {
    let _lock = exclusive_lock();
    let kprobe = expected_kprobe();
    let fentry = expected_fentry();
    for (backend, expected) in [("kprobe", &kprobe), ("fentry", &fentry)] {
        match expected {
            Ok(()) => {
                let (used, calls) = count_reads(Some(backend));
                assert_eq!(used, backend);
                assert_eq!(calls, Some(READS), "--backend {backend}");
            }
            Err(parts) => {
                let (line, _) = failure(Some(backend));
                assert!(
                    line.starts_with(&format!(
                        "tracer: cannot trace kernel functions with --backend {backend}: "
                    )),
                    "{line}"
                );
                assert_contains_all(&line, parts);
            }
        }
        assert_nothing_loaded(&format!("after tracer kprobe --backend {backend}"));
    }
    // Without --backend: fentry where it works, else kprobes, else both reasons.
    match (&fentry, &kprobe) {
        (Ok(()), _) | (_, Ok(())) => {
            let want = if fentry.is_ok() { "fentry" } else { "kprobe" };
            let (used, calls) = count_reads(None);
            assert_eq!(used, want);
            assert_eq!(calls, Some(READS));
        }
        (Err(f), Err(k)) => {
            let (line, err) = failure(None);
            assert!(
                line.starts_with("tracer: cannot trace kernel functions on this kernel: kprobes: "),
                "{line}"
            );
            assert!(line.find("kprobes:") < line.find("; fentry:"), "{line}");
            assert_contains_all(&line, k);
            assert_contains_all(&line, f);
            // ... and what kernel would do.
            assert!(
                err.contains(
                    "tracer needs a kernel with kprobes (CONFIG_KPROBES=y) or with BTF and fentry"
                ),
                "{err}"
            );
        }
    }
    assert_nothing_loaded("after tracer kprobe vfs_read");
}

#[test]
fn unknown_function_suggests_close_names() {
    let _lock = shared_lock();
    let out = run(tracer().args(["kprobe", "vfs_raed"]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no kernel function named `vfs_raed`"), "{err}");
    assert!(
        err.contains("did you mean") && err.contains("vfs_read"),
        "{err}"
    );
    let out = run(tracer().args(["kprobe", "zzz_no_such_*"]), LIMIT);
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
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("more than --max-probes 3"), "{err}");
}
