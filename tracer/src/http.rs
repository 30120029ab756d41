//! The HTTP front of `tracer serve`: hyper's HTTP/1 server on tokio. GET
//! /metrics answers with a scrape (OpenMetrics when the Accept header asks for
//! it), GET / with a pointer to it, anything else 404 (405 for another method
//! on /metrics). A client that connects and sends nothing is dropped after
//! the header timeout; each connection is its own task, so it blocks no one.
use std::{
    net::{SocketAddr, TcpListener, ToSocketAddrs as _},
    sync::Arc,
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

/// Connections served at once; more wait to be accepted (bounded memory).
const MAX_CONNECTIONS: usize = 512;

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
        Ok(l) => Ok(l),
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

/// Serve on `listener` until the task is aborted.
pub fn spawn(listener: TcpListener, scrape: Arc<Scrape>) -> Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of fds, say: wait a little rather than spin.
                    log::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let scrape = scrape.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let scrape = scrape.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &*scrape)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    log::debug!("connection: {e}");
                }
                drop(permit);
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
    fn content_negotiation() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics("*/*"));
    }
}
