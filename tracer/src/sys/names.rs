//! Syscall and errno names for the running architecture (from the `syscalls`
//! crate, and [`NEWER`] for what its table does not have yet).
use syscalls::{Errno, Sysno};

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

/// The name of syscall `nr`; a number without one is written as strace
/// writes it (`syscall_0x3e8` for 1000: `syscall_%#lx`), one word, so the
/// tables keep their columns.
pub fn syscall_name(nr: u32) -> String {
    match Sysno::new(nr as usize) {
        Some(s) => s.name().to_string(),
        None => match NEWER.iter().find(|(n, _)| *n == nr) {
            Some((_, name)) => name.to_string(),
            None => format!("syscall_{nr:#x}"),
        },
    }
}

/// Every syscall of this architecture: (name, number).
pub fn all() -> impl Iterator<Item = (&'static str, u32)> {
    Sysno::iter()
        .map(|s| (s.name(), s.id() as u32))
        .chain(NEWER.iter().map(|&(nr, name)| (name, nr)))
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

/// The number of a syscall given by name, or an error suggesting the closest names.
pub fn syscall_number(name: &str) -> Result<u32, UnknownSyscall> {
    let name = name.trim();
    if let Ok(s) = name.parse::<Sysno>() {
        return Ok(s.id() as u32);
    }
    if let Some(&(nr, _)) = NEWER.iter().find(|(_, n)| *n == name) {
        return Ok(nr);
    }
    // A number without a name, as tracer shows it (`syscall_0x3e8`).
    if let Some(nr) = name
        .strip_prefix("syscall_0x")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .filter(|&nr| syscall_name(nr) == name)
    {
        return Ok(nr);
    }
    let candidates: Vec<&'static str> = all().map(|(n, _)| n).collect();
    Err(UnknownSyscall {
        name: name.to_string(),
        suggestions: closest(name, &candidates, 3),
    })
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

    #[test]
    fn names_round_trip() {
        let nr = syscall_number("openat").unwrap();
        assert_eq!(syscall_name(nr), "openat");
        assert_eq!(syscall_name(Sysno::getppid.id() as u32), "getppid");
    }

    /// As strace writes a number it has no name for (`syscall_%#lx`).
    #[test]
    fn unknown_numbers_as_strace_writes_them() {
        assert_eq!(syscall_name(1000), "syscall_0x3e8");
        assert_eq!(syscall_name(100_000), "syscall_0x186a0");
        assert_eq!(syscall_name(u32::MAX), "syscall_0xffffffff");
        // Each can be given back by that name (to -e), and only that way.
        assert_eq!(syscall_number("syscall_0x3e8"), Ok(1000));
        assert!(syscall_number("syscall_0x3E8").is_err());
        assert!(syscall_number("syscall_0x03e8").is_err());
        assert!(syscall_number("syscall_1000").is_err());
        #[cfg(target_arch = "x86_64")]
        assert!(syscall_number("syscall_0x0").is_err(), "0 is read");
        // A gap in the middle of the table, and the first number after it.
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(syscall_name(400), "syscall_0x190");
            assert_eq!(syscall_name(472), "syscall_0x1d8");
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
                closest("opnat", &all().map(|(n, _)| n).collect::<Vec<_>>(), 3).join(", ")
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
