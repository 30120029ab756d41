//! Launching the traced command so that counting starts exactly at its execve.
//!
//! The child is forked after the programs are attached. Before anything else it
//! adds its own pid to the kernel's traced set with one bpf() call (whose entry
//! was not traced yet, and whose exit has no recorded entry, so it is not
//! counted); its next syscall is the execve of CMD, which is counted.
use std::{
    ffi::{CString, OsStr, OsString},
    os::{
        fd::RawFd,
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

/// A command resolved and ready to run: argv and envp prepared before fork, so
/// the child only makes async-signal-safe calls.
pub struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    pub display: String,
}

/// Find `cmd[0]` like a shell would (PATH search unless it contains a slash) and
/// check it can be executed, so a typo fails before anything is traced.
pub fn prepare(cmd: &[OsString]) -> Result<Prepared> {
    let Some(prog) = cmd.first() else {
        bail!("no command given after --");
    };
    let path = resolve(prog, std::env::var_os("PATH").as_deref())?;
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).context("argument contains a NUL byte");
    let argv = cmd.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).context("environment contains a NUL byte")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        path: cstr(path.as_os_str())?,
        argv,
        envp,
        display: cmd
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    })
}

/// `prepare` for a command that may be absent (no `-- CMD` given).
pub fn prepare_opt(cmd: &[OsString]) -> Result<Option<Prepared>> {
    if cmd.is_empty() {
        Ok(None)
    } else {
        prepare(cmd).map(Some)
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

/// The raw layout of `union bpf_attr` for BPF_MAP_UPDATE_ELEM.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

/// Fork and exec `cmd`; the child first inserts its pid into the `u32 -> u8`
/// hash map `traced_fd`. Returns the child's pid. Exec errors come back as Err.
pub fn spawn_traced(cmd: &Prepared, traced_fd: RawFd) -> Result<libc::pid_t> {
    let mut argv: Vec<*const libc::c_char> = cmd.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cmd.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Reports the child's failure (errno, and which step) through a CLOEXEC pipe.
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    let (rd, wr) = (fds[0], fds[1]);
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(e).context("fork");
    }
    if pid == 0 {
        // Child: async-signal-safe calls only.
        unsafe {
            let me: u32 = libc::getpid() as u32;
            let one: u8 = 1;
            let attr = MapElemAttr {
                map_fd: traced_fd as u32,
                _pad: 0,
                key: &me as *const u32 as u64,
                value: &one as *const u8 as u64,
                flags: 0,
            };
            let step: u8;
            if libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &attr as *const MapElemAttr,
                std::mem::size_of::<MapElemAttr>() as libc::c_uint,
            ) != 0
            {
                step = 1;
            } else {
                libc::execve(cmd.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                step = 2;
            }
            let errno = *libc::__errno_location();
            let msg = [step, errno as u8, (errno >> 8) as u8];
            libc::write(wr, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    unsafe { libc::close(wr) };
    let mut msg = [0u8; 3];
    let n = loop {
        let n = unsafe { libc::read(rd, msg.as_mut_ptr().cast(), msg.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    unsafe { libc::close(rd) };
    if n == msg.len() as isize {
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let err = std::io::Error::from_raw_os_error(i32::from(msg[1]) | (i32::from(msg[2]) << 8));
        match msg[0] {
            1 => bail!("could not add the child to the traced set: {err}"),
            _ => bail!("cannot run `{}`: {err}", cmd.display),
        }
    }
    Ok(pid)
}

/// Reap `pid` on a blocking thread; resolves to its wait status.
pub fn wait_child(pid: libc::pid_t) -> tokio::task::JoinHandle<i32> {
    tokio::task::spawn_blocking(move || {
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
    })
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
}
