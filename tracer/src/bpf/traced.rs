//! The kernel-side set of traced processes (`TRACED_TGIDS`): filled with the
//! processes given (-p) or launched (-- CMD); the fork hook adds their children.
use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData};

use super::Object;

pub struct TracedSet {
    map: HashMap<MapData, u32, u8>,
}

impl TracedSet {
    pub fn new(obj: &mut Object) -> Result<Self> {
        Ok(Self {
            map: obj.take_map("TRACED_TGIDS")?,
        })
    }

    pub fn insert(&mut self, tgid: u32) -> Result<()> {
        self.map
            .insert(tgid, 1, 0)
            .with_context(|| format!("adding pid {tgid} to the traced set"))
    }

    /// Remove processes known to be gone.
    pub fn forget(&mut self, tgids: &[u32]) {
        for t in tgids {
            let _ = self.map.remove(t);
        }
    }

    /// Remove the processes that are gone; returns how many remain.
    pub fn prune(&mut self, gone: impl Fn(u32) -> bool) -> usize {
        let keys: Vec<u32> = self.map.keys().filter_map(|k| k.ok()).collect();
        let mut left = 0;
        for k in keys {
            if gone(k) {
                let _ = self.map.remove(&k);
            } else {
                left += 1;
            }
        }
        left
    }
}
