//! `tracer info` as text and JSON.
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: &'static str,
    pub available: bool,
    /// Why not, when not available.
    pub reason: Option<String>,
}

/// How one command works on this kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandPath {
    pub command: &'static str,
    pub works: bool,
    /// The path it takes (when it works) or would take.
    pub path: String,
    /// A fallback for an older kernel (or one TRACER_FALLBACK forced).
    pub fallback: bool,
    /// What is missing for it to work, or for its fast path, and which kernel
    /// or config option brings it.
    pub missing: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub kernel: String,
    pub btf: bool,
    pub tracefs: String,
    /// How tracer numbers processes (its PID namespace's numbers).
    pub pid_namespace: String,
    pub features: Vec<Feature>,
    pub commands: Vec<CommandPath>,
}

/// What `tracer info` found out about tracefs.
#[derive(Debug)]
pub enum Tracefs {
    /// Mounted at this path before tracer ran.
    Mounted(String),
    /// Not mounted; mounting it worked.
    Mountable,
    /// Not mounted; whether it can be was not tried (it needs privileges).
    NotProbed,
    /// Not mounted; mounting it failed.
    Unmountable(anyhow::Error),
}

/// The `tracefs` line's value.
pub fn tracefs(t: &Tracefs) -> String {
    match t {
        Tracefs::Mounted(p) => format!("mounted at {p}"),
        Tracefs::Mountable => "not mounted; mountable (tracer mounts it when needed)".into(),
        Tracefs::NotProbed => "not mounted, and mounting failed: not probed (mounting it to see \
                               needs CAP_SYS_ADMIN and CAP_SYS_CHROOT)"
            .into(),
        Tracefs::Unmountable(e) => format!("not mounted, and mounting failed: {e:#}"),
    }
}

/// A feature line from a probe's outcome: available, or why not.
pub fn feature<E: std::fmt::Display>(name: &'static str, outcome: &Result<(), E>) -> Feature {
    Feature {
        name,
        available: outcome.is_ok(),
        reason: outcome.as_ref().err().map(E::to_string),
    }
}

pub fn text(info: &Info) -> String {
    let btf = if info.btf {
        "yes (/sys/kernel/btf/vmlinux)"
    } else {
        "no"
    };
    let mut out = format!(
        "{:<18} {}\n{:<18} {btf}\n{:<18} {}\n{:<18} {}\n\n",
        "kernel", info.kernel, "BTF", "tracefs", info.tracefs, "PID namespace", info.pid_namespace
    );
    for f in &info.features {
        let state = match (&f.available, &f.reason) {
            (true, _) => "yes".to_string(),
            (false, Some(r)) => format!("no: {r}"),
            (false, None) => "no".to_string(),
        };
        out.push_str(&format!("{:<18} {state}\n", f.name));
    }
    out.push_str("\nCOMMAND     PATH ON THIS KERNEL\n");
    for c in &info.commands {
        let state = match (c.works, c.fallback) {
            (false, _) => "cannot work: ",
            (true, true) => "fallback: ",
            (true, false) => "",
        };
        out.push_str(&format!("{:<11} {state}{}\n", c.command, c.path));
        if let Some(m) = &c.missing {
            out.push_str(&format!("{:<11}   missing: {m}\n", ""));
        }
    }
    out
}

pub fn json(info: &Info) -> String {
    let features: Vec<_> = info
        .features
        .iter()
        .map(|f| json!({"name": f.name, "available": f.available, "reason": f.reason}))
        .collect();
    let commands: Vec<_> = info
        .commands
        .iter()
        .map(|c| {
            json!({"command": c.command, "works": c.works, "path": c.path,
                   "fallback": c.fallback, "missing": c.missing})
        })
        .collect();
    json!({
        "kernel": info.kernel,
        "btf": info.btf,
        "tracefs": info.tracefs,
        "pid_namespace": info.pid_namespace,
        "features": features,
        "commands": commands,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Info {
        Info {
            kernel: "6.18.1".into(),
            btf: true,
            tracefs: "mounted at /sys/kernel/tracing".into(),
            pid_namespace: "the initial one: pids are the kernel's".into(),
            features: vec![
                Feature {
                    name: "raw tracepoints",
                    available: true,
                    reason: None,
                },
                Feature {
                    name: "kprobes",
                    available: false,
                    reason: Some(
                        "this kernel has no kprobe support (CONFIG_KPROBES is not set)".into(),
                    ),
                },
            ],
            commands: vec![
                CommandPath {
                    command: "syscalls",
                    works: true,
                    path: "entry times in a hash map".into(),
                    fallback: true,
                    missing: Some("task storage (Linux 5.11)".into()),
                },
                CommandPath {
                    command: "list",
                    works: true,
                    path: "tracefs".into(),
                    fallback: false,
                    missing: None,
                },
            ],
        }
    }

    #[test]
    fn text_layout() {
        let t = text(&sample());
        assert!(t.starts_with("kernel             6.18.1\n"), "{t}");
        assert!(t.contains("raw tracepoints    yes\n"), "{t}");
        assert!(
            t.ends_with(
                "\nCOMMAND     PATH ON THIS KERNEL\n\
                 syscalls    fallback: entry times in a hash map\n\
                 \x20             missing: task storage (Linux 5.11)\n\
                 list        tracefs\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("kprobes            no: this kernel has no kprobe support"),
            "{t}"
        );
    }

    #[test]
    fn tracefs_states() {
        assert_eq!(
            tracefs(&Tracefs::Mounted("/sys/kernel/tracing".into())),
            "mounted at /sys/kernel/tracing"
        );
        assert_eq!(
            tracefs(&Tracefs::Mountable),
            "not mounted; mountable (tracer mounts it when needed)"
        );
        assert_eq!(
            tracefs(&Tracefs::NotProbed),
            "not mounted, and mounting failed: not probed (mounting it to see needs \
             CAP_SYS_ADMIN and CAP_SYS_CHROOT)"
        );
        let e = anyhow::anyhow!("EPERM").context("mounting tracefs");
        assert_eq!(
            tracefs(&Tracefs::Unmountable(e)),
            "not mounted, and mounting failed: mounting tracefs: EPERM"
        );
    }

    #[test]
    fn features_from_outcomes() {
        assert_eq!(
            feature::<String>("kprobes", &Ok(())),
            Feature {
                name: "kprobes",
                available: true,
                reason: None
            }
        );
        assert_eq!(
            feature("fentry", &Err("no BTF")),
            Feature {
                name: "fentry",
                available: false,
                reason: Some("no BTF".into())
            }
        );
    }

    #[test]
    fn json_fields() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(v["kernel"], "6.18.1");
        assert_eq!(v["btf"], true);
        assert_eq!(v["features"][0]["available"], true);
        assert!(v["features"][0]["reason"].is_null());
        assert_eq!(v["features"][1]["name"], "kprobes");
        assert_eq!(v["features"][1]["available"], false);
    }
}
