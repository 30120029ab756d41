//! `tracer exec`: every execve/execveat on the system, as it returns.
use std::{os::unix::fs::MetadataExt as _, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{Array, RingBuf};

use super::Sink;
use crate::{
    bpf,
    cli::ExecArgs,
    collect::events::{Event, Lost, LostCounters, Reader},
    report::syscall_events::{self as render, Clock},
    sys::{proc, tracefs},
};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub flags: u32,
    pub target_uid: u32,
    pub target_comm: [u8; 16],
    /// cgroup v2 id (inode of the directory), 0 = any.
    pub cgroup: u64,
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
    let on_cgroup2 =
        unsafe { libc::statfs(c.as_ptr(), &mut fs) } == 0 && fs.f_type == libc::CGROUP2_SUPER_MAGIC;
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
    let mut f = 0;
    let task = proc::task_filters(a.uid.as_deref(), a.comm.as_deref())?;
    f |= task.flags;
    let (target_uid, target_comm) = (task.uid, task.comm);
    let cgroup = match &a.cgroup {
        Some(p) => cgroup_id(p)?,
        None => 0,
    };
    Ok(Plan {
        flags: f,
        target_uid,
        target_comm,
        cgroup,
    })
}

/// The parent of `pid` from /proc, for processes forked before tracer started.
fn ppid_of(pid: u32) -> u32 {
    proc::status(pid).map(|s| s.ppid).unwrap_or(0)
}

pub async fn run(args: ExecArgs) -> Result<i32> {
    let plan = plan(&args)?;
    crate::sys::privileges::check()?;
    let tfs = tracefs::ensure_mounted()?;
    let off = tracefs::field_offset(&tfs, "sched", "sched_process_fork", "child_pid")?;
    let globals = bpf::Globals {
        flags: plan.flags,
        target_uid: plan.target_uid,
        target_comm: plan.target_comm,
        fork_child_pid_offset: Some(off as u32),
    };
    let mut ebpf = bpf::load(
        &globals,
        &[
            ("EVENTS", args.buffer_size),
            ("EXEC_PENDING", 4096),
            ("EXEC_PARENTS", 16384),
            ("TRACED_TGIDS", 1),
        ],
    )?;
    if plan.cgroup != 0 {
        let mut cg: Array<_, u64> = Array::try_from(
            ebpf.map_mut("TARGET_CGROUP")
                .context("map TARGET_CGROUP missing")?,
        )?;
        cg.set(0, plan.cgroup, 0)?;
    }
    let ring = crate::collect::take::<RingBuf<_>>(&mut ebpf, "EVENTS")?;
    let mut reader = Reader::new(ring)?;
    let lost = LostCounters::new(crate::collect::take(&mut ebpf, "EVENT_LOST")?);
    let mut bpf_logs = bpf::logs::start(&mut ebpf)?;
    bpf::attach_tracepoint(&mut ebpf, "exec_fork", "sched", "sched_process_fork")?;
    bpf::attach_tracepoint(&mut ebpf, "exec_exit", "syscalls", "sys_exit_execve")?;
    attach_again(&mut ebpf, "exec_exit", "syscalls", "sys_exit_execveat")?;
    bpf::attach_tracepoint(&mut ebpf, "exec_enter", "syscalls", "sys_enter_execve")?;
    bpf::attach_tracepoint(&mut ebpf, "execat_enter", "syscalls", "sys_enter_execveat")?;

    let clock = Clock::now();
    let mut sink = Sink::new(None, false)?;
    // Install the Ctrl-C/SIGTERM handlers (first poll) before saying "Tracing".
    let signal = crate::signals::wait();
    tokio::pin!(signal);
    let mut stopped: bool = tokio::select! {
        biased;
        s = &mut signal => { s?; true }
        _ = std::future::ready(()) => false,
    };
    eprintln!("Tracing execs... Ctrl-C to end.");
    if !args.json {
        sink.write(render::EXEC_HEADER)?;
    }
    let mut buf = String::new();
    let mut events = 0u64;
    let mut push = |e: Event, buf: &mut String| {
        let Event::Exec(e) = e else { return };
        events += 1;
        let ppid = e.ppid.unwrap_or_else(|| ppid_of(e.pid));
        if args.json {
            render::exec_json(buf, &e, ppid, &clock);
        } else {
            render::exec_line(buf, &e, ppid, &clock);
        }
    };
    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
    let mut lost_tick = tokio::time::interval(Duration::from_secs(1));
    let mut lost_seen = Lost::default();
    {
        let logs_task = async {
            match bpf_logs.as_mut() {
                Some(f) => f.run().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(logs_task);
        while !stopped {
            tokio::select! {
                s = &mut signal => { s?; stopped = true; }
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => break,
                r = reader.read(|e| push(e, &mut buf)) => {
                    r?;
                    sink.write(&buf)?;
                    buf.clear();
                }
                _ = lost_tick.tick() => {
                    let now = lost.read()?;
                    report_lost(&mut sink, &now, &lost_seen, args.json, args.buffer_size)?;
                    lost_seen = now;
                }
                _ = &mut logs_task => {}
            }
        }
    }
    drop(ebpf);
    reader.drain(|e| push(e, &mut buf));
    sink.write(&buf)?;
    if let Some(f) = bpf_logs.as_mut() {
        f.flush();
    }
    let total = lost.read()?;
    report_lost(&mut sink, &total, &lost_seen, args.json, args.buffer_size)?;
    if let Some(l) = render::lost_line(&total, args.buffer_size) {
        eprintln!("{l}");
    }
    log::info!("{events} execs delivered, {} lost", total.events());
    Ok(0)
}

fn report_lost(sink: &mut Sink, now: &Lost, before: &Lost, json: bool, size: u32) -> Result<()> {
    let delta = Lost {
        ring_full: now.ring_full - before.ring_full,
        table_full: now.table_full - before.table_full,
        strings_missing: now.strings_missing - before.strings_missing,
    };
    if delta == Lost::default() {
        return Ok(());
    }
    if json {
        let mut v = render::lost_json(&delta);
        v["type"] = "lost".into();
        sink.write(&format!("{v}\n"))
    } else {
        match render::lost_line(&delta, size) {
            Some(l) => sink.write(&format!("--- {l} ---\n")),
            None => Ok(()),
        }
    }
}

/// Attach an already loaded tracepoint program to one more tracepoint.
fn attach_again(ebpf: &mut aya::Ebpf, name: &str, category: &str, tp: &str) -> Result<()> {
    let prog: &mut aya::programs::TracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?;
    prog.attach(category, tp)
        .with_context(|| format!("attaching {name} to tracepoint {category}:{tp}"))?;
    Ok(())
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
