//! Which processes a run traces (-p, --comm, -u, --cgroup, --container,
//! --no-follow, -- CMD), decided from the command line before touching the
//! kernel: the same for every command.
use anyhow::{bail, Result};
use tracer_common::{flags, MAX_CGROUPS};

use crate::{
    bpf::Globals,
    cli::{LaunchArgs, ProcessArgs},
    sys::{container::Container, proc},
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
    /// The `--container`s, each standing for its cgroup directory.
    pub containers: Vec<Container>,
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
            values: vec![("CGROUP_COUNT", self.filter_dirs().len() as u64)],
            arrays: Vec::new(),
            cgroups: self.filter_dirs(),
        }
    }

    /// The cgroup directories the kernel filters on: the `--cgroup`s, then
    /// the `--container`s'.
    pub fn filter_dirs(&self) -> Vec<std::path::PathBuf> {
        let containers = self.containers.iter().map(|c| c.dir.clone());
        self.cgroups.iter().cloned().chain(containers).collect()
    }

    /// Whose events these are, for the "Tracing ..." line: "" system-wide,
    /// " of pid 1, 2 and its children", " of `make -j2`", then where:
    /// " in cgroup /sys/fs/cgroup/x or container web (3f2a1b0c9d8e)".
    pub fn describe(&self) -> String {
        let mut whose = self.whose();
        let mut scopes = Vec::new();
        if !self.cgroups.is_empty() {
            let c: Vec<String> = self
                .cgroups
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            scopes.push(format!("cgroup {}", c.join(", ")));
        }
        if !self.containers.is_empty() {
            let c: Vec<String> = self.containers.iter().map(Container::label).collect();
            scopes.push(format!("container {}", c.join(", ")));
        }
        if !scopes.is_empty() {
            whose.push_str(&format!(" in {}", scopes.join(" or ")));
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
    if a.cgroup.len() + a.container.len() > MAX_CGROUPS as usize {
        bail!("at most {MAX_CGROUPS} --cgroup and --container arguments in all (the kernel's cgroup array)");
    }
    let cgroups = a
        .cgroup
        .iter()
        .map(|c| crate::sys::cgroup::resolve(c))
        .collect::<Result<Vec<_>>>()?;
    let containers = crate::sys::container::resolve_all(&a.container)?;
    if !cgroups.is_empty() || !containers.is_empty() {
        f |= flags::FILTER_CGROUP;
    }
    Ok(Selection {
        cgroups,
        containers,
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
            container: Vec::new(),
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

    #[test]
    fn cgroups_and_containers_share_the_array() {
        let mut a = args(vec![], &[]);
        a.cgroup = vec![".".into(); 5];
        a.container = vec!["web".into(); 4];
        let e = plan(&a).unwrap_err().to_string();
        assert!(e.contains("at most 8 --cgroup and --container"), "{e}");
        let mut s = plan(&args(vec![], &[])).unwrap();
        s.cgroups = vec!["/cg/a".into()];
        s.containers = vec![Container {
            id: "3f2a1b0c9d8e".repeat(6)[..64].to_string(),
            name: Some("web".into()),
            runtime: crate::sys::container::Runtime::Docker,
            dir: "/cg/docker-x.scope".into(),
        }];
        assert_eq!(
            s.describe(),
            " in cgroup /cg/a or container web (3f2a1b0c9d8e)"
        );
        let g = s.globals(0, false);
        assert_eq!(
            g.cgroups,
            [
                std::path::PathBuf::from("/cg/a"),
                "/cg/docker-x.scope".into()
            ]
        );
        assert_eq!(g.values, [("CGROUP_COUNT", 2)]);
    }
}
