//! `tracer exec`: every execve/execveat on the system, as it returns.
use std::os::unix::fs::MetadataExt as _;

use anyhow::{Context as _, Result};

use super::{
    process::{self, Selection},
    run::Streaming,
};
use crate::{
    bpf::{self, Object},
    cli::ExecArgs,
    collect::events::Event,
    report::syscall_events::{self as render, Clock},
    sys::proc,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub selection: Selection,
    /// cgroup v2 id (inode of the directory), 0 = any.
    pub cgroup: u64,
    pub json: bool,
    pub buffer_size: u32,
}

/// The id the kernel gives a cgroup v2 directory: its inode number.
pub fn cgroup_id(path: &std::path::Path) -> Result<u64> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "--cgroup {}: no such cgroup directory (give a path under /sys/fs/cgroup)",
            path.display()
        )
    })?;
    if !meta.is_dir() {
        anyhow::bail!(
            "--cgroup {}: not a directory (give a cgroup directory under /sys/fs/cgroup)",
            path.display()
        );
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    let on_cgroup2 = unsafe { libc::statfs(c.as_ptr(), &mut fs) } == 0
        && fs.f_type as u64 == libc::CGROUP2_SUPER_MAGIC as u64;
    if !on_cgroup2 {
        anyhow::bail!(
            "--cgroup {}: not a cgroup v2 directory (the kernel filters on the cgroup2 \
             hierarchy: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems)",
            path.display()
        );
    }
    Ok(meta.ino())
}

pub fn plan(a: &ExecArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    let cgroup = match &a.cgroup {
        Some(p) => cgroup_id(p)?,
        None => 0,
    };
    Ok(Plan {
        selection,
        cgroup,
        json: a.run.json,
        buffer_size: a.buffer_size,
    })
}

impl Streaming for Plan {
    /// The clock that turns the kernel's timestamps into wall-clock times.
    type Live = Clock;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Clock, Object)> {
        let globals = bpf::Globals {
            fork_child_pid_offset: Some(bpf::fork_child_pid_offset()?),
            ..self.selection.globals(0, false)
        };
        let mut obj = bpf::load_following(
            globals,
            self.selection.targeted(),
            &[
                ("EVENTS", self.buffer_size),
                ("EXEC_PENDING", 4096),
                ("EXEC_PARENTS", 16384),
            ],
        )?;
        if self.cgroup != 0 {
            obj.fill_array("TARGET_CGROUP", [(0, self.cgroup)])?;
        }
        obj.attach_tracepoint("exec_fork", "sched", "sched_process_fork")?;
        obj.attach_tracepoint("exec_exit", "syscalls", "sys_exit_execve")?;
        obj.attach_tracepoint("exec_exit", "syscalls", "sys_exit_execveat")?;
        obj.attach_tracepoint("exec_enter", "syscalls", "sys_enter_execve")?;
        obj.attach_tracepoint("execat_enter", "syscalls", "sys_enter_execveat")?;
        Ok((Clock::now(), obj))
    }

    fn what(&self) -> String {
        "execs".into()
    }

    fn output(&self) -> (bool, u32) {
        (self.json, self.buffer_size)
    }

    fn header(&self) -> Option<&'static str> {
        Some(render::EXEC_HEADER)
    }

    fn event(&self, clock: &mut Clock, e: Event, out: &mut String) -> bool {
        let Event::Exec(e) = e else {
            return false;
        };
        // A process forked before tracer started: its parent from /proc.
        let ppid = e
            .ppid
            .unwrap_or_else(|| proc::status(e.pid).map_or(0, |s| s.ppid));
        if self.json {
            render::exec_json(out, &e, ppid, clock);
        } else {
            render::exec_line(out, &e, ppid, clock);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_ids_are_inodes() {
        let dir = std::env::temp_dir();
        let e = cgroup_id(&dir).unwrap_err().to_string();
        assert!(e.contains("not a cgroup v2 directory"), "{e}");
        let e = cgroup_id(std::path::Path::new("/nonexistent/cg"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such cgroup"), "{e}");
    }
}
