//! `tracer serve`: the counts of `syscalls` (with errnos, a duration
//! histogram and an optional label) and of kprobes, uprobes and tracepoints,
//! read from the kernel's maps at each scrape and served as Prometheus
//! metrics. Each kind of program is its own object, attached as its own
//! command attaches it; the families are built here, the text in
//! `report::metrics`, the HTTP in `http`.
use std::{
    collections::{BTreeMap, HashMap},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use tracer_common::{drops, flags, LabelKey, MAX_SYSCALLS};

use super::{
    kprobe,
    process::{self, Selection},
    run::{Counting, Head, Serving},
    syscalls, tracepoint, uprobe,
};
use crate::{
    bpf::Object,
    cli::{
        BlockArgs, ByLabel, KprobeArgs, Layout, RunArgs, ServeArgs, SortKey, TracepointArgs,
        UprobeArgs, MAX_SERIES_LIMIT,
    },
    collect::{
        series::{cgroup_of, pid_of, LabelKind, Series, SeriesCollector},
        syscalls::{Counts, DROP_NAMES},
        uprobes::FuncCollector,
    },
    http,
    report::{
        funcs::FuncBlock,
        metrics::{self, log2_histogram, snake, Family, Kind, Table, Value},
        BlockKind, Measured,
    },
    sys::{cgroup, names, proc},
};

/// Series of tracer_syscalls_total with --by, unless told.
pub const DEFAULT_MAX_SERIES: u32 = 10_000;

/// The label value of the calls of series past the cap.
pub const OVERFLOW_LABEL: &str = "_other";

/// `--config FILE`: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    listen: Option<String>,
    by: Option<ByLabel>,
    max_series: Option<u32>,
    latency: Option<bool>,
    syscalls: Option<bool>,
    #[serde(default)]
    kprobe: Vec<String>,
    #[serde(default)]
    uprobe: Vec<String>,
    #[serde(default)]
    tracepoint: Vec<String>,
    #[serde(default)]
    pid: Vec<i32>,
    comm: Option<String>,
    user: Option<String>,
}

/// The flags with the config file's settings under them: a flag given wins,
/// the lists add up.
fn with_config(a: &ServeArgs) -> Result<ServeArgs> {
    let Some(path) = &a.config else {
        return Ok(a.clone());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    let c: Config = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "--config {}: {}",
            path.display(),
            e.to_string().trim_end().replace('\n', " ")
        )
    })?;
    let mut m = a.clone();
    m.listen = a.listen.clone().or(c.listen);
    m.by = a.by.or(c.by);
    m.max_series = a.max_series.or(c.max_series);
    m.latency = a.latency || c.latency.unwrap_or(false);
    m.no_syscalls = a.no_syscalls || c.syscalls == Some(false);
    let join =
        |cfg: Vec<String>, cli: &[String]| cfg.into_iter().chain(cli.iter().cloned()).collect();
    m.kprobes = join(c.kprobe, &a.kprobes);
    m.uprobes = join(c.uprobe, &a.uprobes);
    m.tracepoints = join(c.tracepoint, &a.tracepoints);
    m.process.pid = c
        .pid
        .into_iter()
        .chain(a.process.pid.iter().copied())
        .collect();
    m.process.comm = a.process.comm.clone().or(c.comm);
    m.process.uid = a.process.uid.clone().or(c.user);
    if let Some(n) = m.max_series {
        if !(1..=MAX_SERIES_LIMIT).contains(&n) {
            bail!(
                "--config {}: max_series must be from 1 to {MAX_SERIES_LIMIT}",
                path.display()
            );
        }
    }
    Ok(m)
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub listen: SocketAddr,
    pub selection: Selection,
    pub syscalls: Option<syscalls::Plan>,
    pub by: Option<LabelKind>,
    pub kprobes: Option<kprobe::Plan>,
    pub uprobes: Option<uprobe::Plan>,
    pub tracepoints: Option<tracepoint::Plan>,
}

/// Check every argument (and the config file) before loading anything.
pub fn plan(args: &ServeArgs) -> Result<Plan> {
    let a = with_config(args)?;
    let listen = http::parse_listen(a.listen.as_deref().unwrap_or(http::DEFAULT_LISTEN))?;
    let selection = process::plan(&a.process)?;
    let by = a.by.map(|b| match b {
        ByLabel::Comm => LabelKind::Comm,
        ByLabel::Pid => LabelKind::Pid,
        ByLabel::Cgroup => LabelKind::Cgroup,
    });
    if by == Some(LabelKind::Cgroup) && cgroup::cgroup2_mount().is_none() {
        bail!("--by cgroup needs cgroup v2, and it is not mounted here (no cgroup2 in /proc/self/mountinfo)");
    }
    let no_probes = a.kprobes.is_empty() && a.uprobes.is_empty() && a.tracepoints.is_empty();
    if a.no_syscalls && no_probes {
        bail!("nothing to serve: --no-syscalls needs a --kprobe, --uprobe or --tracepoint");
    }
    if a.no_syscalls && by.is_some() {
        bail!("--by labels the syscall counts, and --no-syscalls turns them off");
    }
    let syscalls = (!a.no_syscalls).then(|| {
        let mut f = selection.flags | flags::EXIT_HOOK | flags::ERRNO | flags::HIST;
        if !selection.targeted() {
            // Every scrape makes syscalls: keep tracer's own out of the counts.
            f |= flags::EXCLUDE_SELF;
        }
        f |= match by {
            Some(LabelKind::Comm) => flags::BY_COMM,
            Some(LabelKind::Pid) => flags::BY_PID,
            Some(LabelKind::Cgroup) => flags::BY_CGROUP,
            None => 0,
        };
        syscalls::Plan {
            layout: Layout::Syscount,
            json: false,
            flags: f,
            selection: selection.clone(),
            syscalls: Vec::new(),
            sort: SortKey::Calls,
            top: None,
            measured: Measured {
                errors: true,
                time: true,
            },
            max_series: a.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            show_cgroup: false,
        }
    });
    let (blocks, run) = (BlockArgs::default(), RunArgs::default());
    let kprobes = (!a.kprobes.is_empty())
        .then(|| {
            kprobe::plan(&KprobeArgs {
                patterns: a.kprobes.clone(),
                latency: a.latency,
                stack: false,
                backend: None,
                max_probes: 1000,
                per_process: false,
                blocks: blocks.clone(),
                run: run.clone(),
                process: a.process.clone(),
            })
        })
        .transpose()?;
    let uprobes = (!a.uprobes.is_empty())
        .then(|| {
            uprobe::plan(&UprobeArgs {
                probes: a.uprobes.clone(),
                latency: a.latency,
                blocks: blocks.clone(),
                run: run.clone(),
                process: a.process.clone(),
            })
        })
        .transpose()?;
    let tracepoints = (!a.tracepoints.is_empty())
        .then(|| {
            tracepoint::plan(&TracepointArgs {
                tracepoints: a.tracepoints.clone(),
                per_process: false,
                show_cgroup: false,
                hist: None,
                sum: None,
                blocks,
                run,
                process: a.process.clone(),
            })
        })
        .transpose()?;
    Ok(Plan {
        listen,
        selection,
        syscalls,
        by,
        kprobes,
        uprobes,
        tracepoints,
    })
}

/// What the server reads at each scrape.
pub struct Scraper {
    plan: Plan,
    syscalls: Option<(syscalls::Live, SeriesCollector)>,
    kprobes: Option<kprobe::Live>,
    uprobes: Option<FuncCollector>,
    tracepoints: Option<tracepoint::Live>,
    /// The cgroup v2 mount and the paths of the cgroup ids seen.
    cgroups: Option<(PathBuf, BTreeMap<u64, String>)>,
    syscall_names: Vec<Arc<str>>,
    kernel: String,
}

/// What attaching leaves: the bound socket and the scraper.
pub struct Live {
    listener: TcpListener,
    scraper: Scraper,
}

impl Serving for Plan {
    type Live = Live;

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn attach(&self) -> Result<(Live, Vec<Object>)> {
        // First: a bad address or a port in use fails before anything loads.
        let listener = http::bind(self.listen)?;
        let mut objs = Vec::new();
        let syscalls = match &self.syscalls {
            Some(p) => {
                let (live, mut obj) = p.attach()?;
                let series = SeriesCollector::new(&mut obj, true, self.by, p.label_rows())?;
                objs.push(obj);
                Some((live, series))
            }
            None => None,
        };
        let kprobes = attach(self.kprobes.as_ref(), &mut objs)?;
        let uprobes = attach(self.uprobes.as_ref(), &mut objs)?;
        let tracepoints = attach(self.tracepoints.as_ref(), &mut objs)?;
        let scraper = Scraper {
            plan: self.clone(),
            syscalls,
            kprobes,
            uprobes,
            tracepoints,
            cgroups: None,
            syscall_names: syscall_names(),
            kernel: kernel_release(),
        };
        Ok((Live { listener, scraper }, objs))
    }

    fn what(&self, live: &Live) -> String {
        let mut parts = Vec::new();
        if self.syscalls.is_some() {
            parts.push("syscalls".to_string());
        }
        if let Some(k) = &live.scraper.kprobes {
            parts.push(self.kprobes.as_ref().unwrap().what(k));
        }
        if let (Some(p), Some(u)) = (&self.uprobes, &live.scraper.uprobes) {
            parts.push(p.what(u));
        }
        if let (Some(p), Some(t)) = (&self.tracepoints, &live.scraper.tracepoints) {
            parts.push(p.what(t));
        }
        parts.join(", ")
    }

    fn url(&self, live: &Live) -> String {
        let addr = live.listener.local_addr().unwrap_or(self.listen);
        format!("http://{addr}/metrics")
    }

    fn start(&self, live: Live) -> Result<tokio::task::JoinHandle<()>> {
        keep_freed_memory();
        let scraper = Mutex::new(live.scraper);
        let scrape = move |om: bool| -> Result<String> {
            let mut s = scraper.lock().unwrap_or_else(|e| e.into_inner());
            let t0 = std::time::Instant::now();
            let families = s.families()?;
            let t1 = t0.elapsed();
            let text = metrics::encode(&families, om);
            log::debug!(
                "scrape: read in {:.1} ms, encoded in {:.1} ms ({} bytes)",
                t1.as_secs_f64() * 1e3,
                (t0.elapsed() - t1).as_secs_f64() * 1e3,
                text.len()
            );
            Ok(text)
        };
        http::spawn(live.listener, Arc::new(scrape))
    }
}

/// A scrape builds a few megabytes (the samples, the text) and frees them.
/// glibc hands blocks that big back to the kernel at each free (and lowers
/// the heap's top), so the next scrape faults every page in again: a third
/// of the encoding's time with 40,000 series. Keep them instead; the peak
/// stays in RSS, which the next scrape needs anyway.
fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes glibc's thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// Attach a probe command's programs, if asked for: its live state, its
/// object kept in `objs` (dropping them detaches).
fn attach<C: Counting>(plan: Option<&C>, objs: &mut Vec<Object>) -> Result<Option<C::Live>> {
    let Some(p) = plan else {
        return Ok(None);
    };
    let (live, obj) = p.attach()?;
    objs.push(obj);
    Ok(Some(live))
}

/// The head of a block read for a scrape (only its kind matters).
const SCRAPE_HEAD: Head = Head {
    kind: BlockKind::Summary,
    seconds: 0.0,
    exit_code: None,
    launched: None,
};

impl Scraper {
    /// Every family, read from the kernel now.
    fn families(&mut self) -> Result<Vec<Family>> {
        let mut out = Vec::new();
        let mut lost = Family::new(
            "tracer_lost",
            "Updates the kernel-side programs could not make, by reason: the counts are low by \
             this much.",
            Kind::Counter,
        );
        let mut dropped = 0;
        if let Some((live, series)) = &mut self.syscalls {
            let plan = self.plan.syscalls.as_ref().unwrap();
            let counts = plan.read(live)?;
            let used: Vec<u32> = counts
                .by_syscall
                .iter()
                .filter(|(_, st)| st.calls > 0)
                .map(|(&nr, _)| nr)
                .collect();
            let refused = counts.drops[drops::SERIES_REFUSED as usize]
                + counts.drops[drops::REFUSED_UNTRACKED as usize];
            let s = series.read(&used, refused > 0, |pid| {
                !Path::new(&format!("/proc/{pid}")).exists()
            })?;
            let mut names = LabelNames {
                syscalls: &self.syscall_names,
                cgroups: &mut self.cgroups,
                seen: HashMap::new(),
                walked: false,
            };
            out.extend(syscall_families(&counts, &s, self.plan.by, &mut names));
            for (i, name) in DROP_NAMES {
                lost.push(
                    vec![("reason", snake(name).into())],
                    Value::Int(counts.drops[i as usize]),
                );
            }
            if self.plan.by.is_some() {
                lost.push(
                    vec![("reason", "refused_series_not_remembered".into())],
                    Value::Int(counts.drops[drops::REFUSED_UNTRACKED as usize]),
                );
            }
            dropped = counts.drops[drops::SERIES_REFUSED as usize];
        }
        let mut probes = ProbeFamilies::new();
        if let (Some(p), Some(live)) = (&self.plan.kprobes, &self.kprobes) {
            let b = p.func_block(live, SCRAPE_HEAD, &p.read(live)?);
            probes.funcs("kprobe", &b, &mut lost);
        }
        if let (Some(p), Some(live)) = (&self.plan.uprobes, &self.uprobes) {
            let b = uprobe::block(p, BlockKind::Summary, 0.0, &p.read(live)?);
            probes.funcs("uprobe", &b, &mut lost);
        }
        if let (Some(p), Some(live)) = (&self.plan.tracepoints, &self.tracepoints) {
            let procs = live.collector.procs();
            let b = tracepoint::block(p, BlockKind::Summary, 0.0, &p.read(live)?, &procs, None);
            for e in &b.events {
                probes.hits.push(
                    vec![("probe", format!("tracepoint:{}", e.name).into())],
                    Value::Int(e.count),
                );
            }
            for (reason, n) in &b.drops {
                lost.push(
                    vec![("reason", format!("tracepoint_{}", snake(reason)).into())],
                    Value::Int(*n),
                );
            }
        }
        out.push(probes.hits);
        out.push(probes.duration);
        let mut d = Family::new(
            "tracer_dropped_series",
            "Series of tracer_syscalls_total refused by --max-series (their calls are counted \
             under the label value _other).",
            Kind::Counter,
        );
        d.push(Vec::new(), Value::Int(dropped));
        out.push(d);
        out.push(lost);
        let mut b = Family::new(
            "tracer_build_info",
            "tracer's version and the kernel it runs on.",
            Kind::Gauge,
        );
        b.push(
            vec![
                ("version", env!("CARGO_PKG_VERSION").into()),
                ("kernel", self.kernel.as_str().into()),
            ],
            Value::Int(1),
        );
        out.push(b);
        out.extend(process_families(&proc::self_stats()));
        Ok(out)
    }
}

/// tracer_probe_hits_total and tracer_probe_duration_seconds.
struct ProbeFamilies {
    hits: Family,
    duration: Family,
}

impl ProbeFamilies {
    fn new() -> Self {
        Self {
            hits: Family::new(
                "tracer_probe_hits",
                "Hits of each probe given with --kprobe, --uprobe or --tracepoint (probe is \
                 kprobe:FUNCTION, uprobe:FILE:FUNCTION or tracepoint:CATEGORY:NAME).",
                Kind::Counter,
            ),
            duration: Family::new(
                "tracer_probe_duration_seconds",
                "Time from a probed function's entry to its return (--latency).",
                Kind::Histogram,
            ),
        }
    }

    fn funcs(&mut self, kind: &str, b: &FuncBlock, lost: &mut Family) {
        for f in &b.funcs {
            let probe = match &f.location {
                Some((file, _)) => {
                    let base = Path::new(file)
                        .file_name()
                        .map(|n| format!("{}:", n.to_string_lossy()))
                        .unwrap_or_default();
                    let name = f.name.strip_prefix(&base).unwrap_or(&f.name);
                    format!("{kind}:{file}:{name}")
                }
                None => format!("{kind}:{}", f.name),
            };
            let probe: Arc<str> = probe.into();
            self.hits
                .push(vec![("probe", probe.clone())], Value::Int(f.calls));
            if !f.hist.is_empty() {
                self.duration
                    .push(vec![("probe", probe)], log2_histogram(&f.hist, f.total_ns));
            }
        }
        for (reason, n) in &b.drops {
            lost.push(
                vec![("reason", format!("{kind}_{}", snake(reason)).into())],
                Value::Int(*n),
            );
        }
    }
}

/// Label values, each made once per scrape and shared by its series.
pub struct LabelNames<'a> {
    /// Per syscall number (made once per run).
    pub syscalls: &'a [Arc<str>],
    /// The cgroup v2 mount and the paths of the cgroup ids seen (--by cgroup).
    pub cgroups: &'a mut Option<(PathBuf, BTreeMap<u64, String>)>,
    /// This scrape's label values by the kernel's bytes.
    pub seen: HashMap<[u8; 16], Arc<str>>,
    /// Whether this scrape walked the cgroup tree already.
    pub walked: bool,
}

impl LabelNames<'_> {
    fn syscall(&self, nr: u32) -> Arc<str> {
        self.syscalls
            .get(nr as usize)
            .cloned()
            .unwrap_or_else(|| names::syscall_name(nr).into())
    }

    /// The labels of syscall `nr`: its name, and its ABI (`abi="i386"`)
    /// where that is not the native one.
    fn syscall_labels(&self, nr: u32) -> Vec<(&'static str, Arc<str>)> {
        let mut l = vec![("syscall", self.syscall(nr))];
        let (abi, _) = names::Abi::of(nr);
        if !abi.is_native() {
            l.push(("abi", abi.name().into()));
        }
        l
    }

    /// The value of a label as the kernel wrote it.
    fn label(&mut self, kind: LabelKind, key: &LabelKey) -> Arc<str> {
        if let Some(v) = self.seen.get(&key.label) {
            return v.clone();
        }
        let v: Arc<str> = match kind {
            LabelKind::Comm => proc::comm_str(&key.label).into(),
            LabelKind::Pid => pid_of(key).to_string().into(),
            LabelKind::Cgroup => {
                let id = cgroup_of(key);
                let (root, known) = self.cgroups.get_or_insert_with(|| {
                    (cgroup::cgroup2_mount().unwrap_or_default(), BTreeMap::new())
                });
                if !known.contains_key(&id) && !self.walked {
                    // Cgroups made since: walk the tree again, at most once a scrape.
                    known.extend(cgroup::paths_by_id(root));
                    self.walked = true;
                }
                // Not found: removed since it counted calls (it existed then,
                // before this read). Remembered, so no scrape walks for it again.
                known
                    .entry(id)
                    .or_insert_with(|| format!("id:{id}"))
                    .as_str()
                    .into()
            }
        };
        self.seen.insert(key.label, v.clone());
        v
    }
}

/// The syscall names by number, as label values.
fn syscall_names() -> Vec<Arc<str>> {
    (0..MAX_SYSCALLS)
        .map(|nr| names::syscall_name(nr).into())
        .collect()
}

/// tracer_syscalls_total, tracer_syscall_errors_total and
/// tracer_syscall_duration_seconds from the counts.
pub fn syscall_families(
    counts: &Counts,
    series: &Series,
    by: Option<LabelKind>,
    names: &mut LabelNames,
) -> Vec<Family> {
    let mut calls = Family::new(
        "tracer_syscalls",
        "Syscalls entered, by syscall (and by the --by label).",
        Kind::Counter,
    );
    match by {
        None => {
            for (&nr, s) in &counts.by_syscall {
                if s.calls > 0 {
                    calls.push(names.syscall_labels(nr), Value::Int(s.calls));
                }
            }
        }
        Some(kind) => {
            let key = match kind {
                LabelKind::Comm => "comm",
                LabelKind::Pid => "pid",
                LabelKind::Cgroup => "cgroup",
            };
            // Tens of thousands of rows: a table of indexes into the
            // syscall names and label values, each made once.
            let mut t = Table::new(["syscall", key]);
            t.rows.reserve(series.labelled.len());
            let mut syscall_idx = vec![u32::MAX; MAX_SYSCALLS as usize];
            let mut label_idx: HashMap<[u8; 16], u32> = HashMap::new();
            let mut last: Option<([u8; 16], u32)> = None;
            for (k, n) in &series.labelled {
                if !names::Abi::of(k.syscall).0.is_native() {
                    // Rare: outside the table, which has no `abi` column.
                    let mut l = names.syscall_labels(k.syscall);
                    l.push((key, names.label(kind, k)));
                    calls.push(l, Value::Int(*n));
                    continue;
                }
                let sc = match syscall_idx.get(k.syscall as usize) {
                    Some(&i) if i != u32::MAX => i,
                    _ => {
                        let i = t.value(0, &names.syscall(k.syscall));
                        if let Some(slot) = syscall_idx.get_mut(k.syscall as usize) {
                            *slot = i;
                        }
                        i
                    }
                };
                let l = match last {
                    Some((bytes, i)) if bytes == k.label => i,
                    _ => {
                        let i = match label_idx.get(&k.label) {
                            Some(&i) => i,
                            None => {
                                let i = t.value(1, &names.label(kind, k));
                                label_idx.insert(k.label, i);
                                i
                            }
                        };
                        last = Some((k.label, i));
                        i
                    }
                };
                t.rows.push(([sc, l], *n));
            }
            calls.table = Some(t);
            let other: Arc<str> = OVERFLOW_LABEL.into();
            for &(nr, n) in &series.overflow {
                let mut l = names.syscall_labels(nr);
                l.push((key, other.clone()));
                calls.push(l, Value::Int(n));
            }
        }
    }
    let mut errors = Family::new(
        "tracer_syscall_errors",
        "Syscalls that failed, by syscall and errno.",
        Kind::Counter,
    );
    let mut by_errno: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (&(_, nr, errno), &n) in &counts.errnos {
        *by_errno.entry((nr, errno)).or_default() += n;
    }
    for ((nr, errno), n) in by_errno {
        let mut l = names.syscall_labels(nr);
        l.push(("errno", names::errno_name(errno).into()));
        errors.push(l, Value::Int(n));
    }
    let mut duration = Family::new(
        "tracer_syscall_duration_seconds",
        "Time from a syscall's entry to its return.",
        Kind::Histogram,
    );
    for (nr, slots) in &series.hist {
        let sum = counts.by_syscall.get(nr).map_or(0, |s| s.total_ns);
        duration.push(names.syscall_labels(*nr), log2_histogram(slots, sum));
    }
    vec![calls, errors, duration]
}

/// The process_* families every Prometheus client library exports.
fn process_families(st: &proc::SelfStats) -> Vec<Family> {
    [
        (
            "process_cpu_seconds",
            "User and system CPU time tracer has spent, in seconds.",
            Kind::Counter,
            Value::Float(st.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            "tracer's resident memory size in bytes.",
            Kind::Gauge,
            Value::Int(st.resident_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "tracer's virtual memory size in bytes.",
            Kind::Gauge,
            Value::Int(st.virtual_bytes),
        ),
        (
            "process_start_time_seconds",
            "When tracer started, in seconds since the Unix epoch.",
            Kind::Gauge,
            Value::Float(st.start_time_seconds),
        ),
        (
            "process_open_fds",
            "File descriptors tracer has open.",
            Kind::Gauge,
            Value::Int(st.open_fds),
        ),
        (
            "process_max_fds",
            "tracer's limit of open file descriptors.",
            Kind::Gauge,
            Value::Int(st.max_fds),
        ),
    ]
    .into_iter()
    .map(|(name, help, kind, v)| {
        let mut f = Family::new(name, help, kind);
        f.push(Vec::new(), v);
        f
    })
    .collect()
}

/// The running kernel's release (`uname -r`).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
