//! `tracer floor` (hidden): empty programs on the syscall hooks (with --clock,
//! ones that only read the clock), for the benchmark's floors.
use anyhow::Result;

use crate::{bpf, cli::FloorArgs};

pub async fn run(args: FloorArgs) -> Result<i32> {
    crate::sys::privileges::check()?;
    let mut signals = crate::signals::Signals::new()?;
    let mut obj = bpf::load(&bpf::Globals::default(), &[])?;
    let (enter, exit) = if args.clock {
        ("noop_clk_enter", "noop_clk_exit")
    } else {
        ("noop_enter", "noop_exit")
    };
    obj.attach_raw_tracepoint(enter, "sys_enter")?;
    if args.exit {
        obj.attach_raw_tracepoint(exit, "sys_exit")?;
    }
    eprintln!("Attached empty programs. Ctrl-C to end.");
    signals.recv().await;
    drop(obj);
    Ok(0)
}
