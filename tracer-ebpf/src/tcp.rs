//! `tracer tcp`: TCP connections from the stable tracepoints, as BCC's
//! tcplife, tcpconnlat, tcpaccept and tcpretrans show them. Nothing runs per
//! packet: `sock:inet_sock_set_state` keeps one record per connection from its
//! first open state to TCP_CLOSE, `tcp:tcp_retransmit_skb` runs per
//! retransmitted segment, and the accept syscalls' exits name the task that
//! took a passive connection.
//!
//! State changes often run in softirq context, where `current` is whatever
//! task the interrupt landed on. So the owner of a connection (pid, uid, comm,
//! and whether it passes the process filters) is taken only where a task that
//! uses the socket is known to be running: connect() (SYN_SENT), accept()'s
//! return, and close()/shutdown() (FIN_WAIT1, LAST_ACK).
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_comm, bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel,
    },
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
    EbpfContext as _, Global,
};
use tracer_common::{
    event_kind, event_lost,
    flags::{FILTER_CGROUP, FILTER_COMM, FILTER_TGID, FILTER_UID},
    tcp::{flags, off, state, what, TcpEvent, AF_INET, AF_INET6, MAX_PORTS},
};

use crate::{
    filter::{current_tgid, is_traced},
    maps::{count, FLAGS},
    ring::{ring_full, wakeup_flags, EVENTS, EVENT_LOST},
};

/// Connections seen opening, by `struct sock` address, until TCP_CLOSE.
/// Sized by user space; a full table is counted (`event_lost::PENDING_FULL`).
#[map]
pub static TCP_CONNS: HashMap<u64, TcpEvent> = HashMap::with_max_entries(1, 0);

/// `what::bit()` of each kind of event to send.
#[unsafe(no_mangle)]
pub static TCP_MODE: Global<u64> = Global::new(0);
/// `AF_INET` or `AF_INET6` only (`-4`, `-6`), or 0 for both.
#[unsafe(no_mangle)]
pub static TCP_FAMILY: Global<u64> = Global::new(0);
/// How many `TCP_PORTS` are set (`--port`); 0: every port.
#[unsafe(no_mangle)]
pub static TCP_PORT_COUNT: Global<u64> = Global::new(0);
/// `--port`: a connection is kept when its local or remote port is one of these.
#[unsafe(no_mangle)]
static TCP_PORTS: [u64; MAX_PORTS] = [0; MAX_PORTS];
/// Offsets by `tracer_common::tcp::off` index, from the running kernel.
#[unsafe(no_mangle)]
static TCP_OFFSETS: [u64; off::COUNT] = [off::NONE; off::COUNT];

/// `sock:inet_sock_set_state`'s fields. Its layout has not changed since it
/// was added (4.16); user space checks it against the format file.
mod rec {
    pub const SKADDR: usize = 8;
    pub const OLDSTATE: usize = 16;
    pub const NEWSTATE: usize = 20;
    pub const SPORT: usize = 24;
    pub const DPORT: usize = 26;
    pub const FAMILY: usize = 28;
    pub const PROTOCOL: usize = 30;
    pub const SADDR: usize = 32;
    pub const DADDR: usize = 36;
    pub const SADDR_V6: usize = 40;
    pub const DADDR_V6: usize = 56;
}

const IPPROTO_TCP: u16 = 6;
/// `enum sock_flags`: the bit of `sk_flags` tcp_fin() sets (unchanged since 2.6).
const SOCK_DONE: u64 = 1;
/// Filters that select processes (the owner of a connection must pass them).
const PROCESS_FILTERS: u32 = FILTER_TGID | FILTER_UID | FILTER_COMM | FILTER_CGROUP;

/// A field of the tracepoint's record at a constant offset, read directly
/// (the verifier allows aligned loads from a tracepoint's context; a helper
/// call per field would cost more than the rest of the program).
#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, at: usize) -> T {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(at) as *const T) }
}

#[inline(always)]
fn offset(i: usize) -> u64 {
    unsafe { core::ptr::read_volatile(&TCP_OFFSETS[i]) }
}

/// Whether a connection with these ports and family is wanted.
#[inline(always)]
fn endpoint_wanted(family: u16, sport: u16, dport: u16) -> bool {
    let fam = TCP_FAMILY.load();
    if fam != 0 && fam != family as u64 {
        return false;
    }
    let n = TCP_PORT_COUNT.load() as usize;
    if n == 0 {
        return true;
    }
    for i in 0..MAX_PORTS {
        if i >= n {
            break;
        }
        let p = unsafe { core::ptr::read_volatile(&TCP_PORTS[i]) };
        if p == sport as u64 || p == dport as u64 {
            return true;
        }
    }
    false
}

/// Record the running task as the connection's owner.
#[inline(always)]
fn own(c: &mut TcpEvent) {
    c.tgid = current_tgid();
    c.uid = bpf_get_current_uid_gid() as u32;
    c.comm = bpf_get_current_comm().unwrap_or_default();
    c.flags |= flags::OWNER;
    if is_traced(FLAGS.load()) {
        c.flags |= flags::TRACED;
    }
}

/// Whether events of this connection are sent: its owner passed the process
/// filters, or there are none.
#[inline(always)]
fn wanted(c: &TcpEvent) -> bool {
    FLAGS.load() & PROCESS_FILTERS == 0 || c.flags & flags::TRACED != 0
}

/// Send `c` as an event of kind `w` at `now`.
#[inline(always)]
fn send<C: aya_ebpf::EbpfContext>(ctx: &C, c: &TcpEvent, w: u32, now: u64) {
    match EVENTS.reserve::<TcpEvent>(0) {
        Some(mut e) => {
            let ev = unsafe { &mut *e.as_mut_ptr() };
            *ev = *c;
            ev.kind = event_kind::TCP;
            ev.what = w;
            ev.ts_ns = now;
            e.submit(wakeup_flags());
        }
        None => ring_full(ctx),
    }
}

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tcp_state(ctx: TracePointContext) -> i32 {
    let _ = try_tcp_state(&ctx);
    0
}

fn try_tcp_state(ctx: &TracePointContext) -> Option<()> {
    if field::<u16>(ctx, rec::PROTOCOL) != IPPROTO_TCP {
        return None;
    }
    let family = field::<u16>(ctx, rec::FAMILY);
    let (sport, dport) = (field::<u16>(ctx, rec::SPORT), field::<u16>(ctx, rec::DPORT));
    let sk = field::<u64>(ctx, rec::SKADDR);
    let old = field::<i32>(ctx, rec::OLDSTATE) as u32;
    let new = field::<i32>(ctx, rec::NEWSTATE) as u32;
    let mode = TCP_MODE.load();
    // The clock is read only where a time is kept or sent: at the open, the
    // connect's completion and the close (not at the other state changes).
    let now = || unsafe { bpf_ktime_get_ns() };
    let Some(c) = TCP_CONNS.get_ptr_mut(&sk) else {
        if new >= state::FIN_WAIT1 {
            // Opened before tracer started (never seen), or a listener.
            return None;
        }
        // connect() sets SYN_SENT before it picks the local port: the port
        // filter then waits for the connection's later states.
        if !endpoint_wanted(family, sport, dport) && !(new == state::SYN_SENT && sport == 0) {
            return None;
        }
        let mut c = TcpEvent {
            start_ns: now(),
            ..TcpEvent::default()
        };
        endpoint(ctx, family, sport, dport, &mut c)?;
        if new == state::SYN_SENT {
            // connect(): the task is the owner.
            c.flags |= flags::ACTIVE;
            own(&mut c);
        } else if new == state::SYN_RECV {
            c.flags |= flags::PASSIVE;
        }
        if TCP_CONNS.insert(&sk, &c, BPF_NOEXIST as u64).is_err() {
            count(&EVENT_LOST, event_lost::PENDING_FULL);
        }
        return Some(());
    };
    let c = unsafe { &mut *c };
    // The ports and addresses as they are now (the local port of an active
    // open is chosen after SYN_SENT).
    endpoint(ctx, family, sport, dport, c)?;
    if (new == state::FIN_WAIT1 || new == state::LAST_ACK) && c.flags & flags::OWNER == 0 {
        // close() or shutdown() by a task that holds the socket.
        own(c);
    }
    let send_it = |c: &TcpEvent| wanted(c) && endpoint_wanted(c.family, c.sport, c.dport);
    if new == state::ESTABLISHED && old == state::SYN_SENT {
        if mode & what::bit(what::CONNECT) != 0 && send_it(c) {
            send(ctx, c, what::CONNECT, now());
        }
        return Some(());
    }
    if new != state::CLOSE {
        return Some(());
    }
    c.state = old;
    if send_it(c) {
        let now = now();
        if old == state::SYN_SENT {
            c.flags |= flags::FAILED;
            if mode & what::bit(what::CONNECT) != 0 {
                send(ctx, c, what::CONNECT, now);
            }
        }
        if mode & what::bit(what::CLOSE) != 0 {
            let read_u64 = |i: usize| {
                let o = offset(i);
                if o == off::NONE {
                    return 0;
                }
                unsafe { bpf_probe_read_kernel((sk + o) as *const u64) }.unwrap_or(0)
            };
            // Payload only: bytes_sent counts retransmits again, and
            // bytes_received counts the peer's FIN (tcp_fin() sets SOCK_DONE).
            c.tx_bytes = read_u64(off::BYTES_SENT).saturating_sub(read_u64(off::BYTES_RETRANS));
            let fin = read_u64(off::SK_FLAGS) >> SOCK_DONE & 1;
            c.rx_bytes = read_u64(off::BYTES_RECEIVED).saturating_sub(fin);
            send(ctx, c, what::CLOSE, now);
        }
    }
    let _ = TCP_CONNS.remove(&sk);
    Some(())
}

/// The family, ports and addresses of a `sock:inet_sock_set_state` record.
#[inline(always)]
fn endpoint(
    ctx: &TracePointContext,
    family: u16,
    sport: u16,
    dport: u16,
    c: &mut TcpEvent,
) -> Option<()> {
    c.family = family;
    c.sport = sport;
    c.dport = dport;
    if family == AF_INET {
        c.saddr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, rec::SADDR));
        c.daddr[..4].copy_from_slice(&field::<[u8; 4]>(ctx, rec::DADDR));
    } else if family == AF_INET6 {
        c.saddr[..8].copy_from_slice(&field::<[u8; 8]>(ctx, rec::SADDR_V6));
        c.saddr[8..].copy_from_slice(&field::<[u8; 8]>(ctx, rec::SADDR_V6 + 8));
        c.daddr[..8].copy_from_slice(&field::<[u8; 8]>(ctx, rec::DADDR_V6));
        c.daddr[8..].copy_from_slice(&field::<[u8; 8]>(ctx, rec::DADDR_V6 + 8));
    }
    Some(())
}

/// `struct sock *` of file descriptor `fd` of the current task, if it is a
/// socket (task->files->fdt->fd[fd]->private_data->sk).
#[inline(always)]
fn sock_of_fd(fd: u64) -> Option<u64> {
    let read = |addr: u64| unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok();
    let task = unsafe { bpf_get_current_task() };
    let files = read(task + offset(off::TASK_FILES))?;
    let fdt = read(files + offset(off::FILES_FDT))?;
    let max =
        unsafe { bpf_probe_read_kernel((fdt + offset(off::FDT_MAX_FDS)) as *const u32) }.ok()?;
    if fd >= max as u64 {
        return None;
    }
    let fds = read(fdt + offset(off::FDT_FD))?;
    let file = read(fds + 8 * fd)?;
    let sock = read(file + offset(off::FILE_PRIVATE_DATA))?;
    read(sock + offset(off::SOCKET_SK))
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept4")]
pub fn tcp_accept(ctx: TracePointContext) -> i32 {
    let _ = try_tcp_accept(&ctx);
    0
}

/// accept() returned a connection: its task is the owner.
fn try_tcp_accept(ctx: &TracePointContext) -> Option<()> {
    // struct syscall_trace_exit: 8-byte header, int nr, long ret.
    let fd: i64 = unsafe { ctx.read_at(16) }.ok()?;
    if fd < 0 {
        return None;
    }
    let sk = sock_of_fd(fd as u64)?;
    let c = TCP_CONNS.get_ptr_mut(&sk)?;
    let c = unsafe { &mut *c };
    if c.flags & flags::OWNER == 0 {
        own(c);
    }
    if TCP_MODE.load() & what::bit(what::ACCEPT) != 0 && wanted(c) {
        send(ctx, c, what::ACCEPT, unsafe { bpf_ktime_get_ns() });
    }
    Some(())
}

#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retransmit(ctx: TracePointContext) -> i32 {
    let _ = try_tcp_retransmit(&ctx);
    0
}

fn try_tcp_retransmit(ctx: &TracePointContext) -> Option<()> {
    let at = |i: usize| offset(i) as usize;
    let sport: u16 = unsafe { ctx.read_at(at(off::RETX_SPORT)) }.ok()?;
    let dport: u16 = unsafe { ctx.read_at(at(off::RETX_DPORT)) }.ok()?;
    let family = if offset(off::RETX_FAMILY) == off::NONE {
        AF_INET
    } else {
        unsafe { ctx.read_at::<u16>(at(off::RETX_FAMILY)) }.ok()?
    };
    if !endpoint_wanted(family, sport, dport) {
        return None;
    }
    let sk: u64 = unsafe { ctx.read_at(at(off::RETX_SKADDR)) }.ok()?;
    let mut e = match TCP_CONNS.get_ptr(&sk) {
        Some(c) => unsafe { *c },
        None => TcpEvent::default(),
    };
    if !wanted(&e) {
        return None;
    }
    e.family = family;
    e.sport = sport;
    e.dport = dport;
    e.state = unsafe { ctx.read_at::<i32>(at(off::RETX_STATE)) }.ok()? as u32;
    if family == AF_INET6 {
        e.saddr = unsafe { ctx.read_at(at(off::RETX_SADDR_V6)) }.ok()?;
        e.daddr = unsafe { ctx.read_at(at(off::RETX_DADDR_V6)) }.ok()?;
    } else {
        e.saddr[..4].copy_from_slice(&unsafe { ctx.read_at::<[u8; 4]>(at(off::RETX_SADDR)) }.ok()?);
        e.daddr[..4].copy_from_slice(&unsafe { ctx.read_at::<[u8; 4]>(at(off::RETX_DADDR)) }.ok()?);
    }
    send(ctx, &e, what::RETRANSMIT, unsafe { bpf_ktime_get_ns() });
    Some(())
}
