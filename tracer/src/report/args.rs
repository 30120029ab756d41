//! Syscall arguments: what each argument of the common calls is, and how to
//! print it the way strace does (paths quoted, open flags as O_* names, ...).
//! Pure functions: the tables are plain data, unit-tested without root.
use std::fmt::Write as _;

use crate::collect::events::Str;

/// How to print one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal (int, long, pid, uid).
    Int,
    /// Unsigned decimal (sizes, counts).
    Uint,
    /// Hexadecimal (flags without names here, masks, addresses given as numbers).
    Hex,
    /// A pointer: hex, NULL for 0.
    Ptr,
    /// A file descriptor.
    Fd,
    /// A directory fd of the *at calls: AT_FDCWD or a number.
    DirFd,
    /// A path string (read by the kernel side).
    Path,
    /// An exec's argv (its first elements read by the kernel side): `["ls", "-l"]`.
    Argv,
    /// open/openat flags: O_RDONLY|O_CLOEXEC.
    OpenFlags,
    /// A file mode, octal.
    Mode,
    /// access/faccessat mode: F_OK or R_OK|W_OK|X_OK.
    AccessMode,
    /// AT_* flags of the *at calls.
    AtFlags,
    /// mmap/mprotect protection: PROT_READ|PROT_WRITE.
    Prot,
    /// mmap flags: MAP_PRIVATE|MAP_ANONYMOUS.
    MapFlags,
}

use Arg::*;

/// Arguments of the calls tracer knows by heart (x86_64 and generic names);
/// the `Path` and `Argv` entries here are exactly the strings the kernel side reads.
pub fn known(name: &str) -> Option<&'static [Arg]> {
    Some(match name {
        "read" | "write" => &[Fd, Ptr, Uint],
        "pread64" | "pwrite64" => &[Fd, Ptr, Uint, Int],
        "readv" | "writev" => &[Fd, Ptr, Int],
        "close" | "fsync" | "fdatasync" | "dup" | "fchdir" => &[Fd],
        "dup2" => &[Fd, Fd],
        "dup3" => &[Fd, Fd, Hex],
        "lseek" => &[Fd, Int, Int],
        "fstat" => &[Fd, Ptr],
        "ioctl" => &[Fd, Hex, Hex],
        "fcntl" => &[Fd, Int, Hex],
        "getdents64" => &[Fd, Ptr, Uint],
        "openat" => &[DirFd, Path, OpenFlags, Mode],
        "open" => &[Path, OpenFlags, Mode],
        "creat" => &[Path, Mode],
        "execve" => &[Path, Argv, Ptr],
        "execveat" => &[DirFd, Path, Argv, Ptr, AtFlags],
        "stat" | "lstat" | "statfs" => &[Path, Ptr],
        "newfstatat" | "fstatat64" => &[DirFd, Path, Ptr, AtFlags],
        "statx" => &[DirFd, Path, AtFlags, Hex, Ptr],
        "access" => &[Path, AccessMode],
        "faccessat" => &[DirFd, Path, AccessMode],
        "faccessat2" => &[DirFd, Path, AccessMode, AtFlags],
        "unlink" | "rmdir" | "chdir" | "chroot" | "acct" => &[Path],
        "unlinkat" => &[DirFd, Path, AtFlags],
        "mkdir" | "chmod" => &[Path, Mode],
        "mkdirat" | "fchmodat" => &[DirFd, Path, Mode],
        "mknod" => &[Path, Mode, Hex],
        "mknodat" => &[DirFd, Path, Mode, Hex],
        "rename" | "link" | "symlink" => &[Path, Path],
        "renameat" => &[DirFd, Path, DirFd, Path],
        "renameat2" => &[DirFd, Path, DirFd, Path, Hex],
        "linkat" => &[DirFd, Path, DirFd, Path, AtFlags],
        "symlinkat" => &[Path, DirFd, Path],
        "readlink" => &[Path, Ptr, Uint],
        "readlinkat" => &[DirFd, Path, Ptr, Uint],
        "chown" | "lchown" => &[Path, Int, Int],
        "fchownat" => &[DirFd, Path, Int, Int, AtFlags],
        "truncate" => &[Path, Int],
        "utimensat" => &[DirFd, Path, Ptr, AtFlags],
        "utimes" | "utime" => &[Path, Ptr],
        "getxattr" | "lgetxattr" => &[Path, Ptr, Ptr, Uint],
        "listxattr" | "llistxattr" => &[Path, Ptr, Uint],
        "getpid" | "getppid" | "gettid" | "getuid" | "geteuid" | "getgid" | "getegid"
        | "sched_yield" | "fork" | "vfork" | "setsid" | "getpgrp" | "pause" | "sync" => &[],
        "exit" | "exit_group" => &[Int],
        "brk" => &[Ptr],
        "mmap" => &[Ptr, Uint, Prot, MapFlags, Fd, Hex],
        "munmap" => &[Ptr, Uint],
        "mprotect" => &[Ptr, Uint, Prot],
        "pipe" => &[Ptr],
        "pipe2" => &[Ptr, Hex],
        "kill" | "tkill" => &[Int, Int],
        "tgkill" => &[Int, Int, Int],
        "wait4" => &[Int, Ptr, Hex, Ptr],
        "nanosleep" => &[Ptr, Ptr],
        "clock_nanosleep" => &[Int, Hex, Ptr, Ptr],
        "clock_gettime" => &[Int, Ptr],
        "uname" | "sysinfo" => &[Ptr],
        "getcwd" => &[Ptr, Uint],
        "socket" => &[Int, Int, Int],
        "connect" | "bind" => &[Fd, Ptr, Uint],
        "getrandom" => &[Ptr, Uint, Hex],
        "set_tid_address" => &[Ptr],
        "set_robust_list" => &[Ptr, Uint],
        "arch_prctl" => &[Hex, Hex],
        "prlimit64" => &[Int, Int, Ptr, Ptr],
        "rt_sigaction" => &[Int, Ptr, Ptr, Uint],
        "rt_sigprocmask" => &[Int, Ptr, Ptr, Uint],
        "futex" => &[Ptr, Int, Int, Ptr, Ptr, Int],
        "clone" => &[Hex, Ptr, Ptr, Ptr, Hex],
        "clone3" => &[Ptr, Uint],
        "poll" => &[Ptr, Uint, Int],
        "rseq" => &[Ptr, Uint, Hex, Hex],
        "bpf" => &[Int, Ptr, Uint],
        _ => return None,
    })
}

/// Calls whose strings cannot be read again at exit: a successful exec has replaced the memory.
pub fn exec_like(name: &str) -> bool {
    matches!(name, "execve" | "execveat")
}

/// Indexes of the string arguments of a call (paths and argv; at most two).
pub fn string_args(sig: &[Arg]) -> Vec<usize> {
    sig.iter()
        .enumerate()
        .filter(|(_, a)| matches!(**a, Path | Argv))
        .map(|(i, _)| i)
        .take(2)
        .collect()
}

/// Arguments of a call from its tracepoint format file
/// (`/sys/kernel/tracing/events/syscalls/sys_enter_NAME/format`): pointers as
/// pointers, the rest as numbers (fd-named ones as fds). No strings: only the
/// calls in `known` have their strings read.
pub fn from_format(format: &str) -> Option<Vec<Arg>> {
    let mut args = Vec::new();
    let mut seen_nr = false;
    for line in format.lines() {
        let Some(field) = line.trim().strip_prefix("field:") else {
            continue;
        };
        let decl = field.split(';').next()?.trim();
        if decl.ends_with("__syscall_nr") {
            seen_nr = true;
            continue;
        }
        if !seen_nr {
            continue;
        }
        let (ty, name) = decl.rsplit_once([' ', '*']).unwrap_or(("", decl));
        let arg = if decl.contains('*') {
            Ptr
        } else if name == "fd" || name.ends_with("fd") && name.len() <= 6 {
            Fd
        } else if ty.contains("unsigned") || ty.contains("size_t") {
            Uint
        } else {
            Int
        };
        args.push(arg);
    }
    seen_nr.then_some(args)
}

/// Append a string like strace: quoted, escaped, `"..."...` when cut.
pub fn quote(out: &mut String, bytes: &[u8], truncated: bool) {
    out.push('"');
    for &b in bytes {
        let _ = match b {
            b'"' => out.write_str("\\\""),
            b'\\' => out.write_str("\\\\"),
            b'\n' => out.write_str("\\n"),
            b'\t' => out.write_str("\\t"),
            b'\r' => out.write_str("\\r"),
            0x20..=0x7e => out.write_char(b as char),
            _ => write!(out, "\\x{b:02x}"),
        };
    }
    out.push_str(if truncated { "\"..." } else { "\"" });
}

// Composite flags (O_SYNC includes O_DSYNC, O_TMPFILE includes O_DIRECTORY) first.
const OPEN_FLAGS: &[(i32, &str)] = &[
    (libc::O_CREAT, "O_CREAT"),
    (libc::O_EXCL, "O_EXCL"),
    (libc::O_NOCTTY, "O_NOCTTY"),
    (libc::O_TRUNC, "O_TRUNC"),
    (libc::O_APPEND, "O_APPEND"),
    (libc::O_NONBLOCK, "O_NONBLOCK"),
    (libc::O_SYNC, "O_SYNC"),
    (libc::O_DSYNC, "O_DSYNC"),
    (libc::O_ASYNC, "O_ASYNC"),
    (libc::O_DIRECT, "O_DIRECT"),
    (libc::O_LARGEFILE, "O_LARGEFILE"),
    (libc::O_TMPFILE, "O_TMPFILE"),
    (libc::O_DIRECTORY, "O_DIRECTORY"),
    (libc::O_NOFOLLOW, "O_NOFOLLOW"),
    (libc::O_NOATIME, "O_NOATIME"),
    (libc::O_CLOEXEC, "O_CLOEXEC"),
    (libc::O_PATH, "O_PATH"),
];

const AT_FLAGS: &[(i32, &str)] = &[
    (libc::AT_SYMLINK_NOFOLLOW, "AT_SYMLINK_NOFOLLOW"),
    (libc::AT_REMOVEDIR, "AT_REMOVEDIR"),
    (libc::AT_SYMLINK_FOLLOW, "AT_SYMLINK_FOLLOW"),
    (libc::AT_NO_AUTOMOUNT, "AT_NO_AUTOMOUNT"),
    (libc::AT_EMPTY_PATH, "AT_EMPTY_PATH"),
    (libc::AT_EACCESS, "AT_EACCESS"),
];

const ACCESS_MODES: &[(i32, &str)] = &[
    (libc::R_OK, "R_OK"),
    (libc::W_OK, "W_OK"),
    (libc::X_OK, "X_OK"),
];

const PROT: &[(i32, &str)] = &[
    (libc::PROT_READ, "PROT_READ"),
    (libc::PROT_WRITE, "PROT_WRITE"),
    (libc::PROT_EXEC, "PROT_EXEC"),
];

const MAP_TYPES: &[(i32, &str)] = &[
    (libc::MAP_SHARED, "MAP_SHARED"),
    (libc::MAP_PRIVATE, "MAP_PRIVATE"),
    (libc::MAP_SHARED_VALIDATE, "MAP_SHARED_VALIDATE"),
];

const MAP_FLAGS: &[(i32, &str)] = &[
    (libc::MAP_FIXED, "MAP_FIXED"),
    (libc::MAP_ANONYMOUS, "MAP_ANONYMOUS"),
    (libc::MAP_32BIT, "MAP_32BIT"),
    (libc::MAP_GROWSDOWN, "MAP_GROWSDOWN"),
    (libc::MAP_DENYWRITE, "MAP_DENYWRITE"),
    (libc::MAP_EXECUTABLE, "MAP_EXECUTABLE"),
    (libc::MAP_LOCKED, "MAP_LOCKED"),
    (libc::MAP_NORESERVE, "MAP_NORESERVE"),
    (libc::MAP_POPULATE, "MAP_POPULATE"),
    (libc::MAP_NONBLOCK, "MAP_NONBLOCK"),
    (libc::MAP_STACK, "MAP_STACK"),
    (libc::MAP_HUGETLB, "MAP_HUGETLB"),
    (libc::MAP_SYNC, "MAP_SYNC"),
    (libc::MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
];

/// `|A|B|0x..`: the flags of `table` set in `rest`, then any other bits in hex.
fn push_bits(out: &mut String, mut rest: i32, table: &[(i32, &str)]) {
    for &(bit, name) in table {
        if bit != 0 && rest & bit == bit {
            let _ = write!(out, "|{name}");
            rest &= !bit;
        }
    }
    if rest != 0 {
        let _ = write!(out, "|{rest:#x}");
    }
}

/// `A|B|0x..`; `zero` when no bit is set.
fn bit_names(out: &mut String, value: u64, table: &[(i32, &str)], zero: &str) {
    match value as u32 as i32 {
        0 => out.push_str(zero),
        v => {
            let start = out.len();
            push_bits(out, v, table);
            out.remove(start); // the leading '|'
        }
    }
}

/// `O_RDONLY|O_CLOEXEC`; unknown bits are appended in hex.
pub fn open_flags(out: &mut String, flags: u64) {
    let flags = flags as u32 as i32;
    out.push_str(match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_ACCMODE",
    });
    push_bits(out, flags & !libc::O_ACCMODE, OPEN_FLAGS);
}

/// `MAP_PRIVATE|MAP_ANONYMOUS`: the mapping type (the low two bits), then flags.
fn map_flags(out: &mut String, flags: u64) {
    let v = flags as u32 as i32;
    let kind = v & 0x3;
    let _ = match MAP_TYPES.iter().find(|(t, _)| *t == kind) {
        Some((_, name)) => out.write_str(name),
        None => write!(out, "{kind:#x}"),
    };
    push_bits(out, v & !0x3, MAP_FLAGS);
}

/// Append one argument. `strs` yields the path strings in order; an
/// unreadable string shows as its address, as strace does.
pub fn push_arg<'a>(
    out: &mut String,
    kind: Arg,
    value: u64,
    strs: &mut impl Iterator<Item = &'a Str>,
) {
    let fd = value as u32 as i32;
    let _ = match kind {
        Int => write!(out, "{}", value as i64),
        Uint => write!(out, "{value}"),
        DirFd if fd == libc::AT_FDCWD => out.write_str("AT_FDCWD"),
        Fd | DirFd => write!(out, "{fd}"),
        Ptr if value == 0 => out.write_str("NULL"),
        Hex | Ptr => write!(out, "{value:#x}"),
        Mode => write!(out, "0{:o}", value as u32),
        OpenFlags => return open_flags(out, value),
        AccessMode => return bit_names(out, value, ACCESS_MODES, "F_OK"),
        AtFlags => return bit_names(out, value, AT_FLAGS, "0"),
        Prot => return bit_names(out, value, PROT, "PROT_NONE"),
        MapFlags => return map_flags(out, value),
        Path | Argv => match strs.next() {
            Some(Str::Read { bytes, truncated }) if kind == Path => {
                return quote(out, bytes, *truncated)
            }
            Some(Str::List { items, cut, more }) if kind == Argv => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    quote(out, item, *cut && i + 1 == items.len());
                }
                if *more {
                    out.push_str(if items.is_empty() { "..." } else { ", ..." });
                }
                out.write_char(']')
            }
            _ => return push_arg(out, Ptr, value, strs),
        },
    };
}

/// Append the arguments of a call, strace style: `AT_FDCWD, "/etc/passwd", O_RDONLY`.
/// The mode of open/openat is shown only when O_CREAT or O_TMPFILE asks for it.
pub fn push_args(out: &mut String, sig: &[Arg], args: &[u64; 6], strs: &[Str]) {
    let mut it = strs.iter().filter(|s| !matches!(s, Str::Missing));
    let mut n = sig.len().min(6);
    if let Some(pos) = sig.iter().position(|a| *a == OpenFlags) {
        let flags = args[pos] as u32 as i32;
        if flags & libc::O_CREAT == 0 && flags & libc::O_TMPFILE != libc::O_TMPFILE {
            n = n.min(pos + 1);
        }
    }
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        push_arg(out, sig[i], args[i], &mut it);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(bytes: &str) -> Str {
        Str::Read {
            bytes: bytes.as_bytes().to_vec(),
            truncated: false,
        }
    }

    /// The arguments of `name` as `push_args` prints them.
    fn text(name: &str, args: [u64; 6], strs: &[Str]) -> String {
        let mut out = String::new();
        push_args(&mut out, known(name).unwrap(), &args, strs);
        out
    }

    /// One argument as `push_arg` prints it.
    fn one(kind: Arg, value: u64) -> String {
        let mut out = String::new();
        push_arg(&mut out, kind, value, &mut [].iter());
        out
    }

    #[test]
    fn openat_like_strace() {
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        assert_eq!(
            text(
                "openat",
                [libc::AT_FDCWD as u32 as u64, 0x1000, flags, 0, 0, 0],
                &[s("/etc/passwd")]
            ),
            r#"AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC"#
        );
        let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
        assert_eq!(
            text("openat", [3, 0x1000, flags, 0o644, 0, 0], &[s("a\"b")]),
            r#"3, "a\"b", O_WRONLY|O_CREAT|O_TRUNC, 0644"#
        );
    }

    #[test]
    fn flags_and_modes() {
        let open = libc::O_RDWR | libc::O_SYNC | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let map = libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_DENYWRITE | 0x4000000;
        for (kind, value, want) in [
            (OpenFlags, open, "O_RDWR|O_SYNC|O_DIRECTORY|O_NOFOLLOW"),
            (
                OpenFlags,
                libc::O_RDWR | libc::O_TMPFILE,
                "O_RDWR|O_TMPFILE",
            ),
            (AccessMode, libc::R_OK | libc::X_OK, "R_OK|X_OK"),
            (AccessMode, 0, "F_OK"),
            (AtFlags, libc::AT_REMOVEDIR, "AT_REMOVEDIR"),
            (
                MapFlags,
                map,
                "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE|0x4000000",
            ),
        ] {
            assert_eq!(one(kind, value as u64), want);
        }
    }

    #[test]
    fn mmap_like_strace() {
        let map = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        assert_eq!(
            text("mmap", [0, 8192, 3, map, u32::MAX as u64, 0], &[]),
            "NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0"
        );
        assert_eq!(
            text("mprotect", [0x1000, 4096, 0, 0, 0, 0], &[]),
            "0x1000, 4096, PROT_NONE"
        );
    }

    #[test]
    fn strings_escaped_and_cut() {
        let mut out = String::new();
        quote(&mut out, b"a\nb\x01", true);
        assert_eq!(out, r#""a\nb\x01"..."#);
        assert_eq!(
            text("unlink", [0x7fff0000, 0, 0, 0, 0, 0], &[Str::Failed(14)]),
            "0x7fff0000"
        );
    }

    #[test]
    fn paths_are_found() {
        assert_eq!(string_args(known("renameat2").unwrap()), vec![1, 3]);
        assert_eq!(string_args(known("openat").unwrap()), vec![1]);
        assert_eq!(string_args(known("execve").unwrap()), vec![0, 1]);
        assert_eq!(string_args(known("execveat").unwrap()), vec![1, 2]);
        assert_eq!(string_args(known("read").unwrap()), Vec::<usize>::new());
    }

    #[test]
    fn argv_like_strace() {
        let list = |items: &[&str], cut, more| Str::List {
            items: items.iter().map(|i| i.as_bytes().to_vec()).collect(),
            cut,
            more,
        };
        let args = [0x1000, 0x2000, 0x3000, 0, 0, 0];
        let ls = list(&["ls", "-la", "/etc"], false, false);
        assert_eq!(
            text("execve", args, &[s("/usr/bin/ls"), ls]),
            r#""/usr/bin/ls", ["ls", "-la", "/etc"], 0x3000"#
        );
        // A cut last element, then elements left out; quotes escaped.
        let sh = list(&["sh", "-c", "echo \"hi"], true, true);
        assert_eq!(
            text("execve", args, &[s("/bin/sh"), sh]),
            r#""/bin/sh", ["sh", "-c", "echo \"hi"..., ...], 0x3000"#
        );
        let empty = list(&[], false, false);
        assert_eq!(
            text("execve", args, &[s("/x"), empty]),
            r#""/x", [], 0x3000"#
        );
        // Unreadable: the address, as strace does.
        let failed = [s("/x"), Str::Failed(14)];
        assert_eq!(text("execve", args, &failed), r#""/x", 0x2000, 0x3000"#);
        assert_eq!(
            text("execve", [0x1000, 0, 0, 0, 0, 0], &failed),
            r#""/x", NULL, NULL"#
        );
    }

    #[test]
    fn format_file_arguments() {
        let fmt = "name: sys_enter_pread64\nID: 1\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\
            \tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n\
            \tfield:loff_t pos;\toffset:40;\tsize:8;\tsigned:0;\n\nprint fmt: \"\"\n";
        assert_eq!(from_format(fmt), Some(vec![Fd, Ptr, Uint, Int]));
        assert_eq!(from_format("nothing"), None);
    }
}
