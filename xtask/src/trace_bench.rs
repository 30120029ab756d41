//! `tracer trace` measured against strace on the geteuid loop, and its event
//! throughput into /dev/null. `cargo xtask bench-trace` prints it; the main
//! benchmark can call `measure` and report the same numbers.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

#[derive(Debug, Clone, Copy)]
pub struct TraceBench {
    /// Loop iterations run untraced and under `tracer trace`.
    pub n: u64,
    /// Iterations run under strace (fewer: it is slow).
    pub strace_n: u64,
    pub untraced_ns_per_call: f64,
    pub tracer_ns_per_call: f64,
    pub strace_ns_per_call: f64,
    /// Events delivered per second of tracer's whole run (load, attach, drain included).
    pub events_per_s: f64,
    /// Events tracer reported lost in that run.
    pub lost: u64,
    /// The same with --json.
    pub json_events_per_s: f64,
    pub json_lost: u64,
}

impl TraceBench {
    /// Added cost per traced call, tracer and strace.
    pub fn overheads_ns(&self) -> (f64, f64) {
        (
            self.tracer_ns_per_call - self.untraced_ns_per_call,
            self.strace_ns_per_call - self.untraced_ns_per_call,
        )
    }
}

/// The `loop_ns N` line `fixture geteuid-timed` prints on stderr, and `tracer: lost N`.
fn parse(stderr: &str) -> Result<(u64, u64)> {
    let loop_ns = stderr
        .lines()
        .find_map(|l| l.strip_prefix("loop_ns ")?.trim().parse().ok())
        .with_context(|| format!("no loop time in the output: {stderr}"))?;
    let lost = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("tracer: lost ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Ok((loop_ns, lost))
}

fn run(cmd: &mut Command) -> Result<(u64, u64, f64)> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running the benchmark")?;
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{cmd:?} failed: {stderr}");
    }
    let (loop_ns, lost) = parse(&stderr)?;
    Ok((loop_ns, lost, wall))
}

/// Best of `runs` of each measurement (the machine is shared, so the minimum is the signal).
pub fn measure(
    tracer: &Path,
    fixture: &Path,
    n: u64,
    strace_n: u64,
    runs: u32,
) -> Result<TraceBench> {
    let best = |f: &mut dyn FnMut() -> Result<(u64, u64, f64)>| -> Result<(u64, u64, f64)> {
        let mut b: Option<(u64, u64, f64)> = None;
        for _ in 0..runs.max(1) {
            let r = f()?;
            if b.is_none_or(|b| r.0 < b.0) {
                b = Some(r);
            }
        }
        Ok(b.unwrap())
    };
    let ns = n.to_string();
    let (untraced, _, _) = best(&mut || run(Command::new(fixture).args(["geteuid-timed", &ns])))?;
    let (traced, lost, wall) = best(&mut || {
        run(Command::new(tracer)
            .args(["trace", "-e", "geteuid", "-o", "/dev/null", "--"])
            .arg(fixture)
            .args(["geteuid-timed", &ns]))
    })?;
    let (json_loop, json_lost, json_wall) = best(&mut || {
        run(Command::new(tracer)
            .args(["trace", "--json", "-e", "geteuid", "-o", "/dev/null", "--"])
            .arg(fixture)
            .args(["geteuid-timed", &ns]))
    })?;
    let _ = json_loop;
    let sn = strace_n.to_string();
    let (straced, _, _) = best(&mut || {
        run(Command::new("strace")
            .args(["-f", "-e", "trace=geteuid", "-o", "/dev/null"])
            .arg(fixture)
            .args(["geteuid-timed", &sn]))
    })?;
    Ok(TraceBench {
        n,
        strace_n,
        untraced_ns_per_call: untraced as f64 / n as f64,
        tracer_ns_per_call: traced as f64 / n as f64,
        strace_ns_per_call: straced as f64 / strace_n as f64,
        events_per_s: (n - lost) as f64 / wall,
        lost,
        json_events_per_s: (n - json_lost) as f64 / json_wall,
        json_lost,
    })
}

pub fn print(b: &TraceBench) {
    let (ours, theirs) = b.overheads_ns();
    println!("geteuid loop, ns per call (best run):");
    println!(
        "  untraced                 {:>10.1}",
        b.untraced_ns_per_call
    );
    println!(
        "  tracer trace -e geteuid  {:>10.1}  (+{ours:.1})",
        b.tracer_ns_per_call
    );
    println!(
        "  strace -f -e geteuid     {:>10.1}  (+{theirs:.1}, {} calls)",
        b.strace_ns_per_call, b.strace_n
    );
    println!(
        "  strace overhead / tracer overhead: {:.0}x",
        theirs / ours.max(1e-9)
    );
    println!(
        "events delivered into /dev/null: {:.0}/s over tracer's whole run of {} calls, {} lost",
        b.events_per_s, b.n, b.lost
    );
    println!(
        "  with --json: {:.0}/s, {} lost",
        b.json_events_per_s, b.json_lost
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture_and_tracer_lines() {
        assert_eq!(parse("loop_ns 1234\n").unwrap(), (1234, 0));
        assert_eq!(
            parse("x\ntracer: lost 7 events (...)\nloop_ns 5\n").unwrap(),
            (5, 7)
        );
        assert!(parse("nothing").is_err());
    }
}
