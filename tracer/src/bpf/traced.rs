//! The kernel-side set of traced processes (`TRACED_TGIDS`): filled with the
//! processes given (-p) or launched (-- CMD); the fork hook adds their children.
use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData};

use super::Object;

pub struct TracedSet {
    map: HashMap<MapData, u32, u8>,
    /// When each traced process started (`proc::start_time`), from when it
    /// was given or first seen in the set: a pid that names another process
    /// since (reaped, then reused) is one whose traced process is gone.
    started: std::collections::HashMap<u32, Option<u64>>,
}

impl TracedSet {
    pub fn new(obj: &mut Object) -> Result<Self> {
        Ok(Self {
            map: obj.take_map("TRACED_TGIDS")?,
            started: Default::default(),
        })
    }

    pub fn insert(&mut self, tgid: u32) -> Result<()> {
        self.started
            .insert(tgid, crate::sys::proc::start_time(tgid));
        self.map
            .insert(tgid, 1, 0)
            .with_context(|| format!("adding pid {tgid} to the traced set"))
    }

    /// Remove processes known to be gone.
    pub fn forget(&mut self, tgids: &[u32]) {
        for t in tgids {
            let _ = self.map.remove(t);
            self.started.remove(t);
        }
    }

    /// Remove the processes that are gone (by `gone`, or whose pid names a
    /// process that started at another time); returns how many remain.
    pub fn prune(&mut self, gone: impl Fn(u32) -> bool) -> usize {
        let keys: Vec<u32> = self.map.keys().filter_map(|k| k.ok()).collect();
        let mut left = 0;
        for k in keys {
            let now = crate::sys::proc::start_time(k);
            let first = *self.started.entry(k).or_insert(now);
            let reused = first.is_some() && now.is_some() && first != now;
            if reused || gone(k) {
                let _ = self.map.remove(&k);
                self.started.remove(&k);
            } else {
                left += 1;
            }
        }
        left
    }
}
