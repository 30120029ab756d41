//! Syscall and errno names for the running architecture (from the `syscalls`
//! crate), and for the other ABIs its kernel runs (i386 and x32 on x86_64).
//! A syscall is known by its index in tracer's tables (`tracer_common::abi`):
//! its ABI's block plus its number in that ABI. [`NEWER`] holds what the
//! crate's native table does not have yet.
use syscalls::{Errno, Sysno};
use tracer_common::{abi, syscall_index, SYSCALL_NRS};

/// The ABI a syscall was made through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    /// The kernel's own: x86_64 (or aarch64).
    #[default]
    Native,
    /// i386: 32-bit programs, `int $0x80`.
    I386,
    /// x32: x86_64 code with 32-bit pointers.
    X32,
}

impl Abi {
    pub const ALL: [Abi; 3] = [Abi::Native, Abi::I386, Abi::X32];

    /// The ABI of table index `index`, and the call's number in it.
    pub fn of(index: u32) -> (Abi, u32) {
        if index >= tracer_common::MAX_SYSCALLS {
            return (Abi::Native, index);
        }
        let nr = index % SYSCALL_NRS;
        match index / SYSCALL_NRS {
            abi::I386 => (Abi::I386, nr),
            abi::X32 => (Abi::X32, nr),
            _ => (Abi::Native, nr),
        }
    }

    /// The table index of this ABI's syscall `nr`.
    pub fn index(self, nr: u32) -> u32 {
        let block = match self {
            Abi::Native => abi::NATIVE,
            Abi::I386 => abi::I386,
            Abi::X32 => abi::X32,
        };
        syscall_index(block, nr)
    }

    /// Its name in JSON and metrics: `x86_64` (the architecture), `i386`, `x32`.
    pub fn name(self) -> &'static str {
        match self {
            Abi::Native => std::env::consts::ARCH,
            Abi::I386 => "i386",
            Abi::X32 => "x32",
        }
    }

    /// strace's personality suffix (`-e trace=getpid@32`): `64`, `32`, `x32`.
    pub fn suffix(self) -> &'static str {
        match self {
            Abi::Native => "64",
            Abi::I386 => "32",
            Abi::X32 => "x32",
        }
    }

    pub fn is_native(self) -> bool {
        self == Abi::Native
    }
}

/// The name of a number no table knows, as strace writes it (`syscall_0x3e8`
/// for 1000: `syscall_%#lx`), one word, so the tables keep their columns.
fn unknown(nr: u32) -> String {
    format!("syscall_{nr:#x}")
}

/// Syscalls newer than the `syscalls` crate's table (0.8.1, the newest
/// release, stops at 469, `file_setattr`, which is also the last one Linux
/// 6.18 has), with their numbers from the kernel's syscall tables: `listns`
/// came with 6.19, `rseq_slice_yield` after it. They have the same numbers in
/// x86_64's syscall_64.tbl and in the generic table that arm64 and riscv use.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
const NEWER: &[(u32, &str)] = &[(470, "listns"), (471, "rseq_slice_yield")];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const NEWER: &[(u32, &str)] = &[];

/// The syscalls only x32 has: x32's own numbers (512..=547) for calls whose
/// arguments differ from x86_64's (arch/x86/entry/syscalls/syscall_64.tbl).
const X32_ONLY: [&str; 36] = [
    "rt_sigaction",
    "rt_sigreturn",
    "ioctl",
    "readv",
    "writev",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "execve",
    "ptrace",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "sigaltstack",
    "timer_create",
    "mq_notify",
    "kexec_load",
    "waitid",
    "set_robust_list",
    "get_robust_list",
    "vmsplice",
    "move_pages",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "recvmmsg",
    "sendmmsg",
    "process_vm_readv",
    "process_vm_writev",
    "setsockopt",
    "getsockopt",
    "io_setup",
    "io_submit",
    "execveat",
    "preadv2",
    "pwritev2",
];

/// The first of x32's own numbers.
const X32_ONLY_FIRST: u32 = 512;

/// The name of syscall `nr` of ABI `abi`, if it has one.
fn name_in(abi: Abi, nr: u32) -> Option<&'static str> {
    match abi {
        Abi::Native => Sysno::new(nr as usize)
            .map(|s| s.name())
            .or_else(|| NEWER.iter().find(|(n, _)| *n == nr).map(|(_, name)| *name)),
        // 17, never implemented: the crate leaves it out, strace calls it `break`.
        Abi::I386 if nr == 17 => Some("break"),
        Abi::I386 => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
        Abi::X32 => match nr.checked_sub(X32_ONLY_FIRST) {
            Some(i) => X32_ONLY.get(i as usize).copied(),
            // x86_64's numbers, but for its 64-bit-only ones (x32 has them at 512 and up).
            None if cfg!(target_arch = "x86_64") => Sysno::new(nr as usize)
                .map(|s| s.name())
                .filter(|n| !X32_ONLY.contains(n)),
            None => None,
        },
    }
}

/// Every syscall of this architecture's own ABI: (name, number).
pub fn all() -> impl Iterator<Item = (&'static str, u32)> {
    all_in(Abi::Native).into_iter().map(|(nr, name)| (name, nr))
}

/// Every (number, name) of ABI `abi`.
fn all_in(abi: Abi) -> Vec<(u32, &'static str)> {
    match abi {
        Abi::Native => Sysno::iter()
            .map(|s| (s.id() as u32, s.name()))
            .chain(NEWER.iter().copied())
            .collect(),
        Abi::I386 if cfg!(target_arch = "x86_64") => syscalls::x86::Sysno::iter()
            .map(|s| (s.id() as u32, s.name()))
            .chain([(17, "break")])
            .collect(),
        Abi::X32 if cfg!(target_arch = "x86_64") => (0..X32_ONLY_FIRST + X32_ONLY.len() as u32)
            .filter_map(|nr| name_in(abi, nr).map(|n| (nr, n)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The name of the syscall at table index `index` (its ABI's name for its
/// number), or `syscall_0x3e8` as strace writes a number without one.
pub fn syscall_name(index: u32) -> String {
    let (abi, nr) = Abi::of(index);
    match name_in(abi, nr) {
        Some(n) => n.to_string(),
        None => unknown(nr),
    }
}

/// A syscall name this architecture does not have, with the closest names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown syscall `{name}` on {}{}",
    std::env::consts::ARCH,
    did_you_mean(.suggestions)
)]
pub struct UnknownSyscall {
    pub name: String,
    pub suggestions: Vec<&'static str>,
}

/// `; did you mean A, B?` for the close names, nothing without any.
pub fn did_you_mean<S: std::borrow::Borrow<str>>(close: &[S]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

/// The table indexes of the syscall named `name` in each ABI that has it
/// (`-e getpid`: native, i386 and x32 getpid), or, with strace's suffix, in
/// one ABI (`getpid@32`, `getpid@64`, `getpid@x32`). A name only another ABI
/// has (`socketcall`) is taken too. Errors suggest the closest names.
pub fn syscall_indexes(name: &str) -> Result<Vec<u32>, UnknownSyscall> {
    let name = name.trim();
    let (bare, only) = match name.rsplit_once('@') {
        Some((b, sfx)) => match Abi::ALL.into_iter().find(|a| a.suffix() == sfx) {
            Some(a) => (b, Some(a)),
            None => (name, None),
        },
        None => (name, None),
    };
    let mut out = Vec::new();
    let mut candidates: Vec<&'static str> = Vec::new();
    for abi in Abi::ALL
        .into_iter()
        .filter(|a| only.is_none_or(|o| o == *a))
    {
        for (nr, n) in all_in(abi) {
            if n == bare {
                out.push(abi.index(nr));
            }
            candidates.push(n);
        }
    }
    // A number without a name, as tracer shows it (`syscall_0x3e8`), in each
    // ABI where it has none.
    if out.is_empty() {
        if let Some(nr) = bare
            .strip_prefix("syscall_0x")
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .filter(|&nr| unknown(nr) == bare && nr < SYSCALL_NRS)
        {
            for abi in Abi::ALL
                .into_iter()
                .filter(|a| only.is_none_or(|o| o == *a))
            {
                if name_in(abi, nr).is_none() {
                    out.push(abi.index(nr));
                }
            }
        }
    }
    if out.is_empty() {
        candidates.sort_unstable();
        candidates.dedup();
        return Err(UnknownSyscall {
            name: name.to_string(),
            suggestions: closest(bare, &candidates, 3),
        });
    }
    Ok(out)
}

/// `ENOENT` for 2; the number itself when the errno is unknown.
pub fn errno_name(errno: u32) -> String {
    Errno::new(errno as i32)
        .name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("E{errno}"))
}

/// The `max` names closest to `word` by edit distance (Levenshtein, from `strsim`;
/// prefix/substring matches first), only those close enough to be plausible.
pub fn closest<'a>(word: &str, names: &[&'a str], max: usize) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &'a str)> = names
        .iter()
        .map(|n| {
            let d = strsim::levenshtein(word, n);
            let bonus = usize::from(!(n.contains(word) || word.contains(n)));
            (d * 2 + bonus, *n)
        })
        .filter(|(score, n)| *score <= (word.len().max(n.len()) / 2).max(2) * 2 + 1)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(max).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first index of a name: its native number where it has one.
    fn syscall_number(name: &str) -> Result<u32, UnknownSyscall> {
        syscall_indexes(name).map(|v| v[0])
    }

    #[test]
    fn names_round_trip() {
        let nr = syscall_number("openat").unwrap();
        assert_eq!(syscall_name(nr), "openat");
        assert_eq!(syscall_name(Sysno::getppid.id() as u32), "getppid");
        assert_eq!(syscall_name(100_000), "syscall_0x186a0");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn abis_have_their_own_names_and_numbers() {
        // i386 getpid is 20, where x86_64 has writev.
        assert_eq!(syscall_name(Abi::I386.index(20)), "getpid");
        assert_eq!(syscall_name(Abi::Native.index(20)), "writev");
        assert_eq!(syscall_name(Abi::I386.index(102)), "socketcall");
        assert_eq!(syscall_name(Abi::I386.index(192)), "mmap2");
        assert_eq!(syscall_name(Abi::X32.index(39)), "getpid");
        assert_eq!(syscall_name(Abi::X32.index(512)), "rt_sigaction");
        assert_eq!(syscall_name(Abi::X32.index(547)), "pwritev2");
        assert_eq!(syscall_name(Abi::X32.index(548)), "syscall_0x224");
        assert_eq!(syscall_name(Abi::I386.index(1000)), "syscall_0x3e8");
        assert_eq!(Abi::of(Abi::I386.index(20)), (Abi::I386, 20));
        assert_eq!(Abi::of(Abi::X32.index(5)), (Abi::X32, 5));
        assert_eq!(Abi::of(5), (Abi::Native, 5));
        // -e: the name in every ABI that has it, or in one.
        let getpid = [39, Abi::I386.index(20), Abi::X32.index(39)];
        assert_eq!(syscall_indexes("getpid").unwrap(), getpid);
        assert_eq!(syscall_indexes("getpid@32").unwrap(), [getpid[1]]);
        assert_eq!(syscall_indexes("getpid@64").unwrap(), [39]);
        assert_eq!(syscall_indexes("getpid@x32").unwrap(), [getpid[2]]);
        assert_eq!(
            syscall_indexes("socketcall").unwrap(),
            [Abi::I386.index(102)]
        );
        assert_eq!(
            syscall_indexes("rt_sigaction").unwrap(),
            [13, Abi::I386.index(174), Abi::X32.index(512)]
        );
        let e = syscall_indexes("socketcall@64").unwrap_err().to_string();
        assert!(e.contains("unknown syscall `socketcall@64`"), "{e}");
        let e = syscall_indexes("getpd").unwrap_err().to_string();
        assert!(e.contains("did you mean getpid"), "{e}");
    }

    /// As strace writes a number it has no name for (`syscall_%#lx`).
    #[test]
    fn unknown_numbers_as_strace_writes_them() {
        assert_eq!(syscall_name(1000), "syscall_0x3e8");
        // Each can be given back by that name (to -e), and only that way.
        assert_eq!(syscall_number("syscall_0x3e8"), Ok(1000));
        assert!(syscall_number("syscall_0x3E8").is_err());
        assert!(syscall_number("syscall_0x03e8").is_err());
        assert!(syscall_number("syscall_1000").is_err());
        #[cfg(target_arch = "x86_64")]
        {
            assert!(syscall_number("syscall_0x0").is_err(), "0 is read");
            // A gap in the middle of the table, and the first number after it.
            assert_eq!(syscall_name(400), "syscall_0x190");
            assert_eq!(syscall_name(472), "syscall_0x1d8");
            // In each ABI where the number has no name.
            assert_eq!(
                syscall_indexes("syscall_0x3e8").unwrap(),
                [1000, Abi::I386.index(1000), Abi::X32.index(1000)]
            );
            assert_eq!(
                syscall_indexes("syscall_0x3e8@32").unwrap(),
                [Abi::I386.index(1000)]
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn newer_than_the_crate() {
        // The crate's last, and the kernel's next (syscall_64.tbl).
        assert_eq!(syscall_name(469), "file_setattr");
        assert_eq!(syscall_name(470), "listns");
        assert_eq!(syscall_number("listns"), Ok(470));
        assert_eq!(syscall_name(471), "rseq_slice_yield");
        assert!(all().any(|(n, nr)| (n, nr) == ("listns", 470)));
        let mut numbers: Vec<u32> = all().map(|(_, nr)| nr).collect();
        let len = numbers.len();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), len, "a number named twice");
        assert!(!syscall_number("listn").unwrap_err().suggestions.is_empty());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers() {
        assert_eq!(syscall_number("read"), Ok(0));
        assert_eq!(syscall_number("geteuid"), Ok(107));
        assert_eq!(syscall_name(231), "exit_group");
    }

    #[test]
    fn unknown_name_suggests() {
        let err = syscall_number("opnat").unwrap_err().to_string();
        assert!(err.contains("unknown syscall `opnat`"), "{err}");
        assert!(err.contains("openat"), "{err}");
        let err = syscall_number("getpid2").unwrap_err().to_string();
        assert!(err.contains("getpid"), "{err}");
        let err = syscall_number("zzzzzzzzzzzzzzzzzz")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("did you mean"), "{err}");
        assert_eq!(
            syscall_number(" zzzzzzzzzzzzzzzzzz ").unwrap_err(),
            UnknownSyscall {
                name: "zzzzzzzzzzzzzzzzzz".into(),
                suggestions: vec![]
            }
        );
        // How cmd/syscalls.rs and cmd/trace.rs call it.
        let e = syscall_number("opnat").map_err(anyhow::Error::msg);
        assert_eq!(
            e.unwrap_err().to_string(),
            format!(
                "unknown syscall `opnat` on {}; did you mean {}?",
                std::env::consts::ARCH,
                syscall_indexes("opnat").unwrap_err().suggestions.join(", ")
            )
        );
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(13), "EACCES");
        assert_eq!(errno_name(4000), "E4000");
    }
}
