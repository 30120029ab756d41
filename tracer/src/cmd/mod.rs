//! One module per subcommand: each plans from its arguments and implements
//! `run::Counting` or `run::Streaming`; `run` owns the loop.
pub mod docs;
pub mod exec;
pub mod floor;
pub mod info;
pub mod kprobe;
pub mod list;
pub mod process;
pub mod profile;
pub mod run;
pub mod serve;
pub mod syscalls;
pub mod tcp;
pub mod trace;
pub mod tracepoint;
pub mod uprobe;

use std::{io::Write, path::Path};

use anyhow::{Context as _, Result};

use crate::cli::{BlockArgs, Command, RunArgs};

/// Run one command line; returns tracer's exit code.
pub async fn run_command(command: Command, report_on_stderr: bool, verbose: bool) -> Result<i32> {
    let opts = |r: &RunArgs, b: Option<&BlockArgs>| run::Options {
        duration: r.duration,
        interval: b.and_then(|b| b.interval),
        output: r.output.clone(),
        report_on_stderr,
    };
    match command {
        Command::Syscalls(a) => {
            run::count(syscalls::plan(&a)?, opts(&a.run, Some(&a.blocks))).await
        }
        Command::Kprobe(a) => run::count(kprobe::plan(&a)?, opts(&a.run, Some(&a.blocks))).await,
        Command::Uprobe(a) => run::count(uprobe::plan(&a)?, opts(&a.run, Some(&a.blocks))).await,
        Command::Tracepoint(a) => {
            run::count(tracepoint::plan(&a)?, opts(&a.run, Some(&a.blocks))).await
        }
        Command::Profile(a) => run::count(profile::plan(&a)?, opts(&a.run, Some(&a.blocks))).await,
        Command::Serve(a) => {
            let duration = a.duration;
            run::serve(
                serve::plan(&a)?,
                run::Options {
                    duration,
                    report_on_stderr,
                    ..Default::default()
                },
            )
            .await
        }
        Command::Trace(a) => run::stream(trace::plan(&a)?, opts(&a.run, None)).await,
        Command::Exec(a) => run::stream(exec::plan(&a)?, opts(&a.run, None)).await,
        Command::Tcp(a) => run::stream(tcp::plan(&a)?, opts(&a.run, None)).await,
        Command::Floor(a) => floor::run(a).await,
        Command::List(a) => list::run(a, verbose),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man => docs::man(),
        Command::Info(a) => info::run(a),
    }
}

/// Where a report goes: a file, stdout or stderr. A command launched with
/// `-- CMD` owns stdout, so its reports go to stderr (as strace's and perf
/// stat's do). A closed pipe (`| head`) ends the output quietly instead of panicking.
pub struct Sink {
    out: Box<dyn Write>,
    closed: bool,
}

impl Sink {
    pub fn new(path: Option<&Path>, to_stderr: bool) -> Result<Self> {
        let out: Box<dyn Write> = match path {
            Some(p) => Box::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write {}", p.display()))?,
            ),
            None if to_stderr => Box::new(std::io::stderr()),
            None => Box::new(std::io::stdout()),
        };
        Ok(Self { out, closed: false })
    }

    pub fn write(&mut self, text: &str) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        match self
            .out
            .write_all(text.as_bytes())
            .and_then(|_| self.out.flush())
        {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r.context("writing the report"),
        }
    }
}

/// Local wall-clock time as HH:MM:SS.
pub fn clock() -> String {
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&now, &mut tm) };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}
