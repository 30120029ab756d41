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
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracer: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    // Colour follows where the report goes: the strace layout writes to
    // stderr, and so does every report of a launched command.
    let report_fd = match &cli.command {
        cli::Command::Syscalls(a)
            if !a.launch.command.is_empty() || (!a.json && !a.pid.is_empty()) =>
        {
            2
        }
        cli::Command::Trace(a) if !a.launch.command.is_empty() => 2,
        cli::Command::Kprobe(cli::KprobeArgs { process, .. })
        | cli::Command::Uprobe(cli::UprobeArgs { process, .. })
        | cli::Command::Tracepoint(cli::TracepointArgs { process, .. })
            if !process.launch.command.is_empty() =>
        {
            2
        }
        _ => 1,
    };
    report::style::init(cli.color, report_fd);
    let error_colour = match cli.color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => {
            (unsafe { libc::isatty(2) } == 1) && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            cli::Command::Syscalls(a) => cmd::syscalls::run(a).await,
            cli::Command::Kprobe(a) => cmd::kprobe::run(a).await,
            cli::Command::Floor(a) => cmd::floor::run(a).await,
            cli::Command::Uprobe(a) => cmd::uprobe::run(a).await,
            cli::Command::Tracepoint(a) => cmd::tracepoint::run(a).await,
            cli::Command::List(a) => cmd::list::run(a, cli.verbose > 0),
            cli::Command::Completions { shell } => cmd::docs::completions(shell),
            cli::Command::Man => cmd::docs::man(),
            cli::Command::Info(a) => cmd::info::run(a),
            cli::Command::Trace(a) => cmd::trace::run(a).await,
            cli::Command::Exec(a) => cmd::exec::run(a).await,
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            if error_colour {
                eprintln!("\x1b[31mtracer:\x1b[0m {e:#}");
            } else {
                eprintln!("tracer: {e:#}");
            }
            std::process::exit(1);
        }
    }
}
