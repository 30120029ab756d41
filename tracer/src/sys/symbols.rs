//! Naming the frames of sampled stacks (`tracer profile`): kernel addresses
//! from /proc/kallsyms, user addresses from the files each process had
//! mapped, read while it ran (a process may be gone by the time its stacks
//! are named). blazesym reads the files: their symbol tables first, then
//! DWARF, and separate debug files found by build id or debuglink.
use std::{
    collections::HashMap,
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use blazesym::symbolize::{
    source::{Elf, Kernel, Source},
    Input, Symbolized, Symbolizer,
};

use crate::collect::profile::Frame;

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq)]
struct Mapping {
    start: u64,
    end: u64,
    /// File offset of `start`.
    offset: u64,
    what: Mapped,
}

#[derive(Debug, Clone, PartialEq)]
enum Mapped {
    /// Index into `Symbols::files`, or `None` when the file could not be opened.
    File(Option<usize>, String),
    Vdso,
    Anon,
}

/// A line of /proc/PID/maps, executable mappings only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MapsLine {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub dev: (u32, u32),
    pub inode: u64,
    pub path: String,
}

pub(crate) fn parse_maps(text: &str) -> Vec<MapsLine> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(6, ' ');
            let (range, perms, offset, dev, inode) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            if !perms.contains('x') {
                return None;
            }
            let path = f.next().unwrap_or("").trim_start().to_string();
            let (s, e) = range.split_once('-')?;
            let (ma, mi) = dev.split_once(':')?;
            Some(MapsLine {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                dev: (
                    u32::from_str_radix(ma, 16).ok()?,
                    u32::from_str_radix(mi, 16).ok()?,
                ),
                inode: inode.parse().ok()?,
                path,
            })
        })
        .collect()
}

/// An executable mapping as the unwinder needs it: the range, the file
/// offset of its start, and the file (a path that opens that very file,
/// and its (dev, inode)), if it is one.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRange {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub file: Option<(PathBuf, (u64, u64))>,
}

/// A file stacks point into, as blazesym opens it.
struct MappedFile {
    path: PathBuf,
    /// (dev, inode)
    id: (u64, u64),
    /// Its separate debug file and code segments, once looked for.
    debug: Option<Option<crate::sys::elf::DebugFile>>,
    /// Held open when `path` is `/proc/self/fd/N` (a file in another mount
    /// namespace, replaced or deleted on disk, or of a process that may exit).
    _open: Option<File>,
}

/// Names frames; remembers the mappings of every process it was told about.
pub struct Symbols {
    symbolizer: Symbolizer,
    /// (tgid, generation) -> executable mappings, sorted by start.
    procs: HashMap<(u32, u32), Vec<Mapping>>,
    files: Vec<MappedFile>,
    by_inode: HashMap<(u64, u64), usize>,
    /// Named user frames by (file, file offset looked up).
    user: HashMap<(usize, u64), Option<String>>,
    /// Named kernel frames by address looked up.
    kernel: HashMap<u64, Frame>,
    /// (dev, inode) of this process's root, to tell another mount namespace's.
    own_root: Option<(u64, u64)>,
    /// The perf maps (JIT code's names) of processes with anonymous
    /// executable mappings that have one, by (tgid, generation).
    jit: HashMap<(u32, u32), crate::sys::perfmap::PerfMap>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    pub fn new() -> Self {
        let symbolizer = Symbolizer::builder()
            .enable_code_info(false)
            .enable_inlined_fns(false)
            .build();
        Self {
            symbolizer,
            procs: HashMap::new(),
            files: Vec::new(),
            by_inode: HashMap::new(),
            user: HashMap::new(),
            kernel: HashMap::new(),
            own_root: std::fs::metadata("/").ok().map(|m| (m.dev(), m.ino())),
            jit: HashMap::new(),
        }
    }

    /// Whether the mappings of (tgid, gen) are known.
    pub fn knows(&self, tgid: u32, gen: u32) -> bool {
        self.procs.contains_key(&(tgid, gen))
    }

    /// The executable mappings of (tgid, gen) as last read, sorted by start.
    pub fn mapped(&self, tgid: u32, gen: u32) -> Vec<MappedRange> {
        let Some(maps) = self.procs.get(&(tgid, gen)) else {
            return Vec::new();
        };
        maps.iter()
            .map(|m| MappedRange {
                start: m.start,
                end: m.end,
                offset: m.offset,
                file: match &m.what {
                    Mapped::File(Some(f), _) => {
                        let f = &self.files[*f];
                        Some((f.path.clone(), f.id))
                    }
                    _ => None,
                },
            })
            .collect()
    }

    /// Read process `tgid`'s executable mappings now, as generation `gen`.
    /// False if the process is gone.
    pub fn read_process(&mut self, tgid: u32, gen: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{tgid}/maps")) else {
            return false;
        };
        let same_root = std::fs::metadata(format!("/proc/{tgid}/root"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
            == self.own_root;
        let mut maps: Vec<Mapping> = parse_maps(&text)
            .into_iter()
            .map(|l| {
                let what = match l.path.as_str() {
                    "[vdso]" => Mapped::Vdso,
                    p if l.inode == 0 || !p.starts_with('/') => Mapped::Anon,
                    p => {
                        let p = p.strip_suffix(" (deleted)").unwrap_or(p);
                        let name = Path::new(p)
                            .file_name()
                            .map_or_else(|| p.to_string(), |n| n.to_string_lossy().into_owned());
                        Mapped::File(self.file(tgid, &l, p, same_root), name)
                    }
                };
                Mapping {
                    start: l.start,
                    end: l.end,
                    offset: l.offset,
                    what,
                }
            })
            .collect();
        maps.sort_by_key(|m| m.start);
        // Code not in a file may be a JIT's: its perf map, opened while the
        // process runs (it is read when frames are named, maybe after exit).
        if maps.iter().any(|m| m.what == Mapped::Anon) && !self.jit.contains_key(&(tgid, gen)) {
            if let Some(pm) = crate::sys::perfmap::PerfMap::open(tgid) {
                self.jit.insert((tgid, gen), pm);
            }
        }
        self.procs.insert((tgid, gen), maps);
        true
    }

    /// The index of the mapped file of line `l`, opened the way that names it
    /// for sure: by its path when that is the very file (same inode, same
    /// mount namespace), else through /proc/PID/map_files, held open.
    fn file(&mut self, tgid: u32, l: &MapsLine, path: &str, same_root: bool) -> Option<usize> {
        let dev = libc::makedev(l.dev.0, l.dev.1);
        if let Some(&i) = self.by_inode.get(&(dev, l.inode)) {
            return Some(i);
        }
        let plain = same_root
            && std::fs::metadata(path).is_ok_and(|m| m.dev() == dev && m.ino() == l.inode);
        let file = if plain {
            MappedFile {
                path: PathBuf::from(path),
                id: (dev, l.inode),
                debug: None,
                _open: None,
            }
        } else {
            let f = File::open(format!("/proc/{tgid}/map_files/{:x}-{:x}", l.start, l.end))
                .or_else(|_| File::open(format!("/proc/{tgid}/root{path}")))
                .ok()?;
            MappedFile {
                path: PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())),
                id: (dev, l.inode),
                debug: None,
                _open: Some(f),
            }
        };
        self.files.push(file);
        let i = self.files.len() - 1;
        self.by_inode.insert((dev, l.inode), i);
        Some(i)
    }

    /// The frame of user address `addr` of (tgid, gen). `leaf`: the
    /// sampled instruction itself; other frames are return addresses, looked
    /// up one byte back (the call), as perf does.
    pub fn user_frame(&mut self, tgid: u32, gen: u32, addr: u64, leaf: bool) -> Frame {
        let unknown = || Frame {
            name: "[unknown]".into(),
            module: "[unknown]".into(),
            kernel: false,
            symbolized: false,
        };
        let Some(maps) = self.procs.get(&(tgid, gen)) else {
            return unknown();
        };
        let i = maps.partition_point(|m| m.start <= addr);
        let Some(m) = i.checked_sub(1).map(|i| &maps[i]).filter(|m| addr < m.end) else {
            return unknown();
        };
        let off = addr - m.start + m.offset;
        if m.what == Mapped::Anon {
            let look = if leaf { addr } else { addr.saturating_sub(1) };
            if let Some(name) = self.jit.get_mut(&(tgid, gen)).and_then(|p| p.name(look)) {
                return Frame {
                    name: name.to_string(),
                    module: "[jit]".into(),
                    kernel: false,
                    symbolized: true,
                };
            }
        }
        let (file, module) = match &m.what {
            Mapped::File(f, name) => (*f, name.clone()),
            Mapped::Vdso => (None, "[vdso]".to_string()),
            Mapped::Anon => (None, "[anon]".to_string()),
        };
        let name = file.and_then(|f| {
            let look = if leaf { off } else { off.saturating_sub(1) };
            if let Some(n) = self.user.get(&(f, look)) {
                return n.clone();
            }
            let n = self.name_in_file(f, look);
            self.user.insert((f, look), n.clone());
            n
        });
        match name {
            Some(name) => Frame {
                name,
                module,
                kernel: false,
                symbolized: true,
            },
            None => Frame {
                name: format!("{module}+{off:#x}"),
                module,
                kernel: false,
                symbolized: false,
            },
        }
    }

    /// The function at file offset `off` of file `f`: from its symbol
    /// table; else from its separate debug file's symbol table (found by
    /// build id or debuglink: the symbols a stripped library lost); else
    /// from DWARF (in the file, or in a debug file), which costs the most to
    /// read.
    fn name_in_file(&mut self, f: usize, off: u64) -> Option<String> {
        let elf = |path: &Path, debug_syms| {
            Source::Elf(Elf {
                debug_syms,
                ..Elf::new(path)
            })
        };
        let named = |r: blazesym::Result<Symbolized>| match r {
            Ok(Symbolized::Sym(s)) => Some(s.name.into_owned()),
            Ok(Symbolized::Unknown(_)) => None,
            Err(e) => {
                log::debug!("symbolizing: {e}");
                None
            }
        };
        let sy = &self.symbolizer;
        let file = &mut self.files[f];
        if let Some(n) = named(sy.symbolize_single(&elf(&file.path, false), Input::FileOffset(off)))
        {
            return Some(n);
        }
        let debug = file
            .debug
            .get_or_insert_with(|| crate::sys::elf::debug_file_of(&file.path));
        if let Some((dbg, segments)) = debug {
            let addr = crate::sys::elf::address_in(segments, off);
            let n = addr
                .and_then(|a| named(sy.symbolize_single(&elf(dbg, false), Input::VirtOffset(a))));
            if n.is_some() {
                return n;
            }
        }
        named(sy.symbolize_single(&elf(&file.path, true), Input::FileOffset(off)))
    }

    /// The frame of kernel address `addr` (`leaf` as for `user_frame`).
    pub fn kernel_frame(&mut self, addr: u64, leaf: bool) -> Frame {
        let look = if leaf { addr } else { addr.saturating_sub(1) };
        if let Some(f) = self.kernel.get(&look) {
            return f.clone();
        }
        let src = Source::Kernel(Kernel {
            vmlinux: blazesym::MaybeDefault::None,
            debug_syms: false,
            ..Default::default()
        });
        let sym = self
            .symbolizer
            .symbolize_single(&src, Input::AbsAddr(look))
            .ok();
        let f = match sym {
            Some(Symbolized::Sym(s)) => Frame {
                name: s.name.into_owned(),
                module: s
                    .module
                    .map(|m| m.to_string_lossy().into_owned())
                    .filter(|m| m.starts_with('['))
                    .unwrap_or_else(|| "[kernel]".into()),
                kernel: true,
                symbolized: true,
            },
            _ => Frame {
                name: format!("[kernel]+{addr:#x}"),
                module: "[kernel]".into(),
                kernel: true,
                symbolized: false,
            },
        };
        self.kernel.insert(look, f.clone());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let text = "\
55d0c0a00000-55d0c0a20000 r--p 00000000 fd:01 1234 /usr/bin/app
55d0c0a20000-55d0c0b00000 r-xp 00020000 fd:01 1234 /usr/bin/app
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 
7f0000100000-7f0000200000 r-xp 00001000 08:02 77 /tmp/lib so.so (deleted)
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
";
        let l = parse_maps(text);
        assert_eq!(l.len(), 4);
        assert_eq!(
            l[0],
            MapsLine {
                start: 0x55d0c0a20000,
                end: 0x55d0c0b00000,
                offset: 0x20000,
                dev: (0xfd, 1),
                inode: 1234,
                path: "/usr/bin/app".into()
            }
        );
        assert_eq!(l[1].path, "");
        assert_eq!(l[2].path, "/tmp/lib so.so (deleted)");
        assert_eq!(l[3].path, "[vdso]");
    }

    #[test]
    fn own_frames_are_named() {
        // This test's own code, through its own mappings.
        let mut s = Symbols::new();
        let pid = std::process::id();
        assert!(s.read_process(pid, 0));
        let addr = own_frames_are_named as *const () as u64;
        let f = s.user_frame(pid, 0, addr, true);
        assert!(f.symbolized, "{f:?}");
        assert!(f.name.contains("own_frames_are_named"), "{f:?}");
        let u = s.user_frame(pid, 0, 8, true);
        assert_eq!(u.name, "[unknown]");
        assert!(!s.user_frame(pid, 7, addr, true).symbolized);
    }

    /// Code in an anonymous executable mapping named from this process's
    /// perf map, as a JIT's would be; read again when the map grows.
    #[test]
    fn jit_frames_are_named_from_the_perf_map() {
        use std::io::Write as _;
        let pid = std::process::id();
        let code = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(code, libc::MAP_FAILED);
        let base = code as u64;
        let path = format!("/tmp/perf-{pid}.map");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "{base:x} 100 JS:*hot file:///tmp/a.js:1:1").unwrap();
        f.flush().unwrap();
        let mut s = Symbols::new();
        assert!(s.read_process(pid, 0));
        let hot = s.user_frame(pid, 0, base + 0x10, true);
        // Appended after the first lookup: read again.
        writeln!(f, "{:x} 100 JS:~cold file:///tmp/a.js:9:1", base + 0x1000).unwrap();
        f.flush().unwrap();
        let cold = s.user_frame(pid, 0, base + 0x1001, false);
        let none = s.user_frame(pid, 0, base + 0x800, true);
        let _ = std::fs::remove_file(&path);
        unsafe { libc::munmap(code, 8192) };
        assert_eq!(
            (hot.name.as_str(), hot.module.as_str()),
            ("JS:*hot file:///tmp/a.js:1:1", "[jit]")
        );
        assert!(hot.symbolized);
        assert_eq!(cold.name, "JS:~cold file:///tmp/a.js:9:1");
        assert_eq!(
            (none.name.as_str(), none.symbolized),
            ("[anon]+0x800", false)
        );
    }
}
