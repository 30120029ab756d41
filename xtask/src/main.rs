//! `cargo xtask`: set-up, build-and-run, the whole test suite, benchmarks.
mod setup;
mod trace_bench;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "tracer's developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make this machine ready to build and test tracer (idempotent): apt packages,
    /// bpf-linker built against LLVM 22, nightly rust-src, the peer tools.
    Setup,
    /// Set up if needed, build tracer (release) and run it with ARGS (as root).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up if needed and run the whole test suite: unit tests, end-to-end tests
    /// as root, the kernel VM tests and a quick benchmark pass.
    Test,
    /// Build (release) and measure `tracer trace` against strace on the geteuid
    /// loop, and its events/s into /dev/null (as root).
    BenchTrace {
        /// Calls in the loop traced by tracer.
        #[arg(long, default_value_t = 4_000_000)]
        n: u64,
        /// Calls in the loop traced by strace.
        #[arg(long, default_value_t = 100_000)]
        strace_n: u64,
        /// Runs of each measurement; the best is kept.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

fn main() {
    let cli = Cli::parse();
    let r: Result<i32> = match cli.cmd {
        Cmd::Setup => setup::run().map(|_| 0),
        Cmd::Run { args } => run(&args),
        Cmd::Test => test(),
        Cmd::BenchTrace { n, strace_n, runs } => bench_trace(n, strace_n, runs),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> Result<i32> {
    let env = setup::run()?;
    util::step("building tracer (release)");
    util::cargo(&env, &["build", "--release", "-p", "tracer"])?;
    let bin = util::root().join("target/release/tracer");
    util::step(&format!("running {} {}", bin.display(), args.join(" ")));
    let status = std::process::Command::new(bin).args(args).status()?;
    Ok(status.code().unwrap_or(1))
}

fn bench_trace(n: u64, strace_n: u64, runs: u32) -> Result<i32> {
    let env = setup::run()?;
    util::step("building tracer and the fixtures (release)");
    util::cargo(&env, &["build", "--release", "-p", "tracer", "-p", "tracer-fixtures"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| util::root().join("target"));
    let dir = target.join("release");
    let b = trace_bench::measure(&dir.join("tracer"), &dir.join("fixture"), n, strace_n, runs)?;
    trace_bench::print(&b);
    Ok(0)
}

fn test() -> Result<i32> {
    let env = setup::run()?;
    let mut tally = util::Tally::default();
    util::step("building the workspace and the test fixtures");
    util::cargo(&env, &["build", "--all-targets"])?;
    util::step("cargo test (unit tests, and end-to-end tests as root)");
    tally.cargo_test(&env, &["test"])?;
    tally.finish()
}
