//! Unwind tables for `tracer profile`'s user stacks: the CFI rules of an ELF
//! file's `.eh_frame` (else `.debug_frame`) reduced to the rows the kernel's
//! walker follows (`tracer_common::unwind::Row`), where a mapping of it lies
//! in a process (`bias`), and the walk itself in user space (`walk`), step
//! for step what the kernel does: the tests walk stopped processes with it to
//! prove the tables right.
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EndianSlice, LittleEndian, Reader as _,
    Register, RegisterRule, UnwindContext, UnwindSection, UnwindTableRow,
};
use object::{Object as _, ObjectSection as _};
#[cfg(test)]
use tracer_common::unwind::{arch, end, mode, table, Mapping, MAX_FRAMES};
use tracer_common::unwind::{cfa, reg, Row};

use super::elf;

/// The architecture's DWARF register numbers (the return address column
/// comes from each CIE: 16 on x86_64, 30 on aarch64).
#[cfg(target_arch = "x86_64")]
mod dwarf {
    pub const ARCH: object::Architecture = object::Architecture::X86_64;
    /// rsp, rbp.
    pub const SP: u16 = 7;
    pub const FP: u16 = 6;
    /// The PLT's CFA expression is x86_64's.
    pub const PLT: bool = true;
}
#[cfg(target_arch = "aarch64")]
mod dwarf {
    pub const ARCH: object::Architecture = object::Architecture::Aarch64;
    /// sp, x29.
    pub const SP: u16 = 31;
    pub const FP: u16 = 29;
    pub const PLT: bool = false;
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod dwarf {
    /// No tables on other architectures: `build` refuses every file.
    pub const ARCH: object::Architecture = object::Architecture::Unknown;
    pub const SP: u16 = u16::MAX;
    pub const FP: u16 = u16::MAX;
    pub const PLT: bool = false;
}

/// The unwind table of one ELF file.
#[derive(Debug, Clone)]
pub struct Table {
    /// Sorted by `pc`, consecutive rows differ in their rule.
    pub rows: Vec<Row>,
    pub build_id: Option<Vec<u8>>,
    /// `.eh_frame`, `.debug_frame`, or `.eh_frame+.debug_frame` (code
    /// built without unwind tables, with -g).
    pub source: &'static str,
    /// Rows of the file's FDEs (before merging) whose rule the walker cannot
    /// follow, made `cfa::NONE`: a CFA from another register or from an
    /// expression other than the PLT's and DRAP's, a return address not
    /// saved at CFA + offset, an fp neither there nor at fp + offset,
    /// offsets beyond i16 (sp's beyond i16 * 8).
    pub unsupported: usize,
    /// The file's code segments, for `Table::bias`.
    segments: Vec<(u64, u64, u64)>,
}

impl Table {
    /// What to subtract from an address of the executable mapping that
    /// starts at `map_start` with file offset `file_offset` (a line of
    /// /proc/PID/maps) to get this file's virtual address.
    pub fn bias(&self, file_offset: u64, map_start: u64) -> Result<u64> {
        bias_in(&self.segments, file_offset, map_start)
    }
}

/// `Table::bias` for the ELF file at `path`, without building its table
/// (the tests' reference walk; tracer's tables keep the segments).
#[cfg(test)]
pub fn bias(path: &Path, file_offset: u64, map_start: u64) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF file", path.display()))?;
    bias_in(&elf::code_segments(&file), file_offset, map_start)
}

fn bias_in(segments: &[(u64, u64, u64)], file_offset: u64, map_start: u64) -> Result<u64> {
    let vaddr = elf::address_in(segments, file_offset)
        .with_context(|| format!("file offset {file_offset:#x} is in no code segment"))?;
    Ok(map_start.wrapping_sub(vaddr))
}

/// The unwind table of the ELF file at `path`.
pub fn build(path: &Path) -> Result<Table> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    build_from(&data).with_context(|| format!("no unwind table for {}", path.display()))
}

/// The unwind table of an ELF image in memory (a file's bytes, the vDSO).
pub fn build_from(data: &[u8]) -> Result<Table> {
    let file = object::File::parse(data).context("not an ELF file")?;
    if file.architecture() != dwarf::ARCH {
        bail!("{:?} code, not this machine's", file.architecture());
    }
    let segments = elf::code_segments(&file);
    if segments
        .iter()
        .any(|&(va, size, _)| va.saturating_add(size) > 1 << 32)
    {
        bail!("code at virtual addresses above 4 GiB (rows hold 32-bit addresses)");
    }
    let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
    let address = |name| file.section_by_name(name).map(|s| s.address());
    let mut fdes = Fdes::default();
    let mut sources = Vec::new();
    if let Some(s) = file.section_by_name(".eh_frame") {
        let mut bases = BaseAddresses::default().set_eh_frame(s.address());
        if let Some(a) = address(".eh_frame_hdr") {
            bases = bases.set_eh_frame_hdr(a);
        }
        if let Some(a) = address(".text") {
            bases = bases.set_text(a);
        }
        if let Some(a) = address(".got") {
            bases = bases.set_got(a);
        }
        let mut eh = EhFrame::new(s.data().context(".eh_frame")?, LittleEndian);
        eh.set_address_size(8);
        fdes.read(&eh, &bases).context(".eh_frame")?;
        sources.push(".eh_frame");
    }
    // Code built without unwind tables but with -g has its rules there,
    // while crt1's _start and the PLT have theirs in .eh_frame: both count,
    // .eh_frame's first.
    if let Some(s) = file.section_by_name(".debug_frame") {
        let data = s.uncompressed_data().context(".debug_frame")?;
        let mut df = DebugFrame::new(&data, LittleEndian);
        df.set_address_size(8);
        let before = fdes.ranges.len();
        fdes.read(&df, &BaseAddresses::default())
            .context(".debug_frame")?;
        if fdes.ranges.len() > before {
            sources.push(".debug_frame");
        }
    }
    let source = match sources[..] {
        [] => bail!("no .eh_frame nor .debug_frame"),
        [".eh_frame", ".debug_frame"] => ".eh_frame+.debug_frame",
        [s, ..] => s,
    };
    let unsupported = fdes.unsupported;
    let rows = fdes.rows();
    if rows.is_empty() {
        bail!("no call frame information in {source}");
    }
    Ok(Table {
        rows,
        build_id,
        source,
        unsupported,
        segments,
    })
}

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// The rules of the FDEs read so far.
#[derive(Default)]
struct Fdes {
    /// (pc, 0 for the gap after an FDE / 1 for a rule, rule): a rule wins
    /// over a gap at the same pc, where the next FDE starts.
    all: Vec<(u32, u8, Row)>,
    /// The FDEs' address ranges, sorted once a section is read.
    ranges: Vec<(u32, u32)>,
    unsupported: usize,
}

impl Fdes {
    /// Add the FDEs of `section` for code no FDE read before covers.
    fn read<'a, S: UnwindSection<Slice<'a>>>(
        &mut self,
        section: &S,
        bases: &BaseAddresses,
    ) -> Result<()> {
        let known = std::mem::take(&mut self.ranges);
        let covered = |start: u32, stop: u32| {
            let i = known.partition_point(|r| r.0 < stop);
            i.checked_sub(1).is_some_and(|i| known[i].1 > start)
        };
        let mut ctx = Box::new(UnwindContext::new());
        let mut entries = section.entries(bases);
        loop {
            let entry = match entries.next() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                // The entries that follow cannot be found: keep those read.
                Err(e) if !self.ranges.is_empty() => {
                    log::debug!("call frame information cut short: {e}");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let CieOrFde::Fde(partial) = entry else {
                continue;
            };
            let Ok(fde) = partial.parse(S::cie_from_offset) else {
                continue;
            };
            let (start, stop) = (fde.initial_address(), fde.end_address());
            // FDEs of code the linker dropped keep address 0.
            if start == 0 || stop <= start {
                continue;
            }
            let stop = u32::try_from(stop).context("code at virtual addresses above 4 GiB")?;
            // Below `stop`, which fits.
            let start = start as u32;
            if covered(start, stop) {
                continue;
            }
            let ra = fde.cie().return_address_register();
            let Ok(mut t) = fde.rows(section, bases, &mut ctx) else {
                continue;
            };
            while let Ok(Some(r)) = t.next_row() {
                let row = row_of(r, ra, section);
                self.unsupported += usize::from(row.cfa == cfa::NONE);
                self.all
                    .push((r.start_address() as u32, 1, Row { pc: 0, ..row }));
            }
            self.all.push((stop, 0, Row::default()));
            self.ranges.push((start, stop));
        }
        self.ranges.extend(known);
        self.ranges.sort_unstable();
        Ok(())
    }

    /// Sorted, the last entry at a pc deciding, identical neighbours merged.
    fn rows(mut self) -> Vec<Row> {
        let all = &mut self.all;
        all.sort_by_key(|&(pc, rule, _)| (pc, rule));
        let mut rows: Vec<Row> = Vec::with_capacity(all.len() / 2);
        for (i, &(pc, _, row)) in all.iter().enumerate() {
            if all.get(i + 1).is_some_and(|n| n.0 == pc) {
                continue;
            }
            if rows.last().is_some_and(|l| Row { pc: 0, ..*l } == row) {
                continue;
            }
            rows.push(Row { pc, ..row });
        }
        rows
    }
}

/// One gimli row as the walker's rule (its `pc` left 0); `cfa::NONE` when it
/// cannot be followed.
fn row_of<'a, S: UnwindSection<Slice<'a>>>(
    r: &UnwindTableRow<usize>,
    ra: Register,
    section: &S,
) -> Row {
    let none = Row::default();
    let mut row = Row::default();
    match r.register(ra) {
        Some(RegisterRule::Undefined) => {
            return Row {
                cfa: cfa::END,
                ..none
            }
        }
        Some(RegisterRule::Offset(o)) => {
            let Ok(o) = i16::try_from(o) else { return none };
            (row.ra, row.ra_off) = (reg::AT_CFA, o);
        }
        _ => return none,
    }
    let expr = |e: &gimli::UnwindExpression<usize>| e.get(section).ok().map(|e| e.0.slice());
    let (kind, offset) = match r.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register.0 == dwarf::SP => {
            (cfa::SP, *offset)
        }
        CfaRule::RegisterAndOffset { register, offset } if register.0 == dwarf::FP => {
            (cfa::FP, *offset)
        }
        CfaRule::Expression(e) => match expr(e).and_then(cfa_expression) {
            Some(k) => k,
            None => return none,
        },
        _ => return none,
    };
    (row.cfa, row.cfa_off) = match i16::try_from(offset) {
        Ok(o) => (kind, o),
        Err(_) if kind == cfa::SP && offset % 8 == 0 => match i16::try_from(offset / 8) {
            Ok(o) => (cfa::SP_X8, o),
            Err(_) => return none,
        },
        Err(_) => return none,
    };
    let (fp, fp_off) = match r.register(Register(dwarf::FP)) {
        None | Some(RegisterRule::SameValue) => (reg::SAME, 0),
        Some(RegisterRule::Undefined) => (reg::UNDEFINED, 0),
        Some(RegisterRule::Offset(o)) => (reg::AT_CFA, o),
        // DRAP: `DW_OP_breg6 (rbp) N`, the address fp + N.
        Some(RegisterRule::Expression(e)) => match expr(&e).and_then(|e| breg(e, dwarf::FP)) {
            Some((o, [])) => (reg::AT_FP, o),
            _ => return none,
        },
        _ => return none,
    };
    let Ok(fp_off) = i16::try_from(fp_off) else {
        return none;
    };
    (row.fp, row.fp_off) = (fp, fp_off);
    row
}

/// `DW_OP_bregN offset` for register N at the start of `expr`: the offset
/// and what follows.
fn breg(expr: &[u8], n: u16) -> Option<(i64, &[u8])> {
    const DW_OP_BREG0: u16 = 0x70;
    let op = u8::try_from(DW_OP_BREG0 + n).ok().filter(|_| n < 32)?;
    let mut r = EndianSlice::new(expr.strip_prefix(&[op])?, LittleEndian);
    let offset = r.read_sleb128().ok()?;
    Some((offset, r.slice()))
}

/// The CFA expressions the walker follows: the x86_64 PLT's, as the linkers
/// write it (`DW_OP_breg7 (rsp) N; DW_OP_breg16 (rip) 0; DW_OP_lit15;
/// DW_OP_and; DW_OP_lit11; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus`: sp
/// + N, plus 8 once the entry's push is done), and DRAP's `DW_OP_breg6
/// (rbp) N; DW_OP_deref` (gcc, in functions that realign their stack).
fn cfa_expression(expr: &[u8]) -> Option<(u8, i64)> {
    const PLT_TAIL: [u8; 9] = [0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22];
    const DW_OP_DEREF: u8 = 0x06;
    match breg(expr, dwarf::SP) {
        Some((n, tail)) if dwarf::PLT && tail == PLT_TAIL => return Some((cfa::PLT, n)),
        _ => {}
    }
    match breg(expr, dwarf::FP) {
        Some((n, [DW_OP_DEREF])) => Some((cfa::FP_DEREF, n)),
        _ => None,
    }
}

/// The row that applies at `pc` (a virtual address of the object): the last
/// with `row.pc <= pc`.
#[cfg(test)]
pub fn lookup(rows: &[Row], pc: u64) -> Option<&Row> {
    let i = rows.partition_point(|r| u64::from(r.pc) <= pc);
    i.checked_sub(1).map(|i| &rows[i])
}

/// The registers a user stack walk starts from.
#[cfg(test)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub pc: u64,
    pub sp: u64,
    pub fp: u64,
}

/// The mapping of `maps` (sorted by start, not overlapping) holding `addr`.
#[cfg(test)]
fn mapping_of(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    let i = maps.partition_point(|m| m.start <= addr);
    i.checked_sub(1).map(|i| &maps[i]).filter(|m| addr < m.end)
}

/// Walk a user stack the way the kernel does, from the sampled registers,
/// through a process's executable mappings (`maps`, sorted by start, as
/// `ProcMaps` holds them) whose `first`/`rows` index `rows` (as
/// `UNWIND_ROWS`), reading the stack with `read` (8 bytes, None when
/// unreadable). `mode` is `mode::*`: `FP` follows frame pointers
/// everywhere, `DWARF` only tables, `AUTO` tables where an object has one and
/// frame pointers elsewhere.
///
/// Returns the frames, innermost first (the pc, then return addresses), and
/// how the walk ended (`end::*`).
#[cfg(test)]
pub fn walk(
    regs: Regs,
    mode: u64,
    maps: &[Mapping],
    rows: &[Row],
    mut read: impl FnMut(u64) -> Option<u64>,
) -> (Vec<u64>, u32) {
    let a = arch::values();
    let (mut pc, mut sp, mut fp) = (regs.pc, regs.sp, regs.fp);
    let mut frames = vec![pc];
    loop {
        // A return address is looked up at its call.
        let look = if frames.len() == 1 {
            pc
        } else {
            pc.wrapping_sub(1)
        };
        let Some(m) = mapping_of(maps, look) else {
            return (frames, end::NO_INFO);
        };
        if m.first == table::FULL {
            return (frames, end::TABLE_FULL);
        }
        let vaddr = look.wrapping_sub(m.bias);
        // The frame's rule: none in an object without a table, or at a pc
        // its table does not cover (code without an FDE), where `auto`
        // follows frame pointers as the kernel's walker does.
        let rule = (m.first != table::NONE && mode != mode::FP)
            .then(|| {
                let first = m.first as usize;
                rows.get(first..first + m.rows as usize)
                    .filter(|_| vaddr <= u64::from(u32::MAX))
                    .and_then(|object| lookup(object, vaddr))
                    .filter(|r| r.cfa != cfa::NONE)
            })
            .flatten();
        // (CFA, where the return address is, where the caller's fp is)
        let (cfa_at, ra_at, fp_at) = if let Some(row) = rule {
            let off = row.cfa_off as u64;
            let c = match row.cfa {
                cfa::SP => sp.wrapping_add(off),
                cfa::FP => fp.wrapping_add(off),
                cfa::PLT => sp.wrapping_add(off.wrapping_add(if vaddr & 15 >= 11 { 8 } else { 0 })),
                cfa::FP_DEREF => match read(fp.wrapping_add(off)) {
                    Some(c) => c,
                    None => return (frames, end::UNREADABLE),
                },
                cfa::SP_X8 => sp.wrapping_add(off << 3),
                cfa::END => return (frames, end::COMPLETE),
                _ => return (frames, end::NO_INFO),
            };
            if row.ra != reg::AT_CFA {
                return (frames, end::NO_INFO);
            }
            let fp_at = match row.fp {
                reg::AT_CFA => Some(c.wrapping_add(row.fp_off as u64)),
                reg::AT_FP => Some(fp.wrapping_add(row.fp_off as u64)),
                _ => None,
            };
            (c, c.wrapping_add(row.ra_off as u64), fp_at)
        } else {
            if mode == mode::DWARF {
                return (frames, end::NO_INFO);
            }
            if fp == 0 {
                return (frames, end::COMPLETE);
            }
            let c = fp.wrapping_add(a[arch::FP_CFA_OFF]);
            let fp_at = c.wrapping_add(a[arch::FP_FP_OFF]);
            (c, c.wrapping_add(a[arch::FP_RA_OFF]), Some(fp_at))
        };
        let Some(ra) = read(ra_at) else {
            return (frames, end::UNREADABLE);
        };
        if let Some(at) = fp_at {
            let Some(v) = read(at) else {
                return (frames, end::UNREADABLE);
            };
            fp = v;
        }
        sp = cfa_at;
        if ra == 0 {
            return (frames, end::COMPLETE);
        }
        if frames.len() == MAX_FRAMES {
            return (frames, end::TRUNCATED);
        }
        frames.push(ra);
        pc = ra;
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        fs::File,
        io::{BufRead as _, BufReader},
        os::unix::fs::FileExt as _,
        path::PathBuf,
        process::{Child, Command, Stdio},
        time::{Duration, Instant},
    };

    use super::*;
    use crate::sys::symbols::{parse_maps, Symbols};

    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

    /// A program the test needs, or a failure that says what to install.
    fn need(path: &str, package: &str) -> PathBuf {
        let p = PathBuf::from(path);
        assert!(p.exists(), "{path} is missing: apt-get install {package}");
        p
    }

    /// A row's rule, for comparing (its pc, and fp's UNDEFINED that the
    /// walker treats as SAME, left out).
    fn rule(r: &Row) -> Row {
        let fp = if r.fp == reg::UNDEFINED {
            reg::SAME
        } else {
            r.fp
        };
        Row { pc: 0, fp, ..*r }
    }

    /// The address of function `name` of the ELF file `path` (from its
    /// symbols or its separate debug file's).
    fn symbol(path: &Path, name: &str, package: &str) -> u64 {
        let b = elf::load(path).unwrap();
        b.funcs
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}` in {}: apt-get install {package}",
                    path.display()
                )
            })
            .address
    }

    fn check_sorted(t: &Table) {
        assert!(!t.rows.is_empty());
        assert!(t.rows.windows(2).all(|w| w[0].pc < w[1].pc));
        assert!(t
            .rows
            .windows(2)
            .all(|w| rule(&w[0]) != rule(&w[1]) || w[0].fp != w[1].fp));
    }

    #[test]
    fn tables_of_xz_and_libc() {
        let xz = need("/usr/bin/xz", "xz-utils");
        let t = build(&xz).unwrap();
        check_sorted(&t);
        assert_eq!(t.source, ".eh_frame");
        assert!(t.build_id.is_some());
        // _start: the outermost frame.
        let data = std::fs::read(&xz).unwrap();
        let entry = object::File::parse(&*data).unwrap().entry();
        assert_eq!(lookup(&t.rows, entry).unwrap().cfa, cfa::END);

        let libc = need(LIBC, "libc6");
        let t = build(&libc).unwrap();
        check_sorted(&t);
        let start_main = symbol(&libc, "__libc_start_call_main", "libc6-dbg");
        let r = lookup(&t.rows, start_main).unwrap();
        assert_eq!(
            (r.cfa, r.cfa_off, r.ra, r.ra_off),
            (cfa::SP, 8, reg::AT_CFA, -8)
        );
        // A thread's start.
        let clone3 = symbol(&libc, "__clone3", "libc6-dbg");
        let thread_start = (clone3..clone3 + 0x100)
            .filter_map(|pc| lookup(&t.rows, pc))
            .any(|r| r.cfa == cfa::END);
        assert!(thread_start, "no outermost frame in __clone3");
        eprintln!(
            "xz, libc: {} rows ({} rules unsupported)",
            t.rows.len(),
            t.unsupported
        );
    }

    /// One expected rule from `readelf --debug-dump=frames-interp` columns;
    /// None where readelf shows an expression (`exp`) whose text it leaves
    /// out, other than the PLT's.
    fn readelf_rule(
        cfa_col: &str,
        fp_col: Option<&str>,
        ra_col: &str,
        in_plt: bool,
    ) -> Option<Row> {
        let none = Some(Row::default());
        let num = |s: &str| s.parse::<i64>().ok();
        let off = |s: &str| num(s).and_then(|o| i16::try_from(o).ok());
        let at_cfa = |s: &str| s.strip_prefix('c').and_then(off);
        let mut r = Row::default();
        match ra_col {
            "u" => {
                return Some(Row {
                    cfa: cfa::END,
                    ..Row::default()
                })
            }
            s => match at_cfa(s) {
                Some(o) => (r.ra, r.ra_off) = (reg::AT_CFA, o),
                None => return none,
            },
        }
        let big = |o: i64| i16::try_from(o / 8).ok().filter(|_| o % 8 == 0);
        let cfa_rule = match cfa_col {
            "exp" if in_plt => Some((cfa::PLT, 8)),
            "exp" => return None,
            s => match s.strip_prefix("rsp").and_then(num) {
                Some(o) => match i16::try_from(o) {
                    Ok(o) => Some((cfa::SP, o)),
                    Err(_) => big(o).map(|o| (cfa::SP_X8, o)),
                },
                None => s.strip_prefix("rbp").and_then(off).map(|o| (cfa::FP, o)),
            },
        };
        let Some((kind, o)) = cfa_rule else {
            return none;
        };
        (r.cfa, r.cfa_off) = (kind, o);
        match fp_col {
            None | Some("u") | Some("s") => r.fp = reg::SAME,
            Some("exp") => return None,
            Some(s) => match at_cfa(s) {
                Some(o) => (r.fp, r.fp_off) = (reg::AT_CFA, o),
                None => return none,
            },
        }
        Some(r)
    }

    /// Every row readelf shows for `path`'s .eh_frame against `lookup` of
    /// the table: (rows compared, mismatches).
    fn compare_with_readelf(path: &Path) -> (usize, Vec<String>) {
        need("/usr/bin/readelf", "binutils");
        let out = Command::new("readelf")
            .arg("--debug-dump=frames-interp")
            .arg(path)
            .output()
            .unwrap();
        // readelf exits 1 on libc, with nothing on stderr: the output decides.
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(" FDE "),
            "readelf {}: {out:?}",
            path.display()
        );
        let t = build(path).unwrap();
        let data = std::fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let plt = file
            .section_by_name(".plt")
            .map_or(0..0, |s| s.address()..s.address() + s.size());

        // (address, rule readelf gives there, None: not shown)
        let mut want: Vec<(u64, Option<Row>)> = Vec::new();
        // CIE offset -> its initial rule; the columns shown; the FDE or CIE
        // being read: (CIE offset, start or u64::MAX for a CIE, rows seen).
        let mut cies: HashMap<String, Option<Row>> = HashMap::new();
        let mut cols: Vec<String> = Vec::new();
        let mut entry: Option<(String, u64, usize)> = None;
        // FDE ranges: where one ends and none starts, the table has a gap.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        // An FDE without rows of its own has its CIE's initial rule.
        let end_entry = |entry: Option<(String, u64, usize)>,
                         cies: &HashMap<String, Option<Row>>,
                         want: &mut Vec<(u64, Option<Row>)>| {
            if let Some((cie, start, 0)) = entry.filter(|e| e.1 != u64::MAX) {
                want.push((start, cies[&cie]));
            }
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with("Contents of the ") {
                // Another section: its CIEs have offsets of their own.
                end_entry(entry.take(), &cies, &mut want);
                cies.clear();
                continue;
            }
            if f.len() >= 4 && f[0].len() == 8 && (f[3] == "CIE" || f[3] == "FDE") {
                end_entry(entry.take(), &cies, &mut want);
                if f[3] == "CIE" {
                    entry = Some((f[0].to_string(), u64::MAX, 0));
                } else {
                    let cie = f[4].trim_start_matches("cie=").to_string();
                    let (s, e) = f[5].trim_start_matches("pc=").split_once("..").unwrap();
                    let s = u64::from_str_radix(s, 16).unwrap();
                    let e = u64::from_str_radix(e, 16).unwrap();
                    if s != 0 && e > s {
                        ranges.push((s, e));
                    }
                    // Code the linker dropped.
                    entry = (s != 0).then_some((cie, s, 0));
                }
            } else if f.first() == Some(&"LOC") {
                cols = f.iter().map(|s| s.to_string()).collect();
            } else if !f.is_empty() && f.len() == cols.len() && f[0].len() == 16 {
                let Some((cie, start, n)) = entry.as_mut() else {
                    continue;
                };
                let loc = u64::from_str_radix(f[0], 16).unwrap();
                let col = |name: &str| cols.iter().position(|c| c == name).map(|i| f[i]);
                let r = readelf_rule(f[1], col("rbp"), col("ra").unwrap(), plt.contains(&loc));
                if *start == u64::MAX {
                    cies.insert(cie.clone(), r);
                } else {
                    *n += 1;
                    want.push((loc, r));
                }
            }
        }
        end_entry(entry, &cies, &mut want);
        let starts: std::collections::HashSet<u64> = ranges.iter().map(|r| r.0).collect();
        let gaps = ranges.iter().filter(|r| !starts.contains(&r.1));
        want.extend(gaps.map(|r| (r.1, Some(Row::default()))));
        want.retain(|w| w.1.is_some());
        let bad = want
            .iter()
            .filter_map(|&(loc, r)| {
                let r = r?;
                let got = lookup(&t.rows, loc).map(rule);
                (got != Some(r)).then(|| format!("{loc:#x}: readelf {r:?}, table {got:?}"))
            })
            .collect();
        (want.len(), bad)
    }

    #[test]
    fn rows_match_readelf() {
        for path in ["/usr/bin/xz", LIBC] {
            let (n, bad) = compare_with_readelf(&need(path, "xz-utils libc6"));
            eprintln!("{path}: {n} readelf rows compared, {} differ", bad.len());
            assert!(n > 100, "{path}: only {n} rows read from readelf");
            assert!(
                bad.is_empty(),
                "{path}:\n{}",
                bad[..bad.len().min(20)].join("\n")
            );
        }
    }

    #[test]
    fn biases() {
        // PIE, page-aligned code segment: (vaddr, memsz, offset).
        let pie = [(0x3000, 0xa000, 0x3000)];
        assert_eq!(
            bias_in(&pie, 0x3000, 0x5555_5555_8000).unwrap(),
            0x5555_5555_5000
        );
        // Non-PIE: the file's addresses are the process's.
        let exe = [(0x401000, 0x1000, 0x1000)];
        assert_eq!(bias_in(&exe, 0x1000, 0x401000).unwrap(), 0);
        // A segment whose offset is not page-aligned (lld): the mapping
        // starts on the page below it.
        let lld = [(0x5b3c0, 0x2000, 0x5a3c0)];
        let b = bias_in(&lld, 0x5a000, 0x7f00_0000_0000).unwrap();
        assert_eq!(0x7f00_0000_03c0u64.wrapping_sub(b), 0x5b3c0);
        assert!(bias_in(&pie, 0x20000, 0x1000).is_err());

        // This very function, in this process: its address minus the bias
        // of its mapping is its symbol's.
        let exe = std::env::current_exe().unwrap();
        let here = biases as *const () as u64;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let l = parse_maps(&maps)
            .into_iter()
            .find(|l| (l.start..l.end).contains(&here))
            .unwrap();
        let b = bias(&exe, l.offset, l.start).unwrap();
        let sym = elf::load(&exe)
            .unwrap()
            .funcs
            .into_iter()
            .find(|f| f.display == "tracer::sys::unwind::tests::biases")
            .unwrap();
        assert_eq!(here.wrapping_sub(b), sym.address);
    }

    /// A walk over made-up memory: one object with rows at bias 0x1000, one
    /// without, one whose table did not fit.
    #[test]
    fn walk_ends() {
        let sp_rule = |pc, off| Row {
            pc,
            cfa: cfa::SP,
            cfa_off: off,
            ra: reg::AT_CFA,
            ra_off: -8,
            ..Row::default()
        };
        let rows = [
            sp_rule(0x100, 16),
            Row {
                pc: 0x200,
                cfa: cfa::FP,
                cfa_off: 16,
                fp: reg::AT_CFA,
                fp_off: -16,
                ..sp_rule(0, 0)
            },
            Row {
                pc: 0x300,
                cfa: cfa::PLT,
                cfa_off: 8,
                ..sp_rule(0, 0)
            },
            Row {
                pc: 0x400,
                cfa: cfa::END,
                ..Row::default()
            },
            Row {
                pc: 0x450,
                ..Row::default()
            },
        ];
        let (first, rows_n) = (0, rows.len() as u32);
        let maps = [
            Mapping {
                start: 0x1100,
                end: 0x1500,
                bias: 0x1000,
                first,
                rows: rows_n,
            },
            Mapping {
                start: 0x2000,
                end: 0x3000,
                bias: 0,
                first: table::NONE,
                rows: 0,
            },
            Mapping {
                start: 0x3000,
                end: 0x4000,
                bias: 0,
                first: table::FULL,
                rows: 0,
            },
        ];
        let stack: HashMap<u64, u64> = HashMap::from([
            // sp 0x7ff8, CFA sp + 16: ra at 0x8000, in the fp rule's function.
            (0x8000, 0x1220),
            // fp 0x9010, CFA fp + 16: ra at 0x9018, the caller's fp at 0x9010.
            (0x9018, 0x140a),
            (0x9010, 0xa000),
        ]);
        let read = |a| stack.get(&a).copied();
        let regs = |pc| Regs {
            pc,
            sp: 0x7ff8,
            fp: 0x9010,
        };
        // sp rule, fp rule, then END at 0x409 (the call before 0x140a).
        let (f, e) = walk(regs(0x1150), mode::DWARF, &maps, &rows, read);
        assert_eq!((f, e), (vec![0x1150, 0x1220, 0x140a], end::COMPLETE));
        // The PLT rule: +8 once pc & 15 >= 11.
        let (f, e) = walk(regs(0x130b), mode::DWARF, &maps, &rows, |a| {
            (a == 0x7ff8 + 16 - 8).then_some(0)
        });
        assert_eq!((f.len(), e), (1, end::COMPLETE));
        let (_, e) = walk(regs(0x130a), mode::DWARF, &maps, &rows, |a| {
            (a == 0x7ff8 + 8 - 8).then_some(0)
        });
        assert_eq!(e, end::COMPLETE);
        // Past the last FDE, outside every mapping, unreadable.
        let (_, e) = walk(regs(0x1480), mode::DWARF, &maps, &rows, read);
        assert_eq!(e, end::NO_INFO);
        let (_, e) = walk(regs(0x5000), mode::AUTO, &maps, &rows, read);
        assert_eq!(e, end::NO_INFO);
        let (_, e) = walk(regs(0x1100), mode::DWARF, &maps, &rows, |_| None);
        assert_eq!(e, end::UNREADABLE);
        // No table: frame pointers in AUTO (ra at fp + 8, fp at fp), not in DWARF.
        let fp_stack: HashMap<u64, u64> =
            HashMap::from([(0x9018, 0x2100), (0x9010, 0x9100), (0x9108, 0), (0x9100, 0)]);
        let (f, e) = walk(regs(0x2010), mode::AUTO, &maps, &rows, |a| {
            fp_stack.get(&a).copied()
        });
        assert_eq!((f, e), (vec![0x2010, 0x2100], end::COMPLETE));
        let (_, e) = walk(regs(0x2010), mode::DWARF, &maps, &rows, read);
        assert_eq!(e, end::NO_INFO);
        let (_, e) = walk(regs(0x3010), mode::AUTO, &maps, &rows, read);
        assert_eq!(e, end::TABLE_FULL);
        // A frame-pointer loop stops at the depth limit.
        let (f, e) = walk(regs(0x2010), mode::FP, &maps, &rows, |a| {
            Some(if a == 0x9018 { 0x2100 } else { 0x9010 })
        });
        assert_eq!((f.len(), e), (MAX_FRAMES, end::TRUNCATED));
    }

    /// A child, one of whose threads is stopped and resumed with ptrace;
    /// killed when dropped.
    struct Traced {
        child: Child,
        tid: i32,
    }

    impl Traced {
        /// Trace thread `tid` of `child`, its main thread when None.
        fn seize(child: Child, tid: Option<i32>) -> Self {
            let tid = tid.unwrap_or(child.id() as i32);
            // SAFETY: plain ptrace requests on our own child.
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) };
            assert_eq!(r, 0, "PTRACE_SEIZE: {}", std::io::Error::last_os_error());
            Self { child, tid }
        }

        /// The process.
        fn pid(&self) -> i32 {
            self.child.id() as i32
        }

        /// Stop it: its registers.
        fn stop(&self) -> Regs {
            let pid = self.tid;
            // SAFETY: as in `seize`.
            let r = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) };
            assert_eq!(
                r,
                0,
                "PTRACE_INTERRUPT: {}",
                std::io::Error::last_os_error()
            );
            loop {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
                assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
                assert!(
                    libc::WIFSTOPPED(status),
                    "the child ended: status {status:#x}"
                );
                if status >> 16 == libc::PTRACE_EVENT_STOP {
                    break;
                }
                // A signal on its way: deliver it, the interrupt stop follows.
                // SAFETY: as in `seize`.
                unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, libc::WSTOPSIG(status)) };
            }
            // SAFETY: user_regs_struct is plain data, filled by the kernel.
            let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: (&raw mut regs).cast(),
                iov_len: size_of::<libc::user_regs_struct>(),
            };
            // SAFETY: iov describes `regs`.
            let r = unsafe {
                libc::ptrace(libc::PTRACE_GETREGSET, pid, libc::NT_PRSTATUS, &raw mut iov)
            };
            assert_eq!(
                r,
                0,
                "PTRACE_GETREGSET: {}",
                std::io::Error::last_os_error()
            );
            #[cfg(target_arch = "x86_64")]
            return Regs {
                pc: regs.rip,
                sp: regs.rsp,
                fp: regs.rbp,
            };
            #[cfg(target_arch = "aarch64")]
            return Regs {
                pc: regs.pc,
                sp: regs.sp,
                fp: regs.regs[29],
            };
        }

        fn resume(&self) {
            // SAFETY: as in `seize`.
            let r = unsafe { libc::ptrace(libc::PTRACE_CONT, self.tid, 0, 0) };
            assert_eq!(r, 0, "PTRACE_CONT: {}", std::io::Error::last_os_error());
        }
    }

    impl Drop for Traced {
        fn drop(&mut self) {
            let _ = self.child.kill();
            if self.tid != self.pid() {
                // A traced thread is reaped by its tracer: until then the
                // process is not (its wait would never return).
                let mut status = 0;
                // SAFETY: waiting for a thread we trace.
                unsafe { libc::waitpid(self.tid, &mut status, libc::__WALL) };
            }
            let _ = self.child.wait();
        }
    }

    /// One walked stack of a stopped process.
    #[derive(Debug)]
    struct Walked {
        end: u32,
        /// (function, object) of each frame, innermost first.
        frames: Vec<(String, String)>,
        /// The same walk by frame pointers only: how many frames, how it ended.
        by_fp: (usize, u32),
    }

    impl Walked {
        fn names(&self) -> Vec<&str> {
            self.frames.iter().map(|f| f.0.as_str()).collect()
        }

        /// Whether `want` are frames in this order, each the caller of the one before.
        fn has_chain(&self, want: &[&str]) -> bool {
            self.names().windows(want.len()).any(|w| w == want)
        }
    }

    /// The process's executable mappings with their objects' rows, as the
    /// kernel will hold them (`ProcMaps`, `UNWIND_ROWS`); tables are kept in
    /// `cache` by path. The vDSO's table is read from its memory.
    fn tables_of(
        pid: i32,
        mem: &File,
        cache: &mut HashMap<String, Option<Table>>,
    ) -> (Vec<Mapping>, Vec<Row>) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let (mut maps, mut rows) = (Vec::new(), Vec::new());
        for l in parse_maps(&text) {
            let vdso;
            let t = if l.path == "[vdso]" {
                let mut image = vec![0; (l.end - l.start) as usize];
                mem.read_exact_at(&mut image, l.start).unwrap();
                vdso = build_from(&image).ok();
                vdso.as_ref()
            } else if l.path.starts_with('/') {
                let path = l.path.clone();
                cache
                    .entry(l.path.clone())
                    .or_insert_with(|| build(Path::new(&path)).ok())
                    .as_ref()
            } else {
                None
            };
            let mut m = Mapping {
                start: l.start,
                end: l.end,
                first: table::NONE,
                ..Mapping::default()
            };
            if let Some(t) = t {
                m.bias = t.bias(l.offset, l.start).unwrap();
                m.first = rows.len() as u32;
                m.rows = t.rows.len() as u32;
                rows.extend_from_slice(&t.rows);
            }
            maps.push(m);
        }
        (maps, rows)
    }

    /// Stop the child, walk its stack with the tables (`mode::DWARF`: no
    /// frame pointers to help), name the frames, resume it.
    fn walk_stopped(t: &Traced, cache: &mut HashMap<String, Option<Table>>) -> Walked {
        let regs = t.stop();
        let pid = t.pid();
        let mem = File::open(format!("/proc/{pid}/mem")).unwrap();
        let (maps, rows) = tables_of(pid, &mem, cache);
        let read = |a| {
            let mut b = [0u8; 8];
            mem.read_exact_at(&mut b, a)
                .ok()
                .map(|_| u64::from_ne_bytes(b))
        };
        let (ips, end) = walk(regs, mode::DWARF, &maps, &rows, read);
        let (fp_ips, fp_end) = walk(regs, mode::FP, &maps, &rows, read);
        let mut syms = Symbols::new();
        assert!(syms.read_process(pid as u32, 0));
        let frames = ips
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let f = syms.user_frame(pid as u32, 0, a, i == 0);
                (f.name, f.module)
            })
            .collect();
        t.resume();
        Walked {
            end,
            frames,
            by_fp: (fp_ips.len(), fp_end),
        }
    }

    /// A directory of this test's own, removed when dropped (failed or not).
    struct Scratch(PathBuf);

    impl Scratch {
        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("tracer-unwind-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    /// main -> level_a -> level_b -> level_c, busy in level_c. level_a
    /// realigns its stack (an over-aligned local and a variable-sized one:
    /// gcc's DRAP, `cfa::FP_DEREF`), level_b has a 70 KB frame
    /// (`cfa::SP_X8`); main keeps a frame pointer (`cfa::FP`), which only
    /// level_a's saved fp (`reg::AT_FP`) gives back. (Not named `a`, `b`,
    /// `c`: the symbolizer demangles those as C++ types, "signed char",
    /// "bool", "char".)
    const CHAIN: &str = r#"
#include <stdio.h>
#define F __attribute__((noipa))
volatile unsigned long sink;
volatile int done;
F void level_c(unsigned long n) {
    volatile char pad[200];
    pad[n & 127] = 1;
    while (!done)
        sink += n++;
}
F void level_b(unsigned long n) {
    volatile char big[70000];
    big[n % sizeof big] = 1;
    level_c(n * 3);
    sink += big[5];
}
F void level_a(unsigned long n) {
    _Alignas(64) volatile char aligned[64];
    volatile char vla[n + 10];
    aligned[n & 63] = 1;
    vla[n] = 2;
    level_b(n + 1);
    sink += aligned[3] + vla[1];
}
__attribute__((optimize("no-omit-frame-pointer"))) int main(int argc, char **argv) {
    (void)argv;
    puts("ready");
    fflush(stdout);
    level_a(argc);
    return 0;
}
"#;

    #[test]
    fn walks_a_program_without_frame_pointers() {
        need("/usr/bin/cc", "gcc");
        need(LIBC, "libc6");
        let dir = scratch("chain");
        std::fs::write(dir.join("chain.c"), CHAIN).unwrap();
        // Its rules in .eh_frame; in .debug_frame (-g without unwind
        // tables) but for _start's and the PLT's.
        let builds: [(&str, &[&str], &str); 2] = [
            ("chain", &[], ".eh_frame"),
            (
                "chain-g",
                &["-g", "-fno-asynchronous-unwind-tables"],
                ".eh_frame+.debug_frame",
            ),
        ];
        for (name, flags, source) in builds {
            let exe = dir.join(name);
            let out = Command::new("cc")
                .args(["-O2", "-fomit-frame-pointer"])
                .args(flags)
                .arg("-o")
                .arg(&exe)
                .arg(dir.join("chain.c"))
                .output()
                .unwrap();
            assert!(out.status.success(), "cc: {out:?}");
            let (n, bad) = compare_with_readelf(&exe);
            assert!(
                n > 10 && bad.is_empty(),
                "{name}: {n} rows compared: {bad:?}"
            );
            let t = build(&exe).unwrap();
            assert_eq!(t.source, source);
            let kinds: Vec<u8> = t.rows.iter().map(|r| r.cfa).collect();
            for k in [cfa::PLT, cfa::FP, cfa::FP_DEREF, cfa::SP_X8, cfa::END] {
                assert!(kinds.contains(&k), "{name}: no rule of kind {k}: {kinds:?}");
            }
            walk_chain(&exe);
        }
    }

    /// Run the chain program `exe`, stop it 5 times in level_c, and walk.
    fn walk_chain(exe: &Path) {
        let mut child = Command::new(exe).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let t = Traced::seize(child, None);
        let mut cache = HashMap::new();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            let w = walk_stopped(&t, &mut cache);
            eprintln!(
                "{}: {:?} by frame pointers: {:?}",
                exe.display(),
                w.names(),
                w.by_fp
            );
            assert_eq!(w.end, end::COMPLETE, "{w:?}");
            let chain = [
                "level_c",
                "level_b",
                "level_a",
                "main",
                "__libc_start_call_main",
            ];
            assert!(w.has_chain(&chain), "{w:?}");
            assert_eq!(w.names().last(), Some(&"_start"), "{w:?}");
        }
    }

    /// 32 MiB that do not compress (xz takes seconds on them).
    fn random_file(path: &Path) {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..4 << 20)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_ne_bytes()
            })
            .collect();
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn walks_xz() {
        let xz = need("/usr/bin/xz", "xz-utils");
        need(LIBC, "libc6");
        let dir = scratch("xz");
        random_file(&dir.join("data"));
        let child = Command::new(&xz)
            .args(["-9", "-T1", "-c"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let t = Traced::seize(child, None);
        std::thread::sleep(Duration::from_millis(300));
        let mut cache = HashMap::new();
        let (stops, mut complete, mut chained) = (20, 0, 0);
        for _ in 0..stops {
            std::thread::sleep(Duration::from_millis(50));
            let w = walk_stopped(&t, &mut cache);
            // main (xz has no symbols: named by its object) called by libc.
            let main_called = w
                .frames
                .windows(2)
                .any(|f| f[0].1 == "xz" && f[1].0 == "__libc_start_call_main");
            let names = w.names();
            eprintln!(
                "{:?} {} frames: {names:?}; by frame pointers {:?}",
                w.end,
                names.len(),
                w.by_fp
            );
            complete += usize::from(w.end == end::COMPLETE);
            chained += usize::from(w.end == end::COMPLETE && main_called);
        }
        let threads = std::fs::read_dir(format!("/proc/{}/task", t.pid()))
            .unwrap()
            .count();
        drop(t);
        eprintln!(
            "xz ({threads} threads): {complete} of {stops} walks complete, {chained} through main"
        );
        assert!(
            complete * 100 >= stops * 95,
            "{complete} of {stops} complete"
        );
        assert!(
            chained * 100 >= stops * 95,
            "{chained} of {stops} through main"
        );
    }

    /// A thread's stack ends at glibc's thread start (clone3's outermost
    /// frame): xz -T2's compressing threads.
    #[test]
    fn walks_a_thread() {
        let xz = need("/usr/bin/xz", "xz-utils");
        need(LIBC, "libc6");
        let dir = scratch("xz-threads");
        random_file(&dir.join("data"));
        // -6: 24 MiB blocks, so both threads have one.
        let child = Command::new(&xz)
            .args(["-6", "-T2", "-c"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let t0 = Instant::now();
        let tid = loop {
            let tids = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
            let other = tids
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .find(|&t| t != pid);
            if let Some(t) = other {
                break t;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "xz -T2 started no thread"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let t = Traced::seize(child, Some(tid));
        let mut cache = HashMap::new();
        let (stops, mut complete) = (10, 0);
        for _ in 0..stops {
            std::thread::sleep(Duration::from_millis(50));
            let w = walk_stopped(&t, &mut cache);
            let names = w.names();
            eprintln!("thread {tid}: {:?} {names:?}", w.end);
            let started = names.last().is_some_and(|n| n.contains("clone"))
                && names.contains(&"start_thread");
            complete += usize::from(w.end == end::COMPLETE && started);
        }
        drop(t);
        eprintln!("xz -T2, a thread: {complete} of {stops} walks complete to clone3");
        assert!(
            complete * 100 >= stops * 95,
            "{complete} of {stops} complete"
        );
    }

    #[test]
    fn tables_of_the_largest_programs() {
        // The largest executable file of this machine's code in /usr/bin, and
        // this test's own binary (Rust, with debug info).
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir("/usr/bin")
            .unwrap()
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.len(), e.path())))
            .collect();
        files.sort();
        let largest = files
            .iter()
            .rev()
            .find(|(_, p)| {
                std::fs::read(p).is_ok_and(|d| {
                    object::File::parse(&*d).is_ok_and(|f| f.architecture() == dwarf::ARCH)
                })
            })
            .map(|(_, p)| p.clone())
            .unwrap();
        for path in [largest, std::env::current_exe().unwrap()] {
            let mb = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
            let t0 = Instant::now();
            let t = build(&path).unwrap();
            let s = t0.elapsed().as_secs_f64();
            eprintln!(
                "{}: {mb:.1} MiB, {} {} rows ({} KiB), {} rules unsupported, {:.0} ms",
                path.display(),
                t.source,
                t.rows.len(),
                t.rows.len() * size_of::<Row>() / 1024,
                t.unsupported,
                s * 1000.0
            );
            check_sorted(&t);
            // The time is measured by `cargo xtask bench` (cc1, 33 MB); here
            // only that the table is whole: rows for most of the text.
            assert!(t.rows.len() > 1000, "{} rows", t.rows.len());
        }
    }
}
