//! Ring buffer records turned into plain data, read with tokio's `AsyncFd`, and
//! the per-CPU lost-event counters. Nothing here formats text.
use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::{
    event_flags, event_kind, event_lost, ExecEvent, SyscallEvent, EXEC_ARGS, EXEC_ARG_LEN,
    TRACE_MAX_STR, TRACE_STR_LEN,
};

/// A string argument as read by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str {
    /// The bytes (without the NUL); `truncated` when the string went on.
    Read { bytes: Vec<u8>, truncated: bool },
    /// An exec's argv: its first elements; `cut` when the last one went on,
    /// `more` when elements after these were left out.
    List {
        items: Vec<Vec<u8>>,
        cut: bool,
        more: bool,
    },
    /// The kernel could not read it (bad pointer, page not present): the errno.
    Failed(i32),
    /// Not kept (the kernel's string table was full).
    Missing,
}

impl Str {
    fn from_buf(len: i32, buf: &[u8], truncated: bool) -> Str {
        if len < 0 {
            return Str::Failed(-len);
        }
        if len == 0 {
            return Str::Failed(libc::EFAULT);
        }
        let n = (len as usize).saturating_sub(1).min(buf.len());
        Str::Read {
            bytes: buf[..n].to_vec(),
            truncated,
        }
    }

    /// An argv as the kernel side packs it: `len` bytes of NUL-terminated
    /// elements, the last one without its NUL when `cut`.
    fn list_from_buf(len: i32, buf: &[u8], cut: bool, more: bool) -> Str {
        if len < 0 {
            return Str::Failed(-len);
        }
        let kept = &buf[..(len as usize).min(buf.len())];
        let mut items: Vec<Vec<u8>> = kept.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        // `split` yields what follows the last NUL: empty unless the last element is cut.
        if !cut {
            items.pop();
        }
        Str::List { items, cut, more }
    }
}

/// One completed syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRecord {
    pub nr: u32,
    pub pid: u32,
    pub tid: u32,
    /// Monotonic clock (CLOCK_MONOTONIC, as bpf_ktime_get_ns), nanoseconds.
    pub enter_ns: u64,
    pub exit_ns: u64,
    pub args: [u64; 6],
    /// None when the call never returned (exit_group, thread killed inside it).
    pub ret: Option<i64>,
    /// The path arguments, in argument order.
    pub strs: Vec<Str>,
}

/// One execve/execveat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    pub nr: u32,
    pub pid: u32,
    pub tid: u32,
    /// The parent as the kernel recorded it at fork; None if tracer must look it up.
    pub ppid: Option<u32>,
    pub uid: u32,
    pub enter_ns: u64,
    pub exit_ns: u64,
    pub ret: i64,
    pub comm: String,
    pub filename: Str,
    /// The first arguments (argv[0] first).
    pub args: Vec<Str>,
    /// How many arguments there were (counted up to tracer_common::EXEC_MAX_ARGC).
    pub argc: u32,
}

/// What happened to a TCP connection (`tracer tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpWhat {
    Close,
    Connect,
    Accept,
    Retransmit,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// connect()
    Active,
    /// a listener
    Passive,
    /// Not seen opening (a retransmit on an older connection).
    Unknown,
}

impl Direction {
    /// As `--json` names it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Active => "active",
            Direction::Passive => "passive",
            Direction::Unknown => "unknown",
        }
    }
}

/// One TCP event (`tracer_common::tcp::TcpEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRecord {
    pub what: TcpWhat,
    /// The task that used the connection (connect, accept, close), if one was seen.
    pub pid: Option<u32>,
    pub uid: u32,
    pub comm: String,
    pub direction: Direction,
    pub saddr: std::net::IpAddr,
    pub sport: u16,
    pub daddr: std::net::IpAddr,
    pub dport: u16,
    /// When the connection was first seen opening (monotonic ns; 0 if not seen).
    pub start_ns: u64,
    pub ts_ns: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// The TCP state: before the close, or of the retransmitted segment's connection.
    pub state: u32,
    /// A connect that never got established.
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Syscall(SyscallRecord),
    Exec(ExecRecord),
    Tcp(TcpRecord),
}

fn tcp_record(e: &tracer_common::tcp::TcpEvent) -> Option<TcpRecord> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use tracer_common::tcp::{flags, what, AF_INET6};
    let addr = |a: &[u8; 16]| -> IpAddr {
        if e.family == AF_INET6 {
            IpAddr::V6(Ipv6Addr::from(*a))
        } else {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        }
    };
    Some(TcpRecord {
        what: match e.what {
            what::CLOSE => TcpWhat::Close,
            what::CONNECT => TcpWhat::Connect,
            what::ACCEPT => TcpWhat::Accept,
            what::RETRANSMIT => TcpWhat::Retransmit,
            _ => return None,
        },
        pid: (e.flags & flags::OWNER != 0).then_some(e.tgid),
        uid: e.uid,
        comm: if e.flags & flags::OWNER != 0 {
            crate::sys::proc::comm_str(&e.comm)
        } else {
            String::new()
        },
        direction: if e.flags & flags::ACTIVE != 0 {
            Direction::Active
        } else if e.flags & flags::PASSIVE != 0 {
            Direction::Passive
        } else {
            Direction::Unknown
        },
        saddr: addr(&e.saddr),
        sport: e.sport,
        daddr: addr(&e.daddr),
        dport: e.dport,
        start_ns: e.start_ns,
        ts_ns: e.ts_ns,
        tx_bytes: e.tx_bytes,
        rx_bytes: e.rx_bytes,
        state: e.state,
        failed: e.flags & flags::FAILED != 0,
    })
}

fn read_pod<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: T is a plain #[repr(C)] type of integers and byte arrays; the length is checked.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decode one ring buffer record; None for a record of an unknown kind or size.
pub fn parse(bytes: &[u8]) -> Option<Event> {
    let kind: u32 = read_pod(bytes)?;
    match kind {
        event_kind::SYSCALL => {
            let h: SyscallEvent = read_pod(bytes)?;
            let mut strs = Vec::new();
            if h.flags & event_flags::STR_MISSING != 0 {
                strs.push(Str::Missing);
            }
            let base = size_of::<SyscallEvent>();
            for i in 0..(h.nstr as usize).min(TRACE_MAX_STR) {
                let at = base + i * TRACE_STR_LEN;
                let buf = bytes.get(at..at + TRACE_STR_LEN)?;
                let cut = [event_flags::STR0_TRUNCATED, event_flags::STR1_TRUNCATED][i];
                let cut = h.flags & cut != 0;
                strs.push(if i == 1 && h.flags & event_flags::STR1_ARGV != 0 {
                    let more = h.flags & event_flags::ARGV_MORE != 0;
                    Str::list_from_buf(h.str_len[i], buf, cut, more)
                } else {
                    Str::from_buf(h.str_len[i], buf, cut)
                });
            }
            Some(Event::Syscall(SyscallRecord {
                nr: h.nr,
                pid: h.tgid,
                tid: h.tid,
                enter_ns: h.enter_ns,
                exit_ns: h.exit_ns,
                args: h.args,
                ret: (h.flags & event_flags::NO_RETURN == 0).then_some(h.ret),
                strs,
            }))
        }
        event_kind::EXEC => {
            let e: ExecEvent = read_pod(bytes)?;
            let n = (e.argc as usize).min(EXEC_ARGS);
            let args = (0..n)
                .map(|i| {
                    let len = e.arg_len[i];
                    Str::from_buf(len, &e.args[i], len == EXEC_ARG_LEN as i32)
                })
                .collect();
            Some(Event::Exec(ExecRecord {
                nr: e.nr,
                pid: e.tgid,
                tid: e.tid,
                ppid: (e.flags & event_flags::PPID_KNOWN != 0).then_some(e.ppid),
                uid: e.uid,
                enter_ns: e.enter_ns,
                exit_ns: e.exit_ns,
                ret: e.ret,
                comm: crate::sys::proc::comm_str(&e.comm),
                filename: Str::from_buf(
                    e.filename_len,
                    &e.filename,
                    e.flags & event_flags::STR0_TRUNCATED != 0,
                ),
                args,
                argc: e.argc,
            }))
        }
        event_kind::TCP => tcp_record(&read_pod(bytes)?).map(Event::Tcp),
        _ => None,
    }
}

/// The event ring buffer, readable asynchronously.
pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl Reader {
    pub fn new(ring: RingBuf<MapData>) -> Result<Self> {
        Ok(Self {
            // SAFETY: the RingBuf owns its map fd and keeps it open until the
            // AsyncFd (which owns the RingBuf) is dropped.
            ring: unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
                .context("watching the event ring buffer")?,
        })
    }

    /// Wait until records are available, then hand each (parsed) to `f`.
    /// Readiness is cleared after the drain: records that came meanwhile are
    /// taken now, not by a second wake-up.
    pub async fn read(&mut self, mut f: impl FnMut(Event)) -> Result<()> {
        let mut guard = self
            .ring
            .readable_mut()
            .await
            .context("waiting on the ring buffer")?;
        drain(guard.get_inner_mut(), &mut f);
        guard.clear_ready();
        Ok(())
    }

    /// Read whatever is there now, without waiting.
    pub fn drain(&mut self, mut f: impl FnMut(Event)) -> usize {
        drain(self.ring.get_mut(), &mut f)
    }
}

fn drain(ring: &mut RingBuf<MapData>, f: &mut impl FnMut(Event)) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        if let Some(e) = parse(&item) {
            f(e);
        }
    }
    n
}

/// The kernel's counts of events that did not make it, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Dropped because the ring buffer was full.
    pub ring_full: u64,
    /// Dropped because the per-thread entry table was full.
    pub table_full: u64,
    /// Sent without their path strings (string table full).
    pub strings_missing: u64,
}

impl super::Delta for Lost {
    fn since(&self, before: &Lost) -> Lost {
        Lost {
            ring_full: self.ring_full - before.ring_full,
            table_full: self.table_full - before.table_full,
            strings_missing: self.strings_missing - before.strings_missing,
        }
    }
}

impl Lost {
    /// Events that never reached user space.
    pub fn events(&self) -> u64 {
        self.ring_full + self.table_full
    }
}

pub struct LostCounters {
    map: PerCpuArray<MapData, u64>,
}

impl LostCounters {
    pub fn new(map: PerCpuArray<MapData, u64>) -> Self {
        Self { map }
    }

    pub fn read(&self) -> Result<Lost> {
        let get = |i: u32| -> Result<u64> {
            Ok(self
                .map
                .get(&i, 0)
                .context("reading the lost-event counters")?
                .iter()
                .sum())
        };
        Ok(Lost {
            ring_full: get(event_lost::RING_FULL)?,
            table_full: get(event_lost::PENDING_FULL)?,
            strings_missing: get(event_lost::STRINGS_FULL)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], truncated: bool) -> Str {
        Str::Read {
            bytes: bytes.to_vec(),
            truncated,
        }
    }

    fn list(items: &[&str], cut: bool, more: bool) -> Str {
        let items = items.iter().map(|i| i.as_bytes().to_vec()).collect();
        Str::List { items, cut, more }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn syscall_record_with_a_path() {
        let h = SyscallEvent {
            kind: event_kind::SYSCALL,
            nr: 257,
            tgid: 10,
            tid: 11,
            enter_ns: 5,
            exit_ns: 9,
            args: [u64::MAX - 99, 0x1000, 0o2000000, 0, 0, 0],
            ret: -2,
            nstr: 1,
            flags: event_flags::STR0_TRUNCATED,
            str_len: [4, 0],
        };
        let mut b = bytes_of(&h);
        let mut s = [0u8; TRACE_STR_LEN];
        s[..4].copy_from_slice(b"/ab\0");
        b.extend_from_slice(&s);
        let Some(Event::Syscall(r)) = parse(&b) else {
            panic!()
        };
        assert_eq!((r.nr, r.pid, r.tid, r.ret), (257, 10, 11, Some(-2)));
        assert_eq!(r.strs, vec![read(b"/ab", true)]);
        // A record cut short is rejected, not misread.
        assert_eq!(parse(&b[..b.len() - 1]), None);
    }

    #[test]
    fn no_return_and_failed_reads() {
        let h = SyscallEvent {
            kind: event_kind::SYSCALL,
            nstr: 2,
            flags: event_flags::NO_RETURN,
            str_len: [-14, 1],
            ..Default::default()
        };
        let mut b = bytes_of(&h);
        b.extend_from_slice(&[0u8; 2 * TRACE_STR_LEN]);
        let Some(Event::Syscall(r)) = parse(&b) else {
            panic!()
        };
        assert_eq!(r.ret, None);
        assert_eq!(r.strs, vec![Str::Failed(14), read(b"", false)]);
        assert_eq!(parse(&[9, 0, 0, 0]), None);
    }

    #[test]
    fn exec_argv_as_a_list() {
        let record = |flags, packed: &[u8], len| {
            let h = SyscallEvent {
                kind: event_kind::SYSCALL,
                nr: 59,
                nstr: 2,
                flags: flags | event_flags::STR1_ARGV,
                str_len: [8, len],
                ..Default::default()
            };
            let mut b = bytes_of(&h);
            let mut s = [0u8; 2 * TRACE_STR_LEN];
            s[..8].copy_from_slice(b"/bin/ls\0");
            s[TRACE_STR_LEN..TRACE_STR_LEN + packed.len()].copy_from_slice(packed);
            b.extend_from_slice(&s);
            match parse(&b) {
                Some(Event::Syscall(r)) => r.strs,
                other => panic!("{other:?}"),
            }
        };
        let strs = record(0, b"ls\0-la\0/etc\0", 12);
        assert_eq!(strs[1], list(&["ls", "-la", "/etc"], false, false));
        assert_eq!(strs[0], read(b"/bin/ls", false));
        // The last element cut (no NUL kept), more elements after it.
        let strs = record(
            event_flags::STR1_TRUNCATED | event_flags::ARGV_MORE,
            b"sh\0-c\0ech",
            9,
        );
        assert_eq!(strs[1], list(&["sh", "-c", "ech"], true, true));
        assert_eq!(record(0, b"", 0)[1], list(&[], false, false));
        assert_eq!(record(0, b"", -14)[1], Str::Failed(14));
    }
}
