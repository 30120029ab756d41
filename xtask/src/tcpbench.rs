//! The `tracer tcp` part of `cargo xtask bench`: the added cost per connection
//! of a loopback connect/send/close loop (the fixture's `tcp N 100`) under
//! `tracer tcp` and under a tcplife.bt-like bpftrace program on the same
//! tracepoint, both system-wide and printing a line per closed socket,
//! interleaved round by round with the untraced loop. What tracing adds per
//! connection is read two ways: the tool's own CPU time while the loop runs
//! (its threads' schedstat) plus its programs' run time in the kernel
//! (`kernel.bpf_stats_enabled`, in a separate run), which is what it costs the
//! machine; and how much longer the loop took, which on this 2-CPU machine
//! moves by more than either tool costs.
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::{
    bench::{held_while, median, ratio_per_round, run_loop, Background, Bins},
    bpfstats::StatsOn,
    util::step,
};

/// Connections per run.
pub const CONNS: u64 = 5000;

/// BCC's tcplife as a bpftrace program on `sock:inet_sock_set_state`, as
/// bpftrace's own tcplife.bt does it (birth time by socket, pid and comm at
/// SYN_SENT or LAST_ACK, a line at TCP_CLOSE with tcp_sock's byte counts).
pub const BPFTRACE_TCPLIFE: &str = r#"tracepoint:sock:inet_sock_set_state {
  if (args->protocol == 6) {
    $sk = args->skaddr;
    if (args->newstate < 4) { @birth[$sk] = nsecs; }
    if (args->newstate == 2 || args->newstate == 9) { @skpid[$sk] = pid; @skcomm[$sk] = comm; }
    if (args->newstate == 7 && @birth[$sk]) {
      $tp = (struct tcp_sock *)$sk;
      printf("%-5d %-10.10s %-15s %-5d %-15s %-5d %5d %5d %d\n", @skpid[$sk], @skcomm[$sk],
        ntop(args->saddr), args->sport, ntop(args->daddr), args->dport,
        $tp->bytes_acked / 1024, $tp->bytes_received / 1024, (nsecs - @birth[$sk]) / 1000000);
      delete(@birth[$sk]); delete(@skpid[$sk]); delete(@skcomm[$sk]);
    }
  }
}"#;

#[derive(Debug, Default)]
pub struct TcpBench {
    pub rounds: usize,
    /// ns per connection, per round.
    pub untraced: Vec<f64>,
    pub ours: Vec<f64>,
    pub bpftrace: Vec<f64>,
    /// The tool's own CPU time (all its threads) per connection, per round.
    pub ours_cpu: Vec<f64>,
    pub bpftrace_cpu: Vec<f64>,
    /// Kernel-side ns per connection (all the tool's programs), per round.
    pub ours_kernel: Vec<f64>,
    pub bpftrace_kernel: Vec<f64>,
}

fn loop_cmd(b: &Bins) -> Command {
    let mut c = Command::new(&b.fixture);
    c.args(["tcp", &CONNS.to_string(), "100"]);
    c
}

fn tool(b: &Bins, ours: bool) -> (Command, &'static str) {
    if ours {
        let mut c = Command::new(&b.tracer);
        c.args(["tcp"]);
        (c, "Tracing")
    } else {
        let mut c = Command::new("bpftrace");
        c.args(["-e", BPFTRACE_TCPLIFE]);
        (c, "Attaching")
    }
}

/// CPU time of every thread of `pid` so far, ns (/proc/PID/task/*/schedstat).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// With the tool attached system-wide: the loop's ns per connection, and the
/// tool's own CPU ns per connection while it ran.
fn under(b: &Bins, ours: bool) -> Result<(f64, f64)> {
    let (mut cmd, ready) = tool(b, ours);
    let t = Background::start(cmd.stdout(Stdio::null()), ready)?;
    let before = cpu_ns(t.pid());
    let per = run_loop(&mut loop_cmd(b), CONNS, None)?.ns_per_call;
    // What the tool still has to print of the last connections.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let cpu = (cpu_ns(t.pid()) - before) as f64 / CONNS as f64;
    t.stop()?;
    Ok((per, cpu))
}

/// The tool's programs' run time per connection, statistics on.
fn kernel(b: &Bins, ours: bool) -> Result<f64> {
    let (mut cmd, ready) = tool(b, ours);
    let _on = StatsOn::enable()?;
    let stats = held_while(&mut cmd, ready, &mut loop_cmd(b), CONNS)?;
    let ns: u64 = stats.iter().map(|p| p.run_time_ns).sum();
    Ok(ns as f64 / CONNS as f64)
}

pub fn measure(b: &Bins, rounds: usize) -> Result<TcpBench> {
    let mut r = TcpBench {
        rounds,
        ..Default::default()
    };
    for round in 0..rounds {
        step(&format!(
            "tcp round {}/{rounds}: fixture tcp {CONNS} 100 untraced, under tracer tcp, under bpftrace's tcplife; then each with bpf_stats",
            round + 1
        ));
        r.untraced
            .push(run_loop(&mut loop_cmd(b), CONNS, None)?.ns_per_call);
        let (loop_ns, cpu) = under(b, true)?;
        r.ours.push(loop_ns);
        r.ours_cpu.push(cpu);
        let (loop_ns, cpu) = under(b, false)?;
        r.bpftrace.push(loop_ns);
        r.bpftrace_cpu.push(cpu);
        r.ours_kernel.push(kernel(b, true)?);
        r.bpftrace_kernel.push(kernel(b, false)?);
        let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        eprintln!(
            "    loop {:.0} / {:.0} / {:.0} ns per connection; tool CPU {:.0} / {:.0} ns; in the kernel {:.0} / {:.0} ns",
            last(&r.untraced),
            last(&r.ours),
            last(&r.bpftrace),
            last(&r.ours_cpu),
            last(&r.bpftrace_cpu),
            last(&r.ours_kernel),
            last(&r.bpftrace_kernel)
        );
    }
    Ok(r)
}

fn added(v: &[f64], base: &[f64]) -> Vec<f64> {
    v.iter().zip(base).map(|(x, u)| x - u).collect()
}

/// Per round: the tool's CPU plus its programs' time, ns per connection.
fn total(cpu: &[f64], kernel: &[f64]) -> Vec<f64> {
    cpu.iter().zip(kernel).map(|(c, k)| c + k).collect()
}

pub fn render(r: &TcpBench) -> String {
    let mut out = String::new();
    out.push_str("\n## TCP connections (`tracer tcp`)\n\n");
    out.push_str(&format!(
        "The fixture's `tcp {CONNS} 100`: {CONNS} loopback connections to its own server, each sending 100 bytes \
         and getting 100 back, then closed; both sockets of each close, so a tool prints {} lines a run. Untraced, \
         under `tracer tcp` and under a tcplife.bt-like bpftrace program on the same tracepoint (below), both \
         system-wide with their output to /dev/null, interleaved, {} rounds, medians of the per-round figures. \
         \"Tool CPU\" is the tool's own CPU time while the loop runs (all its threads, from schedstat), \
         \"in the kernel\" the run time of its programs (kernel.bpf_stats_enabled, in a separate run of each \
         round; programs run in the traced tasks' time, not the tool's), both per connection; their sum is what \
         tracing adds to the machine per connection. \"Loop added\" is how much longer the loop took: on 2 CPUs \
         shared by the fixture's client and server threads and the tool, it moves by more from round to round \
         than either tool costs, so it has no budget.\n\n",
        2 * CONNS,
        r.rounds
    ));
    out.push_str("| scenario | loop ns per connection | loop added ns | tool CPU ns | in the kernel ns | CPU + kernel ns | vs bpftrace |\n|---|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| untraced | {:.0} | | | | | |\n",
        median(&r.untraced)
    ));
    let (to, tb) = (
        total(&r.ours_cpu, &r.ours_kernel),
        total(&r.bpftrace_cpu, &r.bpftrace_kernel),
    );
    out.push_str(&format!(
        "| `tracer tcp` | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x |\n",
        median(&r.ours),
        median(&added(&r.ours, &r.untraced)),
        median(&r.ours_cpu),
        median(&r.ours_kernel),
        median(&to),
        ratio_per_round(&to, &tb)
    ));
    out.push_str(&format!(
        "| bpftrace tcplife | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | |\n",
        median(&r.bpftrace),
        median(&added(&r.bpftrace, &r.untraced)),
        median(&r.bpftrace_cpu),
        median(&r.bpftrace_kernel),
        median(&tb)
    ));
    out.push_str(&format!(
        "\nThe bpftrace program:\n\n```\n{BPFTRACE_TCPLIFE}\n```\n\n"
    ));
    out
}

/// Budget rows: (what, measured, limit, at most).
pub fn budgets(r: &TcpBench) -> Vec<(String, f64, f64, bool)> {
    vec![
        (
            "`tracer tcp` added cost per connection (tool CPU + programs' run time) < bpftrace tcplife's"
                .into(),
            ratio_per_round(
                &total(&r.ours_cpu, &r.ours_kernel),
                &total(&r.bpftrace_cpu, &r.bpftrace_kernel),
            ),
            1.0,
            true,
        ),
        (
            "`tracer tcp` kernel-side cost per connection < bpftrace tcplife's".into(),
            ratio_per_round(&r.ours_kernel, &r.bpftrace_kernel),
            1.0,
            true,
        ),
    ]
}
