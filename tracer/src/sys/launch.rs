//! Launching the traced command faithfully, so that counting starts exactly
//! at its execve and it runs as it would untraced.
//!
//! Faithful: CMD starts with the signal dispositions and signal mask tracer was
//! started with (Rust's runtime ignores SIGPIPE before `main`, so the original
//! ones are recorded by a constructor that runs first), tracer's environment,
//! working directory, limits, umask and inherited fds (everything tracer opens
//! itself is close-on-exec), and, with `--user`, that user's uid, gid and groups.
//!
//! The child is forked when the command is prepared, before anything is
//! loaded or attached: it takes tracer's state as tracer was started, not as
//! loading made it. A fork copies the fd table at the size the highest open
//! fd needs, and execve keeps it: forked after tracer opened its maps,
//! programs and perf events (75 fds and more), CMD got a table of 128 slots
//! or more where it has 64 untraced, and `select(1025, ...)` on 8-byte sets
//! read past them and failed with EFAULT (strace's `select` test). Limits
//! tracer raises for itself (RLIMIT_MEMLOCK before 5.11) stay its own too.
//!
//! Exact: the child restores the signal state, drops to `--user`, then blocks
//! in read() on a pipe while tracer loads and attaches and then adds its pid
//! to the kernel's traced set; that read's entry was not traced and its exit
//! has no recorded entry, so nothing before CMD's own execve is counted. The
//! child makes raw, async-signal-safe calls only, and exits when the pipe
//! closes without a byte (tracer failed or ended first).
use std::{
    ffi::{CString, OsStr},
    io::{Read as _, Write as _},
    os::{fd::AsRawFd as _, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use anyhow::{bail, Context as _, Result};

use crate::cli::LaunchArgs;

/// The signal state tracer was started with.
struct Original {
    /// Bit `n` set: signal `n` was ignored (SIG_IGN).
    ignored: u64,
    mask: libc::sigset_t,
}

static ORIGINAL: OnceLock<Original> = OnceLock::new();

/// Runs before `main` (and so before Rust's runtime sets SIGPIPE to SIG_IGN).
extern "C" fn record_original_signals() {
    let mut ignored = 0u64;
    for sig in 1..=63 {
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } == 0
            && old.sa_sigaction == libc::SIG_IGN
        {
            ignored |= 1 << sig;
        }
    }
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
    let _ = ORIGINAL.set(Original { ignored, mask });
}

#[used]
#[link_section = ".init_array"]
static RECORD_ORIGINAL_SIGNALS: extern "C" fn() = record_original_signals;

/// The identity `--user` gives CMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
}

/// Look up USER (a name, or a number with a passwd entry) like `strace -u`:
/// its uid, primary gid and supplementary groups.
pub fn credentials(user: &str) -> Result<Credentials> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 1 << 16];
    let name = CString::new(user).context("--user contains a NUL byte")?;
    let mut r = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if found.is_null() {
        if let Ok(uid) = user.parse::<libc::uid_t>() {
            r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
        }
    }
    if found.is_null() {
        if r != 0 {
            bail!(
                "--user {user}: cannot look the user up: {}",
                std::io::Error::from_raw_os_error(r)
            );
        }
        bail!("--user {user}: no such user");
    }
    let (uid, gid) = (pw.pw_uid, pw.pw_gid);
    let mut n: libc::c_int = 64;
    let mut groups: Vec<libc::gid_t> = vec![0; n as usize];
    loop {
        let got = unsafe { libc::getgrouplist(pw.pw_name, gid, groups.as_mut_ptr(), &mut n) };
        if got >= 0 {
            groups.truncate(n as usize);
            break;
        }
        groups.resize(n as usize + 16, 0);
        n = groups.len() as libc::c_int;
    }
    Ok(Credentials { uid, gid, groups })
}

/// A command resolved and ready to run: argv and envp prepared before fork, so
/// the child only makes async-signal-safe calls.
pub struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    credentials: Option<Credentials>,
    pub display: String,
    /// The forked child waiting for `go`, until `spawn_traced` releases it.
    waiting: std::sync::Mutex<Option<Waiting>>,
}

/// A child forked by `prepare`, blocked in read() of `go`.
struct Waiting {
    pid: libc::pid_t,
    /// The child's end of `go`, as numbered in the child.
    go_fd: libc::c_int,
    go: std::io::PipeWriter,
    report: std::io::PipeReader,
    released: bool,
}

impl Drop for Waiting {
    /// Never released (tracer failed before the run): the child goes, reaped.
    fn drop(&mut self) {
        if !self.released {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            wait(self.pid);
        }
    }
}

/// Find `cmd[0]` like a shell would (PATH search unless it contains a slash) and
/// check it can be executed, and look up `--user`, so a typo fails before
/// anything is traced.
pub fn prepare(launch: &LaunchArgs) -> Result<Prepared> {
    let cmd = &launch.command;
    let Some(prog) = cmd.first() else {
        bail!("no command given after --");
    };
    let credentials = launch.user.as_deref().map(credentials).transpose()?;
    let path = resolve(prog, std::env::var_os("PATH").as_deref())?;
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).context("argument contains a NUL byte");
    let argv = cmd.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = std::env::vars_os()
        .map(|(k, v)| {
            CString::new([k.as_bytes(), b"=", v.as_bytes()].concat())
                .context("environment contains a NUL byte")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut prepared = Prepared {
        path: cstr(path.as_os_str())?,
        argv,
        envp,
        credentials,
        display: cmd
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        waiting: std::sync::Mutex::new(None),
    };
    let waiting = fork_waiting(&prepared)?;
    *prepared
        .waiting
        .get_mut()
        .unwrap_or_else(|e| e.into_inner()) = Some(waiting);
    Ok(prepared)
}

/// `prepare` for a command that may be absent (no `-- CMD` given).
pub fn prepare_opt(launch: &LaunchArgs) -> Result<Option<Prepared>> {
    if launch.command.is_empty() {
        Ok(None)
    } else {
        prepare(launch).map(Some)
    }
}

fn resolve(prog: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf> {
    let name = Path::new(prog);
    let check = |p: &Path| -> Result<()> {
        let meta = std::fs::metadata(p)
            .with_context(|| format!("cannot run `{}`: no such file", p.display()))?;
        if meta.is_dir() {
            bail!("cannot run `{}`: it is a directory", p.display());
        }
        let c = CString::new(p.as_os_str().as_bytes())?;
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
            bail!(
                "cannot run `{}`: permission denied (not executable)",
                p.display()
            );
        }
        Ok(())
    };
    if prog.as_bytes().contains(&b'/') {
        check(name)?;
        return Ok(name.to_path_buf());
    }
    let dirs = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    let mut found_not_exec = None;
    for dir in std::env::split_paths(dirs) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            match check(&candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) => found_not_exec = Some(e),
            }
        }
    }
    match found_not_exec {
        Some(e) => Err(e),
        None => bail!("cannot run `{}`: command not found in PATH", name.display()),
    }
}

/// What the child failed at, reported through the error pipe.
const STEP_CREDENTIALS: u8 = 1;
const STEP_EXEC: u8 = 2;

/// In the forked child: the signal state tracer was started with, then
/// `--user`'s identity. Raw syscalls only (async-signal-safe, and setuid of
/// this thread alone is right: it is the child's only thread).
///
/// # Safety
/// Only in the child of fork(), before execve.
unsafe fn child_setup(creds: Option<&Credentials>) -> Result<(), u8> {
    let (ignored, mask) = match ORIGINAL.get() {
        Some(o) => (o.ignored, Some(&o.mask)),
        None => (0, None),
    };
    for sig in 1..=63 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = if ignored & (1 << sig) != 0 {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // The C library's internal signals refuse; nothing else can.
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
    if let Some(c) = creds {
        if libc::syscall(libc::SYS_setgroups, c.groups.len(), c.groups.as_ptr()) != 0
            || libc::syscall(libc::SYS_setgid, c.gid) != 0
            || libc::syscall(libc::SYS_setuid, c.uid) != 0
        {
            return Err(STEP_CREDENTIALS);
        }
    }
    if let Some(m) = mask {
        libc::sigprocmask(libc::SIG_SETMASK, m, std::ptr::null_mut());
    }
    Ok(())
}

/// Fork the child that will exec `cmd` (see the module comment): it sets
/// itself up and waits in read() of `go`.
fn fork_waiting(cmd: &Prepared) -> Result<Waiting> {
    let mut argv: Vec<*const libc::c_char> = cmd.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cmd.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // `go`: tracer tells the child to exec. `report`: the child's failure
    // (which step, errno) comes back. Both close on exec.
    let (go_read, go) = std::io::pipe().context("pipe2")?;
    let (report, report_write) = std::io::pipe().context("pipe2")?;
    let (go_fd, report_fd) = (go_read.as_raw_fd(), report_write.as_raw_fd());
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        unsafe {
            let step = match child_setup(cmd.credentials.as_ref()) {
                Err(step) => step,
                Ok(()) => {
                    let mut b = 0u8;
                    // Returns when tracer has added this process to the
                    // traced set (or 0 bytes when tracer gave up).
                    if libc::read(go_fd, (&mut b as *mut u8).cast(), 1) != 1 {
                        libc::_exit(127);
                    }
                    libc::execve(cmd.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    STEP_EXEC
                }
            };
            let errno = *libc::__errno_location();
            let msg = [step, errno as u8, (errno >> 8) as u8];
            libc::write(report_fd, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    drop((go_read, report_write));
    Ok(Waiting {
        pid,
        go_fd,
        go,
        report,
        released: false,
    })
}

/// Start the prepared command (forked by `prepare`, see the module comment).
/// `register` runs in tracer with the child's pid while the child waits,
/// before its execve: it adds the child to the traced set. Returns the
/// child's pid; a failure to register or to start CMD comes back as Err (and
/// the child is reaped).
pub fn spawn_traced(
    cmd: &Prepared,
    register: impl FnOnce(u32) -> Result<()>,
) -> Result<libc::pid_t> {
    let mut w = cmd
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .context("the command was already started")?;
    // The child's set-up calls must not be counted: register it only once it
    // sleeps in its read() of `go` (a failed set-up exits instead).
    wait_blocked_in_read(w.pid, w.go_fd).and_then(|()| register(w.pid as u32))?;
    // Released: from here on its end is the run's to wait for.
    w.released = true;
    let _ = w.go.write(&[1]);
    let mut msg = [0u8; 3];
    // EOF when the execve closed the child's end: CMD runs.
    let failed = w.report.read_exact(&mut msg).is_ok();
    let pid = w.pid;
    drop(w);
    if failed {
        wait(pid);
        let err = std::io::Error::from_raw_os_error(i32::from(msg[1]) | (i32::from(msg[2]) << 8));
        match msg[0] {
            STEP_CREDENTIALS => bail!("cannot switch to --user for `{}`: {err}", cmd.display),
            _ => bail!("cannot run `{}`: {err}", cmd.display),
        }
    }
    Ok(pid)
}

/// Wait until `pid` sleeps in read(fd) (/proc/PID/syscall), or has exited.
/// Where that file cannot be read (a non-dumpable tracer without
/// CAP_SYS_PTRACE), a sleeping state is taken as that read: it is the child's
/// only blocking call.
fn wait_blocked_in_read(pid: libc::pid_t, fd: libc::c_int) -> Result<()> {
    let started = std::time::Instant::now();
    let syscall = format!("/proc/{pid}/syscall");
    let stat = format!("/proc/{pid}/stat");
    let want = format!("{} {:#x} ", libc::SYS_read, fd);
    let mut spins = 0u32;
    loop {
        let state = std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
            .unwrap_or('Z');
        let ready = match std::fs::read_to_string(&syscall) {
            Ok(s) => s.starts_with(&want),
            Err(_) => state == 'S',
        };
        if ready || state == 'Z' || state == 'X' {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            bail!("the launched command did not get ready to start within 10 s");
        }
        spins += 1;
        if spins < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
}

/// Wait for `pid` to end: its wait status (0 when it cannot be waited for).
fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 0;
        }
    }
}

/// Reap tracer's children on a blocking thread; resolves to `pid`'s (CMD's)
/// wait status.
///
/// CMD is not tracer's only child: a `clone(CLONE_PARENT)` by CMD (or by
/// another such child) makes the new process tracer's child, as runc does
/// for a container's init, and strace's `clone_parent` tests wait for it to
/// be reaped. tracer reaps every child it is handed, as strace does
/// ("Exit of unknown pid ignored"): `waitpid(-1, __WALL)` until none is
/// left, so also children whose exit signal is not SIGCHLD. CMD's status
/// resolves the handle; the others are logged and dropped. tracer starts no
/// other process of its own once a run starts (`ldconfig -p` runs while
/// planning), so no status meant for someone else is taken.
///
/// Not `PR_SET_CHILD_SUBREAPER`: that would also make every orphan in CMD's
/// tree tracer's, so their `getppid()` would change from what they see
/// untraced; strace does not do it either. The run itself still lasts until
/// every traced process is gone (`Run::wait`), reaped or not.
pub fn wait_child(pid: libc::pid_t) -> tokio::task::JoinHandle<i32> {
    tokio::task::spawn_blocking(move || {
        let status = reap_until(Some(pid));
        // What CMD handed over and is still running is reaped as it ends.
        let _ = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(|| reap_until(None));
        status
    })
}

/// `waitpid(-1, __WALL)` until `until` is reaped (its status), or until
/// tracer has no child left (0).
fn reap_until(until: Option<libc::pid_t>) -> i32 {
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return 0;
        }
        if Some(r) == until {
            return status;
        }
        log::debug!(
            "reaped pid {r}, a child handed to tracer (exit code {})",
            super::proc::exit_code_of(status)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_a_shell() {
        let p = resolve(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(p.ends_with("sh"));
        let e = resolve(OsStr::new("no-such-cmd-xyz"), Some(OsStr::new("/bin"))).unwrap_err();
        assert!(e.to_string().contains("command not found"), "{e}");
        let e = resolve(OsStr::new("/etc/hostname-nope"), None).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let e = resolve(OsStr::new("/etc/passwd"), None).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
        let e = resolve(OsStr::new("/etc"), None).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn users_with_their_groups() {
        let root = credentials("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "{root:?}");
        assert_eq!(credentials("0").unwrap(), root);
        let e = credentials("no-such-user-xyz").unwrap_err().to_string();
        assert_eq!(e, "--user no-such-user-xyz: no such user");
    }
}
