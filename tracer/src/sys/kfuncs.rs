//! Kernel functions: which can be traced (tracefs `available_filter_functions`,
//! or kallsyms), matching names and globs against them, and turning addresses
//! back into `function+0xoff`.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::Result;

use super::names::{closest, did_you_mean};

/// Names listed in `available_filter_functions` (`name` or `name [module]`,
/// possibly repeated for static functions of the same name), deduplicated.
pub fn parse_filter_functions(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Function names from a kallsyms text: text symbols (`t`/`T`), without the
/// compiler's split parts (`.cold`, `.isra.0`, ...), which cannot be probed by name.
pub fn kallsyms_functions(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            (matches!(kind, "t" | "T") && !name.contains('.')).then(|| name.to_string())
        })
        .collect()
}

/// Where the list of traceable functions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Tracefs,
    Kallsyms,
}

/// The functions the kernel can trace, from tracefs, or all function symbols of
/// kallsyms when tracefs cannot be read (then some may fail to attach).
pub fn traceable(tracefs: Option<&Path>) -> Result<(BTreeSet<String>, Source)> {
    if let Some(t) = tracefs {
        if let Ok(text) = std::fs::read_to_string(t.join("available_filter_functions")) {
            let set = parse_filter_functions(&text);
            if !set.is_empty() {
                return Ok((set, Source::Tracefs));
            }
        }
    }
    let text = std::fs::read_to_string("/proc/kallsyms").map_err(|e| {
        anyhow::anyhow!("cannot read /proc/kallsyms ({e}) nor the tracefs function list")
    })?;
    Ok((kallsyms_functions(&text), Source::Kallsyms))
}

/// The glob `pat` (`*` any run, `?` one character; brackets are plain
/// characters here) for the `glob` crate.
fn kernel_glob(pat: &str) -> glob::Pattern {
    let mut g = String::new();
    for c in pat.chars() {
        match c {
            // `**` means `*` here; the crate takes it for a path component.
            '*' if g.ends_with('*') => {}
            '[' => g.push_str("[[]"),
            ']' => g.push_str("[]]"),
            c => g.push(c),
        }
    }
    glob::Pattern::new(&g).expect("only `*` and `?` are special")
}

pub fn is_glob(pat: &str) -> bool {
    pat.contains(['*', '?'])
}

/// A pattern of `resolve` that names no traceable kernel function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownFunction {
    #[error("no traceable kernel function matches `{0}`")]
    NoMatch(String),
    /// In kallsyms, so it exists, but not in the traceable list.
    #[error(
        "kernel function `{0}` exists (in /proc/kallsyms) but cannot be traced: it is \
         marked notrace, is on the kprobe blocklist or is only called inlined"
    )]
    NotTraceable(String),
    #[error("no kernel function named `{name}`{}", did_you_mean(.suggestions))]
    NoSuchFunction {
        name: String,
        suggestions: Vec<String>,
    },
}

/// The functions matching `patterns`, sorted; an error naming the pattern that
/// matched nothing, with close names, or saying the function exists but cannot
/// be traced (`kallsyms` holds every function symbol of the kernel).
pub fn resolve(
    patterns: &[String],
    traceable: &BTreeSet<String>,
    kallsyms: &BTreeSet<String>,
) -> Result<Vec<String>, UnknownFunction> {
    let mut out = BTreeSet::new();
    for pat in patterns {
        let before = out.len();
        if is_glob(pat) {
            let g = kernel_glob(pat);
            out.extend(traceable.iter().filter(|n| g.matches(n)).cloned());
        } else if traceable.contains(pat) {
            out.insert(pat.clone());
        }
        if out.len() > before || (!is_glob(pat) && out.contains(pat)) {
            continue;
        }
        if is_glob(pat) {
            return Err(UnknownFunction::NoMatch(pat.clone()));
        }
        if kallsyms.contains(pat) {
            return Err(UnknownFunction::NotTraceable(pat.clone()));
        }
        let names: Vec<&str> = traceable.iter().map(String::as_str).collect();
        return Err(UnknownFunction::NoSuchFunction {
            name: pat.clone(),
            suggestions: closest(pat, &names, 3)
                .into_iter()
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(out.into_iter().collect())
}

/// `function+0xoff` for a kernel address, using kallsyms (`addr -> name`).
pub fn symbolize(syms: &BTreeMap<u64, String>, addr: u64) -> String {
    match syms.range(..=addr).next_back() {
        Some((start, name)) if addr - start < 1 << 20 => {
            if addr == *start {
                name.clone()
            } else {
                format!("{name}+{:#x}", addr - start)
            }
        }
        _ => format!("{addr:#x}"),
    }
}

/// The function an address reported by `bpf_get_func_ip` belongs to: the
/// nearest symbol at or below it (with IBT a kprobe reports the address past
/// the function's 4-byte `endbr`).
pub fn function_of(syms: &BTreeMap<u64, String>, addr: u64) -> String {
    match syms.range(..=addr).next_back() {
        Some((start, name)) if addr - start < 64 => name.clone(),
        _ => format!("{addr:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_match(pat: &str, name: &str) -> bool {
        kernel_glob(pat).matches(name)
    }

    #[test]
    fn globs() {
        assert!(glob_match("vfs_*", "vfs_read"));
        assert!(glob_match("tcp_*send*", "tcp_sendmsg_locked"));
        assert!(glob_match("*read", "vfs_read"));
        assert!(glob_match("vfs_rea?", "vfs_read"));
        assert!(!glob_match("vfs_*", "do_vfs_read"));
        assert!(!glob_match("vfs_rea?", "vfs_readv"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("a**[b]?", "axx[b]]"));
        assert!(!glob_match("a[b]", "ab"));
    }

    #[test]
    fn parses_lists() {
        let f = parse_filter_functions("vfs_read\nvfs_write\nfoo [mod]\nvfs_read\n");
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            ["foo", "vfs_read", "vfs_write"]
        );
        let k = kallsyms_functions(
            "ffffffff81000000 T _stext\nffffffff81001000 t helper.cold\nffffffff81002000 D data\n\
             ffffffff81003000 t vfs_x [ext4]\n",
        );
        assert_eq!(k.into_iter().collect::<Vec<_>>(), ["_stext", "vfs_x"]);
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolves_patterns() {
        let tr = set(&["vfs_read", "vfs_write", "ksys_read", "tcp_sendmsg"]);
        let mut all = tr.clone();
        all.insert("rcu_nmi_enter".into());
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = |v: &[&str]| resolve(&p(v), &tr, &all).unwrap_err().to_string();
        assert_eq!(
            resolve(&p(&["vfs_*", "ksys_read"]), &tr, &all).unwrap(),
            ["ksys_read", "vfs_read", "vfs_write"]
        );
        let e = err(&["vfs_raed"]);
        assert!(
            e.contains("no kernel function named `vfs_raed`")
                && e.contains("did you mean vfs_read"),
            "{e}"
        );
        let e = err(&["rcu_nmi_enter"]);
        assert!(
            e.contains("exists") && e.contains("cannot be traced"),
            "{e}"
        );
        let e = err(&["zzz_*"]);
        assert!(
            e.contains("no traceable kernel function matches `zzz_*`"),
            "{e}"
        );
        assert_eq!(
            err(&["rcu_nmi_enter"]),
            "kernel function `rcu_nmi_enter` exists (in /proc/kallsyms) but cannot be traced: \
             it is marked notrace, is on the kprobe blocklist or is only called inlined"
        );
        assert!(matches!(
            resolve(&p(&["vfs_raed"]), &tr, &all),
            Err(UnknownFunction::NoSuchFunction { name, suggestions })
                if name == "vfs_raed" && suggestions.contains(&"vfs_read".to_string())
        ));
        assert_eq!(
            UnknownFunction::NoSuchFunction {
                name: "x".into(),
                suggestions: vec![]
            }
            .to_string(),
            "no kernel function named `x`"
        );
    }

    #[test]
    fn symbols() {
        let mut s = BTreeMap::new();
        s.insert(0x1000, "vfs_read".to_string());
        s.insert(0x1200, "ksys_read".to_string());
        assert_eq!(symbolize(&s, 0x1000), "vfs_read");
        assert_eq!(symbolize(&s, 0x1234), "ksys_read+0x34");
        assert_eq!(symbolize(&s, 0x10), "0x10");
        assert_eq!(function_of(&s, 0x1004), "vfs_read");
        assert_eq!(function_of(&s, 0x1100), "0x1100");
    }
}
