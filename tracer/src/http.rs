//! The HTTP front of `tracer serve`: hyper's HTTP/1 server on tokio. GET
//! /metrics answers with a scrape (OpenMetrics when the Accept header asks for
//! it), GET / with a pointer to it, anything else 404 (405 for another method
//! on /metrics).
//!
//! No client can delay another's scrape. Each connection is its own task, so
//! a slow one blocks no one; the accept loop never waits, so a new
//! connection is taken at once, however many are open. Open connections are
//! bounded (memory, fds): at the bound, or when accept runs out of file
//! descriptors, the least recently used connection (the one idle the
//! longest, or the slowest to send its request head) is closed to make room,
//! so idle and slow-loris clients are the ones that go and a scraper, whose
//! connection was used last, stays. (Before, the loop waited for one of 512
//! slots, freed only by the 10 s header timeout: 640 idle connections made
//! new ones wait in the listen queue for 7-11 s.) A client that connects and
//! sends nothing is also dropped after the header timeout. The soft limit of
//! open files is raised to the hard one when serving starts, as Go's
//! exporters do.
use std::{
    collections::{BTreeMap, HashMap},
    net::{SocketAddr, TcpListener, ToSocketAddrs as _},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming,
    header::{HeaderValue, ACCEPT, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};

/// Where `tracer serve` listens unless told: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9852";

/// A client has this long to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once, at most (fewer when the limit of open files
/// leaves less room); at the bound the least recently used one is closed.
const MAX_CONNECTIONS: usize = 512;

/// The listen queue asked for (std's is 128).
const LISTEN_QUEUE: libc::c_int = 4096;

/// File descriptors left for everything else (scrapes read /proc files).
const FD_RESERVE: u64 = 64;

pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The address of a --listen value: HOST:PORT, [IPV6]:PORT, or :PORT (every
/// interface, as Go's exporters take it).
pub fn parse_listen(s: &str) -> Result<SocketAddr> {
    let bad = || {
        anyhow::anyhow!(
            "bad --listen `{s}`: give HOST:PORT, [IPV6]:PORT or :PORT (every interface), \
             for example {DEFAULT_LISTEN}"
        )
    };
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    let (_, port) = full.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    full.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// Bind now, before anything is loaded, so a bad address or a port in use
/// is one line and nothing else happens.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    match TcpListener::bind(addr) {
        Ok(l) => {
            // std listens with a queue of 128: a burst of connections
            // beyond it has its SYNs dropped and retried a second later. A
            // second listen() sets the queue (the kernel caps it at
            // net.core.somaxconn).
            unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), LISTEN_QUEUE) };
            Ok(l)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {addr}: the port is in use (another tracer serve or exporter?); \
             choose another with --listen"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            bail!("cannot listen on {addr}: no interface of this machine has that address")
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// What /metrics answers: the body in the format asked for (true: OpenMetrics).
pub type Scrape = dyn Fn(bool) -> Result<String> + Send + Sync;

/// The open connections, each with when it was last used (accepted, or a
/// request head read): the clock is a counter, bumped at each use. Ordered
/// by last use, so the least recently used one is found at once (a scan of
/// 512 at each accept was the largest cost of a burst of connections).
#[derive(Default)]
struct Pool {
    clock: u64,
    /// last use -> (id, how to close it).
    by_use: BTreeMap<u64, (u64, Arc<tokio::sync::Notify>)>,
    /// id -> last use.
    last_use: HashMap<u64, u64>,
}

impl Pool {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn len(&self) -> usize {
        self.last_use.len()
    }

    /// A new connection: its id and what closes it.
    fn add(&mut self) -> (u64, Arc<tokio::sync::Notify>) {
        let id = self.tick();
        let close = Arc::new(tokio::sync::Notify::new());
        self.by_use.insert(id, (id, close.clone()));
        self.last_use.insert(id, id);
        (id, close)
    }

    fn used(&mut self, id: u64) {
        let now = self.tick();
        if let Some(last) = self.last_use.get_mut(&id) {
            if let Some(c) = self.by_use.remove(last) {
                self.by_use.insert(now, c);
            }
            *last = now;
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(last) = self.last_use.remove(&id) {
            self.by_use.remove(&last);
        }
    }

    /// Close the least recently used connection; false if none is open.
    fn close_lru(&mut self) -> bool {
        let Some((_, (id, close))) = self.by_use.pop_first() else {
            return false;
        };
        self.last_use.remove(&id);
        close.notify_one();
        true
    }
}

/// Raise the soft limit of open files to the hard one; the soft limit now.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            ..lim
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    lim.rlim_cur
}

/// How many connections may be open: MAX_CONNECTIONS, or what the limit of
/// open files leaves beside the fds open now and a reserve.
fn connection_bound(fd_limit: u64, fds_open: u64) -> usize {
    let room = fd_limit.saturating_sub(fds_open + FD_RESERVE).max(8);
    MAX_CONNECTIONS.min(usize::try_from(room).unwrap_or(usize::MAX))
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Serve on `listener` until the task is aborted.
pub fn spawn(listener: TcpListener, scrape: Arc<Scrape>) -> Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let fds_open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let bound = connection_bound(raise_fd_limit(), fds_open);
    log::debug!("serving at most {bound} connections at once");
    let pool = Arc::new(Mutex::new(Pool::default()));
    Ok(tokio::spawn(async move {
        let mut warned = false;
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of fds (other processes' too, for ENFILE): close
                    // the least recently used connection and accept again
                    // once its task has let its socket go. With none to
                    // close, wait a little rather than spin.
                    let closed = is_out_of_fds(&e) && pool.lock().unwrap().close_lru();
                    if !warned {
                        log::warn!(
                            "accepting a connection: {e}{}",
                            if closed {
                                "; closing the least recently used connections to make room"
                            } else {
                                ""
                            }
                        );
                        warned = true;
                    }
                    if closed {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            let (id, close) = {
                let mut p = pool.lock().unwrap();
                if p.len() >= bound {
                    p.close_lru();
                }
                p.add()
            };
            let (scrape, pool) = (scrape.clone(), pool.clone());
            tokio::spawn(async move {
                let in_service = pool.clone();
                let service = service_fn(move |req| {
                    in_service.lock().unwrap().used(id);
                    let scrape = scrape.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &*scrape)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    r = conn => if let Err(e) = r {
                        log::debug!("connection: {e}");
                    },
                    _ = close.notified() => {
                        log::debug!("closed the least recently used connection to make room");
                    }
                }
                pool.lock().unwrap().remove(id);
            });
        }
    }))
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Whether the Accept header asks for OpenMetrics.
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.contains("application/openmetrics-text")
}

fn answer(req: &Request<Incoming>, scrape: &Scrape) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let om = req
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(wants_openmetrics);
            match scrape(om) {
                Ok(body) => respond(
                    StatusCode::OK,
                    if om {
                        OPENMETRICS_TYPE
                    } else {
                        PROMETHEUS_TYPE
                    },
                    body,
                ),
                Err(e) => {
                    // On stderr too (the journal, for a service), not only
                    // to the scraper.
                    log::warn!("a scrape failed: reading the kernel's counters: {e:#}");
                    respond(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        format!("tracer: reading the kernel's counters failed: {e:#}\n"),
                    )
                }
            }
        }
        (_, "/metrics") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".into(),
        ),
        (&Method::GET, "/") => respond(
            StatusCode::OK,
            TEXT,
            "tracer serve: the metrics are at /metrics\n".into(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values() {
        assert_eq!(
            parse_listen("127.0.0.1:9852").unwrap(),
            "127.0.0.1:9852".parse().unwrap()
        );
        assert_eq!(
            parse_listen(":9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert!(parse_listen("localhost:9852").unwrap().ip().is_loopback());
        for bad in [
            "",
            "9852",
            "127.0.0.1",
            "127.0.0.1:99999",
            "127.0.0.1:x",
            "no such host:1",
        ] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.starts_with("bad --listen"), "{bad}: {e}");
        }
    }

    #[test]
    fn least_recently_used_closes_first() {
        let mut p = Pool::default();
        let (a, close_a) = p.add();
        let (b, close_b) = p.add();
        let (c, close_c) = p.add();
        // a sent a request after b and c connected: b is the oldest idle one.
        p.used(a);
        assert!(p.close_lru());
        assert!(!p.last_use.contains_key(&b));
        let notified = |n: &tokio::sync::Notify| futures_ready(n.notified());
        assert!(notified(&close_b));
        assert!(!notified(&close_a) && !notified(&close_c));
        assert!(p.close_lru());
        assert!(!p.last_use.contains_key(&c));
        assert_eq!(p.len(), 1);
        p.remove(a);
        assert_eq!((p.len(), p.by_use.len()), (0, 0));
        assert!(!p.close_lru(), "none left");
    }

    /// Whether a future is ready at its first poll.
    fn futures_ready<F: std::future::Future>(f: F) -> bool {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn bound_leaves_room_for_other_fds() {
        assert_eq!(connection_bound(1 << 20, 40), MAX_CONNECTIONS);
        assert_eq!(connection_bound(256, 40), 256 - 40 - FD_RESERVE as usize);
        assert_eq!(connection_bound(64, 40), 8);
    }

    #[test]
    fn content_negotiation() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics("*/*"));
    }
}
