//! The life of a run shared by the counting commands (syscalls, kprobe,
//! uprobe, tracepoint): the traced set filled, the command launched, then a
//! loop until Ctrl-C, the duration, or every traced process gone, with a
//! callback at each interval.
use std::time::{Duration, Instant};

use anyhow::Result;
use aya::Ebpf;

use crate::{
    collect::syscalls::TracedSet,
    signals::Signals,
    sys::{launch, proc},
};

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

/// A run in progress: the processes traced and the launched command, if any.
pub struct Session {
    traced: TracedSet,
    targeted: bool,
    pub launched: Option<u32>,
    child_wait: Option<tokio::task::JoinHandle<i32>>,
    signals: Signals,
}

impl Session {
    /// Call once everything is attached and before telling the user to press
    /// Ctrl-C (the signal handlers are installed here): fills the traced set
    /// with `pids` and launches the prepared command, if any (prepare it before
    /// loading anything, with `launch::prepare_opt`, so a typo fails first). `targeted`: the run ends
    /// when every traced process is gone.
    pub fn start(
        ebpf: &mut Ebpf,
        pids: &[u32],
        targeted: bool,
        prepared: Option<&launch::Prepared>,
    ) -> Result<Self> {
        let signals = Signals::new()?;
        let mut traced = TracedSet::new(ebpf)?;
        for &pid in pids {
            traced.insert(pid)?;
        }
        let mut s = Session {
            traced,
            targeted,
            launched: None,
            child_wait: None,
            signals,
        };
        if let Some(p) = prepared {
            let traced = &mut s.traced;
            let pid = launch::spawn_traced(p, |pid| traced.insert(pid))?;
            s.launched = Some(pid as u32);
            s.child_wait = Some(launch::wait_child(pid));
        }
        Ok(s)
    }

    /// Run until Ctrl-C/SIGTERM, the duration, or (when targeted) every traced
    /// process gone. `tick(seconds since the last tick)` runs every `interval`.
    pub async fn run(
        &mut self,
        duration: Option<f64>,
        interval: Option<f64>,
        tick: impl FnMut(f64) -> Result<()>,
    ) -> Result<End> {
        self.run_with(duration, interval, tick, None::<fn() -> Result<Vec<u32>>>)
            .await
    }

    /// `run`, and every 100 ms `housekeeping()`, which returns the tgids of
    /// processes it found gone (the traced set forgets them).
    pub async fn run_with(
        &mut self,
        duration: Option<f64>,
        interval: Option<f64>,
        mut tick: impl FnMut(f64) -> Result<()>,
        mut housekeeping: Option<impl FnMut() -> Result<Vec<u32>>>,
    ) -> Result<End> {
        let deadline = duration.map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
        let mut ticker = interval.map(|i| {
            let period = Duration::from_secs_f64(i);
            tokio::time::interval_at(tokio::time::Instant::now() + period, period)
        });
        let mut prune = tokio::time::interval(Duration::from_millis(100));
        let mut last_tick = Instant::now();
        let mut child_status: Option<i32> = None;
        let Session {
            traced,
            targeted,
            child_wait,
            signals,
            ..
        } = self;
        let targeted = *targeted;
        let end = loop {
            let prune_targets = targeted && (child_wait.is_none() || child_status.is_some());
            tokio::select! {
                s = signals.recv() => break End::Signal(s),
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => break End::Duration,
                _ = async { ticker.as_mut().unwrap().tick().await }, if ticker.is_some() => {
                    tick(last_tick.elapsed().as_secs_f64())?;
                    last_tick = Instant::now();
                }
                st = async { child_wait.as_mut().unwrap().await }, if child_wait.is_some() && child_status.is_none() => {
                    child_status = Some(st.unwrap_or(0));
                }
                _ = prune.tick(), if prune_targets || housekeeping.is_some() => {
                    if let Some(h) = housekeeping.as_mut() {
                        let gone = h()?;
                        if targeted {
                            traced.forget(&gone);
                        }
                    }
                    if prune_targets && traced.prune(|t| !proc::group_gone(t)) == 0 {
                        break End::TargetsGone(child_status);
                    }
                }
            }
        };
        Ok(end)
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
