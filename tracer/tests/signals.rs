//! A SIGINT or SIGTERM ends a run even when it arrives while tracer is still
//! starting (loading and attaching its programs), and even when tracer was
//! started with SIGINT ignored, as a background job of a non-interactive
//! shell is (`tracer syscalls & ... kill -INT $!`). Before, such a signal was
//! discarded and tracer ran until killed.
mod common;

use std::{
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;

/// Longest tracer may take to start, see the signal and end.
const LIMIT: Duration = Duration::from_secs(60);

/// Commands that run until a signal ends them (none launches a command: the
/// signal goes to tracer alone, and a launched command would outlive it).
fn commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["syscalls"],
        vec!["syscalls", "-L", "-P"],
        vec!["trace", "-e", "getppid", "-p", "1"],
        vec!["exec"],
        vec!["tcp"],
        vec!["tracepoint", "sched:sched_process_exec"],
        vec!["uprobe", "libc:getppid"],
        vec!["profile", "-F", "49"],
        vec!["serve", "--listen", "127.0.0.1:0"],
    ]
}

/// The signal is sent the moment tracer's process exists, before tracer has
/// run any code: SIGINT is ignored (a background job) and blocked by the
/// starter, so it waits pending through the exec, whatever the machine's
/// speed, and reaches tracer while it loads. tracer takes over the mask
/// and must end, cleanly (exit 0, the final report written).
#[test]
fn a_signal_sent_before_tracer_runs_ends_it() {
    let _l = shared_lock();
    for (sig, args) in commands()
        .into_iter()
        .map(|a| (libc::SIGINT, a))
        .chain([(libc::SIGTERM, vec!["syscalls"])])
    {
        let mut cmd = tracer();
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn tracer");
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        // wait_output panics, naming the bound, if tracer is still running.
        let out = wait_output(child, LIMIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "tracer {args:?}, signal {sig} sent at once: {}\nstderr: {err}",
            out.status
        );
        assert!(!err.contains("tracer:"), "tracer {args:?}: {err}");
    }
}

/// As a shell script does it: `tracer ... &` (SIGINT ignored, not blocked),
/// then `kill -INT` while tracer starts. The script waits only until tracer
/// runs its own code (its first act is to hold SIGINT, seen in SigBlk: a
/// signal before that, during the exec, is ignored by any program started
/// so), then signals. Every wait in the script is bounded and says which one
/// ran out.
#[test]
fn a_background_job_ends_on_an_early_sigint() {
    let _l = shared_lock();
    const SCRIPT: &str = r#"
        err=/tmp/tracer-signals-test.$$.err
        "$@" >/dev/null 2>$err &
        pid=$!
        i=0
        until [ "$(readlink /proc/$pid/exe)" = "$TRACER" ] &&
            st=$(cat /proc/$pid/status) &&
            blk=$(echo "$st" | sed -n 's/^SigBlk:[[:space:]]*//p') &&
            [ $((0x$blk & 2)) -ne 0 ]; do
            i=$((i + 1))
            if [ $i -gt 2000 ] || ! kill -0 $pid 2>/dev/null; then
                echo "BOUND: tracer (pid $pid) did not start holding SIGINT within 20 s"
                kill -KILL $pid 2>/dev/null
                exit 3
            fi
            sleep 0.01
        done
        kill -INT $pid
        # How tracer was started, as it stood when the signal was sent.
        echo "$st" | grep '^SigIgn' >&2
        i=0
        while [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" != Z ] && kill -0 $pid 2>/dev/null; do
            i=$((i + 1))
            if [ $i -gt 3000 ]; then
                echo "BOUND: tracer (pid $pid) still running 30 s after SIGINT"
                kill -KILL $pid
                cat $err >&2
                exit 4
            fi
            sleep 0.01
        done
        wait $pid
        echo "rc=$?"
        cat $err >&2
        rm -f $err
    "#;
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_tracer")).unwrap();
    for args in commands() {
        let out = run(
            Command::new("sh")
                .env("TRACER", &exe)
                .args(["-c", SCRIPT, "sh"])
                .arg(&exe)
                .args(&args),
            LIMIT,
        );
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // The shell did start tracer with SIGINT ignored (bit 2 of SigIgn).
        let ign = stderr
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        assert!(
            ign.is_some_and(|v| v & 2 != 0),
            "tracer {args:?} was not started with SIGINT ignored: {stderr}"
        );
        assert_eq!(
            stdout.trim(),
            "rc=0",
            "tracer {args:?} as a background job, SIGINT while it starts\nstderr: {stderr}"
        );
    }
}
