//! `tracer tcp`'s lines, in the layouts of BCC's tcplife, tcpconnlat,
//! tcpaccept and tcpretrans, its JSON objects and its `--summary` table.
use std::{fmt::Write as _, net::IpAddr};

use serde_json::json;

use super::syscall_events::Clock;
use crate::collect::{
    events::{Direction, TcpRecord, TcpWhat},
    tcp::TcpSummary,
};

pub const CLOSE_HEADER: &str =
    "PID     COMM            LADDR           LPORT RADDR           RPORT TX_KB RX_KB MS\n";
pub const CONNECT_HEADER: &str =
    "PID     COMM            IP SADDR           DADDR           DPORT LAT(ms)\n";
pub const ACCEPT_HEADER: &str =
    "PID     COMM            IP RADDR           RPORT LADDR           LPORT\n";
pub const RETRANSMIT_HEADER: &str =
    "TIME     PID     COMM            IP LADDR:LPORT             T> RADDR:RPORT             STATE
";

/// A TCP state's name (include/net/tcp_states.h), as tcpretrans prints it.
pub fn state_name(s: u32) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

fn ip_version(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

/// `addr:port`, with brackets around an IPv6 address.
fn endpoint(a: &IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}:{port}"),
        IpAddr::V6(v) => format!("[{v}]:{port}"),
    }
}

fn pid_str(r: &TcpRecord) -> String {
    r.pid.map_or("-".into(), |p| p.to_string())
}

fn comm_str(r: &TcpRecord) -> &str {
    if r.comm.is_empty() {
        "-"
    } else {
        &r.comm
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The line of one event, in its kind's layout.
pub fn line(out: &mut String, r: &TcpRecord, clock: &Clock) {
    let (pid, comm) = (pid_str(r), comm_str(r));
    let _ = match r.what {
        TcpWhat::Close => writeln!(
            out,
            "{pid:<7} {comm:<15.15} {:<15} {:<5} {:<15} {:<5} {:>5} {:>5} {:.2}",
            r.saddr.to_string(),
            r.sport,
            r.daddr.to_string(),
            r.dport,
            r.tx_bytes / 1024,
            r.rx_bytes / 1024,
            ms(r.ts_ns.saturating_sub(r.start_ns)),
        ),
        TcpWhat::Connect => writeln!(
            out,
            "{pid:<7} {comm:<15.15} {:<2} {:<15} {:<15} {:<5} {}",
            ip_version(&r.saddr),
            r.saddr.to_string(),
            r.daddr.to_string(),
            r.dport,
            if r.failed {
                format!("FAILED after {:.2}", ms(r.ts_ns.saturating_sub(r.start_ns)))
            } else {
                format!("{:.2}", ms(r.ts_ns.saturating_sub(r.start_ns)))
            }
        ),
        TcpWhat::Accept => writeln!(
            out,
            "{pid:<7} {comm:<15.15} {:<2} {:<15} {:<5} {:<15} {}",
            ip_version(&r.saddr),
            r.daddr.to_string(),
            r.dport,
            r.saddr.to_string(),
            r.sport,
        ),
        TcpWhat::Retransmit => {
            let (h, m, s, _) = clock.local(r.ts_ns);
            writeln!(
                out,
                "{h:02}:{m:02}:{s:02} {pid:<7} {comm:<15.15} {:<2} {:<23} R> {:<23} {}",
                ip_version(&r.saddr),
                endpoint(&r.saddr, r.sport),
                endpoint(&r.daddr, r.dport),
                state_name(r.state),
            )
        }
    };
}

/// The JSON object of one event.
pub fn json(out: &mut String, r: &TcpRecord, clock: &Clock) {
    let mut v = json!({
        "type": "tcp",
        "event": match r.what {
            TcpWhat::Close => "close",
            TcpWhat::Connect => "connect",
            TcpWhat::Accept => "accept",
            TcpWhat::Retransmit => "retransmit",
        },
        "time": clock.unix_ns(r.ts_ns) as f64 / 1e9,
        "pid": r.pid,
        "comm": r.pid.map(|_| r.comm.clone()),
        "uid": r.pid.map(|_| r.uid),
        "family": if r.saddr.is_ipv4() { "ipv4" } else { "ipv6" },
        "direction": r.direction.name(),
        "saddr": r.saddr.to_string(),
        "sport": r.sport,
        "daddr": r.daddr.to_string(),
        "dport": r.dport,
    });
    let lifetime = r.ts_ns.saturating_sub(r.start_ns);
    match r.what {
        TcpWhat::Close => {
            v["tx_bytes"] = r.tx_bytes.into();
            v["rx_bytes"] = r.rx_bytes.into();
            v["duration_ns"] = lifetime.into();
            v["state"] = state_name(r.state).into();
        }
        TcpWhat::Connect => {
            v["latency_ns"] = lifetime.into();
            v["failed"] = r.failed.into();
        }
        TcpWhat::Accept => {}
        TcpWhat::Retransmit => v["state"] = state_name(r.state).into(),
    }
    out.push_str(&v.to_string());
    out.push('\n');
}

/// The `--summary` table (or its JSON rows), busiest endpoints first.
pub fn summary(s: &TcpSummary, as_json: bool) -> String {
    let mut rows: Vec<_> = s.rows.iter().collect();
    rows.sort_by(|a, b| {
        (b.1.connections, b.1.tx_bytes + b.1.rx_bytes)
            .cmp(&(a.1.connections, a.1.tx_bytes + a.1.rx_bytes))
            .then(a.0.cmp(b.0))
    });
    let dir = |d: Direction| match d {
        Direction::Active => "out",
        Direction::Passive => "in",
        Direction::Unknown => "?",
    };
    let mut out = String::new();
    if as_json {
        for (e, st) in rows {
            let v = json!({
                "type": "tcp_endpoint",
                "direction": e.direction.name(),
                "addr": e.addr.to_string(),
                "port": e.port,
                "connections": st.connections,
                "tx_bytes": st.tx_bytes,
                "rx_bytes": st.rx_bytes,
                "median_ns": st.median_ns(),
                "max_ns": st.max_ns(),
            });
            out.push_str(&v.to_string());
            out.push('\n');
        }
        return out;
    }
    out.push_str(
        "DIR REMOTE                                      PORT  CONNS     TX_KB     RX_KB  MEDIAN_MS     MAX_MS\n",
    );
    for (e, st) in rows {
        let _ = writeln!(
            out,
            "{:<3} {:<43} {:<5} {:>6} {:>9} {:>9} {:>10.2} {:>10.2}",
            dir(e.direction),
            e.addr.to_string(),
            e.port,
            st.connections,
            st.tx_bytes / 1024,
            st.rx_bytes / 1024,
            ms(st.median_ns()),
            ms(st.max_ns()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn rec(what: TcpWhat) -> TcpRecord {
        TcpRecord {
            what,
            pid: Some(4242),
            uid: 0,
            comm: "curl".into(),
            direction: Direction::Active,
            saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            sport: 51334,
            daddr: IpAddr::V4(Ipv4Addr::new(93, 184, 215, 14)),
            dport: 443,
            start_ns: 1_000_000,
            ts_ns: 92_790_000,
            tx_bytes: 500,
            rx_bytes: 2048,
            state: 1,
            failed: false,
        }
    }

    fn clock() -> Clock {
        Clock {
            realtime_offset_ns: 0,
            utc_offset_s: 0,
            start_ns: 0,
        }
    }

    #[test]
    fn close_lines_are_tcplifes() {
        let mut out = String::new();
        line(&mut out, &rec(TcpWhat::Close), &clock());
        assert_eq!(
            out,
            "4242    curl            10.0.0.5        51334 93.184.215.14   443       0     2 91.79\n"
        );
        // Columns line up with the header.
        let col = |s: &str, name: &str| s.find(name).unwrap();
        assert_eq!(col(CLOSE_HEADER, "LADDR"), col(&out, "10.0.0.5"));
        assert_eq!(col(CLOSE_HEADER, "RADDR"), col(&out, "93.184"));
    }

    #[test]
    fn unknown_owner_and_ipv6() {
        let mut r = rec(TcpWhat::Retransmit);
        r.pid = None;
        r.comm.clear();
        r.saddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        r.daddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut out = String::new();
        line(&mut out, &r, &clock());
        assert!(
            out.contains(" -       -               6  [::1]:51334"),
            "{out}"
        );
        let col = |s: &str, name: &str| s.find(name).unwrap();
        assert_eq!(col(RETRANSMIT_HEADER, "T>"), col(&out, "R>"), "{out}");
        assert_eq!(
            col(RETRANSMIT_HEADER, "RADDR"),
            col(&out, "[::1]:443"),
            "{out}"
        );
        assert_eq!(
            col(RETRANSMIT_HEADER, "STATE"),
            col(&out, "ESTABLISHED"),
            "{out}"
        );
        assert_eq!(col(RETRANSMIT_HEADER, "PID"), col(&out, "- "), "{out}");
        let mut j = String::new();
        json(&mut j, &r, &clock());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["pid"], serde_json::Value::Null);
        assert_eq!(v["family"], "ipv6");
        assert_eq!(v["state"], "ESTABLISHED");
    }

    #[test]
    fn failed_connect_and_summary() {
        let mut r = rec(TcpWhat::Connect);
        r.failed = true;
        let mut out = String::new();
        line(&mut out, &r, &clock());
        assert!(
            out.trim_end().ends_with("443   FAILED after 91.79"),
            "{out}"
        );
        let mut s = TcpSummary::default();
        for (life, port) in [(10, 443), (30, 443), (20, 443), (5, 80)] {
            let mut r = rec(TcpWhat::Close);
            r.start_ns = 0;
            r.ts_ns = life * 1_000_000;
            r.dport = port;
            s.add(&r);
        }
        let text = summary(&s, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("out 93.184.215.14"), "{text}");
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols[2..],
            ["443", "3", "1", "6", "20.00", "30.00"],
            "{text}"
        );
        let j = summary(&s, true);
        let v: serde_json::Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
        assert_eq!(v["connections"], 3);
        assert_eq!(v["median_ns"], 20_000_000);
    }
}
