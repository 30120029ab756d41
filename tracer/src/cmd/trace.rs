//! `tracer trace`: one strace-like line per completed syscall of the traced
//! processes, streamed from the kernel through a ring buffer.
use anyhow::Result;
use tracer_common::{flags, path_spec, MAX_SYSCALLS};

use super::{
    process::{self, Selection},
    run::Streaming,
    syscalls::syscall_numbers,
};
use crate::{
    bpf::{self, Object},
    cli::TraceArgs,
    collect::events::Event,
    report::{
        args::{self, Arg},
        syscall_events::{self as render, Clock, LineOptions, Stamp},
    },
    sys::{names, tracefs},
};

/// Everything decided from the command line before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every flag the programs run with (the selection's included).
    pub flags: u32,
    pub selection: Selection,
    pub syscalls: Vec<u32>,
    pub stamp: Stamp,
    pub durations: bool,
    pub json: bool,
    pub buffer_size: u32,
}

pub fn plan(a: &TraceArgs) -> Result<Plan> {
    if !a.process.targets() && a.process.cgroup.is_empty() && a.process.container.is_empty() {
        anyhow::bail!(
            "say what to trace: -p PID, -- CMD, --cgroup PATH or --container ID (to count every process's syscalls, use `tracer syscalls`)"
        );
    }
    let selection = process::plan(&a.process)?;
    let mut f = selection.flags;
    let syscalls = syscall_numbers(&a.syscall)?;
    if !syscalls.is_empty() {
        f |= flags::FILTER_SYSCALL;
    }
    Ok(Plan {
        flags: f,
        selection,
        syscalls,
        stamp: if a.time {
            Stamp::Wall
        } else if a.relative {
            Stamp::Relative
        } else {
            Stamp::None
        },
        durations: a.durations,
        json: a.run.json,
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
                // An i386 or x32 exec's argv is an array of 32-bit pointers,
                // which the kernel side reads as 64-bit ones: its file name only.
                let native = names::Abi::of(nr).0.is_native();
                let mut strings = args::string_args(sig);
                strings.retain(|&i| native || sig[i] != Arg::Argv);
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

/// What formatting needs once attached: names and argument kinds, the clock.
pub struct Live {
    sigs: Signatures,
    opts: LineOptions,
}

impl Streaming for Plan {
    type Live = Live;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Object)> {
        let globals = bpf::Globals {
            flags: self.flags,
            ..self.selection.globals(0, false)
        };
        let mut obj = bpf::load_following(
            globals,
            true,
            &[
                ("EVENTS", self.buffer_size),
                ("TRACE_PENDING", 32768),
                ("TRACE_STRINGS", 8192),
                ("PROCS", 1),
            ],
        )?;
        let sigs = Signatures::new(tracefs::ensure_mounted().ok().as_deref());
        obj.fill_array("PATH_ARGS", sigs.path_specs())?;
        obj.fill_array("SYSCALL_FILTER", self.syscalls.iter().map(|&nr| (nr, 1u8)))?;
        obj.attach_raw_tracepoint("trace_task_exit", "sched_process_exit")?;
        obj.attach_raw_tracepoint("trace_exec_tid", "sched_process_exec")?;
        obj.attach_raw_tracepoint("trace_exit", "sys_exit")?;
        obj.attach_raw_tracepoint("trace_enter", "sys_enter")?;
        let opts = LineOptions {
            stamp: self.stamp,
            durations: self.durations,
            clock: Clock::now(),
        };
        Ok((Live { sigs, opts }, obj))
    }

    fn what(&self) -> String {
        "syscalls".into()
    }

    fn output(&self) -> (bool, u32) {
        (self.json, self.buffer_size)
    }

    fn event(&self, live: &mut Live, e: Event, out: &mut String) -> bool {
        let Event::Syscall(r) = e else {
            return false;
        };
        let (name, sig) = live.sigs.get(r.nr);
        if self.json {
            render::syscall_json(out, &r, name, sig, &live.opts.clock);
        } else {
            render::syscall_line(out, &r, name, sig, &live.opts);
        }
        true
    }

    fn quiet_with_command(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(argv: &[&str]) -> TraceArgs {
        let Command::Trace(a) = crate::cli::parse("trace", argv) else {
            unreachable!()
        };
        a
    }

    #[test]
    fn plans() {
        let p = plan(&args(&["-T", "-t", "-e", "openat,geteuid", "--", "true"])).unwrap();
        assert_eq!(
            p.flags,
            flags::FILTER_TGID | flags::FOLLOW_FORKS | flags::FILTER_SYSCALL
        );
        // Each name in each ABI: openat (x86_64, i386, x32), geteuid (the same).
        assert_eq!(p.syscalls.len(), 6);
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
        assert!(
            e.contains("say what to trace: -p PID, -- CMD, --cgroup PATH or --container ID"),
            "{e}"
        );
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
        assert_eq!(name, "syscall_0x3ff");
        assert_eq!(sig.len(), 6);
    }
}
