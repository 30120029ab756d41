//! `cargo xtask`: set-up, build-and-run, the whole test suite, benchmarks.
mod bench;
mod bpfstats;
mod corpus;
mod debian;
mod dist;
mod ebpf_toolchain;
mod jsondoc;
mod profbench;
mod setup;
mod tcpbench;
mod util;
mod vm;

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
    /// bpf-linker built against LLVM 22, the peer tools, and the eBPF toolchain
    /// pinned by date in tracer-ebpf/rust-toolchain.toml (with rust-src).
    ///
    /// bpf-linker links rustc's bitcode with its own LLVM, so the pinned
    /// toolchain's LLVM major must equal bpf-linker's: set-up compares them
    /// (`rustc -vV` against the libLLVM bpf-linker loads), says what it found,
    /// and rebuilds bpf-linker or falls back to Debian's rustc-web when they
    /// differ. rustup's undated `nightly` moves to newer LLVMs and is never used.
    Setup,
    /// Set up if needed, build tracer (release) and run it with ARGS (as root).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up if needed and run the whole test suite: the toolchain check (the
    /// eBPF toolchain is the pinned one and its LLVM is bpf-linker's), unit
    /// tests, end-to-end tests as root, a quick benchmark pass, the install
    /// checks, strace's test programs compared (strace-corpus) and the kernel
    /// VM tests.
    Test,
    /// Measure tracer against the untraced loop, the eBPF floors (empty and
    /// clock-reading programs) and the peers (bpftrace, strace, perf trace),
    /// then each eBPF scenario's programs' kernel-side ns per run
    /// (kernel.bpf_stats_enabled); print the budgets (PASS/OVER) and write
    /// BENCHMARKS.md.
    Bench {
        /// Every scenario once with small counts (the test suite runs this so the
        /// bench never rots; timings from it mean nothing).
        #[arg(long)]
        quick: bool,
    },
    /// Build the static x86_64 binary (musl, the bytecode embedded) into
    /// target/dist/tracer and a .deb around it (man page, shell completions):
    /// `apt install ./target/dist/tracer_*.deb` on Debian 11 or 12. Then checks
    /// both: the binary counts syscalls in a root holding only itself, /proc and
    /// /sys; the .deb (xz, which Debian 11's dpkg reads) installs into a scratch
    /// dpkg root, and with `dpkg -i` and `apt install ./` into minimal Debian 11
    /// and 12 roots (their own dpkg and apt; packages cached in
    /// ~/.cache/tracer-xtask/debian-SUITE/), where its tracer, man page and completion work.
    Dist,
    /// Boot Debian's 5.10, 6.1 and 6.12 cloud kernels under qemu (cached in
    /// .cache/tracer-xtask/ of the home directory, or TRACER_CACHE) and run every tracer command inside (kprobe with both
    /// backends); PASS/FAIL per kernel and check, and a table of them at the end.
    VmTest,
    /// strace's own test programs as the yardstick: build those of Debian's
    /// strace source package (the installed version; cached in
    /// ~/.cache/tracer-xtask/strace-tests/VERSION/), run each under `strace -f -c` and under
    /// `tracer syscalls --json --` (the debug build of this tree), compare
    /// every row (calls, errors) and print "N of M programs equal". Fails when
    /// a program differs and tracer/tests/strace-corpus-differences.tsv does
    /// not list it with its reason, or lists it and it is now equal.
    /// `TRACER_CORPUS_ONLY=a,b` runs only those programs.
    StraceCorpus,
}

fn main() {
    let cli = Cli::parse();
    let r: Result<i32> = match cli.cmd {
        Cmd::Setup => setup::run().map(|_| 0),
        Cmd::Run { args } => run(&args),
        Cmd::Test => test(),
        Cmd::Bench { quick } => bench_cmd(quick),
        Cmd::Dist => setup::run()
            .and_then(|env| dist::run(&env))
            .and_then(|d| dist::check(&d))
            .map(|_| 0),
        Cmd::VmTest => setup::run().and_then(|env| vm::run(&env)).map(|_| 0),
        Cmd::StraceCorpus => setup::run().and_then(|env| strace_corpus(&env)).map(|_| 0),
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
    let bin = util::target_dir().join("release/tracer");
    util::step(&format!("running {} {}", bin.display(), args.join(" ")));
    let status = std::process::Command::new(bin).args(args).status()?;
    Ok(status.code().unwrap_or(1))
}

fn test() -> Result<i32> {
    let env = setup::run()?;
    let mut tally = util::Tally::default();
    util::step("the eBPF toolchain is the pinned one and its LLVM is bpf-linker's");
    tally.check(
        "eBPF toolchain check",
        setup::check_ebpf_toolchain(&env).map(|line| eprintln!("    {line}")),
    );
    util::step("building the workspace and the test fixtures");
    util::cargo(&env, &["build", "--all-targets"])?;
    util::step("cargo test (unit tests, and end-to-end tests as root)");
    tally.cargo_test(&env, &["test", "--no-fail-fast"])?;
    util::step("benchmark, quick pass (checks that every scenario runs; timings mean nothing)");
    let r = bench::run(&env, bench::QUICK, None).map(|_| ());
    tally.check("cargo xtask bench --quick", r);
    util::step("cargo install --path tracer, then the installed binary run from /");
    tally.check("cargo install --path tracer", install_check(&env));
    util::step("cargo xtask dist: the static binary from an empty root, the .deb installed");
    tally.check(
        "cargo xtask dist",
        dist::run(&env).and_then(|d| dist::check(&d)),
    );
    util::step("strace's own test programs under strace and under tracer");
    tally.check(
        "cargo xtask strace-corpus",
        corpus::run(&util::target_dir().join("debug/tracer")),
    );
    util::step("vm-test (every command on Debian kernels under qemu)");
    tally.check("vm-test", vm::run(&env));
    tally.finish()
}

/// `cargo install --path tracer` yields a binary that runs from anywhere (the
/// bytecode is embedded): install into a scratch root, run it from `/`.
fn install_check(env: &util::Env) -> Result<()> {
    let root = util::target_dir().join("install-check");
    let target = util::target_dir();
    util::cargo(
        env,
        &[
            "install",
            "--locked",
            "--path",
            "tracer",
            "--root",
            root.to_str().unwrap(),
            "--target-dir",
            target.to_str().unwrap(),
            "--force",
        ],
    )?;
    let bin = root.join("bin").join("tracer");
    let out = std::process::Command::new(&bin)
        .args(["syscalls", "-d", "0.2"])
        .current_dir("/")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("SYSCALL") {
        anyhow::bail!(
            "{} syscalls -d 0.2 from /: {} {}{}",
            bin.display(),
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("    {} ran from / and counted syscalls", bin.display());
    Ok(())
}

/// `cargo xtask strace-corpus`: the debug tracer (what `cargo xtask test`
/// builds), then the corpus.
fn strace_corpus(env: &util::Env) -> Result<()> {
    util::step("building tracer (debug)");
    util::cargo(env, &["build", "-p", "tracer"])?;
    corpus::run(&util::target_dir().join("debug/tracer"))
}

fn bench_cmd(quick: bool) -> Result<i32> {
    let env = setup::run()?;
    if quick {
        bench::run(&env, bench::QUICK, None)?;
    } else {
        bench::run(&env, bench::FULL, Some(&util::root().join("BENCHMARKS.md")))?;
    }
    Ok(0)
}
