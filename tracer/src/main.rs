//! tracer: parse, run, map errors to exit codes; nothing else.
mod bpf;
mod cli;
mod cmd;
mod collect;
mod report;
mod signals;
mod sys;

use clap::Parser as _;

fn main() {
    let cli = cli::Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracer: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            cli::Command::Syscalls(a) => cmd::syscalls::run(a).await,
            cli::Command::Kprobe(a) => cmd::kprobe::run(a).await,
            cli::Command::Floor(a) => cmd::floor::run(a).await,
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("tracer: {e:#}");
            std::process::exit(1);
        }
    }
}
