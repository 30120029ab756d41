//! The maps of `tracer profile`'s user-stack walker (tracer-ebpf/src/unwind.rs):
//! objects' rows written with batch updates, processes' mappings, the walked
//! stacks read back; and the walker program put in its tail-call slot.
use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, HashMap, IterableMap as _, MapData, ProgramArray},
    programs::PerfEvent,
};
use std::rc::Rc;

use tracer_common::unwind::{ProcMaps, Row, UserStack};

use crate::sys::unwind::Table;

use super::{maps::update_all, program, Object};

/// Load the walker (tracer-ebpf/src/unwind.rs: one program, calling itself
/// through its array) and put it in its slot: samples walk user stacks from
/// then on.
pub fn attach_walker(obj: &mut Object) -> Result<()> {
    let prog: &mut PerfEvent = program(obj.ebpf(), "profile_unwind_1")?;
    prog.load()
        .context("the kernel refused to load the user-stack walker")?;
    let fd = prog.fd()?.try_clone()?;
    let mut slot: ProgramArray<MapData> = obj.take_map("WALK_STAGE_1")?;
    slot.set(0, &fd, 0)
        .context("cannot put the user-stack walker in its slot")?;
    obj.keep(slot);
    Ok(())
}

/// The walker's tables and stacks.
pub struct WalkerMaps {
    rows: Array<MapData, Row>,
    procs: HashMap<MapData, u32, ProcMaps>,
    stacks: HashMap<MapData, u32, UserStack>,
}

impl WalkerMaps {
    pub fn new(obj: &mut Object) -> Result<Self> {
        Ok(Self {
            rows: obj.take_map("UNWIND_ROWS")?,
            procs: obj.take_map("UNWIND_PROCS")?,
            stacks: obj.take_map("PROFILE_USTACKS")?,
        })
    }

    /// Room for this many rows in all.
    pub fn row_capacity(&self) -> u32 {
        self.rows.len()
    }

    /// Write an object's rows at `first` (one batch update).
    pub fn write_rows(&mut self, first: u32, rows: &[Row]) -> Result<()> {
        let keys: Vec<u32> = (first..first + rows.len() as u32).collect();
        update_all(self.rows.map(), &keys, rows).context("writing unwind rows")
    }

    /// A process's mappings, replacing what it had.
    pub fn set_process(&mut self, tgid: u32, maps: &ProcMaps) -> Result<()> {
        self.procs
            .insert(tgid, maps, 0)
            .with_context(|| format!("writing the mappings of process {tgid}"))
    }

    /// Forget a process's mappings (it is gone).
    pub fn remove_process(&mut self, tgid: u32) {
        let _ = self.procs.remove(&tgid);
    }

    /// The frames of walked stack `id`, innermost first.
    pub fn stack(&self, id: i32) -> Vec<u64> {
        if id < 0 {
            return Vec::new();
        }
        match self.stacks.get(&(id as u32), 0) {
            Ok(s) => s.ips[..(s.len as usize).min(s.ips.len())].to_vec(),
            Err(_) => Vec::new(),
        }
    }
}

/// Where an object's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    Rows {
        first: u32,
        len: u32,
    },
    /// No unwind information (or not an ELF file tracer can read).
    NoInfo,
    /// Its table did not fit in `--unwind-memory`.
    Full,
}

/// An object seen before: its rows, and its table without them (for `Table::bias`).
type Known = (Placed, Option<Rc<Table>>);

pub use crate::collect::profile::TableStats;

/// The unwind tables of a run: each object's rows once (by file, and by
/// build id across files), each sampled process's mappings.
pub struct Tables {
    maps: WalkerMaps,
    /// The first free row.
    next: u32,
    by_file: std::collections::HashMap<(u64, u64), Known>,
    by_build_id: std::collections::HashMap<Vec<u8>, Placed>,
    /// Processes whose mappings are in the kernel.
    placed: std::collections::HashSet<u32>,
    pub stats: TableStats,
}

impl Tables {
    pub fn new(maps: WalkerMaps) -> Self {
        let capacity_rows = u64::from(maps.row_capacity());
        Self {
            maps,
            next: 0,
            by_file: Default::default(),
            by_build_id: Default::default(),
            placed: Default::default(),
            stats: TableStats {
                capacity_rows,
                ..Default::default()
            },
        }
    }

    /// The walked stack `id`, innermost first.
    pub fn stack(&self, id: i32) -> Vec<u64> {
        self.maps.stack(id)
    }

    /// Give process `tgid` (generation `gen`) its mappings, reading and
    /// writing the tables of objects not seen before.
    pub fn place(&mut self, tgid: u32, gen: u32, mapped: &[crate::sys::symbols::MappedRange]) {
        use tracer_common::unwind::{table, Mapping, MAX_MAPPINGS};
        let mut ranges: Vec<_> = mapped.iter().collect();
        if ranges.len() > MAX_MAPPINGS {
            // The largest: where most code (and most samples) are.
            ranges.sort_by_key(|m| std::cmp::Reverse(m.end - m.start));
            ranges.truncate(MAX_MAPPINGS);
            ranges.sort_by_key(|m| m.start);
        }
        let mut pm = ProcMaps {
            gen,
            len: ranges.len() as u32,
            ..Default::default()
        };
        for (slot, m) in pm.maps.iter_mut().zip(&ranges) {
            let (placed, bias) = match &m.file {
                Some((path, id)) => match self.object(path, *id) {
                    (Placed::Rows { first, len }, Some(t)) => match t.bias(m.offset, m.start) {
                        Ok(b) => (Placed::Rows { first, len }, b),
                        Err(_) => (Placed::NoInfo, 0),
                    },
                    (p, _) => (p, 0),
                },
                None => (Placed::NoInfo, 0),
            };
            let (first, rows) = match placed {
                Placed::Rows { first, len } => (first, len),
                Placed::NoInfo => (table::NONE, 0),
                Placed::Full => (table::FULL, 0),
            };
            *slot = Mapping {
                start: m.start,
                end: m.end,
                bias,
                first,
                rows,
            };
        }
        match self.maps.set_process(tgid, &pm) {
            Ok(()) => {
                self.placed.insert(tgid);
            }
            Err(e) => {
                log::debug!("{e:#}");
                self.stats.procs_full += 1;
            }
        }
    }

    /// The rows of the object at `path` ((dev, inode) `id`), placed on
    /// first sight, and its table (without its rows: for `Table::bias`).
    fn object(&mut self, path: &std::path::Path, id: (u64, u64)) -> (Placed, Option<Rc<Table>>) {
        if let Some((p, t)) = self.by_file.get(&id) {
            return (*p, t.clone());
        }
        let t0 = std::time::Instant::now();
        let (placed, table) = match crate::sys::unwind::build(path) {
            Ok(mut t) if !t.rows.is_empty() => {
                log::debug!(
                    "{}: {} unwind rules from {} ({} it cannot follow)",
                    path.display(),
                    t.rows.len(),
                    t.source,
                    t.unsupported
                );
                let p = match t.build_id.as_ref().and_then(|b| self.by_build_id.get(b)) {
                    Some(p) => *p,
                    None => {
                        let p = self.write(&t.rows, path);
                        if let Some(b) = &t.build_id {
                            self.by_build_id.insert(b.clone(), p);
                        }
                        p
                    }
                };
                t.rows = Vec::new();
                (p, Some(Rc::new(t)))
            }
            Ok(_) => (Placed::NoInfo, None),
            Err(e) => {
                log::debug!("{e:#}");
                (Placed::NoInfo, None)
            }
        };
        match placed {
            Placed::NoInfo => self.stats.no_info += 1,
            Placed::Full => self.stats.full += 1,
            Placed::Rows { .. } => {}
        }
        self.stats.build_ms += t0.elapsed().as_secs_f64() * 1e3;
        self.by_file.insert(id, (placed, table.clone()));
        (placed, table)
    }

    fn write(&mut self, rows: &[Row], path: &std::path::Path) -> Placed {
        let len = rows.len() as u32;
        if u64::from(self.next) + u64::from(len) > u64::from(self.maps.row_capacity()) {
            log::info!(
                "the unwind table of {} ({len} rules) does not fit in --unwind-memory",
                path.display()
            );
            return Placed::Full;
        }
        let first = self.next;
        if let Err(e) = self.maps.write_rows(first, rows) {
            log::debug!("{}: {e:#}", path.display());
            return Placed::NoInfo;
        }
        self.next += len;
        self.stats.objects += 1;
        self.stats.rows += u64::from(len);
        Placed::Rows { first, len }
    }

    /// Forget the mappings of processes that are gone.
    pub fn prune(&mut self) {
        let gone: Vec<u32> = self
            .placed
            .iter()
            .copied()
            .filter(|&t| crate::sys::proc::group_gone(t))
            .collect();
        for t in gone {
            self.maps.remove_process(t);
            self.placed.remove(&t);
        }
    }
}
