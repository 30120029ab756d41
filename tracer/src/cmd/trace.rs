//! `tracer trace`: one strace-like line per completed syscall of the traced
//! processes, streamed from the kernel through a ring buffer.
use std::time::Duration;

use anyhow::{Context as _, Result};
use aya::maps::{Array, RingBuf};
use tracer_common::{flags, path_spec, MAX_SYSCALLS};

use super::Sink;
use crate::{
    bpf,
    cli::TraceArgs,
    collect::{
        events::{Event, Lost, LostCounters, Reader},
        syscalls::TracedSet,
    },
    report::{
        args::{self, Arg},
        syscall_events::{self as render, Clock, LineOptions, Stamp},
    },
    sys::{launch, names, proc, tracefs},
};

/// Everything decided from the command line before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub flags: u32,
    pub pids: Vec<u32>,
    pub syscalls: Vec<u32>,
    pub stamp: Stamp,
    pub durations: bool,
    pub json: bool,
    pub buffer_size: u32,
}

pub fn plan(a: &TraceArgs) -> Result<Plan> {
    if a.launch.command.is_empty() && a.pid.is_empty() {
        anyhow::bail!(
            "say what to trace: -p PID or -- CMD (to count every process's syscalls, use `tracer syscalls`)"
        );
    }
    if !a.launch.command.is_empty() && !a.pid.is_empty() {
        anyhow::bail!("give either -p PID or -- CMD, not both");
    }
    let pids = proc::resolve_pids(&a.pid)?;
    let mut f = flags::FILTER_TGID;
    if !a.no_follow {
        f |= flags::FOLLOW_FORKS;
    }
    let mut syscalls = Vec::new();
    for name in a.syscall.iter().filter(|n| !n.trim().is_empty()) {
        let nr = names::syscall_number(name).map_err(anyhow::Error::msg)?;
        if nr >= MAX_SYSCALLS {
            anyhow::bail!(
                "syscall `{name}` (number {nr}) is beyond tracer's table of {MAX_SYSCALLS}"
            );
        }
        syscalls.push(nr);
    }
    if !syscalls.is_empty() {
        f |= flags::FILTER_SYSCALL;
    }
    Ok(Plan {
        flags: f,
        pids,
        syscalls,
        stamp: if a.time {
            Stamp::Wall
        } else if a.relative {
            Stamp::Relative
        } else {
            Stamp::None
        },
        durations: a.durations,
        json: a.json,
        buffer_size: a.buffer_size,
    })
}

/// Names and argument kinds per syscall number, filled lazily from the static
/// table, then the kernel's tracepoint formats, then "six numbers".
pub struct Signatures {
    names: Vec<String>,
    sigs: Vec<Option<Vec<Arg>>>,
    events_dir: Option<std::path::PathBuf>,
}

impl Signatures {
    pub fn new(tracefs: Option<&std::path::Path>) -> Self {
        Signatures {
            names: (0..MAX_SYSCALLS).map(names::syscall_name).collect(),
            sigs: vec![None; MAX_SYSCALLS as usize],
            events_dir: tracefs.map(|t| t.join("events/syscalls")),
        }
    }

    /// The kernel-side string spec (`tracer_common::path_spec`) of every call
    /// with string arguments: paths, and an exec's argv.
    pub fn path_specs(&self) -> Vec<(u32, u32)> {
        (0..MAX_SYSCALLS)
            .filter_map(|nr| {
                let name = &self.names[nr as usize];
                let sig = args::known(name)?;
                let strings = args::string_args(sig);
                if strings.is_empty() {
                    return None;
                }
                let mut spec = 0;
                for (i, idx) in strings.iter().enumerate() {
                    spec |= path_spec::with_arg(i as u32, *idx as u32);
                    if sig[*idx] == Arg::Argv {
                        spec |= path_spec::ARGV;
                    }
                }
                if args::exec_like(name) {
                    spec |= path_spec::NO_RETRY;
                }
                Some((nr, spec))
            })
            .collect()
    }

    pub fn get(&mut self, nr: u32) -> (&str, &[Arg]) {
        let i = (nr as usize).min(self.names.len() - 1);
        if self.sigs[i].is_none() {
            let name = &self.names[i];
            let sig = args::known(name).map(<[Arg]>::to_vec).or_else(|| {
                let dir = self.events_dir.as_ref()?;
                let text =
                    std::fs::read_to_string(dir.join(format!("sys_enter_{name}/format"))).ok()?;
                args::from_format(&text)
            });
            self.sigs[i] = Some(sig.unwrap_or_else(|| vec![Arg::Hex; 6]));
        }
        (&self.names[i], self.sigs[i].as_deref().unwrap_or(&[]))
    }
}

/// Formats events into one buffer per batch.
struct Output {
    sink: Sink,
    buf: String,
    sigs: Signatures,
    opts: LineOptions,
    json: bool,
    events: u64,
}

impl Output {
    fn push(&mut self, e: Event) {
        let Event::Syscall(r) = e else { return };
        self.events += 1;
        let (name, sig) = self.sigs.get(r.nr);
        if self.json {
            render::syscall_json(&mut self.buf, &r, name, sig, &self.opts.clock);
        } else {
            render::syscall_line(&mut self.buf, &r, name, sig, &self.opts);
        }
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.sink.write(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn lost(&mut self, now: &Lost, before: &Lost, buffer_size: u32) -> Result<()> {
        let delta = Lost {
            ring_full: now.ring_full - before.ring_full,
            table_full: now.table_full - before.table_full,
            strings_missing: now.strings_missing - before.strings_missing,
        };
        if delta == Lost::default() {
            return Ok(());
        }
        self.flush()?;
        if self.json {
            let mut v = render::lost_json(&delta);
            v["type"] = "lost".into();
            self.sink.write(&format!("{v}\n"))
        } else if let Some(l) = render::lost_line(&delta, buffer_size) {
            self.sink.write(&format!("--- {l} ---\n"))
        } else {
            Ok(())
        }
    }
}

pub async fn run(args: TraceArgs) -> Result<i32> {
    let plan = plan(&args)?;
    let prepared = if args.launch.command.is_empty() {
        None
    } else {
        Some(launch::prepare(&args.launch)?)
    };
    crate::sys::privileges::check()?;
    let tfs = tracefs::ensure_mounted()?;
    let off = tracefs::field_offset(&tfs, "sched", "sched_process_fork", "child_pid")?;
    let globals = bpf::Globals {
        flags: plan.flags,
        fork_child_pid_offset: Some(off as u32),
        ..Default::default()
    };
    let mut ebpf = bpf::load(
        &globals,
        &[
            ("EVENTS", plan.buffer_size),
            ("TRACE_PENDING", 32768),
            ("TRACE_STRINGS", 8192),
            ("TRACED_TGIDS", 32768),
        ],
    )?;
    let sigs = Signatures::new(Some(&tfs));
    {
        let mut paths: Array<_, u32> =
            Array::try_from(ebpf.map_mut("PATH_ARGS").context("map PATH_ARGS missing")?)?;
        for (nr, spec) in sigs.path_specs() {
            paths.set(nr, spec, 0)?;
        }
    }
    if !plan.syscalls.is_empty() {
        let mut filter: Array<_, u8> = Array::try_from(
            ebpf.map_mut("SYSCALL_FILTER")
                .context("map SYSCALL_FILTER missing")?,
        )?;
        for &nr in &plan.syscalls {
            filter.set(nr, 1, 0)?;
        }
    }
    let mut traced = TracedSet::new(&mut ebpf)?;
    for &pid in &plan.pids {
        traced.insert(pid)?;
    }
    let ring = crate::collect::take::<RingBuf<_>>(&mut ebpf, "EVENTS")?;
    let mut reader = Reader::new(ring)?;
    let lost = LostCounters::new(crate::collect::take(&mut ebpf, "EVENT_LOST")?);
    let mut bpf_logs = bpf::logs::start(&mut ebpf)?;
    if plan.flags & flags::FOLLOW_FORKS != 0 {
        bpf::attach_tracepoint(
            &mut ebpf,
            "sched_process_fork",
            "sched",
            "sched_process_fork",
        )?;
    }
    bpf::attach_raw_tracepoint(&mut ebpf, "sched_process_exit", "sched_process_exit")?;
    bpf::attach_raw_tracepoint(&mut ebpf, "trace_task_exit", "sched_process_exit")?;
    bpf::attach_raw_tracepoint(&mut ebpf, "trace_exec_tid", "sched_process_exec")?;
    bpf::attach_raw_tracepoint(&mut ebpf, "trace_exit", "sys_exit")?;
    bpf::attach_raw_tracepoint(&mut ebpf, "trace_enter", "sys_enter")?;

    let clock = Clock::now();
    let mut out = Output {
        sink: Sink::new(args.output.as_deref(), !plan.json || prepared.is_some())?,
        buf: String::with_capacity(1 << 16),
        sigs,
        opts: LineOptions {
            stamp: plan.stamp,
            durations: plan.durations,
            clock,
        },
        json: plan.json,
        events: 0,
    };

    // Install the Ctrl-C/SIGTERM handlers (first poll) before the command
    // starts or "Tracing" is printed: a signal from then on ends the trace cleanly.
    let signal = crate::signals::wait();
    tokio::pin!(signal);
    let early_signal = tokio::select! {
        biased;
        s = &mut signal => Some(s?),
        _ = std::future::ready(()) => None,
    };
    let mut launched = false;
    let mut child_wait = None;
    if let Some(p) = &prepared {
        let pid = launch::spawn_traced(p, |pid| traced.insert(pid))?;
        launched = true;
        child_wait = Some(launch::wait_child(pid));
    } else {
        eprintln!(
            "Tracing pid {}{}... Ctrl-C to end.",
            plan.pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if args.no_follow {
                ""
            } else {
                " and its children"
            }
        );
    }

    let mut prune = tokio::time::interval(Duration::from_millis(100));
    let mut lost_tick = tokio::time::interval(Duration::from_secs(1));
    // The kernel wakes tracer only when the ring is an eighth full; this timer
    // shows a trickle of events within 10 ms anyway.
    let mut drain_tick = tokio::time::interval(Duration::from_millis(10));
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut lost_seen = Lost::default();
    let mut child_status: Option<i32> = None;
    let mut sig = early_signal;
    {
        let logs_task = async {
            match bpf_logs.as_mut() {
                Some(f) => f.run().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(logs_task);
        while sig.is_none() {
            tokio::select! {
                s = &mut signal => { sig = Some(s?); break; }
                r = reader.read(|e| out.push(e)) => {
                    r?;
                    out.flush()?;
                }
                st = async { child_wait.as_mut().unwrap().await }, if child_wait.is_some() && child_status.is_none() => {
                    child_status = Some(st.unwrap_or(0));
                }
                _ = prune.tick(), if child_wait.is_none() || child_status.is_some() => {
                    if traced.prune(proc::alive) == 0 {
                        break;
                    }
                }
                _ = drain_tick.tick() => {
                reader.drain(|e| out.push(e));
                out.flush()?;
            }
            _ = lost_tick.tick() => {
                    let now = lost.read()?;
                    out.lost(&now, &lost_seen, plan.buffer_size)?;
                    lost_seen = now;
                }
                _ = &mut logs_task => {}
            }
        }
        // Detach everything, then take what is still in the ring.
    }
    drop(ebpf);
    reader.drain(|e| out.push(e));
    out.flush()?;
    if let Some(f) = bpf_logs.as_mut() {
        f.flush();
    }
    let total = lost.read()?;
    out.lost(&total, &lost_seen, plan.buffer_size)?;
    if plan.json {
        let mut v = render::lost_json(&total);
        v["type"] = "summary".into();
        v["events"] = out.events.into();
        out.sink.write(&format!("{v}\n"))?;
    }
    if let Some(l) = render::lost_line(&total, plan.buffer_size) {
        // The total, on stderr, whatever the output is.
        eprintln!("{l}");
    }
    log::info!("{} events delivered, {} lost", out.events, total.events());
    let code = match (sig, child_status) {
        (Some(s), _) if launched => 128 + s,
        (Some(_), _) => 0,
        (None, Some(st)) => proc::exit_code_of(st),
        (None, None) => 0,
    };
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(argv: &[&str]) -> TraceArgs {
        let mut v = vec!["tracer", "trace"];
        v.extend_from_slice(argv);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Trace(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn plans() {
        let p = plan(&args(&["-T", "-t", "-e", "openat,geteuid", "--", "true"])).unwrap();
        assert_eq!(
            p.flags,
            flags::FILTER_TGID | flags::FOLLOW_FORKS | flags::FILTER_SYSCALL
        );
        assert_eq!(p.syscalls.len(), 2);
        assert_eq!(p.stamp, Stamp::Wall);
        assert!(p.durations);
        assert_eq!(p.buffer_size, 16 << 20);
        let p = plan(&args(&[
            "-r",
            "--no-follow",
            "--buffer-size",
            "64K",
            "--",
            "true",
        ]))
        .unwrap();
        assert_eq!(p.flags, flags::FILTER_TGID);
        assert_eq!(p.stamp, Stamp::Relative);
        assert_eq!(p.buffer_size, 65536);
    }

    #[test]
    fn bad_plans() {
        let e = plan(&args(&[])).unwrap_err().to_string();
        assert!(e.contains("-p PID or -- CMD"), "{e}");
        let e = plan(&args(&["-e", "opnat", "--", "true"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("openat"), "{e}");
        let me = std::process::id().to_string();
        assert!(plan(&args(&["-p", &me, "--", "true"])).is_err());
        assert!(Cli::try_parse_from(["tracer", "trace", "-t", "-r", "--", "true"]).is_err());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn path_specs_match_the_table() {
        let s = Signatures::new(None);
        let specs: std::collections::HashMap<u32, u32> = s.path_specs().into_iter().collect();
        assert_eq!(specs[&257], 2); // openat: argument 1
        assert_eq!(specs[&82], 1 | 2 << 8); // rename: arguments 0 and 1
                                            // execve: the file name, then argv as a list.
        assert_eq!(
            specs[&59],
            1 | 2 << 8 | path_spec::NO_RETRY | path_spec::ARGV
        );
        // execveat: the file name is argument 1, argv argument 2.
        assert_eq!(
            specs[&322],
            2 | 3 << 8 | path_spec::NO_RETRY | path_spec::ARGV
        );
        assert!(!specs.contains_key(&107)); // geteuid
    }

    #[test]
    fn unknown_calls_get_six_numbers() {
        let mut s = Signatures::new(None);
        let (name, sig) = s.get(MAX_SYSCALLS - 1);
        assert!(name.contains("unknown"), "{name}");
        assert_eq!(sig.len(), 6);
    }
}
