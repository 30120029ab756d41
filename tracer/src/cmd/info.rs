//! `tracer info`: what this kernel lets tracer do, found by loading and
//! attaching tiny programs for real (like `bpftrace --info`), not by reading
//! the kernel config.
use std::path::Path;

use anyhow::Result;

use tracer_common::{lacks, SLOTS};

use crate::{
    bpf::{compat, features},
    cli::InfoArgs,
    report::info::{self, Feature, Info, Tracefs},
    sys::{mountns, tracefs},
};

/// How the syscall commands tell i386 calls from native ones, or why they
/// cannot (`missing`: then every call counts under its number as a native one).
fn abi_paths(commands: &mut [info::CommandPath], missing: Option<String>) {
    for c in commands
        .iter_mut()
        .filter(|c| matches!(c.command, "syscalls" | "trace" | "serve"))
    {
        match &missing {
            None => c
                .path
                .push_str("; i386 calls told by TS_COMPAT (offset from BTF)"),
            Some(why) if cfg!(target_arch = "x86_64") => {
                c.fallback = true;
                let m = format!("i386 syscalls are counted as x86_64 ones: {why}");
                c.missing = Some(match c.missing.take() {
                    Some(other) => format!("{other}; {m}"),
                    None => m,
                });
            }
            Some(_) => {}
        }
    }
}

/// Which path each command takes here, from the probes' outcomes and what the
/// kernel lacks (`lacks`; `forced`: the part TRACER_FALLBACK forced).
fn paths(features: &[Feature], lacks: u32, forced: u32) -> Vec<info::CommandPath> {
    let has = |name: &str| features.iter().any(|f| f.name == name && f.available);
    let why = |bit: u32, what: &str| {
        if forced & bit != 0 {
            format!("{what} (forced by TRACER_FALLBACK)")
        } else {
            what.to_string()
        }
    };
    let path =
        |command, works, path: String, fallback, missing: Option<String>| info::CommandPath {
            command,
            works,
            path,
            fallback,
            missing,
        };
    let ring = has("ring buffer");
    let no_ring = || Some("BPF ring buffer (Linux 5.8)".to_string());
    let mut out = Vec::new();
    // syscalls: raw tracepoints, entry times per thread.
    let storage = lacks & lacks::TASK_STORAGE != 0;
    out.push(match (has("raw tracepoints"), storage) {
        (false, _) => path(
            "syscalls",
            false,
            "raw tracepoints sys_enter/sys_exit".into(),
            false,
            Some("raw tracepoints (Linux 4.17)".into()),
        ),
        (true, false) => path(
            "syscalls",
            true,
            "raw tracepoints; entry times in task storage".into(),
            false,
            None,
        ),
        (true, true) => path(
            "syscalls",
            true,
            "raw tracepoints; entry times in a hash map keyed by thread".into(),
            true,
            Some(why(lacks::TASK_STORAGE, "task storage (Linux 5.11)")),
        ),
    });
    let streams = has("raw tracepoints") && ring;
    out.push(path(
        "trace",
        streams,
        "raw tracepoints; events through a BPF ring buffer".into(),
        false,
        if ring { None } else { no_ring() },
    ));
    out.push(path(
        "exec",
        has("tracepoints") && ring,
        "tracepoints; events through a BPF ring buffer".into(),
        false,
        if ring { None } else { no_ring() },
    ));
    let cookies = lacks & lacks::COOKIES == 0;
    let by_cookie = |what: &str| {
        if cookies {
            (
                format!("one program, each {what} told by its BPF cookie"),
                false,
                None,
            )
        } else {
            (
                format!("one program copy per {what}, at most {SLOTS} at once"),
                true,
                Some(why(
                    lacks::COOKIES,
                    "BPF cookies and perf-event links (Linux 5.15)",
                )),
            )
        }
    };
    let (p, fallback, missing) = by_cookie("function");
    let works = has("uprobes");
    out.push(path(
        "uprobe",
        works,
        format!("uprobes; {p}"),
        fallback,
        if works {
            missing
        } else {
            Some("uprobes (CONFIG_UPROBE_EVENTS=y)".into())
        },
    ));
    let (p, fallback, missing) = by_cookie("tracepoint");
    out.push(path(
        "tracepoint",
        has("tracepoints"),
        format!("tracepoints; {p}"),
        fallback,
        missing,
    ));
    let func_ip = lacks & lacks::FUNC_IP == 0;
    let (kp, fe) = (has("kprobes"), has("fentry"));
    out.push(match (kp || fe, func_ip) {
        (false, _) => path(
            "kprobe",
            false,
            "kprobes or fentry".into(),
            false,
            Some(
                "kprobes (CONFIG_KPROBES=y) or fentry (CONFIG_DEBUG_INFO_BTF=y, Linux 5.5)".into(),
            ),
        ),
        (true, true) => path(
            "kprobe",
            true,
            format!(
                "{}; functions told by bpf_get_func_ip",
                if fe {
                    "fentry/fexit first, else kprobes"
                } else {
                    "kprobes"
                }
            ),
            false,
            None,
        ),
        (true, false) => path(
            "kprobe",
            true,
            format!(
                "{}kprobes tell functions by the probed address; kretprobes and fentry \
                 take one program copy per function, at most {SLOTS} at once",
                if kp { "kprobes first; " } else { "" }
            ),
            true,
            Some(why(lacks::FUNC_IP, "bpf_get_func_ip (Linux 5.15)")),
        ),
    });
    // serve: the syscalls programs (and the probes as their commands attach
    // them); --by rows in arrays shared with user space (Linux 5.5).
    let syscalls = out[0].clone();
    out.push(info::CommandPath {
        command: "serve",
        path: format!(
            "{}; labelled rows in memory-mapped arrays; probes as their commands",
            syscalls.path
        ),
        ..syscalls
    });
    let sampling = has("CPU sampling") && has("stack traces");
    out.push(path(
        "profile",
        sampling,
        format!(
            "a perf event per CPU on {}, stacks counted in the kernel; --off-cpu on tracepoint sched:sched_switch",
            if has("cycle counter") {
                "cycles"
            } else {
                "cpu-clock (no cycle counter)"
            }
        ),
        false,
        (!sampling).then(|| "perf events (CONFIG_PERF_EVENTS=y) and stack traces".into()),
    ));
    // tcp: state-change and retransmit tracepoints, tcp_sock's offsets from BTF.
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    out.push(path(
        "tcp",
        has("tracepoints") && ring && btf,
        "tracepoints sock:inet_sock_set_state, tcp:tcp_retransmit_skb and the accept exits; \
         struct offsets from BTF; events through a BPF ring buffer"
            .into(),
        false,
        if !ring {
            no_ring()
        } else if !btf {
            Some("kernel BTF (CONFIG_DEBUG_INFO_BTF=y), for tcp_sock's offsets".into())
        } else {
            None
        },
    ));
    out.push(path(
        "list",
        true,
        "reads tracefs, /proc/kallsyms and ELF symbols".into(),
        false,
        None,
    ));
    out
}

/// The probes of `gather`; `may_mount`: inside the throw-away namespace, where
/// mounting tracefs to see whether it can be mounted leaves no trace.
fn probe_all(tracefs_before: Option<&str>, may_mount: bool) -> Result<(Tracefs, Vec<Feature>)> {
    // Mounted before the probes run: the tracepoint probe needs it.
    let tracefs = match tracefs_before {
        Some(p) => Tracefs::Mounted(p.to_string()),
        None if !may_mount => Tracefs::NotProbed,
        None => match tracefs::ensure_mounted() {
            Ok(_) => Tracefs::Mountable,
            Err(e) => Tracefs::Unmountable(e),
        },
    };
    let features = features::probe_all()?
        .iter()
        .map(|(name, outcome)| info::feature(name, outcome))
        .collect();
    Ok((tracefs, features))
}

/// Probe everything. Runs in a throw-away mount namespace, so mounting tracefs
/// to probe tracepoints leaves the system as it was; where that namespace is
/// not available (no CAP_SYS_ADMIN or CAP_SYS_CHROOT), probes in place and
/// does not try to mount tracefs.
pub fn gather() -> Result<Info> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let btf_path = Path::new("/sys/kernel/btf/vmlinux");
    let tracefs_before = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|p| Path::new(p).join("events").is_dir())
        .map(str::to_string);
    let gathered = match mountns::in_private_mount_ns(|| probe_all(tracefs_before.as_deref(), true))
    {
        Ok(r) => r?,
        Err(e) => {
            log::info!("probing in place: {e:#}");
            probe_all(tracefs_before.as_deref(), false)?
        }
    };
    let lacks = compat::lacks()?;
    let mut commands = paths(&gathered.1, lacks, compat::forced_now()?);
    abi_paths(&mut commands, compat::ia32_missing(lacks));
    Ok(Info {
        kernel,
        btf: btf_path.exists(),
        tracefs: info::tracefs(&gathered.0),
        pid_namespace: pid_namespace(),
        features: gathered.1,
        commands,
    })
}

/// The `PID namespace` line: which numbers tracer gives processes, and how.
fn pid_namespace() -> String {
    use crate::sys::pidns;
    match (pidns::own_is_nested(), pidns::own_inum()) {
        (Ok(false), _) => "the initial one: pids are the kernel's".into(),
        (Ok(true), Ok(inum)) => match pidns::offsets() {
            Ok(_) => format!(
                "nested (pid:[{inum}]): pids as this namespace numbers them, read from each \
                 task's struct pid at offsets from the kernel's BTF; tasks outside it count as pid 0"
            ),
            Err(e) => format!("nested (pid:[{inum}]), and tracer cannot work here: {e:#}"),
        },
        (Err(e), _) | (_, Err(e)) => format!("unknown: {e:#}"),
    }
}

pub fn run(args: InfoArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let info = gather()?;
    let text = if args.json {
        info::json(&info) + "\n"
    } else {
        info::text(&info)
    };
    super::Sink::new(None, false)?.write(&text)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &'static str, missing: Option<&str>) -> info::CommandPath {
        info::CommandPath {
            command: name,
            works: true,
            path: "raw tracepoints".into(),
            fallback: false,
            missing: missing.map(str::to_string),
        }
    }

    #[test]
    fn syscall_commands_say_how_they_tell_i386_calls() {
        let mut c = vec![
            command("syscalls", None),
            command("exec", None),
            command("serve", None),
        ];
        abi_paths(&mut c, None);
        assert!(c[0]
            .path
            .ends_with("; i386 calls told by TS_COMPAT (offset from BTF)"));
        assert_eq!(c[1].path, "raw tracepoints");
        assert!(!c[0].fallback && c[0].missing.is_none());
        let mut c = vec![
            command("syscalls", Some("task storage (Linux 5.11)")),
            command("trace", None),
        ];
        abi_paths(&mut c, Some("no BTF".into()));
        if cfg!(target_arch = "x86_64") {
            assert!(c.iter().all(|c| c.fallback && c.path == "raw tracepoints"));
            assert_eq!(
                c[0].missing.as_deref(),
                Some("task storage (Linux 5.11); i386 syscalls are counted as x86_64 ones: no BTF")
            );
            assert_eq!(
                c[1].missing.as_deref(),
                Some("i386 syscalls are counted as x86_64 ones: no BTF")
            );
        }
    }
}
