//! `tracer floor` (hidden): empty programs on the syscall hooks, for the benchmark's floor.
use anyhow::Result;

use crate::{bpf, cli::FloorArgs};

pub async fn run(args: FloorArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let mut signals = crate::signals::Signals::new()?;
    let mut ebpf = bpf::load(&bpf::Globals::default(), &[])?;
    bpf::attach_raw_tracepoint(&mut ebpf, "noop_enter", "sys_enter")?;
    if args.exit {
        bpf::attach_raw_tracepoint(&mut ebpf, "noop_exit", "sys_exit")?;
    }
    eprintln!("Attached empty programs. Ctrl-C to end.");
    signals.recv().await;
    drop(ebpf);
    Ok(0)
}
