//! `tracer serve`: scraped by a real Prometheus (Debian's, which `cargo
//! xtask setup` installs) and checked by promtool; many scrapers at once, a
//! client that sends nothing, bad paths and bad input; the labels and their
//! cap; the config file and the systemd unit's capabilities; the metric table
//! of the README against a real scrape, both ways.
mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// `tracer serve ARGS` on a free loopback port, attached; with its address.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(args: &[&str]) -> Self {
        Self::start_cmd(
            tracer()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(args),
        )
    }

    fn start_cmd(cmd: &mut Command) -> Self {
        let (child, mut err) = start_attached(cmd);
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let url = line
            .strip_prefix("Serving metrics at http://")
            .unwrap_or_else(|| panic!("no address line: {line:?}"));
        let addr = url.split('/').next().unwrap().parse().unwrap();
        // Keep draining stderr so tracer never blocks on it.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
        });
        Serve { child, addr }
    }

    fn scrape(&self) -> String {
        let (status, _, body) = get(self.addr, "/metrics", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// SIGTERM, and tracer's exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(t0.elapsed() < LIMIT, "tracer serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request: status, headers, body.
fn request(addr: SocketAddr, raw: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"),
    )
}

/// The value of the sample `name{labels}` (exactly those labels) in a scrape.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeSet<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    body.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, ls) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let got: BTreeSet<String> = ls
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        (n == name && got == want).then(|| value.parse().unwrap())
    })
}

/// Every sample of `name`: its labels and value.
fn samples(body: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, ls) = series.split_once('{').unwrap_or((series, "}"));
            (n == name).then(|| {
                let labels = ls
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|s| !s.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (labels, value.parse().unwrap())
            })
        })
        .collect()
}

/// A name no other test's fixture runs under: counts filtered by it are exact.
fn comm(tag: &str) -> String {
    format!("srv{tag}{}", std::process::id() % 100_000)
}

fn run_fixture(args: &[&str]) {
    let out = run(fixture().args(args), LIMIT);
    assert!(out.status.success(), "fixture {args:?}: {out:?}");
}

/// Poll `f` until it returns Some, at most `limit`.
fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Debian's Prometheus, scraping one target every second, with its storage
/// in a temporary directory.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("prometheus is not installed: `cargo xtask setup` installs Debian's");
        let dir = std::env::temp_dir().join(format!("tracer-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: tracer\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            addr: port,
            dir,
        };
        poll(LIMIT, "Prometheus to scrape tracer (up == 1)", || {
            let r = p.query("up");
            (r.first().map(|x| x.1) == Some(1.0)).then_some(())
        });
        p
    }

    /// An instant query through the HTTP API: (labels, value) per series.
    fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let enc: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return Vec::new();
        };
        let _ = write!(
            s,
            "GET /api/v1/query?query={enc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let Some((_, body)) = text.split_once("\r\n\r\n") else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            return Vec::new();
        };
        v["data"]["result"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        let labels = r["metric"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                            .collect();
                        (labels, r["value"][1].as_str().unwrap().parse().unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single value of `expr`, once Prometheus has it equal to `want`
    /// (scrapes come every second); panics with the last value otherwise.
    fn wait_for(&self, expr: &str, want: f64) {
        let t0 = Instant::now();
        loop {
            let got: Vec<f64> = self.query(expr).into_iter().map(|x| x.1).collect();
            if got == [want] {
                return;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                panic!("{expr}: Prometheus has {got:?}, want {want}\nlog: {log}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixture makes a known number of a rare syscall and of failed openat
/// calls; a real Prometheus scraping tracer every second reads back exactly
/// those counts, the errno's, and the histogram's count.
#[test]
fn prometheus_scrapes_exact_counts() {
    let _l = shared_lock();
    let c = comm("p");
    let serve = Serve::start(&["--comm", &c]);
    let prom = Prometheus::start(serve.addr);
    // Nothing of that comm ran yet: the series do not exist.
    assert!(prom
        .query("tracer_syscalls_total{syscall=\"sched_get_priority_max\"}")
        .is_empty());
    run_fixture(&["--comm", &c, "rare", "777"]);
    run_fixture(&["--comm", &c, "syscalls", "5", "13"]);
    prom.wait_for(
        "tracer_syscalls_total{syscall=\"sched_get_priority_max\"}",
        777.0,
    );
    prom.wait_for(
        "tracer_syscall_errors_total{syscall=\"openat\",errno=\"ENOENT\"}",
        13.0,
    );
    prom.wait_for("tracer_syscalls_total{syscall=\"getppid\"}", 5.0);
    prom.wait_for(
        "tracer_syscall_duration_seconds_count{syscall=\"sched_get_priority_max\"}",
        777.0,
    );
    prom.wait_for(
        "tracer_syscall_duration_seconds_bucket{syscall=\"sched_get_priority_max\",le=\"+Inf\"}",
        777.0,
    );
    // Every scrape of the run went through (Prometheus asks for OpenMetrics first).
    prom.wait_for("up{job=\"tracer\"}", 1.0);
    assert_eq!(serve.stop().code(), Some(0), "SIGTERM: exit 0");
}

/// i386 calls (`int $0x80`) are their own series, with `abi="i386"` and the
/// i386 name: in the plain counters, the errors, the histograms and the
/// labelled rows (`--by`).
#[test]
fn i386_calls_have_an_abi_label() {
    let _l = shared_lock();
    for by in [None, Some("comm")] {
        let c = comm(&format!("a{}", by.map_or("", |b| &b[..2])));
        let mut args = vec!["--comm", c.as_str(), "-L"];
        args.extend(by.iter().flat_map(|b| ["--by", b]));
        let serve = Serve::start(&args);
        run_fixture(&["--comm", &c, "int80", "70", "9"]);
        let mut labels = vec![("syscall", "getpid"), ("abi", "i386")];
        if by.is_some() {
            labels.push(("comm", c.as_str()));
        }
        let body = poll(LIMIT, "the i386 getpid series", || {
            let body = serve.scrape();
            sample(&body, "tracer_syscalls_total", &labels).map(|_| body)
        });
        assert_eq!(
            sample(&body, "tracer_syscalls_total", &labels),
            Some(70.0),
            "{body}"
        );
        // The 64-bit getpid calls (and the fixture's own): no abi label.
        labels.retain(|(k, _)| *k != "abi");
        assert_eq!(
            sample(&body, "tracer_syscalls_total", &labels),
            Some(71.0),
            "{body}"
        );
        // Nothing under the x86_64 name of number 20.
        let writev = samples(&body, "tracer_syscalls_total");
        assert!(
            !writev.iter().any(|(l, _)| l["syscall"] == "writev"),
            "{body}"
        );
        let close = [("syscall", "close"), ("abi", "i386"), ("errno", "EBADF")];
        assert_eq!(
            sample(&body, "tracer_syscall_errors_total", &close),
            Some(9.0),
            "{body}"
        );
        let count = [("syscall", "getpid"), ("abi", "i386")];
        assert_eq!(
            sample(&body, "tracer_syscall_duration_seconds_count", &count),
            Some(70.0),
            "{body}"
        );
        assert_eq!(serve.stop().code(), Some(0), "SIGTERM: exit 0");
    }
}

/// A scrape with every family present passes `promtool check metrics`, in
/// the Prometheus text format; OpenMetrics is served when asked for.
#[test]
fn promtool_accepts_every_family() {
    let _l = shared_lock();
    let c = comm("t");
    let fx = fixture_path();
    let probe = format!("{}:tracer_fixture_work", fx.display());
    let serve = Serve::start(&[
        "--comm",
        &c,
        "--by",
        "comm",
        "--max-series",
        "2",
        "--uprobe",
        &probe,
        "--tracepoint",
        "sched:sched_process_exec",
        "--latency",
    ]);
    run_fixture(&["--comm", &c, "syscalls", "5", "3"]);
    run_fixture(&["--comm", &c, "work", "100"]);
    let body = serve.scrape();
    for family in [
        "tracer_syscalls_total",
        "tracer_syscall_errors_total",
        "tracer_syscall_duration_seconds",
        "tracer_probe_hits_total",
        "tracer_probe_duration_seconds",
        "tracer_dropped_series_total",
        "tracer_lost_total",
        "tracer_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{body}"
        );
    }
    let probe_label = format!("uprobe:{}:tracer_fixture_work", fx.display());
    assert_eq!(
        sample(&body, "tracer_probe_hits_total", &[("probe", &probe_label)]),
        Some(100.0)
    );
    assert_eq!(
        sample(
            &body,
            "tracer_probe_duration_seconds_count",
            &[("probe", &probe_label)]
        ),
        Some(100.0)
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; `cargo xtask setup` installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, head, om) = get(
        serve.addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE tracer_syscalls counter\n"));
    let (_, head, _) = get(serve.addr, "/metrics", None);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(serve.stop().code(), Some(0));
}

/// --by comm with a cap of 2 series: the fixture's getppid, openat and the
/// rest of its syscalls cannot all have their own series; the calls of the
/// refused ones are under comm="_other", each refused series is counted once,
/// and no call is lost (the sum over the label is the fixture's count).
#[test]
fn series_cap_folds_into_other() {
    let _l = shared_lock();
    let c = comm("c");
    let serve = Serve::start(&["--comm", &c, "--by", "comm", "--max-series", "2"]);
    run_fixture(&["--comm", &c, "syscalls", "41", "17"]);
    let body = serve.scrape();
    let all = samples(&body, "tracer_syscalls_total");
    let own: Vec<_> = all.iter().filter(|(l, _)| l["comm"] == c).collect();
    let other: Vec<_> = all.iter().filter(|(l, _)| l["comm"] == "_other").collect();
    assert_eq!(own.len(), 2, "{all:?}");
    assert!(!other.is_empty(), "{all:?}");
    let dropped = sample(&body, "tracer_dropped_series_total", &[]).unwrap();
    // The rows refused: one per syscall of the fixture beyond the two.
    let syscalls: BTreeSet<&String> = all.iter().map(|(l, _)| &l["syscall"]).collect();
    assert_eq!(dropped as usize, syscalls.len() - 2, "{all:?}");
    let sum = |sc: &str| -> f64 {
        all.iter()
            .filter(|(l, _)| l["syscall"] == sc)
            .map(|x| x.1)
            .sum()
    };
    assert_eq!(sum("getppid"), 41.0, "{all:?}");
    assert_eq!(sum("openat"), 17.0, "{all:?}");
    assert_eq!(
        sample(
            &body,
            "tracer_syscall_errors_total",
            &[("syscall", "openat"), ("errno", "ENOENT")]
        ),
        Some(17.0)
    );
}

/// A syscall number without a name (1000) has the label strace's name for
/// it, `syscall_0x3e8`, as in every other output.
#[test]
fn unassigned_number_label() {
    let _l = shared_lock();
    let c = comm("n");
    let serve = Serve::start(&["--comm", &c]);
    run_fixture(&["--comm", &c, "nosys", "1000", "9"]);
    let body = serve.scrape();
    let s = [("syscall", "syscall_0x3e8")];
    assert_eq!(
        sample(&body, "tracer_syscalls_total", &s),
        Some(9.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "tracer_syscall_errors_total",
            &[("syscall", "syscall_0x3e8"), ("errno", "ENOSYS")]
        ),
        Some(9.0),
        "{body}"
    );
}

/// --by pid: the fixture's series carry its pid and end after it exits,
/// and their rows are taken back: with a cap of 12 rows, six fixtures one
/// after the other (five or so rows each) all get series of their own.
#[test]
fn pid_series_end_with_their_process() {
    let _l = shared_lock();
    let c = comm("d");
    let serve = Serve::start(&["--comm", &c, "--by", "pid", "--max-series", "12"]);
    for round in 0..6 {
        let mut w = Waiting::start(&["--comm", &c, "syscalls", "23", "0"]);
        let pid = w.pid().to_string();
        w.go();
        w.wait();
        let body = serve.scrape();
        assert_eq!(
            sample(
                &body,
                "tracer_syscalls_total",
                &[("syscall", "getppid"), ("pid", &pid)]
            ),
            Some(23.0),
            "round {round}: {body}"
        );
        // Gone at this scrape, out of the table after the next.
        poll(
            Duration::from_secs(10),
            "the exited pid's series to end",
            || {
                let body = serve.scrape();
                (!body.contains(&format!("pid=\"{pid}\""))).then_some(())
            },
        );
    }
    let body = serve.scrape();
    assert_eq!(
        sample(&body, "tracer_dropped_series_total", &[]),
        Some(0.0),
        "{body}"
    );
}

/// -p PID: only that process and its children are counted, and tracer
/// serve ends (exit 0) when they are all gone, as every command does.
#[test]
fn pid_filter_and_its_end() {
    let _l = shared_lock();
    let fx = fixture_path();
    let mut sh = Command::new("sh")
        .args([
            "-c",
            &format!("read go; {} syscalls 37 0; sleep 1", fx.display()),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sh.id().to_string();
    let mut serve = Serve::start(&["-p", &pid]);
    sh.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let getppid = |serve: &Serve| {
        sample(
            &serve.scrape(),
            "tracer_syscalls_total",
            &[("syscall", "getppid")],
        )
    };
    poll(Duration::from_secs(10), "the fixture's calls", || {
        (getppid(&serve) == Some(37.0)).then_some(())
    });
    // A fixture outside the traced tree is not counted.
    run_fixture(&["syscalls", "11", "0"]);
    assert_eq!(getppid(&serve), Some(37.0));
    sh.wait().unwrap();
    let st = poll(Duration::from_secs(10), "tracer serve to end", || {
        serve.child.try_wait().unwrap()
    });
    assert_eq!(st.code(), Some(0));
}

/// --by cgroup: a fixture moved into a new cgroup v2 group is counted under
/// that group's path.
#[test]
fn cgroup_label_is_the_cgroup_path() {
    let _l = shared_lock();
    let root = cgroup2_mount();
    let name = format!("tracer-serve-test-{}", std::process::id());
    let dir = root.join(&name);
    std::fs::create_dir(&dir).unwrap();
    let c = comm("g");
    let serve = Serve::start(&["--comm", &c, "--by", "cgroup"]);
    let procs = dir.join("cgroup.procs");
    let out = run(
        Command::new("sh").args([
            "-c",
            &format!(
                "echo $$ > {} && exec {} --comm {c} syscalls 31 0",
                procs.display(),
                fixture_path().display()
            ),
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let body = serve.scrape();
    drop(serve);
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(
        sample(
            &body,
            "tracer_syscalls_total",
            &[("syscall", "getppid"), ("cgroup", &format!("/{name}"))]
        ),
        Some(31.0),
        "{body}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

/// 50 scrapers at once for 10 s (a bounded loop on loopback) all get whole
/// answers while a client that connected and sent nothing waits; tracer's
/// memory stays bounded; unknown paths are 404 and other methods 405.
#[test]
fn many_scrapers_and_a_silent_client() {
    let _l = shared_lock();
    let serve = Serve::start(&["--by", "comm"]);
    let addr = serve.addr;
    let silent = TcpStream::connect(addr).unwrap();
    let before = rss_kib(serve.child.id());
    let t0 = Instant::now();
    let workers: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut ok = 0u32;
                while t0.elapsed() < Duration::from_secs(10) {
                    let (status, _, body) = get(addr, "/metrics", None);
                    assert_eq!(status, 200);
                    assert!(body.contains("\nprocess_open_fds "), "cut short: {body}");
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let scrapes: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let after = rss_kib(serve.child.id());
    eprintln!("{scrapes} scrapes in 10 s; RSS {before} KiB before, {after} KiB after");
    assert!(scrapes >= 50, "only {scrapes} scrapes");
    assert!(
        after < 40 * 1024,
        "RSS {after} KiB after the load ({before} before)"
    );
    assert_eq!(get(addr, "/nope", None).0, 404);
    assert_eq!(get(addr, "/", None).0, 200);
    let (status, _, _) = request(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    drop(silent);
    assert_eq!(serve.stop().code(), Some(0));
}

/// Raise this process's limit of open files (root may raise the hard one)
/// so that it can hold `n` sockets besides what it has.
fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let want = n + 1024;
    if lim.rlim_cur < want {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) },
            0,
            "cannot raise RLIMIT_NOFILE to {want}"
        );
    }
}

/// Idle clients on loopback: `held` connections that never send a byte,
/// opened 100 at a time, each hundred once tracer has taken the previous one
/// from its listen queue (within 5 s: more is the bug this is about,
/// connections left waiting for a slot that only the header timeout frees);
/// then renewed (the oldest closed, a new one opened) `per_sec` times a
/// second until stopped, so that tracer always has connections idle for less
/// than its header timeout; and 5 slow-loris clients that send a request
/// head one byte every 100 ms and never end it. A connection that the kernel
/// does not complete within 2 s is counted as refused (a full listen queue).
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, usize)>>,
}

impl Flood {
    fn start(addr: SocketAddr, held: usize, per_sec: usize) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let (mut opened, mut refused) = (0, 0);
            let mut open = std::collections::VecDeque::new();
            let mut connect = |open: &mut std::collections::VecDeque<TcpStream>| {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(c) => {
                        open.push_back(c);
                        opened += 1;
                    }
                    Err(_) => refused += 1,
                }
            };
            for batch in 0..held.div_ceil(100) {
                for _ in 0..100.min(held - batch * 100) {
                    connect(&mut open);
                }
                let t0 = Instant::now();
                while listen_queue(addr) > 0 {
                    if t0.elapsed() > Duration::from_secs(5) {
                        let _ = tx.send(Err(format!(
                            "tracer left connections {}-{} unaccepted for 5 s",
                            batch * 100 + 1,
                            (batch + 1) * 100
                        )));
                        return (opened, refused);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: slow-loris\r\n";
            let mut loris: Vec<TcpStream> = (0..5)
                .filter_map(|_| TcpStream::connect(addr).ok())
                .collect();
            let _ = tx.send(Ok(()));
            let (mut n, mut sent) = (0, 0);
            while !flag.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(1000 / per_sec as u64));
                open.pop_front();
                connect(&mut open);
                n += 1;
                if n % (per_sec / 10).max(1) == 0 && sent < head.len() {
                    for l in &mut loris {
                        let _ = l.write_all(&head[sent..sent + 1]);
                    }
                    sent += 1;
                }
            }
            (opened, refused)
        });
        match rx.recv_timeout(LIMIT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("the idle connections were not opened within {LIMIT:?}"),
        }
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop renewing: (connections opened, connections refused).
    fn stop(mut self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The connections waiting in `addr`'s listen queue (not yet accepted), from
/// /proc/net/tcp (the rx_queue of a listening socket).
fn listen_queue(addr: SocketAddr) -> usize {
    let local = format!("0100007F:{:04X}", addr.port());
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[1] == local && f[3] == "0A")
        .and_then(|f| f[4].split_once(':'))
        .map(|(_, rx)| usize::from_str_radix(rx, 16).unwrap())
        .unwrap_or_else(|| panic!("no listening socket {local} in /proc/net/tcp"))
}

/// A scrape by curl (a real client, new connection each time): its status
/// and how long it took from connecting to the last byte, as curl measures
/// it (`time_total`, without curl's own start-up), bounded by --max-time.
fn curl_scrape(addr: SocketAddr) -> (String, Duration) {
    let out = run(
        Command::new("curl").args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            "--max-time",
            "15",
            &format!("http://{addr}/metrics"),
        ]),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, secs) = text
        .split_once(' ')
        .unwrap_or_else(|| panic!("curl: {out:?}"));
    let took = Duration::from_secs_f64(secs.trim().parse().unwrap());
    (status.to_string(), took)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// 2,000 idle connections and 5 slow-loris ones, renewed all along, do not
/// delay a scrape: tracer keeps accepting (before, from about 640 idle
/// connections on, new ones waited for the 10 s header timeout: the flood
/// stops at "connections 501-600 unaccepted for 5 s"), each of 10 scrapes by
/// curl answers within 1 s (20-35 ms here, 10-15 ms with no other client),
/// no connection is refused, tracer's open fds stay bounded, and a real
/// Prometheus with a 1 s scrape timeout sees tracer up. Then again with
/// tracer's limit of open files at 256 (soft and hard): it serves fewer
/// connections at once, and scrapes still answer.
#[test]
fn idle_and_slow_clients_do_not_delay_a_scrape() {
    let _l = shared_lock();
    raise_nofile(2_500);
    let check = |serve: &Serve, fd_bound: usize| {
        // For comparison (shown, not bounded): scrapes with no other client.
        let alone = (0..3).map(|_| curl_scrape(serve.addr).1).max().unwrap();
        let flood = Flood::start(serve.addr, 2_000, 200);
        let mut worst = Duration::ZERO;
        for _ in 0..10 {
            let (status, took) = curl_scrape(serve.addr);
            assert_eq!(status, "200", "after {took:?}");
            assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
            worst = worst.max(took);
            std::thread::sleep(Duration::from_millis(100));
        }
        let fds = open_fds(serve.child.id());
        let (opened, refused) = flood.stop();
        eprintln!(
            "{opened} idle connections opened, {refused} refused; \
             slowest of 10 scrapes {worst:?} (of 3 alone {alone:?}); tracer had {fds} fds open"
        );
        assert_eq!(refused, 0, "connections not accepted");
        assert!(fds <= fd_bound, "{fds} fds open in tracer");
    };
    let serve = Serve::start(&[]);
    check(&serve, 512 + 200);
    // Prometheus beside the flood: up means a scrape answered within 1 s.
    let flood = Flood::start(serve.addr, 2_000, 200);
    let prom = Prometheus::start(serve.addr);
    prom.wait_for("up{job=\"tracer\"}", 1.0);
    let (_, refused) = flood.stop();
    assert_eq!(refused, 0);
    drop(prom);
    assert_eq!(serve.stop().code(), Some(0));

    let mut cmd = tracer();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let serve = Serve::start_cmd(&mut cmd);
    check(&serve, 256);
    assert_eq!(serve.stop().code(), Some(0));
}

/// Bad input is one line on stderr and exit 1, before anything is loaded.
#[test]
fn bad_input_is_one_line() {
    let _l = shared_lock();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let cfg = std::env::temp_dir().join(format!("tracer-serve-bad-{}.toml", std::process::id()));
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nbogus = 1\n").unwrap();
    let cfg_arg = cfg.display().to_string();
    for (args, want) in [
        (vec!["--listen", "nonsense"], "bad --listen `nonsense`"),
        (vec!["--listen", "127.0.0.1:70000"], "bad --listen"),
        (vec!["--listen", &port], "the port is in use"),
        (
            vec!["--listen", "192.0.2.1:9852"],
            "no interface of this machine",
        ),
        (vec!["--config", &cfg_arg], "unknown field `bogus`"),
        (
            vec!["--config", "/no/such/file.toml"],
            "cannot read --config",
        ),
        (vec!["--no-syscalls"], "nothing to serve"),
        (vec!["--max-series", "0"], "--max-series"),
        (vec!["--kprobe", "no_such_function_xyz"], ""),
    ] {
        let out = run(tracer().arg("serve").args(&args), LIMIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if !args.contains(&"--max-series") {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
    let _ = std::fs::remove_file(&cfg);
}

/// The settings of a config file apply (here the listen address, the comm
/// filter and the label); contrib/serve.toml, the example shipped with the
/// systemd unit, is accepted as it is.
#[test]
fn config_file() {
    let _l = shared_lock();
    let c = comm("f");
    let cfg = std::env::temp_dir().join(format!("tracer-serve-{}.toml", std::process::id()));
    std::fs::write(
        &cfg,
        format!("listen = \"127.0.0.1:0\"\ncomm = \"{c}\"\nby = \"comm\"\nmax_series = 50\n"),
    )
    .unwrap();
    let serve = Serve::start_cmd(tracer().args(["serve", "--config", cfg.to_str().unwrap()]));
    run_fixture(&["--comm", &c, "syscalls", "9", "0"]);
    let body = serve.scrape();
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(
        sample(
            &body,
            "tracer_syscalls_total",
            &[("syscall", "getppid"), ("comm", &c)]
        ),
        Some(9.0),
        "{body}"
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/serve.toml");
    let serve =
        Serve::start_cmd(tracer().args(["serve", "--config", example, "--listen", "127.0.0.1:0"]));
    assert!(serve.scrape().contains("tracer_build_info"));
}

/// The capabilities contrib/tracer.service grants are enough: tracer serve
/// as uid 65534 with exactly those (setpriv) counts a fixture's syscalls and
/// a tracepoint.
#[test]
fn systemd_unit_capabilities_suffice() {
    let _l = shared_lock();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contrib/tracer.service"
    ))
    .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap()
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let bounding = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap();
    assert_eq!(
        bounding,
        unit.lines()
            .find_map(|l| l.strip_prefix("AmbientCapabilities="))
            .unwrap()
    );
    assert!(!caps.iter().any(|c| c == "+sys_admin"), "{caps:?}");
    let set = caps.join(",");
    let c = comm("u");
    let serve = Serve::start_cmd(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(format!("--inh-caps={set}"))
            .arg(format!("--ambient-caps={set}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_tracer"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--comm",
                &c,
                "--tracepoint",
                "sched:sched_process_exec",
            ]),
    );
    run_fixture(&["--comm", &c, "syscalls", "12", "0"]);
    let body = serve.scrape();
    assert_eq!(
        sample(&body, "tracer_syscalls_total", &[("syscall", "getppid")]),
        Some(12.0),
        "{body}"
    );
    assert!(body.contains("probe=\"tracepoint:sched:sched_process_exec\""));
    assert_eq!(serve.stop().code(), Some(0));
}

/// Nothing of tracer's stays in the kernel after SIGTERM or SIGKILL.
#[test]
fn nothing_left_after_sigterm_or_sigkill() {
    let _l = exclusive_lock();
    assert_nothing_loaded("before the test");
    let fx = fixture_path();
    let probe = format!("{}:tracer_fixture_work", fx.display());
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let serve = Serve::start(&[
            "--by",
            "pid",
            "--uprobe",
            &probe,
            "--tracepoint",
            "sched:sched_process_exec",
            "-L",
        ]);
        assert!(serve.scrape().contains("tracer_probe_hits_total"));
        let mut serve = serve;
        unsafe { libc::kill(serve.child.id() as i32, sig) };
        let st = serve.child.wait().unwrap();
        if sig == libc::SIGTERM {
            assert_eq!(st.code(), Some(0));
        }
        assert_nothing_loaded(&format!("after signal {sig}"));
    }
}

/// The README's metric table (under "Metrics") and a real scrape with every
/// family: each family scraped is in the table with its type and labels, and
/// each row of the table was scraped.
#[test]
fn readme_metric_table_matches_a_scrape() {
    let _l = shared_lock();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("### Metrics")
        .expect("README has a ### Metrics section");
    let table: BTreeMap<String, (String, BTreeSet<String>)> = readme[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_string();
            let labels = cells[3]
                .split(',')
                .map(|l| l.trim().trim_matches('`').to_string())
                .filter(|l| !l.is_empty() && l != "none")
                .collect();
            (name, (cells[2].to_string(), labels))
        })
        .collect();
    assert!(table.len() >= 10, "{table:?}");
    // One scrape per label kind, with probes and latency: every family.
    let fx = fixture_path();
    let probe = format!("{}:tracer_fixture_work", fx.display());
    let mut scraped: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for by in ["comm", "pid", "cgroup"] {
        let c = comm(&format!("r{}", &by[..2]));
        let serve = Serve::start(&[
            "--comm",
            &c,
            "--by",
            by,
            "--uprobe",
            &probe,
            "--tracepoint",
            "sched:sched_process_exec",
            "-L",
        ]);
        run_fixture(&["--comm", &c, "syscalls", "3", "3"]);
        run_fixture(&["--comm", &c, "work", "10"]);
        // i386 calls (getpid, a failing close): the `abi` label.
        run_fixture(&["--comm", &c, "int80", "3", "3"]);
        let body = serve.scrape();
        let mut types = BTreeMap::new();
        for l in body.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (n, t) = rest.split_once(' ').unwrap();
                types.insert(n.to_string(), t.to_string());
            }
        }
        for (name, t) in &types {
            let suffixes: &[&str] = if t == "histogram" {
                &["_bucket", "_sum", "_count"]
            } else {
                &[""]
            };
            let entry = scraped
                .entry(name.clone())
                .or_insert_with(|| (t.clone(), BTreeSet::new()));
            for s in suffixes {
                for (labels, _) in samples(&body, &format!("{name}{s}")) {
                    entry.1.extend(labels.into_keys().filter(|k| k != "le"));
                }
            }
        }
    }
    for (name, (t, labels)) in &scraped {
        let Some((dt, dl)) = table.get(name) else {
            panic!("{name} ({t}) is scraped but not in the README's table");
        };
        assert_eq!(dt, t, "{name}: type");
        assert!(
            labels.is_subset(dl),
            "{name}: labels {labels:?} scraped, {dl:?} documented"
        );
    }
    for (name, (_, dl)) in &table {
        let Some((_, labels)) = scraped.get(name) else {
            panic!("{name} is in the README's table but was never scraped");
        };
        assert_eq!(labels, dl, "{name}: documented labels never all seen");
    }
}
