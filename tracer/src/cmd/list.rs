//! `tracer list`: what can be traced, one per line.
use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::Sink;
use crate::{
    cli::{ListArgs, ListWhat},
    report::listing,
    sys::{elf, names, tracefs},
};

fn matcher(glob: Option<&str>) -> Result<Option<glob::Pattern>> {
    glob.map(|g| glob::Pattern::new(g).with_context(|| format!("bad glob `{g}`")))
        .transpose()
}

fn keep(m: &Option<glob::Pattern>, name: &str) -> bool {
    m.as_ref().is_none_or(|m| m.matches(name))
}

/// Syscall (name, number) pairs of this architecture, sorted by name.
pub fn syscalls(glob: Option<&glob::Pattern>) -> Vec<(&'static str, u32)> {
    let mut v: Vec<(&'static str, u32)> = names::all()
        .filter(|(n, _)| glob.is_none_or(|g| g.matches(n)))
        .collect();
    v.sort();
    v
}

/// `category:name` of every tracepoint in tracefs's `available_events`, sorted.
pub fn tracepoints(tfs: &std::path::Path) -> Result<Vec<String>> {
    let path = tfs.join("available_events");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(':'))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// `available_filter_functions` lines: `name` or `name [module]`.
pub fn parse_filter_functions(text: &str) -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?.to_string();
            let module = parts.next().map(|m| m.trim_matches(['[', ']']).to_string());
            Some((name, module))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Function symbols (`t`/`T`) of /proc/kallsyms: `addr T name [module]`,
/// without the `__pfx_`/`__cfi_` padding symbols.
pub fn parse_kallsyms(text: &str) -> Vec<(String, Option<String>)> {
    let mut v: Vec<(String, Option<String>)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let _addr = parts.next()?;
            let ty = parts.next()?;
            let name = parts.next()?;
            if !matches!(ty, "t" | "T") || name.starts_with("__pfx_") || name.starts_with("__cfi_")
            {
                return None;
            }
            let module = parts.next().map(|m| m.trim_matches(['[', ']']).to_string());
            Some((name.to_string(), module))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

pub fn run(a: ListArgs, verbose: bool) -> Result<i32> {
    let mut sink = Sink::new(None, false)?;
    let out = match &a.what {
        ListWhat::Syscalls { glob } => {
            let m = matcher(glob.as_deref())?;
            let v = syscalls(m.as_ref());
            if a.json {
                listing::json_lines(
                    &v.iter()
                        .map(|(n, nr)| json!({"name": n, "nr": nr}))
                        .collect::<Vec<_>>(),
                )
            } else {
                listing::lines(&v.iter().map(|(n, _)| *n).collect::<Vec<_>>())
            }
        }
        ListWhat::Tracepoints { glob, fields } => {
            let fields = *fields || verbose;
            let m = matcher(glob.as_deref())?;
            let tfs = tracefs::ensure_mounted()?;
            let names: Vec<String> = tracepoints(&tfs)?
                .into_iter()
                .filter(|n| keep(&m, n))
                .collect();
            let mut text = String::new();
            let mut items = Vec::new();
            for n in &names {
                let (cat, name) = n.split_once(':').unwrap_or((n, ""));
                let fmt = if fields {
                    Some(tracefs::tracepoint_format(&tfs, cat, name)?)
                } else {
                    None
                };
                if a.json {
                    let mut o = json!({"tracepoint": n, "category": cat, "name": name});
                    if let Some(f) = &fmt {
                        o["fields"] = Value::Array(
                            f.iter()
                                .filter(|f| !f.name.starts_with("common_"))
                                .map(listing::field_json)
                                .collect(),
                        );
                    }
                    items.push(o);
                } else if let Some(f) = &fmt {
                    text.push_str(&listing::tracepoint_with_fields(n, f));
                } else {
                    text.push_str(n);
                    text.push('\n');
                }
            }
            if a.json {
                listing::json_lines(&items)
            } else {
                text
            }
        }
        ListWhat::Kprobes { glob } => {
            let m = matcher(glob.as_deref())?;
            let tfs = tracefs::ensure_mounted()?;
            let path = tfs.join("available_filter_functions");
            let funcs = match std::fs::read_to_string(&path) {
                Ok(text) => parse_filter_functions(&text),
                Err(e) => {
                    let kallsyms = std::fs::read_to_string("/proc/kallsyms")
                        .context("cannot read /proc/kallsyms either")?;
                    eprintln!(
                        "tracer: note: cannot read {} ({e}); listing the kernel's function \
                         symbols from /proc/kallsyms instead (some are notrace or inlined \
                         elsewhere and cannot be probed)",
                        path.display()
                    );
                    parse_kallsyms(&kallsyms)
                }
            };
            if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
                eprintln!(
                    "tracer: note: this kernel has no kprobe support (no /sys/bus/event_source/devices/kprobe); \
                     these functions cannot be kprobed here"
                );
            }
            let v: Vec<(String, Option<String>)> =
                funcs.into_iter().filter(|(n, _)| keep(&m, n)).collect();
            if a.json {
                listing::json_lines(
                    &v.iter()
                        .map(|(n, m)| json!({"name": n, "module": m}))
                        .collect::<Vec<_>>(),
                )
            } else {
                let mut names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
                names.dedup();
                listing::lines(&names)
            }
        }
        ListWhat::Uprobes { target, glob } => {
            let m = matcher(glob.as_deref())?;
            let path = elf::resolve_target(target, None)?;
            let bin = elf::load(&path)?;
            let mut funcs: Vec<&elf::Func> = bin
                .funcs
                .iter()
                .filter(|f| m.as_ref().is_none_or(|m| f.matches(m)))
                .collect();
            funcs.sort_by(|a, b| (&a.display, &a.name).cmp(&(&b.display, &b.name)));
            if a.json {
                let t = path.display().to_string();
                listing::json_lines(
                    &funcs
                        .iter()
                        .map(|f| json!({"name": f.display, "symbol": f.name, "address": format!("{:#x}", f.address), "size": f.size, "target": t}))
                        .collect::<Vec<_>>(),
                )
            } else {
                let mut names: Vec<&str> = funcs.iter().map(|f| f.display.as_str()).collect();
                names.dedup();
                listing::lines(&names)
            }
        }
    };
    sink.write(&out)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_list() {
        let all = syscalls(None);
        assert_eq!(all.len(), names::all().count());
        assert_eq!(
            all.iter().any(|(n, _)| *n == "listns"),
            cfg!(target_arch = "x86_64")
        );
        assert!(all.iter().any(|(n, _)| *n == "openat"));
        let g = glob::Pattern::new("*stat*").unwrap();
        let some = syscalls(Some(&g));
        assert!(some.iter().all(|(n, _)| n.contains("stat")));
        assert!(some.iter().any(|(n, _)| *n == "fstat"));
    }

    #[test]
    fn kallsyms_functions() {
        let v = parse_kallsyms(
            "ffffffff81000000 T _stext\nffffffff81000010 t __pfx_vfs_read\n\
             ffffffff81000020 T vfs_read\nffffffff82000000 D jiffies\n\
             ffffffffc0000000 t ext4_foo\t[ext4]\n",
        );
        assert_eq!(
            v,
            vec![
                ("_stext".to_string(), None),
                ("ext4_foo".to_string(), Some("ext4".to_string())),
                ("vfs_read".to_string(), None)
            ]
        );
    }

    #[test]
    fn filter_functions() {
        let v = parse_filter_functions("vfs_read\nvfs_write\nfoo [ext4]\nvfs_read\n");
        assert_eq!(
            v,
            vec![
                ("foo".to_string(), Some("ext4".to_string())),
                ("vfs_read".to_string(), None),
                ("vfs_write".to_string(), None)
            ]
        );
    }
}
