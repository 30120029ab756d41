//! `tracer tcp` on connections whose every byte is known: the fixture's `tcp N
//! K ADDR [PORT]` makes N loopback connections to a server of its own, each
//! sending K bytes and receiving 100, and prints the server's port.
mod common;

use std::{
    process::{Command, Output},
    time::Duration,
};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// The server port the fixture printed (`port P`) on its stdout.
fn fixture_port(out: &Output) -> u64 {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("port ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port line from the fixture: {out:?}"))
}

/// tracer tcp `args` -- `cmd`: the fixture's output and tracer's JSON objects
/// (the report goes to stderr with -- CMD).
fn traced(args: &[&str], cmd: &[&str]) -> (Output, Vec<Value>) {
    let mut all = vec!["tcp", "--json"];
    all.extend_from_slice(args);
    all.push("--");
    all.extend_from_slice(cmd);
    let out = run(tracer().args(&all), LIMIT);
    assert!(out.status.success(), "{all:?}: {out:?}");
    let objs = json_lines(&out.stderr);
    (out, objs)
}

fn of_type<'a>(objs: &'a [Value], event: &str) -> Vec<&'a Value> {
    objs.iter()
        .filter(|o| o["type"] == "tcp" && o["event"] == event)
        .collect()
}

/// N connections of K bytes: N client sockets that sent K and received 100,
/// N server sockets that received K and sent 100, all of the launched
/// fixture, with the server's port on the right side and lifetimes above 0.
fn check_closes(objs: &[Value], port: u64, n: usize, k: u64, addr: &str, family: &str) {
    let closes = of_type(objs, "close");
    assert_eq!(closes.len(), 2 * n, "{objs:#?}");
    let pid = &closes[0]["pid"];
    assert!(pid.as_u64().unwrap() > 0);
    for c in &closes {
        assert_eq!(&c["pid"], pid, "one process: {c}");
        assert_eq!(c["comm"], "fixture", "{c}");
        assert_eq!(c["family"], family, "{c}");
        assert_eq!(c["saddr"], addr, "{c}");
        assert_eq!(c["daddr"], addr, "{c}");
        assert!(c["duration_ns"].as_u64().unwrap() > 0, "{c}");
    }
    let active: Vec<_> = closes
        .iter()
        .filter(|c| c["direction"] == "active")
        .collect();
    let passive: Vec<_> = closes
        .iter()
        .filter(|c| c["direction"] == "passive")
        .collect();
    assert_eq!(active.len(), n, "{closes:#?}");
    assert_eq!(passive.len(), n, "{closes:#?}");
    for c in active {
        assert_eq!(c["dport"], port, "{c}");
        assert_ne!(c["sport"], port, "{c}");
        assert_eq!(c["tx_bytes"], k, "{c}");
        assert_eq!(c["rx_bytes"], 100, "{c}");
    }
    for c in passive {
        assert_eq!(c["sport"], port, "{c}");
        assert_eq!(c["tx_bytes"], 100, "{c}");
        assert_eq!(c["rx_bytes"], k, "{c}");
    }
    let summary = objs.iter().find(|o| o["type"] == "summary").unwrap();
    assert_eq!(summary["events"], 2 * n as u64);
    assert_eq!(summary["lost"], 0);
}

#[test]
fn one_close_per_connection_with_its_bytes_ipv4_and_ipv6() {
    let _l = shared_lock();
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    for (addr, family) in [("127.0.0.1", "ipv4"), ("::1", "ipv6")] {
        let (out, objs) = traced(&[], &[fx, "tcp", "8", "3000", addr]);
        check_closes(&objs, fixture_port(&out), 8, 3000, addr, family);
    }
}

/// The text layout is tcplife's: a header, then one line per socket.
#[test]
fn text_lines_are_tcplifes() {
    let _l = shared_lock();
    let fx = fixture_path();
    let args = ["tcp", "--", fx.to_str().unwrap(), "tcp", "3", "5000"];
    let out = run(tracer().args(args), LIMIT);
    assert!(out.status.success(), "{out:?}");
    let port = fixture_port(&out).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    let header =
        "PID     COMM            LADDR           LPORT RADDR           RPORT TX_KB RX_KB MS";
    assert!(err.contains(header), "{err}");
    let lines: Vec<Vec<&str>> = err
        .lines()
        .filter(|l| l.contains(" fixture "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 6, "{err}");
    // PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS: 5000 bytes are 4 KiB.
    let clients: Vec<_> = lines.iter().filter(|l| l[5] == port).collect();
    assert_eq!(clients.len(), 3, "{err}");
    for l in clients {
        assert_eq!(l[6..8], ["4", "0"], "{err}");
        assert!(l[8].parse::<f64>().unwrap() > 0.0, "{err}");
    }
}

#[test]
fn connects_with_latency_and_failures_and_accepts() {
    let _l = shared_lock();
    let fx = fixture_path();
    let fx = fx.to_str().unwrap();
    let (out, objs) = traced(&["--connect"], &[fx, "tcp", "5", "100", "127.0.0.1"]);
    let port = fixture_port(&out);
    let connects = of_type(&objs, "connect");
    assert_eq!(connects.len(), 5, "{objs:#?}");
    for c in &connects {
        assert_eq!(c["dport"], port, "{c}");
        assert_eq!(c["failed"], false, "{c}");
        assert_eq!(c["direction"], "active", "{c}");
        assert_eq!(c["comm"], "fixture", "{c}");
        assert!(c["latency_ns"].as_u64().unwrap() > 0, "{c}");
    }
    assert_eq!(objs.iter().filter(|o| o["type"] == "tcp").count(), 5);
    let (out, objs) = traced(&["--connect"], &[fx, "tcp-refused", "3"]);
    let port = fixture_port(&out);
    let connects = of_type(&objs, "connect");
    assert_eq!(connects.len(), 3, "{objs:#?}");
    assert!(connects
        .iter()
        .all(|c| c["failed"] == true && c["dport"] == port));

    let (out, objs) = traced(&["--accept"], &[fx, "tcp", "4", "100", "::1"]);
    let port = fixture_port(&out);
    let accepts = of_type(&objs, "accept");
    assert_eq!(accepts.len(), 4, "{objs:#?}");
    for a in &accepts {
        // The accepting task, taken from accept()'s own return.
        assert_eq!(a["comm"], "fixture", "{a}");
        assert_eq!(a["sport"], port, "{a}");
        assert_eq!(a["direction"], "passive", "{a}");
        assert_eq!(a["family"], "ipv6", "{a}");
    }
}

/// A port no one else on the machine uses now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// System-wide with --port and -6: only the IPv6 connections on that port,
/// not the IPv4 ones on the same port nor the IPv6 ones on another.
#[test]
fn port_and_family_filters() {
    let _l = shared_lock();
    let port = free_port().to_string();
    let (tr, _err) =
        start_attached(tracer().args(["tcp", "--json", "--port", &port, "-6", "-d", "3"]));
    for (addr, p) in [
        ("127.0.0.1", port.as_str()),
        ("::1", port.as_str()),
        ("::1", "0"),
    ] {
        let out = run(fixture().args(["tcp", "3", "700", addr, p]), LIMIT);
        assert!(out.status.success(), "{out:?}");
    }
    let out = wait_output(tr, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let objs = json_lines(&out.stdout);
    let closes = of_type(&objs, "close");
    assert_eq!(closes.len(), 6, "{objs:#?}");
    for c in closes {
        assert_eq!(c["family"], "ipv6", "{c}");
        let p: u64 = port.parse().unwrap();
        assert!(c["sport"] == p || c["dport"] == p, "{c}");
        assert_eq!(
            c["tx_bytes"].as_u64().unwrap() + c["rx_bytes"].as_u64().unwrap(),
            800
        );
    }
}

#[test]
fn summary_per_remote_endpoint() {
    let _l = shared_lock();
    let fx = fixture_path();
    let (out, objs) = traced(
        &["--summary"],
        &[fx.to_str().unwrap(), "tcp", "6", "2000", "127.0.0.1"],
    );
    let port = fixture_port(&out);
    let rows: Vec<_> = objs
        .iter()
        .filter(|o| o["type"] == "tcp_endpoint")
        .collect();
    assert_eq!(rows.len(), 2, "{objs:#?}");
    for r in &rows {
        assert_eq!(r["addr"], "127.0.0.1", "{r}");
        assert_eq!(r["port"], port, "{r}");
        assert_eq!(r["connections"], 6, "{r}");
        let (med, max) = (
            r["median_ns"].as_u64().unwrap(),
            r["max_ns"].as_u64().unwrap(),
        );
        assert!(med > 0 && max >= med, "{r}");
    }
    let out_row = rows.iter().find(|r| r["direction"] == "active").unwrap();
    assert_eq!(out_row["tx_bytes"], 12000);
    assert_eq!(out_row["rx_bytes"], 600);
    let in_row = rows.iter().find(|r| r["direction"] == "passive").unwrap();
    assert_eq!(in_row["tx_bytes"], 600);
    assert_eq!(in_row["rx_bytes"], 12000);
    assert!(of_type(&objs, "close").is_empty());
}

/// A network namespace of the test's own whose loopback drops 30% of the
/// segments with data sent to one port (nftables on the input hook, so the
/// sender believes them sent and must retransmit). Removed when dropped.
struct LossyNamespace {
    name: String,
}

impl LossyNamespace {
    fn new(port: u16) -> Self {
        let name = format!("tracer-e2e-{}", std::process::id());
        let sh = |args: &[&str], stdin: Option<&str>| {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            let out = match stdin {
                Some(text) => {
                    use std::io::Write as _;
                    let mut child = c
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap_or_else(|e| {
                            panic!(
                                "{args:?}: {e} (cargo xtask setup installs nftables and iproute2)"
                            )
                        });
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(text.as_bytes())
                        .unwrap();
                    child.wait_with_output().unwrap()
                }
                None => c.output().unwrap_or_else(|e| {
                    panic!("{args:?}: {e} (cargo xtask setup installs nftables and iproute2)")
                }),
            };
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name], None);
        let ns = Self { name };
        sh(&["ip", "-n", &ns.name, "link", "set", "lo", "up"], None);
        let rules = format!(
            "table inet tracer_test {{\n chain in {{\n type filter hook input priority 0; policy accept;\n \
             tcp dport {port} meta length > 200 numgen random mod 10 < 3 counter drop\n }}\n}}\n"
        );
        sh(
            &["ip", "netns", "exec", &ns.name, "nft", "-f", "-"],
            Some(&rules),
        );
        ns
    }

    /// Segments the rule dropped so far.
    fn dropped(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "list", "ruleset"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("counter packets ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no counter in {text}"))
    }
}

impl Drop for LossyNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
fn retransmits_of_a_lossy_link_and_exact_bytes_despite_them() {
    require_root();
    let _l = shared_lock();
    let port = 7777;
    let ns = LossyNamespace::new(port);
    let fx = fixture_path();
    let p = port.to_string();
    let cmd = [
        "ip",
        "netns",
        "exec",
        &ns.name,
        fx.to_str().unwrap(),
        "tcp",
        "12",
        "100000",
        "127.0.0.1",
        &p,
    ];
    let (_out, objs) = traced(&["--retransmits"], &cmd);
    let retx = of_type(&objs, "retransmit");
    assert!(ns.dropped() > 0, "the rule dropped nothing");
    assert!(!retx.is_empty(), "no retransmit seen: {objs:#?}");
    for r in &retx {
        // The client's data segments to the lossy port, named by the
        // connection's owner (the launched command, after ip's exec).
        assert_eq!(r["dport"], port, "{r}");
        assert_eq!(r["comm"], "fixture", "{r}");
        let state = r["state"].as_str().unwrap();
        assert!(
            [
                "ESTABLISHED",
                "FIN_WAIT1",
                "CLOSING",
                "LAST_ACK",
                "SYN_SENT"
            ]
            .contains(&state),
            "{r}"
        );
    }
    // The payload counts leave retransmitted bytes out.
    let before = ns.dropped();
    let (_out, objs) = traced(&[], &cmd);
    assert!(
        ns.dropped() > before,
        "the rule dropped nothing in the second run"
    );
    check_closes(&objs, port.into(), 12, 100000, "127.0.0.1", "ipv4");
}

#[test]
fn bad_input_is_one_line_and_nothing_stays_attached() {
    let _l = exclusive_lock();
    fails_with(&["tcp", "--port", "0"], 2, "--port");
    fails_with(&["tcp", "--connect", "--accept"], 2, "cannot be used with");
    fails_with(
        &["tcp", "--summary", "--retransmits"],
        2,
        "cannot be used with",
    );
    let nine: Vec<String> = (1..=9).map(|p| format!("--port={p}")).collect();
    let mut args = vec!["tcp"];
    args.extend(nine.iter().map(String::as_str));
    fails_with(&args, 1, "at most 8 --port values");
    fails_with(&["tcp", "-p", "999999", "-d", "1"], 1, "999999");
    assert_nothing_loaded("after refused tcp runs");
    for args in [&["tcp"][..], &["tcp", "--retransmits"][..]] {
        assert_detaches(args);
    }
}

/// A ring buffer too small for what comes: every close is either delivered
/// or counted lost, exactly. tracer is stopped (SIGSTOP) while the fixture
/// makes its connections, so its 4K ring must overflow whatever the
/// machine's speed; once continued, it ends with the fixture (`-p`).
#[test]
fn lost_events_are_counted_exactly() {
    let _l = shared_lock();
    let n = 3000;
    let fx = Waiting::start(&["tcp", &n.to_string(), "10"]);
    let pid = fx.pid().to_string();
    let out = held_reader(
        tracer().args(["tcp", "--json", "--buffer-size", "4K", "-p", &pid]),
        fx,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{out:?}\nstderr: {stderr}");
    let objs = json_lines(&out.stdout);
    let delivered = of_type(&objs, "close").len() as u64;
    let summary = objs
        .iter()
        .find(|o| o["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let lost = summary["lost"].as_u64().unwrap();
    assert_eq!(summary["events"], delivered);
    assert_eq!(delivered + lost, 2 * n, "{summary}");
    assert!(
        lost > 0,
        "nothing lost with a 4K ring and tracer stopped: {summary}"
    );
    assert_eq!(summary["lost_ring_full"], lost, "{summary}");
    assert!(
        stderr.contains("raise --buffer-size"),
        "the loss is told on stderr: {stderr}"
    );
    let lost_lines: u64 = objs
        .iter()
        .filter(|o| o["type"] == "lost")
        .map(|o| o["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(lost_lines, lost, "the lost lines add up to the total");
}
