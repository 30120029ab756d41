//! `tracer tcp --summary`: closed connections added up per remote endpoint.
use std::{collections::BTreeMap, net::IpAddr};

use super::events::{Direction, TcpRecord};

/// A remote address and the service port: the remote port of an active open,
/// the local port of a passive one (a client's ephemeral ports would make one
/// row per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub direction: Direction,
    pub addr: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    pub connections: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Every lifetime, ns (for the median).
    pub lifetimes: Vec<u64>,
}

impl EndpointStats {
    pub fn median_ns(&self) -> u64 {
        let mut v = self.lifetimes.clone();
        v.sort_unstable();
        match v.len() {
            0 => 0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    pub fn max_ns(&self) -> u64 {
        self.lifetimes.iter().copied().max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default)]
pub struct TcpSummary {
    pub rows: BTreeMap<Endpoint, EndpointStats>,
}

impl TcpSummary {
    /// Add one closed connection.
    pub fn add(&mut self, r: &TcpRecord) {
        let port = match r.direction {
            Direction::Passive => r.sport,
            Direction::Active | Direction::Unknown => r.dport,
        };
        let s = self
            .rows
            .entry(Endpoint {
                direction: r.direction,
                addr: r.daddr,
                port,
            })
            .or_default();
        s.connections += 1;
        s.tx_bytes += r.tx_bytes;
        s.rx_bytes += r.rx_bytes;
        s.lifetimes.push(r.ts_ns.saturating_sub(r.start_ns));
    }
}
