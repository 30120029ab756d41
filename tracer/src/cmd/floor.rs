//! `tracer floor` (hidden): empty programs on the syscall hooks, for the benchmark's floor.
use anyhow::Result;

use crate::{bpf, cli::FloorArgs};

pub async fn run(args: FloorArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let mut signals = crate::signals::Signals::new()?;
    let mut obj = bpf::load(&bpf::Globals::default(), &[])?;
    obj.attach_raw_tracepoint("noop_enter", "sys_enter")?;
    if args.exit {
        obj.attach_raw_tracepoint("noop_exit", "sys_exit")?;
    }
    eprintln!("Attached empty programs. Ctrl-C to end.");
    signals.recv().await;
    drop(obj);
    Ok(0)
}
