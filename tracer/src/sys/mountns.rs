//! Doing something in a throw-away mount namespace, then coming back.
use std::os::fd::AsRawFd as _;

use anyhow::{bail, Result};

/// Run `f` in a private copy of the mount namespace (mounts made there vanish
/// afterwards), then return to the original namespace, root and working
/// directory. Fails without running `f` when the namespace cannot be made or
/// left: without CAP_SYS_ADMIN (unshare, setns) and CAP_SYS_CHROOT (setns,
/// chroot back), or when the process already has threads.
pub fn in_private_mount_ns<T>(f: impl FnOnce() -> T) -> Result<T> {
    use crate::sys::privileges::{has, CAP_SYS_ADMIN, CAP_SYS_CHROOT};
    if !(has(CAP_SYS_ADMIN) && has(CAP_SYS_CHROOT)) {
        bail!("entering and leaving a mount namespace needs CAP_SYS_ADMIN and CAP_SYS_CHROOT");
    }
    // setns() into a mount namespace also resets the root and working
    // directories: keep them to restore afterwards.
    let original = std::fs::File::open("/proc/thread-self/ns/mnt")?;
    let root = std::fs::File::open("/")?;
    let cwd = std::fs::File::open(".")?;
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        bail!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error());
    }
    let private = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } == 0;
    // Only run `f` where its mounts cannot leak to the host.
    let out = private.then(f);
    let back = unsafe {
        libc::setns(original.as_raw_fd(), libc::CLONE_NEWNS) == 0
            && libc::fchdir(root.as_raw_fd()) == 0
            && libc::chroot(c".".as_ptr()) == 0
            && libc::fchdir(cwd.as_raw_fd()) == 0
    };
    if !back {
        // Staying in the private namespace would hide later mounts from a
        // traced command: refuse rather than run in a surprising place.
        eprintln!(
            "tracer: cannot return to the original mount namespace: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    match out {
        Some(v) => Ok(v),
        None => bail!("could not make the mount namespace private"),
    }
}

/// Bind-mount `source` over `target` (inside a private namespace).
pub fn bind(source: &std::ffi::CStr, target: &std::ffi::CStr) -> bool {
    unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comes_back_to_the_same_place() {
        if unsafe { libc::geteuid() } != 0 {
            return; // unit tests may run unprivileged; the e2e tests cover root.
        }
        let cwd = std::env::current_dir().unwrap();
        let ns = std::fs::read_link("/proc/thread-self/ns/mnt").unwrap();
        let inside =
            in_private_mount_ns(|| std::fs::read_link("/proc/thread-self/ns/mnt").unwrap());
        // A multi-threaded test harness cannot unshare; then nothing changed at all.
        if let Ok(inside) = inside {
            assert_ne!(inside, ns);
        }
        assert_eq!(std::fs::read_link("/proc/thread-self/ns/mnt").unwrap(), ns);
        assert_eq!(std::env::current_dir().unwrap(), cwd);
    }
}
