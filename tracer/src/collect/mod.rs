//! Reading the kernel's maps into plain data. Collectors never format text.
pub mod events;
pub mod kfuncs;
pub mod probes;
pub mod syscalls;

/// Counters that only grow: what was counted between two reads.
pub trait Delta {
    fn since(&self, earlier: &Self) -> Self;
}

/// `now - before` per key (a key missing before counts from zero).
pub fn sub_map<K: Ord + Copy, V: Default + Clone>(
    now: &std::collections::BTreeMap<K, V>,
    before: &std::collections::BTreeMap<K, V>,
    f: impl Fn(&V, &V) -> V,
) -> std::collections::BTreeMap<K, V> {
    now.iter()
        .map(|(k, v)| (*k, f(v, before.get(k).unwrap_or(&V::default()))))
        .collect()
}

/// `now - before` per slot.
pub fn sub_slots(now: &[u64], before: &[u64]) -> Vec<u64> {
    now.iter()
        .enumerate()
        .map(|(i, x)| x.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .collect()
}
