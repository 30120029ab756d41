//! `-- CMD` runs exactly as it would untraced: signal dispositions and mask,
//! fds, environment, working directory, limits and umask; its stdout is its
//! own; `--user` runs it as that user with that user's groups.
mod common;

use std::{
    os::unix::process::CommandExt as _,
    process::{Command, Output},
    time::Duration,
};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// What a process can see of how it was started, one fact a line. `FDSize`
/// is the shell's fd table size: a fork copies the table at the size the
/// parent's highest open fd needs, and execve keeps it, so a launcher that
/// forks after opening its maps and programs (75 fds and more) leaves CMD 128
/// slots where it has 64 untraced, and `select(1025, ...)` on small sets then
/// reads past them (strace's `select` test failed with EFAULT under tracer).
const PROBE: &str =
    "grep -E '^(SigIgn|SigBlk|SigCgt|NoNewPrivs|Cpus_allowed_list)' /proc/self/status; \
    grep FDSize /proc/$$/status; \
    echo umask $(umask); echo cwd $(pwd); ls /proc/self/fd | tr '\\n' ' '; echo; \
    cat /proc/self/limits; env | LC_ALL=C sort | grep -v '^_='; id";

/// The commands that launch CMD, each with what it needs besides `-- CMD`.
fn launchers() -> Vec<Vec<&'static str>> {
    vec![
        vec!["syscalls"],
        vec!["syscalls", "--json", "-P"],
        vec!["trace", "-e", "openat"],
        vec!["trace", "--json", "-e", "openat"],
        vec!["uprobe", "libc:malloc"],
        vec!["tracepoint", "sched:sched_process_exec"],
    ]
}

/// `cmd` runs `sh -c PROBE` under each launcher, and directly: the command
/// prints the same, and tracer's report is not on stdout.
fn same_as_untraced(prepare: impl Fn(&mut Command) + Send + Sync) {
    from_compact_fd_table(|| {
        let mut direct = Command::new("sh");
        direct.args(["-c", PROBE]);
        prepare(&mut direct);
        let untraced = run(&mut direct, LIMIT);
        assert!(untraced.status.success(), "{untraced:?}");
        let expected = String::from_utf8_lossy(&untraced.stdout).into_owned();
        assert!(expected.contains("SigIgn"), "{expected}");
        assert!(expected.contains("FDSize:\t64\n"), "{expected}");
        for args in launchers() {
            let mut cmd = tracer();
            cmd.args(&args).args(["--", "sh", "-c", PROBE]);
            prepare(&mut cmd);
            let out = run(&mut cmd, LIMIT);
            assert!(out.status.success(), "{args:?}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                expected,
                "tracer {args:?} -- CMD: the command saw something else, or the report is on stdout\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    })
}

/// Run `f` on a thread whose fd table holds no fd above 63, so that what it
/// starts has 64 slots (the kernel's smallest): the test harness may have
/// higher fds open (other tests' pipes), which would hide what a launcher
/// adds. A thread shares the process's table;
/// `close_range(64, ~0, CLOSE_RANGE_UNSHARE)` gives it its own copy of the
/// fds below 64.
fn from_compact_fd_table(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;
            let r = unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    64,
                    libc::c_uint::MAX,
                    CLOSE_RANGE_UNSHARE,
                )
            };
            assert_eq!(r, 0, "close_range: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

#[test]
fn the_command_sees_what_it_would_untraced() {
    let _l = shared_lock();
    same_as_untraced(|_| {});
}

/// Started with SIGPIPE and SIGINT ignored (a shell's `trap '' PIPE`, a
/// background job), blocked signals (SIGTERM among them, which tracer
/// itself unblocks to end on it), an odd umask, a low limit, an extra
/// open fd and an extra environment variable: CMD gets all of that, as it
/// would untraced.
#[test]
fn inherited_state_passes_through() {
    let _l = shared_lock();
    let extra_fd = std::fs::File::open("/etc/hostname").unwrap();
    use std::os::fd::AsRawFd as _;
    let fd = extra_fd.as_raw_fd();
    same_as_untraced(|cmd| {
        cmd.env("TRACER_LAUNCH_TEST", "1");
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::umask(0o027);
                let lim = libc::rlimit {
                    rlim_cur: 777,
                    rlim_max: 1024,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                // Keep one fd open across exec (std marks its own CLOEXEC).
                libc::fcntl(fd, libc::F_SETFD, 0);
                Ok(())
            });
        }
    });
}

/// Untraced, SIGPIPE is at its default: `yes | head -1` ends quietly. tracer
/// must not leave it ignored (it would print "Broken pipe" and change the
/// command's rt_sigaction calls).
#[test]
fn sigpipe_is_default_in_the_command() {
    let _l = shared_lock();
    let out = run(
        tracer().args(["syscalls", "--", "sh", "-c", "yes | head -1"]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Broken pipe"), "{err}");
    assert!(
        err.contains("total"),
        "the strace table is on stderr: {err}"
    );
}

/// --user runs CMD as that user, with its primary and supplementary groups
/// (as `id` reports them for the user), and the report still counts it.
#[test]
fn user_option_runs_as_that_user() {
    let _l = shared_lock();
    let expected = run(Command::new("id").arg("nobody"), LIMIT);
    assert!(expected.status.success());
    let out = run(
        tracer().args([
            "syscalls", "--user", "nobody", "-e", "getuid", "--json", "--", "id",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected.stdout),
        "{out:?}"
    );
    let last = json_lines(&out.stderr)
        .pop()
        .expect("a JSON summary on stderr");
    let getuid = syscall(&last, "getuid").expect("id calls getuid");
    assert!(getuid["calls"].as_u64().unwrap() >= 1, "{last}");
    // No set-up call of tracer's is counted: the first counted is execve.
    for name in ["setuid", "setgid", "setgroups", "rt_sigaction"] {
        assert!(syscall(&last, name).is_none(), "{name} counted: {last}");
    }
    // A numeric uid with a passwd entry is the same user.
    let by_number = run(
        tracer().args(["syscalls", "--user", "65534", "--", "id"]),
        LIMIT,
    );
    assert_eq!(by_number.stdout, expected.stdout, "{by_number:?}");
}

#[test]
fn bad_user_is_one_line_and_nothing_runs() {
    let _l = shared_lock();
    for args in [
        vec![
            "syscalls",
            "--user",
            "no-such-user-xyz",
            "--",
            "touch",
            "/tmp/tracer-must-not-exist",
        ],
        vec![
            "trace",
            "--user",
            "no-such-user-xyz",
            "--",
            "touch",
            "/tmp/tracer-must-not-exist",
        ],
    ] {
        let out: Output = run(tracer().args(&args), LIMIT);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            "tracer: --user no-such-user-xyz: no such user",
            "{args:?}"
        );
        assert!(!std::path::Path::new("/tmp/tracer-must-not-exist").exists());
    }
    // --user means nothing without a command: a usage error (exit 2).
    let out = run(
        tracer().args(["syscalls", "--user", "nobody", "-d", "0.1"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
