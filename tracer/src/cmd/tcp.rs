//! `tracer tcp`: TCP connections as they close (tcplife), open (tcpconnlat,
//! tcpaccept) or retransmit (tcpretrans), from the stable tracepoints.
use anyhow::{bail, Context as _, Result};
use tracer_common::tcp::{off, what, AF_INET, AF_INET6, MAX_PORTS};

use super::{
    process::{self, Selection},
    run::Streaming,
};
use crate::{
    bpf::{self, Object},
    cli::TcpArgs,
    collect::{
        events::{Event, TcpWhat},
        tcp::TcpSummary,
    },
    report::{syscall_events::Clock, tcp as render},
    sys::{btf::Btf, tracefs},
};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub selection: Selection,
    pub what: TcpWhat,
    pub summary: bool,
    pub ports: Vec<u16>,
    /// 0 (both), AF_INET or AF_INET6.
    pub family: u16,
    pub max_connections: u32,
    pub json: bool,
    pub buffer_size: u32,
}

pub fn plan(a: &TcpArgs) -> Result<Plan> {
    let selection = process::plan(&a.process)?;
    if a.port.len() > MAX_PORTS {
        bail!("at most {MAX_PORTS} --port values");
    }
    Ok(Plan {
        selection,
        what: if a.connect {
            TcpWhat::Connect
        } else if a.accept {
            TcpWhat::Accept
        } else if a.retransmits {
            TcpWhat::Retransmit
        } else {
            TcpWhat::Close
        },
        summary: a.summary,
        ports: a.port.clone(),
        family: if a.ipv4 {
            AF_INET
        } else if a.ipv6 {
            AF_INET6
        } else {
            0
        },
        max_connections: a.max_connections,
        json: a.run.json,
        buffer_size: a.ring.buffer_size,
    })
}

/// What a run keeps: the clock of its time stamps and the `--summary` sums.
pub struct Live {
    clock: Clock,
    summary: TcpSummary,
}

/// `sock:inet_sock_set_state`'s layout as the kernel program reads it
/// (tracer-ebpf/src/tcp.rs `rec`): unchanged since the tracepoint came (4.16).
const SET_STATE_LAYOUT: [(&str, usize); 11] = [
    ("skaddr", 8),
    ("oldstate", 16),
    ("newstate", 20),
    ("sport", 24),
    ("dport", 26),
    ("family", 28),
    ("protocol", 30),
    ("saddr", 32),
    ("daddr", 36),
    ("saddr_v6", 40),
    ("daddr_v6", 56),
];

fn check_set_state_layout() -> Result<()> {
    let tfs = tracefs::ensure_mounted()?;
    let fields = tracefs::tracepoint_format(&tfs, "sock", "inet_sock_set_state").context(
        "this kernel has no sock:inet_sock_set_state tracepoint (it came in Linux 4.16)",
    )?;
    for (name, want) in SET_STATE_LAYOUT {
        match fields.iter().find(|f| f.name == name) {
            Some(f) if f.offset == want => {}
            Some(f) => bail!(
                "sock:inet_sock_set_state has field {name} at offset {}, not {want}: a layout tracer does not know",
                f.offset
            ),
            None => bail!("sock:inet_sock_set_state has no field {name}: a layout tracer does not know"),
        }
    }
    Ok(())
}

/// The `TCP_OFFSETS` global: struct members from the kernel's BTF and, with
/// --retransmits, `tcp:tcp_retransmit_skb`'s fields from its format file.
fn offsets(retransmits: bool) -> Result<Vec<u64>> {
    let btf = Btf::kernel()?;
    let mut v = vec![off::NONE; off::COUNT];
    for (i, strukt, member) in [
        (off::BYTES_SENT, "tcp_sock", "bytes_sent"),
        (off::BYTES_RETRANS, "tcp_sock", "bytes_retrans"),
        (off::BYTES_RECEIVED, "tcp_sock", "bytes_received"),
        (off::TASK_FILES, "task_struct", "files"),
        (off::FILES_FDT, "files_struct", "fdt"),
        (off::FDT_MAX_FDS, "fdtable", "max_fds"),
        (off::FDT_FD, "fdtable", "fd"),
        (off::FILE_PRIVATE_DATA, "file", "private_data"),
        (off::SOCKET_SK, "socket", "sk"),
    ] {
        v[i] = btf.member_offset(strukt, member)?;
    }
    // `sk_flags` is `__sk_common.skc_flags`.
    v[off::SK_FLAGS] = btf.member_offset("sock", "__sk_common")?
        + btf.member_offset("sock_common", "skc_flags")?;
    if retransmits {
        let tfs = tracefs::ensure_mounted()?;
        let fields = tracefs::tracepoint_format(&tfs, "tcp", "tcp_retransmit_skb").context(
            "this kernel has no tcp:tcp_retransmit_skb tracepoint (it came in Linux 4.15)",
        )?;
        for (i, name, needed) in [
            (off::RETX_SKADDR, "skaddr", true),
            (off::RETX_STATE, "state", true),
            (off::RETX_SPORT, "sport", true),
            (off::RETX_DPORT, "dport", true),
            (off::RETX_FAMILY, "family", false),
            (off::RETX_SADDR, "saddr", true),
            (off::RETX_DADDR, "daddr", true),
            (off::RETX_SADDR_V6, "saddr_v6", true),
            (off::RETX_DADDR_V6, "daddr_v6", true),
        ] {
            match fields.iter().find(|f| f.name == name) {
                Some(f) => v[i] = f.offset as u64,
                None if needed => {
                    bail!(
                        "tcp:tcp_retransmit_skb has no field {name}: a layout tracer does not know"
                    )
                }
                None => {}
            }
        }
    }
    Ok(v)
}

impl Streaming for Plan {
    type Live = Live;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Object)> {
        check_set_state_layout()?;
        let retransmits = self.what == TcpWhat::Retransmit;
        let wanted = match self.what {
            TcpWhat::Close => what::CLOSE,
            TcpWhat::Connect => what::CONNECT,
            TcpWhat::Accept => what::ACCEPT,
            TcpWhat::Retransmit => what::RETRANSMIT,
        };
        let mut ports = vec![0u64; MAX_PORTS];
        for (i, p) in self.ports.iter().enumerate() {
            ports[i] = u64::from(*p);
        }
        let mut globals = self.selection.globals(0, false);
        globals.values.extend([
            ("TCP_MODE", what::bit(wanted)),
            ("TCP_FAMILY", u64::from(self.family)),
            ("TCP_PORT_COUNT", self.ports.len() as u64),
        ]);
        globals.arrays = vec![("TCP_OFFSETS", offsets(retransmits)?), ("TCP_PORTS", ports)];
        let mut obj = bpf::load_following(
            globals,
            self.selection.targeted(),
            &[
                ("EVENTS", self.buffer_size),
                ("TCP_CONNS", self.max_connections),
            ],
        )?;
        obj.attach_tracepoint("tcp_state", "sock", "inet_sock_set_state")?;
        obj.attach_tracepoint("tcp_accept", "syscalls", "sys_exit_accept4")?;
        obj.attach_tracepoint("tcp_accept", "syscalls", "sys_exit_accept")?;
        if retransmits {
            obj.attach_tracepoint("tcp_retransmit", "tcp", "tcp_retransmit_skb")?;
        }
        Ok((
            Live {
                clock: Clock::now(),
                summary: TcpSummary::default(),
            },
            obj,
        ))
    }

    fn what(&self) -> String {
        let mut w = match self.what {
            TcpWhat::Close => "TCP connections",
            TcpWhat::Connect => "TCP connects",
            TcpWhat::Accept => "TCP accepts",
            TcpWhat::Retransmit => "TCP retransmits",
        }
        .to_string();
        if !self.ports.is_empty() {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            w.push_str(&format!(" on port {}", ports.join(", ")));
        }
        w
    }

    fn output(&self) -> (bool, u32) {
        (self.json, self.buffer_size)
    }

    fn header(&self) -> Option<&'static str> {
        if self.summary {
            return None;
        }
        Some(match self.what {
            TcpWhat::Close => render::CLOSE_HEADER,
            TcpWhat::Connect => render::CONNECT_HEADER,
            TcpWhat::Accept => render::ACCEPT_HEADER,
            TcpWhat::Retransmit => render::RETRANSMIT_HEADER,
        })
    }

    fn event(&self, live: &mut Live, e: Event, out: &mut String) -> bool {
        let Event::Tcp(r) = e else {
            return false;
        };
        if self.summary {
            live.summary.add(&r);
        } else if self.json {
            render::json(out, &r, &live.clock);
        } else {
            render::line(out, &r, &live.clock);
        }
        true
    }

    fn summary(&self, live: &Live) -> Option<String> {
        self.summary
            .then(|| render::summary(&live.summary, self.json))
    }
}
