//! `tracer exec`: every execve/execveat on the system, as it returns.

use anyhow::Result;

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
    pub json: bool,
    pub buffer_size: u32,
}

pub fn plan(a: &ExecArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    Ok(Plan {
        selection,
        json: a.run.json,
        buffer_size: a.ring.buffer_size,
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
        obj.attach_fork("exec_fork")?;
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
