//! Which processes a run traces (-p, --comm, -u, --no-follow, -- CMD), decided
//! from the command line before touching the kernel: the same for every command.
use anyhow::{bail, Result};
use tracer_common::{flags, MAX_CGROUPS};

use crate::{
    bpf::Globals,
    cli::{LaunchArgs, ProcessArgs},
    sys::proc,
};

/// The process selection of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// `FILTER_TGID`, `FOLLOW_FORKS`, `FILTER_UID`, `FILTER_COMM`.
    pub flags: u32,
    /// Processes given with -p (tgids).
    pub pids: Vec<u32>,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
    /// The command after `--` (none if empty) and its --user.
    pub launch: LaunchArgs,
    /// The `--cgroup` directories (`FILTER_CGROUP`).
    pub cgroups: Vec<std::path::PathBuf>,
}

impl Selection {
    /// Only chosen processes (-p or -- CMD) and, unless --no-follow, their children.
    pub fn targeted(&self) -> bool {
        self.flags & flags::FILTER_TGID != 0
    }

    pub fn launches(&self) -> bool {
        !self.launch.command.is_empty()
    }

    /// The globals the object is loaded with: these filters, `extra` flag bits,
    /// and, with `exclude_self`, tracer's own process left out of a
    /// system-wide run (its reading of maps makes syscalls and page faults).
    pub fn globals(&self, extra: u32, exclude_self: bool) -> Globals {
        let own = if exclude_self && !self.targeted() {
            flags::EXCLUDE_SELF
        } else {
            0
        };
        Globals {
            flags: self.flags | extra | own,
            target_uid: self.target_uid,
            target_comm: self.target_comm,
            fork_child_pid_offset: None,
            values: vec![("CGROUP_COUNT", self.cgroups.len() as u64)],
            arrays: Vec::new(),
            cgroups: self.cgroups.clone(),
        }
    }

    /// Whose events these are, for the "Tracing ..." line: "" system-wide,
    /// " of pid 1, 2 and its children", " of `make -j2`".
    pub fn describe(&self) -> String {
        let mut whose = self.whose();
        if !self.cgroups.is_empty() {
            let c: Vec<String> = self
                .cgroups
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            whose.push_str(&format!(" in cgroup {}", c.join(", ")));
        }
        whose
    }

    fn whose(&self) -> String {
        if self.launches() {
            let cmd: Vec<String> = self
                .launch
                .command
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

/// Check and resolve the process options.
pub fn plan(a: &ProcessArgs) -> Result<Selection> {
    if a.launches() && !a.pid.is_empty() {
        bail!("give either -p PID or -- CMD, not both");
    }
    let pids = proc::resolve_pids(&a.pid)?;
    let mut f = 0;
    if a.targets() {
        f |= flags::FILTER_TGID;
        if !a.no_follow {
            f |= flags::FOLLOW_FORKS;
        }
    }
    let task = proc::task_filters(a.uid.as_deref(), a.comm.as_deref())?;
    if a.cgroup.len() > MAX_CGROUPS as usize {
        bail!("at most {MAX_CGROUPS} --cgroup directories");
    }
    let cgroups = a
        .cgroup
        .iter()
        .map(|c| crate::sys::cgroup::resolve(c))
        .collect::<Result<Vec<_>>>()?;
    if !cgroups.is_empty() {
        f |= flags::FILTER_CGROUP;
    }
    Ok(Selection {
        cgroups,
        flags: f | task.flags,
        pids,
        target_uid: task.uid,
        target_comm: task.comm,
        launch: a.launch.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn args(pid: Vec<i32>, cmd: &[&str]) -> ProcessArgs {
        ProcessArgs {
            pid,
            comm: None,
            cgroup: Vec::new(),
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
        let s = plan(&args(vec![], &[])).unwrap();
        assert_eq!(s.globals(0, true).flags, flags::EXCLUDE_SELF);
        assert_eq!(s.globals(0, false).flags, 0);
        assert!(!s.targeted());
        let s = plan(&args(vec![], &["true"])).unwrap();
        assert_eq!(s.flags, flags::FILTER_TGID | flags::FOLLOW_FORKS);
        assert_eq!(
            s.globals(0, true).flags,
            s.flags,
            "targeted: nothing to exclude"
        );
        assert_eq!(s.describe(), " of `true`");
        let me = std::process::id() as i32;
        let mut a = args(vec![me], &[]);
        a.no_follow = true;
        a.comm = Some("sh".into());
        let s = plan(&a).unwrap();
        assert_eq!(s.flags, flags::FILTER_TGID | flags::FILTER_COMM);
        assert_eq!(s.pids, [me as u32]);
        assert_eq!(s.describe(), format!(" of pid {me}"));
        assert!(plan(&args(vec![me], &["true"])).is_err());
        assert!(plan(&args(vec![i32::MAX], &[])).is_err());
    }
}
