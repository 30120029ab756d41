//! Small helpers: announcing steps, running commands, counting results.
use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where what is slow to fetch or build (Debian kernels and roots, strace's
/// test programs) is kept between runs: `TRACER_CACHE`, else
/// `~/.cache/tracer-xtask`, outside the work tree, so that a fresh clone
/// finds what an earlier clone fetched; each user of it rebuilds what is
/// missing. What a run builds from this tree (the VM's initramfs, consoles)
/// goes to the target directory instead.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRACER_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("tracer-xtask")
}

/// cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the
/// workspace root, as cargo reads it), else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    }
}

pub fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Environment for cargo invocations (toolchain choices made by set-up).
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub vars: Vec<(String, String)>,
}

pub fn cargo(env: &Env, args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root())
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs a command, printing it first; fails if it fails.
pub fn sh(cmd: &mut Command) -> Result<()> {
    eprintln!("    $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", show(cmd));
    }
    Ok(())
}

pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts passed and failed tests across the steps of `cargo xtask test`.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub failed_steps: Vec<String>,
}

impl Tally {
    /// Run a cargo test command, echoing its output and adding up its results.
    pub fn cargo_test(&mut self, env: &Env, args: &[&str]) -> Result<()> {
        let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .current_dir(root())
            .envs(env.vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .spawn()
            .context("running cargo test")?;
        let out = child.stdout.take().unwrap();
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |word: &str| -> u64 {
                    rest.split(';')
                        .find_map(|p| {
                            p.trim().strip_suffix(word).map(|n| {
                                n.trim()
                                    .trim_start_matches("ok. ")
                                    .trim_start_matches("FAILED. ")
                                    .parse()
                                    .unwrap_or(0)
                            })
                        })
                        .unwrap_or(0)
                };
                self.passed += num(" passed");
                self.failed += num(" failed");
            }
        }
        let status = child.wait()?;
        if !status.success() {
            self.failed_steps.push(format!("cargo {}", args.join(" ")));
            if self.failed == 0 {
                self.failed += 1;
            }
        }
        Ok(())
    }

    /// Record a step that is one check.
    pub fn check(&mut self, name: &str, r: Result<()>) {
        match r {
            Ok(()) => self.passed += 1,
            Err(e) => {
                eprintln!("FAILED: {name}: {e:#}");
                self.failed += 1;
                self.failed_steps.push(name.to_string());
            }
        }
    }

    pub fn finish(&self) -> Result<i32> {
        if !self.failed_steps.is_empty() {
            eprintln!("failed steps: {}", self.failed_steps.join("; "));
        }
        println!("xtask test: {} passed, {} failed", self.passed, self.failed);
        Ok(if self.failed == 0 && self.failed_steps.is_empty() {
            0
        } else {
            1
        })
    }
}
