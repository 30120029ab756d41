//! End-to-end: `tracer syscalls` against fixtures whose syscalls are known exactly.
mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// N getppid and M failing openat, counted with -p on the running fixture:
/// exact counts, exact errors, ENOENT M times.
#[test]
fn pid_json_counts_are_exact() {
    let _l = shared_lock();
    let (n, m) = (1234, 56);
    let mut fx = Waiting::start(&["syscalls", &n.to_string(), &m.to_string()]);
    let pid = fx.pid().to_string();
    let (tr, _err) =
        start_attached(tracer().args(["syscalls", "-p", &pid, "--json", "--errno", "--all"]));
    fx.go();
    fx.wait();
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let blocks = json_lines(&out.stdout);
    let last = blocks.last().expect("a summary object");
    assert_eq!(last["type"], "summary");
    let getppid = syscall(last, "getppid").expect("getppid row");
    assert_eq!(getppid["calls"], n);
    assert_eq!(getppid["errors"], 0);
    let openat = syscall(last, "openat").expect("openat row");
    assert_eq!(openat["calls"], m);
    assert_eq!(openat["errors"], m);
    assert_eq!(openat["errno"]["ENOENT"], m);
    assert!(last["total"]["total_ns"].as_u64().unwrap() > 0);
}

/// System-wide with a comm filter and a syscall filter sees the fixture's calls.
#[test]
fn system_wide_filters_by_comm_and_syscall() {
    let _l = shared_lock();
    // A comm of its own: other tests run fixtures at the same time.
    let comm = format!("fxc{}", std::process::id() % 100_000);
    let mut fx = Waiting::start(&["--comm", &comm, "syscalls", "777", "3"]);
    let (tr, _err) = start_attached(tracer().args([
        "syscalls",
        "--comm",
        &comm,
        "-e",
        "getppid,openat",
        "--json",
        "-x",
        "-d",
        "3",
    ]));
    fx.go();
    fx.wait();
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let blocks = json_lines(&out.stdout);
    let last = blocks.last().unwrap();
    // -x: failures only; getppid never fails, the openat calls all do.
    assert!(syscall(last, "getppid").is_none(), "{last}");
    assert_eq!(syscall(last, "openat").unwrap()["calls"], 3, "{last}");
    // Nothing but the two chosen syscalls.
    assert_eq!(last["syscalls"].as_array().unwrap().len(), 1, "{last}");
}

/// Interval blocks due before the end are printed even when tracer wakes
/// late (a starved machine): held with SIGSTOP past the end of `-d 1`, it
/// still prints the three blocks of `-i 0.3`, then the total.
#[test]
fn intervals_due_before_the_end_are_printed_when_tracer_wakes_late() {
    let _l = shared_lock();
    let (tr, _err) = start_attached(tracer().args(["syscalls", "-i", "0.3", "-d", "1", "-T", "1"]));
    let pid = tr.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let blocks: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        blocks.len(),
        4,
        "three interval blocks and the total:\n{text}"
    );
    assert!(blocks[3].contains("totals over"), "{text}");
}

/// The syscount table layout, intervals and the final block.
#[test]
fn syscount_table_with_intervals() {
    let _l = shared_lock();
    let out = run(
        tracer().args(["syscalls", "-i", "0.3", "-d", "1", "-T", "3"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let headers = text.lines().filter(|l| l.starts_with("SYSCALL ")).count();
    assert!(
        headers >= 3,
        "expected interval blocks and a total:\n{text}"
    );
    assert!(text.lines().any(|l| l.contains("totals over")), "{text}");
    for l in text.lines().filter(|l| l.starts_with('[')) {
        assert_eq!(&l[3..4], ":", "{l}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Tracing syscalls, printing top 3"), "{err}");
}

/// Per-process rows name the fixture and its pid.
#[test]
fn per_process_rows() {
    let _l = shared_lock();
    let mut fx = Waiting::start(&["syscalls", "500", "0"]);
    let pid = fx.pid();
    let (tr, _err) =
        start_attached(tracer().args(["syscalls", "-P", "--json", "-e", "getppid", "-d", "3"]));
    fx.go();
    fx.wait();
    let out = wait_output(tr, LIMIT);
    let last = json_lines(&out.stdout).pop().unwrap();
    let procs = last["processes"].as_array().expect("processes");
    let me = procs
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("{last}"));
    assert_eq!(me["comm"], "fixture");
    assert_eq!(me["calls"], 500);
}

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = run(tracer().args(args), LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gives_clear_errors() {
    let (code, err) = stderr_of(&["syscalls", "-e", "opnat"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unknown syscall `opnat`") && err.contains("openat"),
        "{err}"
    );
    let (code, err) = stderr_of(&["syscalls", "-p", "999999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("no process with pid 999999999"), "{err}");
    let (code, err) = stderr_of(&["syscalls", "-i", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("more than 0"), "{err}");
    let (code, err) = stderr_of(&["syscalls", "--format", "nope"]);
    assert_eq!(code, 2, "{err}");
    for (_, err) in [
        stderr_of(&["syscalls", "-u", "nosuchuser"]),
        stderr_of(&["syscalls", "-p", "abc"]),
    ] {
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Without privileges: one clear line, exit 1, nothing loaded.
#[test]
fn not_root_is_refused_clearly() {
    require_root();
    let out = run(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--",
            ])
            .arg(env!("CARGO_BIN_EXE_tracer"))
            .args(["syscalls", "-d", "1"]),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// tracefs unmounted (in a private mount namespace): tracer mounts it itself.
#[test]
fn mounts_tracefs_when_missing() {
    let _l = shared_lock();
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         test -e /sys/kernel/tracing/events && exit 90; \
         {} syscalls -d 0.2 -- /bin/true 2>/dev/null || exit 91; \
         test -d /sys/kernel/tracing/events || exit 92",
        env!("CARGO_BIN_EXE_tracer")
    );
    let out = run(
        Command::new("unshare").args(["-m", "sh", "-c", &script]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Tracers started at once on a machine without tracefs all start: one
/// mounts it, the others find it mounted (no EBUSY failures, no stacked
/// mounts). 8 at once, 20 rounds, in a private mount namespace (before the
/// fix, about 1 start in 150 failed with EBUSY).
#[test]
fn concurrent_starts_without_tracefs() {
    let _l = shared_lock();
    let script = format!(
        "for round in $(seq 1 20); do \
           while umount /sys/kernel/tracing 2>/dev/null; do :; done; \
           while umount /sys/kernel/debug/tracing 2>/dev/null; do :; done; \
           test -e /sys/kernel/tracing/events && exit 90; \
           pids=''; \
           for i in 1 2 3 4 5 6 7 8; do \
             {tracer} syscalls -d 0.1 -- /bin/true 2>/tmp/tracer-concurrent-$$-$i & pids=\"$pids $!\"; \
           done; \
           for p in $pids; do wait $p || {{ cat /tmp/tracer-concurrent-$$-*; exit 91; }}; done; \
           n=$(grep -c ' /sys/kernel/tracing .* - tracefs ' /proc/self/mountinfo); \
           test \"$n\" = 1 || {{ echo \"$n tracefs mounts\"; exit 92; }}; \
         done; rm -f /tmp/tracer-concurrent-$$-*",
        tracer = env!("CARGO_BIN_EXE_tracer")
    );
    let out = run(
        Command::new("unshare").args(["-m", "sh", "-c", &script]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

fn wait_gone(pid: u32) {
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("pid {pid} did not exit");
}

/// Nothing of ours stays in the kernel after a normal end, Ctrl-C, or SIGKILL.
#[test]
fn nothing_stays_attached() {
    let _l = exclusive_lock();
    assert_nothing_loaded("before the test");
    // Normal end of --duration, with every hook attached.
    let out = run(
        tracer().args(["syscalls", "-d", "0.5", "-P", "-L", "--errno", "-p", "1"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_nothing_loaded("after --duration");

    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGKILL, "SIGKILL")] {
        let (mut child, _err) = start_attached(tracer().args(["syscalls", "-L", "-P"]));
        assert!(!loaded_programs().is_empty(), "tracer attached nothing?");
        unsafe { libc::kill(child.id() as i32, sig) };
        let st = child.wait().unwrap();
        if sig == libc::SIGINT {
            assert!(
                st.success(),
                "Ctrl-C must print the final block and exit 0: {st}"
            );
        }
        wait_gone(child.id());
        assert_nothing_loaded(&format!("after {name}"));
    }
}

/// stdout closed by its reader, before the first table (`| true`) or after
/// the first line (`| head -1`): tracer runs to its end quietly and exits 0,
/// as `seq 1000000 | head -1` does for seq's user, not with an error and not
/// killed by SIGPIPE. (It must also have started: a failure at start-up exits 1.)
#[test]
fn closed_stdout_is_not_a_crash() {
    let _l = shared_lock();
    for lines_read in [0, 1] {
        let mut child = tracer()
            .args(["syscalls", "-i", "0.1", "-d", "0.5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        if lines_read > 0 {
            BufReader::new(stdout).read_line(&mut first).unwrap();
            assert!(!first.is_empty(), "no first line");
        } else {
            drop(stdout);
        }
        let out = wait_output(child, LIMIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{lines_read} lines read: {err}");
        assert!(err.starts_with("Tracing syscalls"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("tracer: "), "no error expected: {err}");
    }
}

/// -u: only the chosen user's calls count (the fixture runs as nobody; a
/// root twin making other calls at the same time is not counted).
#[test]
fn uid_filter() {
    let _l = shared_lock();
    let comm = format!("fxu{}", std::process::id() % 100_000);
    let (tr, _err) = start_attached(tracer().args([
        "syscalls", "-u", "nobody", "--comm", &comm, "-e", "getppid", "--json", "-d", "3",
    ]));
    let fx = fixture_path();
    let as_nobody = run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&fx)
            .args(["--comm", &comm, "syscalls", "321", "0"]),
        LIMIT,
    );
    assert!(as_nobody.status.success(), "{as_nobody:?}");
    let as_root = run(
        fixture().args(["--comm", &comm, "syscalls", "1000", "0"]),
        LIMIT,
    );
    assert!(as_root.status.success());
    let out = wait_output(tr, LIMIT);
    let last = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(syscall(&last, "getppid").unwrap()["calls"], 321, "{last}");
}

/// The plainest run (system-wide, no filter: the program that only
/// increments) counts exactly: N calls of a syscall nothing else makes.
#[test]
fn plain_system_wide_count_is_exact() {
    let _l = shared_lock();
    let mut fx = Waiting::start(&["rare", "4321"]);
    let (tr, _err) = start_attached(tracer().args(["syscalls", "--json", "--all", "-d", "3"]));
    fx.go();
    fx.wait();
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let last = json_lines(&out.stdout).pop().unwrap();
    let row = syscall(&last, "sched_get_priority_max").unwrap_or_else(|| panic!("{last}"));
    assert_eq!(row["calls"], 4321, "{last}");
    assert!(row["errors"].is_null(), "no exit hook in this mode: {row}");
}
