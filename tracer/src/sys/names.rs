//! Syscall and errno names for the running architecture (from the `syscalls` crate).
use syscalls::{Errno, Sysno};

/// The name of syscall `nr`, or `[unknown: nr]` like syscount.
pub fn syscall_name(nr: u32) -> String {
    match Sysno::new(nr as usize) {
        Some(s) => s.name().to_string(),
        None => format!("[unknown: {nr}]"),
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

/// The number of a syscall given by name, or an error suggesting the closest names.
pub fn syscall_number(name: &str) -> Result<u32, UnknownSyscall> {
    let name = name.trim();
    if let Ok(s) = name.parse::<Sysno>() {
        return Ok(s.id() as u32);
    }
    let candidates: Vec<&'static str> = Sysno::iter().map(|s| s.name()).collect();
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
        assert_eq!(syscall_name(100_000), "[unknown: 100000]");
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
                closest(
                    "opnat",
                    &Sysno::iter().map(|s| s.name()).collect::<Vec<_>>(),
                    3
                )
                .join(", ")
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
