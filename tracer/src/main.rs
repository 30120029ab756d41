//! tracer: parse, run, map errors to exit codes; nothing else.
mod bpf;
mod cli;
mod cmd;
mod collect;
mod http;
mod report;
mod signals;
mod sys;

use clap::Parser as _;

fn main() {
    // First, before anything slow: a SIGINT or SIGTERM that comes while tracer
    // starts waits for the run loop instead of being lost (see signals.rs).
    signals::hold();
    let cli = cli::Cli::parse();
    if !cli.command.waits_for_signals() {
        signals::release();
    }
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
    // Colour follows where the report goes.
    let on_stderr = cli.command.report_on_stderr();
    report::style::init(cli.color, if on_stderr { 2 } else { 1 });
    let error_colour = match cli.color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => {
            (unsafe { libc::isatty(2) } == 1) && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let verbose = cli.verbose > 0;
    let result = rt.block_on(cmd::run_command(cli.command, on_stderr, verbose));
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
