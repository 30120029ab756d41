//! The one run loop of every tracing command. It owns, in this order:
//! attaching (through the command), the traced-process set and the launch of
//! `-- CMD`, the signal handlers, the "Tracing ..." line, then the loop until
//! Ctrl-C/SIGTERM, the duration, or every traced process gone (interval
//! blocks, events as they come, lost-event lines), detaching before the final
//! read, the final block, and tracer's exit code.
//!
//! A counting command implements [`Counting`]: attach, read, render. A
//! streaming command implements [`Streaming`]: attach, and format each event
//! from the ring buffer. Neither keeps a loop or computes an exit code.
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{process::Selection, Sink};
use crate::{
    bpf::{self, traced::TracedSet, Object},
    collect::{
        events::{Event, Lost, LostCounters, Reader},
        Delta,
    },
    report::{self, BlockKind},
    signals::Signals,
    sys::{launch, proc},
};

/// What every run is told by the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub duration: Option<f64>,
    /// Interval blocks (counting commands).
    pub interval: Option<f64>,
    pub output: Option<PathBuf>,
    /// The report goes to stderr (a launched command owns stdout; strace's
    /// layouts write there too).
    pub report_on_stderr: bool,
}

/// The head of a printed block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Head {
    pub kind: BlockKind,
    /// Seconds the block covers.
    pub seconds: f64,
    /// The launched command's exit code, in the final block when it ran to its end.
    pub exit_code: Option<i32>,
    /// The launched command's pid.
    pub launched: Option<u32>,
}

/// A command whose programs count in the kernel; the loop reads the counts
/// at each interval and at the end.
pub trait Counting {
    /// What attaching hands back besides the object: the collector, and
    /// whatever naming needs (symbols, ...).
    type Live;
    type Counts: Default + Delta;
    fn selection(&self) -> &Selection;
    /// Load and attach through `bpf/`; the collector takes its maps.
    fn attach(&self) -> Result<(Self::Live, Object)>;
    /// What is traced, for "Tracing {what}{whose}... Hit Ctrl-C to end.".
    fn what(&self, live: &Self::Live) -> String;
    /// Counts so far (through `collect/`).
    fn read(&self, live: &Self::Live) -> Result<Self::Counts>;
    /// The text (or JSON line) of one block (through `report/`).
    fn render(&self, live: &Self::Live, head: Head, counts: &Self::Counts) -> String;
    /// Whether `housekeeping` runs; if not, no timer wakes tracer for it.
    fn keeps_house(&self) -> bool {
        false
    }
    /// Every `housekeeping_period`: the processes found gone (their rows
    /// leave the kernel's maps; the traced set forgets them too).
    fn housekeeping(&self, _live: &mut Self::Live) -> Result<Vec<u32>> {
        Ok(Vec::new())
    }
    /// How often `housekeeping` runs.
    fn housekeeping_period(&self) -> Duration {
        Duration::from_millis(100)
    }
    /// After the final block: write what goes to files of its own (a flame
    /// graph, a pprof profile), from the whole run's counts.
    fn finish(&self, _live: &Self::Live, _head: Head, _counts: &Self::Counts) -> Result<()> {
        Ok(())
    }
    /// Printed on stderr after the final block.
    fn epilogue(&self, _live: &Self::Live) -> Option<String> {
        None
    }
    /// No "Tracing" line with `-- CMD`: stderr then holds the report alone, as strace's does.
    fn quiet_with_command(&self) -> bool {
        false
    }
}

/// A command whose programs send events through the ring buffer (`EVENTS`,
/// losses counted in `EVENT_LOST`).
pub trait Streaming {
    type Live;
    fn selection(&self) -> &Selection;
    fn attach(&self) -> Result<(Self::Live, Object)>;
    fn what(&self) -> String;
    /// JSON lines or text, and the ring buffer's size (for the advice in
    /// lost-event lines).
    fn output(&self) -> (bool, u32);
    /// A header printed before the first event (text only).
    fn header(&self) -> Option<&'static str> {
        None
    }
    /// Append one event's line to `out`; false if the event is not this command's.
    fn event(&self, live: &mut Self::Live, e: Event, out: &mut String) -> bool;
    /// Written after the last event: what the run adds up (`tracer tcp --summary`).
    fn summary(&self, _live: &Self::Live) -> Option<String> {
        None
    }
    fn quiet_with_command(&self) -> bool {
        false
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Signal(i32),
    Duration,
    /// All traced processes are gone; the launched command's wait status, if any.
    TargetsGone(Option<i32>),
}

impl End {
    /// The exit code of tracer: the command's own with `-- CMD`, 128+N after signal N.
    pub fn exit_code(self, launched: bool) -> i32 {
        match self {
            End::Signal(sig) if launched => 128 + sig,
            End::TargetsGone(Some(status)) => proc::exit_code_of(status),
            _ => 0,
        }
    }

    /// The command's exit code, for the final report, when the command ran to its end.
    pub fn command_exit_code(self, launched: bool) -> Option<i32> {
        matches!(self, End::TargetsGone(_))
            .then(|| self.exit_code(launched))
            .filter(|_| launched)
    }
}

/// Run a counting command to its end; returns tracer's exit code.
pub async fn count<C: Counting>(cmd: C, opts: Options) -> Result<i32> {
    let prepared = prepare(cmd.selection())?;
    let started = Instant::now();
    let (mut live, mut obj) = cmd.attach()?;
    log::info!(
        "loaded and attached in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let mut run = Run::start(
        std::slice::from_mut(&mut obj),
        cmd.selection(),
        prepared.as_ref(),
        &opts,
    )?;
    run.housekeeping_every = cmd.housekeeping_period();
    run.announce(&cmd.what(&live), cmd.selection(), cmd.quiet_with_command());
    let mut prev = C::Counts::default();
    let end = run
        .wait(
            &opts,
            &mut live,
            &mut |r: &mut Run, secs: f64, live: &mut C::Live| {
                let now = cmd.read(live)?;
                let head = Head {
                    kind: BlockKind::Interval,
                    seconds: secs,
                    exit_code: None,
                    launched: r.launched,
                };
                r.sink.write(&cmd.render(live, head, &now.since(&prev)))?;
                prev = now;
                Ok(())
            },
            cmd.keeps_house()
                .then_some(&mut |live: &mut C::Live| cmd.housekeeping(live)),
            None,
            &mut |_, _, _| false,
        )
        .await?;
    // The run's length, before detaching (unregistering probes can take a while).
    let seconds = run.t0.elapsed().as_secs_f64();
    // Detach before the final read so the block is consistent.
    drop(obj);
    let counts = cmd.read(&live)?;
    let head = Head {
        kind: BlockKind::Summary,
        seconds,
        exit_code: end.command_exit_code(run.launched.is_some()),
        launched: run.launched,
    };
    run.sink.write(&cmd.render(&live, head, &counts))?;
    cmd.finish(&live, head, &counts)?;
    if let Some(text) = cmd.epilogue(&live) {
        eprint!("{text}");
    }
    Ok(end.exit_code(run.launched.is_some()))
}

/// Run a streaming command to its end; returns tracer's exit code.
pub async fn stream<S: Streaming>(cmd: S, opts: Options) -> Result<i32> {
    let prepared = prepare(cmd.selection())?;
    let (mut live, mut obj) = cmd.attach()?;
    let (json, buffer_size) = cmd.output();
    let mut events = Events {
        reader: Reader::new(obj.take_map("EVENTS")?)?,
        lost: LostCounters::new(obj.take_map("EVENT_LOST")?),
        buf: String::with_capacity(1 << 16),
        delivered: 0,
        seen: Lost::default(),
        json,
        buffer_size,
    };
    let mut run = Run::start(
        std::slice::from_mut(&mut obj),
        cmd.selection(),
        prepared.as_ref(),
        &opts,
    )?;
    run.announce(&cmd.what(), cmd.selection(), cmd.quiet_with_command());
    if let (Some(h), false) = (cmd.header(), json) {
        run.sink.write(h)?;
    }
    let mut logs = bpf::logs::start(&mut obj)?;
    let mut format = |live: &mut S::Live, e: Event, buf: &mut String| cmd.event(live, e, buf);
    let end = run
        .wait(
            &opts,
            &mut live,
            &mut |_, _, _| Ok(()),
            None,
            Some((&mut events, logs.as_mut())),
            &mut format,
        )
        .await?;
    // Detach everything, then take what is still in the ring.
    drop(obj);
    events.drain(&mut live, &mut format);
    events.flush(&mut run.sink)?;
    if let Some(f) = logs.as_mut() {
        f.flush();
    }
    let total = events.lost.read()?;
    events.lost_lines(&total, &mut run.sink)?;
    if let Some(text) = cmd.summary(&live) {
        run.sink.write(&text)?;
    }
    if events.json {
        run.sink.write(&report::syscall_events::summary_json(
            &total,
            events.delivered,
        ))?;
    }
    if let Some(l) = report::syscall_events::lost_line(&total, events.buffer_size) {
        // The total, on stderr, whatever the output is.
        eprintln!("{l}");
    }
    log::info!(
        "{} events delivered, {} lost",
        events.delivered,
        total.events()
    );
    Ok(end.exit_code(run.launched.is_some()))
}

/// A command that serves what its programs count (`tracer serve`): it binds,
/// loads and attaches (one object per kind of program), then starts a server
/// that reads the counts when asked; the loop only waits for the end.
pub trait Serving {
    type Live;
    fn selection(&self) -> &Selection;
    fn attach(&self) -> Result<(Self::Live, Vec<Object>)>;
    fn what(&self, live: &Self::Live) -> String;
    /// Where it serves (printed after the banner).
    fn url(&self, live: &Self::Live) -> String;
    /// Start serving; the server runs until the task is aborted.
    fn start(&self, live: Self::Live) -> Result<tokio::task::JoinHandle<()>>;
}

/// Run a serving command to its end; returns tracer's exit code.
pub async fn serve<S: Serving>(cmd: S, opts: Options) -> Result<i32> {
    let prepared = prepare(cmd.selection())?;
    let (live, mut objs) = cmd.attach()?;
    let mut run = Run::start(&mut objs, cmd.selection(), prepared.as_ref(), &opts)?;
    let (what, url) = (cmd.what(&live), cmd.url(&live));
    let server = cmd.start(live)?;
    run.announce(&what, cmd.selection(), false);
    eprintln!("{}", report::serving(&url));
    let end = run
        .wait(
            &opts,
            &mut (),
            &mut |_, _, _| Ok(()),
            None,
            None,
            &mut |_, _, _| false,
        )
        .await?;
    // Stop answering, then detach.
    server.abort();
    let _ = server.await;
    drop(objs);
    Ok(end.exit_code(run.launched.is_some()))
}

/// Resolve `-- CMD` (and `--user`) before loading anything, so a typo fails
/// first; and check privileges.
fn prepare(sel: &Selection) -> Result<Option<launch::Prepared>> {
    let prepared = launch::prepare_opt(&sel.launch)?;
    crate::sys::privileges::check()?;
    Ok(prepared)
}

/// Streaming::event, for one run's live state.
type Format<'a, L> = dyn FnMut(&mut L, Event, &mut String) -> bool + 'a;

/// Counting::housekeeping, for one run's live state.
type Housekeeping<'a, L> = dyn FnMut(&mut L) -> Result<Vec<u32>> + 'a;

/// A run in progress: the traced processes, the launched command, the report's sink.
struct Run {
    traced: TracedSet,
    /// The traced sets of the other objects of a run that loads several
    /// (`serve`): filled alike; the first one decides when targets are gone.
    more_traced: Vec<TracedSet>,
    targeted: bool,
    /// The launched command's pid.
    launched: Option<u32>,
    child_wait: Option<tokio::task::JoinHandle<i32>>,
    signals: Signals,
    sink: Sink,
    t0: Instant,
    /// How often the housekeeping (and the check for gone targets) runs.
    housekeeping_every: Duration,
}

impl Run {
    /// Call once everything is attached and before telling the user to press
    /// Ctrl-C (the signal handlers are installed here): fills the traced set
    /// with the -p processes and launches the prepared command, if any.
    fn start(
        objs: &mut [Object],
        sel: &Selection,
        prepared: Option<&launch::Prepared>,
        opts: &Options,
    ) -> Result<Self> {
        let signals = Signals::new()?;
        let mut sets = objs
            .iter_mut()
            .map(TracedSet::new)
            .collect::<Result<Vec<_>>>()?;
        for &pid in &sel.pids {
            sets.iter_mut().try_for_each(|t| t.insert(pid))?;
        }
        let (mut child_wait, mut launched) = (None, None);
        if let Some(p) = prepared {
            let pid =
                launch::spawn_traced(p, |pid| sets.iter_mut().try_for_each(|t| t.insert(pid)))?;
            child_wait = Some(launch::wait_child(pid));
            launched = Some(pid as u32);
        }
        anyhow::ensure!(!sets.is_empty(), "nothing to attach");
        let traced = sets.remove(0);
        Ok(Run {
            traced,
            more_traced: sets,
            targeted: sel.targeted(),
            launched,
            child_wait,
            signals,
            sink: Sink::new(opts.output.as_deref(), opts.report_on_stderr)?,
            t0: Instant::now(),
            housekeeping_every: Duration::from_millis(100),
        })
    }

    fn announce(&self, what: &str, sel: &Selection, quiet_with_command: bool) {
        if !(self.launched.is_some() && quiet_with_command) {
            eprintln!("{}", report::banner(what, &sel.describe()));
        }
    }

    /// Until Ctrl-C/SIGTERM, the duration, or (when targeted) every traced
    /// process gone: `tick(seconds since the last)` every interval,
    /// `housekeeping()` every 100 ms, and the events of `events` as they come.
    /// Nothing else wakes tracer: a system-wide count without -i counts
    /// every syscall, tracer's own included.
    async fn wait<L>(
        &mut self,
        opts: &Options,
        live: &mut L,
        tick: &mut dyn FnMut(&mut Run, f64, &mut L) -> Result<()>,
        mut housekeeping: Option<&mut Housekeeping<'_, L>>,
        stream: Option<(&mut Events, Option<&mut bpf::logs::Forwarder>)>,
        format: &mut Format<'_, L>,
    ) -> Result<End> {
        let streaming = stream.is_some();
        let (mut events, mut logs) = stream.map_or((None, None), |(e, l)| (Some(e), l));
        let deadline = opts
            .duration
            .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
        // The interval blocks fall due at fixed times (a late one is printed at
        // once, the next keeps its time). When tracer wakes late (a starved
        // machine) with the end due as well, the blocks due before the end are
        // printed first: every run of -d D -i I prints floor(D / I) blocks.
        let period = opts.interval.map(Duration::from_secs_f64);
        let mut next_tick = period.map(|p| tokio::time::Instant::now() + p);
        let mut prune = tokio::time::interval(self.housekeeping_every);
        let mut lost_tick = tokio::time::interval(Duration::from_secs(1));
        // The kernel wakes tracer only when the ring is an eighth full; this
        // timer shows a trickle of events within 10 ms anyway.
        let mut drain_tick = tokio::time::interval(Duration::from_millis(10));
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_tick = Instant::now();
        let mut child_status: Option<i32> = None;
        loop {
            let prune_targets =
                self.targeted && (self.child_wait.is_none() || child_status.is_some());
            tokio::select! {
                s = self.signals.recv() => return Ok(End::Signal(s)),
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                    let end = deadline.unwrap();
                    while let (Some(due), Some(p)) = (next_tick, period) {
                        if due > end {
                            break;
                        }
                        tick(self, p.as_secs_f64(), live)?;
                        next_tick = Some(due + p);
                    }
                    return Ok(End::Duration);
                }
                _ = async { tokio::time::sleep_until(next_tick.unwrap()).await }, if next_tick.is_some() => {
                    tick(self, last_tick.elapsed().as_secs_f64(), live)?;
                    last_tick = Instant::now();
                    next_tick = next_tick.zip(period).map(|(due, p)| due + p);
                }
                st = async { self.child_wait.as_mut().unwrap().await }, if self.child_wait.is_some() && child_status.is_none() => {
                    child_status = Some(st.unwrap_or(0));
                }
                _ = prune.tick(), if prune_targets || housekeeping.is_some() => {
                    if let Some(h) = housekeeping.as_mut() {
                        let gone = h(live)?;
                        if self.targeted {
                            self.traced.forget(&gone);
                        }
                    }
                    if prune_targets {
                        let left = self.traced.prune(proc::group_gone);
                        for t in &mut self.more_traced {
                            t.prune(proc::group_gone);
                        }
                        if left == 0 {
                            return Ok(End::TargetsGone(child_status));
                        }
                    }
                }
                r = async { events.as_mut().unwrap().read(live, format).await }, if streaming => {
                    r?;
                    events.as_mut().unwrap().flush(&mut self.sink)?;
                }
                _ = drain_tick.tick(), if streaming => {
                    let ev = events.as_mut().unwrap();
                    ev.drain(live, format);
                    ev.flush(&mut self.sink)?;
                }
                _ = lost_tick.tick(), if streaming => {
                    let ev = events.as_mut().unwrap();
                    let now = ev.lost.read()?;
                    ev.lost_lines(&now, &mut self.sink)?;
                }
                _ = async { logs.as_mut().unwrap().run().await }, if logs.is_some() => {}
            }
        }
    }
}

/// The event ring buffer of a streaming run and what came through it.
struct Events {
    reader: Reader,
    lost: LostCounters,
    /// Lines formatted, written in one go per batch.
    buf: String,
    delivered: u64,
    /// Losses already reported.
    seen: Lost,
    json: bool,
    buffer_size: u32,
}

impl Events {
    /// The records the kernel has ready, formatted into `buf`.
    async fn read<L>(&mut self, live: &mut L, format: &mut Format<'_, L>) -> Result<()> {
        let (buf, delivered) = (&mut self.buf, &mut self.delivered);
        let each = |e| *delivered += u64::from(format(live, e, buf));
        self.reader.read(each).await
    }

    /// The records there now, without waiting.
    fn drain<L>(&mut self, live: &mut L, format: &mut Format<'_, L>) {
        let (buf, delivered) = (&mut self.buf, &mut self.delivered);
        self.reader
            .drain(|e| *delivered += u64::from(format(live, e, buf)));
    }

    fn flush(&mut self, sink: &mut Sink) -> Result<()> {
        if !self.buf.is_empty() {
            sink.write(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// A line for the losses since the last one, after the events before them.
    fn lost_lines(&mut self, now: &Lost, sink: &mut Sink) -> Result<()> {
        let delta = now.since(&self.seen);
        self.seen = *now;
        if let Some(text) = report::syscall_events::lost_block(&delta, self.json, self.buffer_size)
        {
            self.flush(sink)?;
            sink.write(&text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(End::Signal(2).exit_code(true), 130);
        assert_eq!(End::Signal(2).exit_code(false), 0);
        assert_eq!(End::Duration.exit_code(true), 0);
        assert_eq!(End::TargetsGone(Some(3 << 8)).exit_code(true), 3);
        assert_eq!(
            End::TargetsGone(Some(3 << 8)).command_exit_code(true),
            Some(3)
        );
        assert_eq!(End::TargetsGone(None).command_exit_code(false), None);
        assert_eq!(End::Signal(15).command_exit_code(true), None);
    }
}
