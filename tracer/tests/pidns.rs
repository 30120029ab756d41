//! End-to-end: tracer run inside a PID namespace of its own (`unshare -p -f
//! --mount-proc`, as in a container without the host's pids) counts what it
//! counts on the host, and prints the pids its namespace gives (as `ps` there
//! shows them). Each check runs the same shell script on the host and inside a
//! new namespace and compares the two.
mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use common::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Shell functions the scripts share: bounded waits (for a line in a file,
/// for a process to exit) that name what they waited for when they give up.
/// (No ERR trap here: bash would no longer exec a script's last command, and
/// tests count on tracer being the namespace's pid 1.)
const PRELUDE: &str = r#"
await_line() { # FILE PATTERN WHAT
    for _ in $(seq 400); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "script: timed out after 20 s waiting for $3 ($2 in $1)" >&2
    cat "$1" >&2 || true
    exit 3
}
bounded_wait() { # PID WHAT: its exit status, or a failure after 30 s
    if ! timeout 30 tail --pid="$1" -f /dev/null; then
        echo "script: timed out after 30 s waiting for $2 to exit" >&2
        exit 3
    fi
    wait "$1"
}
"#;

/// A directory of its own for each run, removed at the end.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("tracer-pidns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", self.0.join(name).display()))
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `script` with bash, in a new PID namespace (with its own /proc) when
/// `ns`, with `$T` (tracer), `$F` (the fixture) and `$DIR` set.
fn script(ns: bool, dir: &Path, script: &str) -> Output {
    let body = format!("{PRELUDE}\n{script}");
    let mut cmd = if ns {
        let mut c = Command::new("unshare");
        c.args([
            "-p",
            "-f",
            "--mount-proc",
            "--kill-child",
            "bash",
            "-euc",
            &body,
        ]);
        c
    } else {
        let mut c = Command::new("bash");
        c.args(["-euc", &body]);
        c
    };
    cmd.env("T", env!("CARGO_BIN_EXE_tracer"))
        .env("F", fixture_path())
        .env("DIR", dir);
    let out = run(&mut cmd, LIMIT);
    assert!(
        out.status.success(),
        "script (in a new PID namespace: {ns}) failed: {}\n{}\nstdout: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        files_of(dir)
    );
    out
}

/// The files a script left in `dir` (its programs' output), for a failure's
/// message.
fn files_of(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        // Regular files only: opening a fifo would wait for a writer.
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let text = std::fs::read(e.path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[..text.len().min(4000)]).into_owned();
        out += &format!("--- {}:\n{text}\n", e.path().display());
    }
    out
}

/// `syscall -> (calls, errors)` of a `--json` summary's rows.
fn rows(block: &serde_json::Value) -> BTreeMap<String, (u64, u64)> {
    block["syscalls"]
        .as_array()
        .expect("syscalls array")
        .iter()
        .map(|r| {
            (
                r["syscall"].as_str().unwrap().to_string(),
                (r["calls"].as_u64().unwrap(), r["errors"].as_u64().unwrap()),
            )
        })
        .collect()
}

fn summary(json: &str) -> serde_json::Value {
    let last = json.lines().last().expect("a JSON line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// The same rows on the host and in the namespace.
fn assert_same_rows(what: &str, host: &serde_json::Value, ns: &serde_json::Value) {
    let (h, n) = (rows(host), rows(ns));
    assert!(!h.is_empty(), "{what}: nothing counted on the host");
    assert_eq!(
        h, n,
        "{what}: host rows (left) differ from the namespace's (right)"
    );
}

/// `-- CMD`: every row equals the host run's, for a plain program and for
/// one that forks (children followed in the kernel by their namespace pids),
/// and one whose children are in a namespace nested below tracer's.
#[test]
fn cmd_counts_equal_the_host_run() {
    let _l = shared_lock();
    for (tag, cmd) in [
        ("plain", "\"$F\" syscalls 321 17"),
        ("forks", "\"$F\" forks 3 40"),
        ("nested", "unshare -p -f \"$F\" forks 2 25"),
    ] {
        let tmp = Tmp::new(&format!("cmd-{tag}"));
        let run = |ns| {
            script(
                ns,
                &tmp.0,
                &format!("\"$T\" syscalls --json -o \"$DIR/out.json\" -- {cmd}"),
            );
            summary(&tmp.read("out.json"))
        };
        let (host, ns) = (run(false), run(true));
        // unshare's own calls differ with the namespace it makes; the
        // fixture's do not.
        if tag == "nested" {
            let f = |b: &serde_json::Value| rows(b)["getppid"];
            assert_eq!(f(&host), (2 * 25, 0), "nested, host: two children's");
            assert_eq!(
                f(&host),
                f(&ns),
                "nested: getppid on the host and in the namespace"
            );
        } else {
            assert_same_rows(tag, &host, &ns);
        }
    }
}

/// `-- CMD -P`: one row set per process, each named by the pid the
/// namespace gives it: CMD is 2 (tracer is the namespace's init, 1), its
/// children name it as their parent.
#[test]
fn per_process_pids_are_the_namespace_ones() {
    let _l = shared_lock();
    let tmp = Tmp::new("per-process");
    script(
        true,
        &tmp.0,
        "\"$T\" syscalls -P --json -o \"$DIR/out.json\" -- \"$F\" forks 3 40",
    );
    let last = summary(&tmp.read("out.json"));
    let procs = last["processes"].as_array().expect("processes");
    let pids: Vec<u64> = procs.iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    assert!(pids.contains(&2), "CMD is pid 2 in the namespace: {pids:?}");
    let children: Vec<_> = procs.iter().filter(|p| p["pid"] != 2).collect();
    assert_eq!(children.len(), 3, "three children: {pids:?}");
    for c in children {
        assert_eq!(c["ppid"], 2, "a child's parent is CMD: {c}");
        assert!(c["pid"].as_u64().unwrap() < 100, "a namespace pid: {c}");
        let getppid = c["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["syscall"] == "getppid")
            .expect("the child's getppid row");
        assert_eq!(getppid["calls"], 40, "{c}");
    }
}

/// `-p PID` with the pid as the namespace numbers it (`$!` there), and
/// `--comm`: exact counts, rows named by that pid, equal to the host run.
#[test]
fn pid_and_comm_filters_take_the_namespace_pids() {
    let _l = shared_lock();
    let comm = format!("pns{}", std::process::id() % 100_000);
    let tmp = Tmp::new("pid");
    let pid_script = r#"
        trap 'echo "script: line $LINENO: $BASH_COMMAND: exit $?" >&2' ERR
        mkfifo "$DIR/go"
        "$F" --wait syscalls 432 21 <"$DIR/go" >"$DIR/fx.out" &
        P=$!
        exec 3>"$DIR/go"
        await_line "$DIR/fx.out" ready "the fixture to start"
        "$T" syscalls -p "$P" -P --json -o "$DIR/out.json" 2>"$DIR/tr.err" &
        TR=$!
        await_line "$DIR/tr.err" Tracing "tracer -p to attach"
        echo go >&3
        bounded_wait "$P" "the fixture"
        bounded_wait "$TR" "tracer -p after its target exited"
        echo "$P" >"$DIR/pid"
        rm "$DIR/go"
    "#;
    let comm_script = format!(
        r#"
        trap 'echo "script: line $LINENO: $BASH_COMMAND: exit $?" >&2' ERR
        "$T" syscalls --comm {comm} -P --format strace --json -o "$DIR/out.json" 2>"$DIR/tr.err" &
        TR=$!
        await_line "$DIR/tr.err" Tracing "tracer --comm to attach"
        "$F" --comm {comm} syscalls 432 21 &
        P=$!
        bounded_wait "$P" "the fixture"
        kill -INT "$TR"
        bounded_wait "$TR" "tracer --comm after SIGINT"
        echo "$P" >"$DIR/pid"
    "#
    );
    for (what, body) in [("-p", pid_script.to_string()), ("--comm", comm_script)] {
        let run = |ns| {
            script(ns, &tmp.0, &body);
            let pid: u64 = tmp.read("pid").trim().parse().unwrap();
            let last = summary(&tmp.read("out.json"));
            let procs = last["processes"].as_array().expect("processes").clone();
            assert_eq!(procs.len(), 1, "{what}: one process: {last}");
            assert_eq!(procs[0]["pid"], pid, "{what}: the row's pid is $! there");
            (pid, procs[0].clone())
        };
        let (host_pid, host) = run(false);
        let (ns_pid, ns) = run(true);
        assert_ne!(
            ns_pid, host_pid,
            "{what}: the namespace's pid is not the host's"
        );
        assert_eq!(rows(&ns)["getppid"], (432, 0), "{what}");
        assert_eq!(rows(&ns)["openat"].1, 21, "{what}");
        if what == "-p" {
            // Counted from the same point in both: the rows are equal.
            assert_same_rows(what, &host, &ns);
        }
    }
}

/// `trace` and `exec` events carry the namespace's pids, and `trace` sends
/// as many events as on the host.
#[test]
fn trace_and_exec_events_carry_namespace_pids() {
    let _l = shared_lock();
    let tmp = Tmp::new("events");
    let run = |ns| {
        script(
            ns,
            &tmp.0,
            r#"
            "$T" trace --json -o "$DIR/trace.json" -- "$F" syscalls 13 4 &
            echo $! >"$DIR/trace.pid"
            wait
            "$T" exec --json -o "$DIR/exec.json" -- sh -c '"$F" syscalls 1 0; true' &
            echo $! >"$DIR/exec.pid"
            wait
            "#,
        );
        let events = |name: &str| -> Vec<serde_json::Value> {
            tmp.read(name)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let pid = |name: &str| -> u64 { tmp.read(name).trim().parse().unwrap() };
        (
            events("trace.json"),
            events("exec.json"),
            pid("trace.pid"),
            pid("exec.pid"),
        )
    };
    let (host_trace, ..) = run(false);
    let (trace, exec, tracer_pid, exec_tracer_pid) = run(true);
    let getppid = |evs: &[serde_json::Value]| -> Vec<serde_json::Value> {
        evs.iter()
            .filter(|e| e["syscall"] == "getppid")
            .cloned()
            .collect()
    };
    let (h, n) = (getppid(&host_trace), getppid(&trace));
    assert_eq!(h.len(), 13, "host getppid events");
    assert_eq!(n.len(), 13, "namespace getppid events");
    let cmd = n[0]["pid"].as_u64().unwrap();
    assert!(
        cmd > tracer_pid && cmd < tracer_pid + 50,
        "CMD's pid {cmd} after tracer's {tracer_pid}"
    );
    for e in &n {
        assert_eq!(e["pid"], cmd, "{e}");
        assert_eq!(e["tid"], cmd, "{e}");
        assert_eq!(e["ret"], tracer_pid, "getppid: its parent is tracer: {e}");
    }
    let execs: Vec<_> = exec.iter().filter(|e| e["type"] == "exec").collect();
    assert_eq!(execs.len(), 2, "sh and the fixture: {exec:?}");
    let sh = execs[0]["pid"].as_u64().unwrap();
    assert_eq!(
        execs[0]["ppid"], exec_tracer_pid,
        "sh's parent is tracer: {exec:?}"
    );
    assert_eq!(execs[1]["ppid"], sh, "the fixture's parent is sh: {exec:?}");
    assert!(
        sh > exec_tracer_pid && sh < exec_tracer_pid + 50,
        "{exec:?}"
    );
}

/// `tcp`: a connection's owner is the namespace's pid.
#[test]
fn tcp_owner_is_the_namespace_pid() {
    let _l = shared_lock();
    let tmp = Tmp::new("tcp");
    script(
        true,
        &tmp.0,
        r#""$T" tcp --json -o "$DIR/tcp.json" -- "$F" tcp 3 1000"#,
    );
    let closes: Vec<serde_json::Value> = tmp
        .read("tcp.json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "close")
        .collect();
    assert_eq!(closes.len(), 6, "both ends of 3 connections: {closes:?}");
    // tracer is the script's only command: bash execs it as pid 1, and CMD is 2.
    for c in &closes {
        assert_eq!(c["pid"], 2, "{c}");
    }
}

/// `profile`: stacks of a program in the namespace are named (its mappings
/// read through the namespace's /proc with the pid the kernel side gives).
#[test]
fn profile_names_frames_in_the_namespace() {
    let _l = shared_lock();
    let tmp = Tmp::new("profile");
    script(
        true,
        &tmp.0,
        r#""$T" profile -F 199 --folded -o "$DIR/cpu.folded" -- "$F" cpu 600"#,
    );
    let text = tmp.read("cpu.folded");
    let (mut leaf, mut total) = (0u64, 0u64);
    for line in text.lines() {
        let (stack, n) = line.rsplit_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        total += n;
        if stack.contains("cpu_outer") && stack.contains("cpu_leaf_") {
            leaf += n;
        }
    }
    assert!(total >= 20, "samples: {total}\n{text}");
    assert!(
        leaf * 10 >= total * 8,
        "main -> cpu_outer -> leaf named in only {leaf} of {total} samples:\n{text}"
    );
}

/// `serve --by pid`: the series carry the namespace's pid.
#[test]
fn serve_labels_namespace_pids() {
    let _l = shared_lock();
    let comm = format!("pnv{}", std::process::id() % 100_000);
    let tmp = Tmp::new("serve");
    let body = format!(
        r#"
        "$T" serve --listen 127.0.0.1:0 --comm {comm} --by pid 2>"$DIR/serve.err" &
        S=$!
        await_line "$DIR/serve.err" Serving "tracer serve to listen"
        "$F" --comm {comm} syscalls 77 0 &
        P=$!
        wait "$P"
        echo "$P" >"$DIR/pid"
        addr=$(sed -n 's|^Serving metrics at http://\([^/]*\)/.*|\1|p' "$DIR/serve.err")
        exec 4<>"/dev/tcp/${{addr%:*}}/${{addr#*:}}"
        printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&4
        timeout 10 cat <&4 >"$DIR/metrics"
        kill -TERM "$S"
        wait "$S" || true
        "#
    );
    script(true, &tmp.0, &body);
    let pid = tmp.read("pid").trim().to_string();
    let metrics = tmp.read("metrics");
    let want = "syscall=\"getppid\"".to_string();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tracer_syscalls_total") && l.contains(&want))
        .unwrap_or_else(|| panic!("no getppid series:\n{metrics}"));
    assert!(
        line.contains(&format!("pid=\"{pid}\"")),
        "pid {pid} expected: {line}"
    );
    assert!(line.ends_with(" 77"), "{line}");
}

/// A target's pid reused by another process before tracer looks again (pids
/// cycle through 32768 by default: on a busy machine within seconds): `-p`
/// still ends when its target does, and does not take the newcomer for it.
/// The reuse is made certain in a PID namespace of the test's own: tracer is
/// held (SIGSTOP) while the target exits and is reaped, and the next pid is
/// set to the target's (`ns_last_pid`) before a new process starts.
#[test]
fn a_reused_pid_is_not_the_target() {
    let _l = shared_lock();
    let tmp = Tmp::new("reuse");
    let body = r#"
        mkfifo "$DIR/go"
        "$F" --wait sleep 0 <"$DIR/go" >"$DIR/fx.out" &
        A=$!
        exec 3>"$DIR/go"
        await_line "$DIR/fx.out" ready "the target to start"
        "$T" syscalls -p "$A" -o "$DIR/out.txt" 2>"$DIR/tr.err" &
        TR=$!
        await_line "$DIR/tr.err" Tracing "tracer -p to attach"
        kill -STOP "$TR"
        echo go >&3
        wait "$A"
        echo $((A - 1)) >/proc/sys/kernel/ns_last_pid
        "$F" sleep 60000 &
        B=$!
        [ "$B" = "$A" ] || { echo "script: pid $A was not reused (got $B)" >&2; exit 3; }
        kill -CONT "$TR"
        for _ in $(seq 200); do kill -0 "$TR" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$TR" 2>/dev/null; then
            echo "tracer -p $A still runs 20 s after its target exited: pid $A is another process's now" >&2
            kill "$TR" "$B"; exit 4
        fi
        wait "$TR"
        kill "$B"
        echo ended >"$DIR/result"
    "#;
    script(true, &tmp.0, body);
    assert_eq!(tmp.read("result").trim(), "ended");
}
