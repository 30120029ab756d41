//! What `tracer uprobe` and `tracer tracepoint` share: process filters (-p,
//! --comm, -u, -- CMD) turned into kernel flags, loading the object with the
//! process-following hooks, and the run loop (intervals, duration, Ctrl-C, the
//! traced processes all gone).
use anyhow::Result;
use aya::Ebpf;
use tracer_common::flags;

pub use super::session::{End, Session};
use crate::{
    bpf,
    cli::ProcessArgs,
    sys::{proc, tracefs},
};

/// The process filters of a run, decided before touching the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    pub flags: u32,
    pub pids: Vec<u32>,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
}

impl Filters {
    pub fn targeted(&self) -> bool {
        self.flags & flags::FILTER_TGID != 0
    }

    /// A phrase for the "Tracing ..." line.
    pub fn describe(&self, command: &[std::ffi::OsString]) -> String {
        if !command.is_empty() {
            let cmd: Vec<String> = command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            format!(" of `{}`", cmd.join(" "))
        } else if self.targeted() {
            let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
            let children = if self.flags & flags::FOLLOW_FORKS != 0 {
                " and its children"
            } else {
                ""
            };
            format!(" of pid {}{children}", pids.join(", "))
        } else {
            String::new()
        }
    }
}

pub fn filters(a: &ProcessArgs) -> Result<Filters> {
    if !a.launch.command.is_empty() && !a.pid.is_empty() {
        anyhow::bail!("give either -p PID or -- CMD, not both");
    }
    let mut f = 0;
    let pids = proc::resolve_pids(&a.pid)?;
    if !a.launch.command.is_empty() || !pids.is_empty() {
        f |= flags::FILTER_TGID;
        if !a.no_follow {
            f |= flags::FOLLOW_FORKS;
        }
    } else {
        // System-wide: tracer's own calls (reading maps, allocating) stay out.
        f |= flags::EXCLUDE_SELF;
    }
    let task = proc::task_filters(a.uid.as_deref(), a.comm.as_deref())?;
    f |= task.flags;
    let (target_uid, target_comm) = (task.uid, task.comm);
    Ok(Filters {
        flags: f,
        pids,
        target_uid,
        target_comm,
    })
}

/// Load the object with `flags` (filters plus the command's own bits) and the
/// command's map sizes; the syscall command's big maps are shrunk to one entry.
/// With `follow`, the fork/exec/exit hooks are attached (following children,
/// recording comms for per-process rows).
pub fn load(
    filters: &Filters,
    extra_flags: u32,
    follow: bool,
    sizes: &[(&'static str, u32)],
) -> Result<Ebpf> {
    let mut globals = bpf::Globals {
        flags: filters.flags | extra_flags,
        target_uid: filters.target_uid,
        target_comm: filters.target_comm,
        fork_child_pid_offset: None,
    };
    if follow {
        let tfs = tracefs::ensure_mounted()?;
        let off = tracefs::field_offset(&tfs, "sched", "sched_process_fork", "child_pid")?;
        globals.fork_child_pid_offset = Some(off as u32);
    }
    let big = |on: bool| if on { 32768 } else { 1 };
    let mut all: Vec<(&'static str, u32)> = vec![
        ("TRACED_TGIDS", big(filters.targeted())),
        ("PROCS", big(follow)),
    ];
    all.extend_from_slice(sizes);
    let mut ebpf = bpf::load(&globals, &all)?;
    if follow {
        bpf::attach_tracepoint(
            &mut ebpf,
            "sched_process_fork",
            "sched",
            "sched_process_fork",
        )?;
        bpf::attach_raw_tracepoint(&mut ebpf, "sched_process_exec", "sched_process_exec")?;
        bpf::attach_raw_tracepoint(&mut ebpf, "sched_process_exit", "sched_process_exit")?;
    }
    Ok(ebpf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pid: Vec<i32>, cmd: &[&str]) -> ProcessArgs {
        ProcessArgs {
            pid,
            comm: None,
            uid: None,
            no_follow: false,
            launch: crate::cli::LaunchArgs {
                user: None,
                command: cmd.iter().map(Into::into).collect(),
            },
        }
    }

    #[test]
    fn filter_flags() {
        let f = filters(&args(vec![], &[])).unwrap();
        assert_eq!(f.flags, flags::EXCLUDE_SELF);
        assert!(!f.targeted());
        let f = filters(&args(vec![], &["true"])).unwrap();
        assert_eq!(f.flags, flags::FILTER_TGID | flags::FOLLOW_FORKS);
        assert_eq!(f.describe(&["true".into()]), " of `true`");
        let me = std::process::id() as i32;
        let mut a = args(vec![me], &[]);
        a.no_follow = true;
        a.comm = Some("sh".into());
        let f = filters(&a).unwrap();
        assert_eq!(f.flags, flags::FILTER_TGID | flags::FILTER_COMM);
        assert_eq!(f.pids, [me as u32]);
        assert!(filters(&args(vec![me], &["true"])).is_err());
        assert!(filters(&args(vec![i32::MAX], &[])).is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(End::TargetsGone(Some(3 << 8)).exit_code(true), 3);
        assert_eq!(End::Signal(2).exit_code(true), 130);
        assert_eq!(End::Signal(2).exit_code(false), 0);
        assert_eq!(End::Duration.exit_code(true), 0);
    }
}
