//! User-space binaries for uprobes: finding a target (path, library name or
//! command, like the dynamic loader and the shell do), reading its function
//! symbols with the `object` crate, and turning `SYMBOL`, `GLOB`,
//! `SYMBOL+OFFSET` or `0xADDRESS` into file offsets the kernel attaches to.
//!
//! Rust and C++ symbols are shown demangled (`app::handler`, not
//! `_ZN3app7handler17h0123456789abcdefE`); a pattern matches either form, and
//! the mangled name stays the one symbol lookups go by.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _, SymbolKind};

use super::names;

/// One function symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Func {
    /// The symbol as the file has it (mangled for Rust and C++).
    pub name: String,
    /// What the user sees: the demangled name (see [`demangle`]), else `name`.
    pub display: String,
    /// Virtual address in the ELF file (as `nm` prints it).
    pub address: u64,
    /// Size in bytes, 0 when the symbol table does not say.
    pub size: u64,
}

/// A loaded ELF file's function symbols and the facts needed to attach uprobes.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    /// Functions sorted by name, one entry per name.
    pub funcs: Vec<Func>,
    /// `(vaddr, memsz, file offset)` of each executable PT_LOAD segment.
    segments: Vec<(u64, u64, u64)>,
    /// The file has no `.symtab` (only exported functions have names).
    pub stripped: bool,
    /// `.gnu_debuglink` file name, when the binary names its debug file.
    pub debuglink: Option<String>,
    /// The debug file that supplied extra symbols, if one was found.
    pub debug_file: Option<PathBuf>,
    /// Names of IFUNC symbols (resolved at run time; cannot be probed by name).
    ifuncs: Vec<String>,
}

impl Func {
    /// Whether a glob matches the symbol or its demangled name.
    pub fn matches(&self, glob: &glob::Pattern) -> bool {
        glob.matches(&self.name) || glob.matches(&self.display)
    }
}

/// The name to show for the symbol `name`: Rust symbols (legacy and v0)
/// demangled without their hash, C++ (Itanium) symbols demangled, any other
/// name as it is.
pub fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Some(d) = cpp_demangle::Symbol::new(name)
            .ok()
            .and_then(|s| s.demangle().ok())
        {
            return d;
        }
    }
    name.to_string()
}

/// Where one probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The symbol form: `malloc`, `_ZN3app7handler17h0123456789abcdefE+0x4`, `0x1139`.
    pub name: String,
    /// What the user sees: `malloc`, `app::handler+0x4`, `0x1139`.
    pub display: String,
    pub address: u64,
    /// Offset in the file, which is what the kernel's uprobe wants.
    pub file_offset: u64,
}

/// What a PATTERN of `TARGET:PATTERN` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Glob(glob::Pattern),
    SymbolOffset(String, u64),
    Address(u64),
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            bail!("empty function pattern: give a symbol, a glob, SYMBOL+OFFSET or 0xADDRESS");
        }
        if s.starts_with("0x") || s.starts_with("0X") {
            return parse_number(s)
                .map(Pattern::Address)
                .with_context(|| format!("`{s}` is not a hexadecimal address"));
        }
        if let Some((sym, off)) = s.rsplit_once('+') {
            let off = parse_number(off.trim()).with_context(|| {
                format!("`{s}`: the offset after `+` must be a number (decimal or 0x...)")
            })?;
            return Ok(Pattern::SymbolOffset(sym.trim().to_string(), off));
        }
        if s.contains(['*', '?', '[']) {
            let g = glob::Pattern::new(s).with_context(|| format!("bad glob `{s}`"))?;
            return Ok(Pattern::Glob(g));
        }
        Ok(Pattern::Exact(s.to_string()))
    }
}

/// How good a name is for showing one of several aliases of a function (lower
/// is better): the public name (`malloc`) before `__libc_malloc` and
/// `__GI___libc_malloc`, a plain name before a compiler clone (`f.constprop.0`).
pub fn name_rank(name: &str) -> (usize, bool, usize, String) {
    let underscores = name.len() - name.trim_start_matches('_').len();
    (
        underscores,
        name.contains('.'),
        name.len(),
        name.to_string(),
    )
}

/// Split `TARGET:PATTERN` at the last single `:` (paths rarely hold one; the
/// `::` of a demangled name such as `app::handler*` is part of the pattern).
pub fn split_probe(spec: &str) -> Result<(&str, &str)> {
    let b = spec.as_bytes();
    let colon = (0..b.len())
        .rev()
        .find(|&i| b[i] == b':' && (i == 0 || b[i - 1] != b':') && b.get(i + 1) != Some(&b':'));
    match colon.map(|i| (&spec[..i], &spec[i + 1..])) {
        Some((t, p)) if !t.is_empty() && !p.is_empty() => Ok((t, p)),
        _ => bail!(
            "`{spec}`: expected TARGET:PATTERN, for example `libc:malloc`, `/usr/bin/bash:readline` \
             or `./app:handle_*`"
        ),
    }
}

/// `ldconfig -p` lines: `\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6`.
pub fn parse_ldconfig(text: &str) -> Vec<(String, String, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let (left, path) = l.split_once(" => ")?;
            let left = left.trim();
            let (name, flags) = left.split_once(' ')?;
            let flags = flags.trim().trim_start_matches('(').trim_end_matches(')');
            Some((
                name.to_string(),
                flags.to_string(),
                PathBuf::from(path.trim()),
            ))
        })
        .collect()
}

/// The ABI tag `ldconfig -p` gives libraries of this machine.
fn host_abi_tag() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86-64"),
        "aarch64" => Some("AArch64"),
        _ => None,
    }
}

/// Whether a library file name answers to `name` (`libc` matches `libc.so.6`,
/// `c` matches `libc.so.6`, `libc.so.6` matches itself); a rank, lower is better.
fn library_rank(file: &str, name: &str) -> Option<u8> {
    if file == name {
        return Some(0);
    }
    for (rank, prefix) in [
        (1, format!("{name}.so.")),
        (2, format!("lib{name}.so.")),
        (3, format!("{name}.so")),
        (4, format!("lib{name}.so")),
    ] {
        if file.starts_with(&prefix) && (prefix.ends_with('.') || file.len() == prefix.len()) {
            return Some(rank);
        }
    }
    None
}

/// The best library for `name` in ldconfig's cache.
pub fn pick_library(
    entries: &[(String, String, PathBuf)],
    name: &str,
    abi: Option<&str>,
) -> Option<PathBuf> {
    entries
        .iter()
        .filter(|(_, flags, _)| abi.is_none_or(|a| flags.contains(a)))
        .filter_map(|(file, _, path)| library_rank(file, name).map(|r| (r, path)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, p)| p.clone())
}

const LIB_DIRS: [&str; 8] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The path whose file name answers best to `name` (the first of the best).
fn best_library(paths: impl IntoIterator<Item = PathBuf>, name: &str) -> Option<PathBuf> {
    paths
        .into_iter()
        .filter_map(|p| Some((library_rank(p.file_name()?.to_str()?, name)?, p)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, p)| p)
}

/// A library mapped by process `pid` whose file name answers to `name`.
fn mapped_library(pid: u32, name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let paths = maps.lines().filter_map(|l| l.split_whitespace().nth(5));
    best_library(
        paths.filter(|p| p.starts_with('/')).map(PathBuf::from),
        name,
    )
}

/// Resolve TARGET: a path (anything with a `/`), else a library the process
/// `pid` has mapped, a library known to the dynamic loader (`ldconfig -p`, then
/// the standard directories), else a command in PATH.
pub fn resolve_target(target: &str, pid: Option<u32>) -> Result<PathBuf> {
    if target.contains('/') {
        let p = PathBuf::from(target);
        if !p.exists() {
            bail!("cannot probe `{target}`: no such file");
        }
        // Absolute, so it means the same file whatever the working directory.
        return Ok(std::path::absolute(&p).unwrap_or(p));
    }
    if let Some(p) = pid.and_then(|pid| mapped_library(pid, target)) {
        return Ok(p);
    }
    let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"]
        .iter()
        .find_map(|c| std::process::Command::new(c).arg("-p").output().ok())
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if let Some(p) = pick_library(&parse_ldconfig(&ldconfig), target, host_abi_tag()) {
        return Ok(p);
    }
    let in_dirs = LIB_DIRS.iter().filter_map(|d| std::fs::read_dir(d).ok());
    if let Some(p) = best_library(
        in_dirs.flat_map(|rd| rd.flatten().map(|e| e.path())),
        target,
    ) {
        return Ok(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join(target);
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    bail!(
        "cannot find `{target}`: not a library known to the dynamic loader (ldconfig -p) nor a \
         command in PATH; give its path (for example ./{target})"
    )
}

/// `(vaddr, memsz, file offset)` of each executable PT_LOAD segment: a probe
/// elsewhere is not on an instruction.
pub fn code_segments(file: &object::File) -> Vec<(u64, u64, u64)> {
    file.segments()
        .filter(|s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0))
        .map(|s| (s.address(), s.size(), s.file_range().0))
        .collect()
}

/// The file offset of `addr` in one of `segments`.
fn offset_in(segments: &[(u64, u64, u64)], addr: u64) -> Option<u64> {
    segments
        .iter()
        .find(|(va, size, _)| addr >= *va && addr < va + size)
        .map(|(va, _, off)| addr - va + off)
}

/// A separate debug file, with the code segments of the file it is for
/// (`(vaddr, memsz, file offset)`), which turn that file's offsets into the
/// addresses the debug file's symbols have.
pub type DebugFile = (PathBuf, Vec<(u64, u64, u64)>);

/// The separate debug file of the ELF file at `path` (by build id, or by
/// debuglink).
pub fn debug_file_of(path: &Path) -> Option<DebugFile> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let build_id = file.build_id().ok().flatten();
    let debuglink = file
        .gnu_debuglink()
        .ok()
        .flatten()
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned());
    let dbg = find_debug_file(path, build_id, debuglink.as_deref())?;
    Some((dbg, code_segments(&file)))
}

/// The address of file offset `off` in one of `segments`. An offset on the
/// page where a segment starts counts as the segment's: a mapping of it
/// (/proc/PID/maps) starts on that page, and segments need not start on
/// one in the file (lld).
pub fn address_in(segments: &[(u64, u64, u64)], off: u64) -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    segments
        .iter()
        .find(|(_, size, o)| off < o.saturating_add(*size) && o.saturating_sub(off) < page)
        .map(|(va, _, o)| va.wrapping_add(off).wrapping_sub(*o))
}

/// The file offset of the entry point of the ELF file at `path`: code every
/// executable has, stripped or not (no symbols are read).
pub fn entry_offset(path: &Path) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data).context("not an ELF file")?;
    offset_in(&code_segments(&file), file.entry()).with_context(|| {
        format!(
            "the entry point of {} is in no code segment",
            path.display()
        )
    })
}

/// Read the function symbols of the ELF file at `path` (and of its separate
/// debug file when it is stripped and the debug file is installed).
pub fn load(path: &Path) -> Result<Binary> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|_| {
        anyhow::anyhow!(
            "cannot probe {}: not an ELF file (uprobes need an executable or a shared library)",
            path.display()
        )
    })?;
    let mut funcs = BTreeMap::new();
    let mut ifuncs = Vec::new();
    let stripped = file.symbol_table().is_none();
    collect_funcs(&file, &mut funcs, &mut ifuncs);
    let debuglink = file
        .gnu_debuglink()
        .ok()
        .flatten()
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned());
    let segments = code_segments(&file);
    let mut debug_file = None;
    if stripped {
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        if let Some(dbg) = find_debug_file(path, build_id.as_deref(), debuglink.as_deref()) {
            if let Ok(ddata) = std::fs::read(&dbg) {
                if let Ok(dfile) = object::File::parse(&*ddata) {
                    collect_funcs(&dfile, &mut funcs, &mut ifuncs);
                    debug_file = Some(dbg);
                }
            }
        }
    }
    let funcs: Vec<Func> = funcs.into_values().collect();
    Ok(Binary {
        path: path.to_path_buf(),
        funcs,
        segments,
        stripped,
        debuglink,
        debug_file,
        ifuncs,
    })
}

fn collect_funcs(
    file: &object::File<'_>,
    funcs: &mut BTreeMap<String, Func>,
    ifuncs: &mut Vec<String>,
) {
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        if sym.kind() != SymbolKind::Text || sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() {
            continue;
        }
        if !sym.is_definition() {
            // STT_GNU_IFUNC: the address is the resolver's, not the function's.
            ifuncs.push(name.to_string());
            continue;
        }
        funcs.entry(name.to_string()).or_insert_with(|| Func {
            name: name.to_string(),
            display: demangle(name),
            address: sym.address(),
            size: sym.size(),
        });
    }
}

/// The places gdb looks for a separate debug file.
fn find_debug_file(
    path: &Path,
    build_id: Option<&[u8]>,
    debuglink: Option<&str>,
) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(id) = build_id.filter(|id| id.len() > 1) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        candidates.push(PathBuf::from(format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &hex[..2],
            &hex[2..]
        )));
    }
    if let Some(link) = debuglink {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(dir) = real.parent() {
            candidates.push(dir.join(".debug").join(link));
            candidates.push(
                Path::new("/usr/lib/debug")
                    .join(dir.strip_prefix("/").unwrap_or(dir))
                    .join(link),
            );
            let beside = dir.join(link);
            if beside != real {
                candidates.push(beside);
            }
        }
    }
    candidates.into_iter().find(|c| c.is_file())
}

impl Binary {
    /// File offset of virtual address `addr` (from the executable PT_LOAD segment
    /// holding it); None outside code.
    pub fn file_offset(&self, addr: u64) -> Option<u64> {
        offset_in(&self.segments, addr)
    }

    /// The function whose symbol is `name`, else every function whose
    /// demangled name is `name` (several for generic Rust functions, whose
    /// legacy names differ only in the hash).
    fn funcs_named(&self, name: &str) -> Vec<&Func> {
        match self.funcs.binary_search_by(|f| f.name.as_str().cmp(name)) {
            Ok(i) => vec![&self.funcs[i]],
            Err(_) => self.funcs.iter().filter(|f| f.display == name).collect(),
        }
    }

    /// The function whose range holds `addr`, and the offset into it.
    fn containing(&self, addr: u64) -> Option<(&Func, u64)> {
        self.funcs
            .iter()
            .filter(|f| addr >= f.address && (addr < f.address + f.size.max(1)))
            .min_by_key(|f| addr - f.address)
            .map(|f| (f, addr - f.address))
    }

    fn no_symbol(&self, name: &str) -> anyhow::Error {
        let path = self.path.display();
        if self.ifuncs.iter().any(|i| i == name) {
            return anyhow::anyhow!(
                "`{name}` in {path} is an IFUNC: the loader picks an implementation at run time \
                 (see `tracer list uprobes {path} '*{name}*'`); probe that implementation instead"
            );
        }
        let mut all: Vec<&str> = self.funcs.iter().map(|f| f.name.as_str()).collect();
        all.extend(
            self.funcs
                .iter()
                .filter(|f| f.display != f.name)
                .map(|f| f.display.as_str()),
        );
        let close = names::closest(name, &all, 3);
        let mut msg = format!(
            "no function `{name}` in {path}{}",
            names::did_you_mean(&close)
        );
        if close.is_empty() && self.stripped {
            match (&self.debuglink, &self.debug_file) {
                (Some(link), None) => msg.push_str(&format!(
                    "; it is stripped and its debug file ({link}, via .gnu_debuglink) is not \
                     installed: install its debug symbols package (-dbgsym/-dbg)"
                )),
                (None, _) => msg.push_str(
                    "; it is stripped and has no .gnu_debuglink: only exported functions have names",
                ),
                _ => {}
            }
        }
        anyhow::anyhow!(msg)
    }

    /// The probe locations a pattern names.
    pub fn resolve(&self, pattern: &Pattern) -> Result<Vec<Location>> {
        let path = self.path.display();
        let at = |name: String, display: String, address: u64| -> Result<Location> {
            let file_offset = self.file_offset(address).with_context(|| {
                format!("{display}: address {address:#x} is not in the code (an executable segment) of {path}")
            })?;
            Ok(Location {
                name,
                display,
                address,
                file_offset,
            })
        };
        let whole = |f: &Func| at(f.name.clone(), f.display.clone(), f.address);
        let plus = |f: &Func, off: u64| {
            let plus = |n: &str| format!("{n}+{off:#x}");
            at(plus(&f.name), plus(&f.display), f.address + off)
        };
        if self.funcs.is_empty() && !matches!(pattern, Pattern::Address(_)) {
            match &self.debuglink {
                None => bail!(
                    "cannot probe {path} by name: it is stripped (no symbol table) and has no \
                     .gnu_debuglink to find its debug symbols; probe a raw address (0x...) or use \
                     an unstripped build"
                ),
                Some(link) => bail!(
                    "cannot probe {path} by name: it is stripped and its debug file ({link}, via \
                     .gnu_debuglink) is not installed; install its debug symbols (-dbgsym/-dbg \
                     package) or probe a raw address (0x...)"
                ),
            }
        }
        match pattern {
            Pattern::Exact(name) => {
                let found = self.funcs_named(name);
                if found.is_empty() {
                    return Err(self.no_symbol(name));
                }
                found.into_iter().map(whole).collect()
            }
            Pattern::Glob(g) => {
                let found: Vec<Location> = self
                    .funcs
                    .iter()
                    .filter(|f| f.matches(g))
                    .map(whole)
                    .collect::<Result<_>>()?;
                if found.is_empty() {
                    bail!("no function in {path} matches `{}`", g.as_str());
                }
                Ok(found)
            }
            Pattern::SymbolOffset(name, off) => {
                let f = match self.funcs_named(name)[..] {
                    [] => return Err(self.no_symbol(name)),
                    [f] => f,
                    ref several => bail!(
                        "`{name}` names {} functions in {path}; give the symbol of one: {}",
                        several.len(),
                        several
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                if f.size > 0 && *off >= f.size {
                    bail!(
                        "{name}+{off:#x} is past the end of {name} ({} bytes)",
                        f.size
                    );
                }
                Ok(vec![plus(f, *off)?])
            }
            Pattern::Address(addr) => Ok(vec![match self.containing(*addr) {
                Some((f, 0)) => whole(f)?,
                Some((f, off)) => plus(f, off)?,
                None => at(format!("{addr:#x}"), format!("{addr:#x}"), *addr)?,
            }]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn patterns() {
        let p = |s| Pattern::parse(s).unwrap();
        assert_eq!(p("malloc"), Pattern::Exact("malloc".into()));
        assert_eq!(p("malloc+0x10"), Pattern::SymbolOffset("malloc".into(), 16));
        assert_eq!(p("malloc+8"), Pattern::SymbolOffset("malloc".into(), 8));
        assert_eq!(p("0x1139"), Pattern::Address(0x1139));
        assert!(matches!(p("handle_*"), Pattern::Glob(_)));
        for bad in ["0xzz", "malloc+x", ""] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alias_names() {
        let mut names = vec![
            "__GI___libc_malloc",
            "__libc_malloc",
            "malloc",
            "malloc.cold",
        ];
        names.sort_by_key(|n| name_rank(n));
        assert_eq!(
            names,
            [
                "malloc",
                "malloc.cold",
                "__libc_malloc",
                "__GI___libc_malloc"
            ]
        );
    }

    #[test]
    fn probe_specs() {
        assert_eq!(split_probe("libc:malloc").unwrap(), ("libc", "malloc"));
        assert_eq!(
            split_probe("/usr/bin/bash:readline").unwrap(),
            ("/usr/bin/bash", "readline")
        );
        assert!(split_probe("malloc").is_err());
        assert!(split_probe("libc:").is_err());
        // The `::` of a demangled name belongs to the pattern.
        assert_eq!(
            split_probe("./app:app::handler*").unwrap(),
            ("./app", "app::handler*")
        );
        assert_eq!(
            split_probe("/tmp/a:b/app:<app::X as core::fmt::Debug>::fmt").unwrap(),
            ("/tmp/a:b/app", "<app::X as core::fmt::Debug>::fmt")
        );
        assert!(split_probe("./app::handler").is_err());
    }

    #[test]
    fn demangled_names() {
        // Rust legacy and v0: without the hash and crate disambiguators.
        assert_eq!(
            demangle("_ZN7fixture12geteuid_loop17h3049995d2379a65bE"),
            "fixture::geteuid_loop"
        );
        assert_eq!(
            demangle("_RNvNtCsgJUkdC2qcil_11tracer_ebpf4exec14try_exec_enter"),
            "tracer_ebpf::exec::try_exec_enter"
        );
        // C++ (Itanium), with the parameter types.
        assert_eq!(demangle("_ZN3app7handlerEi"), "app::handler(int)");
        assert_eq!(
            demangle("_ZNSs9push_backEc"),
            "std::string::push_back(char)"
        );
        assert_eq!(demangle("_Z3fooPKcz"), "foo(char const*, ...)");
        // C names and what only looks mangled stay as they are.
        for plain in ["malloc", "main", "_start", "__libc_malloc", "_Z", "_ZN3foo"] {
            assert_eq!(demangle(plain), plain);
        }
    }

    /// Our own Rust functions resolve by their demangled name, by the mangled
    /// one, and by a glob over either; the location keeps both names.
    #[test]
    fn rust_names_resolve_both_ways() {
        let me = std::env::current_exe().unwrap();
        let b = load(&me).unwrap();
        let path = "tracer::sys::elf::load";
        let locs = b.resolve(&Pattern::Exact(path.into())).unwrap();
        assert_eq!(locs.len(), 1, "{locs:?}");
        let load_fn = locs[0].clone();
        assert_eq!(load_fn.display, path);
        assert_ne!(load_fn.name, path, "the symbol is mangled");
        assert!(
            load_fn.name.starts_with("_ZN") || load_fn.name.starts_with("_R"),
            "{load_fn:?}"
        );
        let by_symbol = b.resolve(&Pattern::Exact(load_fn.name.clone())).unwrap();
        assert_eq!(by_symbol, vec![load_fn.clone()]);
        let glob = |g: &str| {
            b.resolve(&Pattern::parse(g).unwrap())
                .unwrap()
                .into_iter()
                .any(|l| l == load_fn)
        };
        assert!(glob("tracer::sys::elf::lo*"));
        assert!(glob(&format!(
            "{}*",
            &load_fn.name[..load_fn.name.len() - 4]
        )));
        let plus = b.resolve(&Pattern::SymbolOffset(path.into(), 1)).unwrap();
        assert_eq!(plus[0].display, format!("{path}+0x1"));
        assert_eq!(plus[0].name, format!("{}+0x1", load_fn.name));
        let at = b.resolve(&Pattern::Address(load_fn.address)).unwrap();
        assert_eq!(at[0].display, path);
        let e = err(b.resolve(&Pattern::Exact("tracer::sys::elf::laod".into())));
        assert!(e.contains("did you mean") && e.contains(path), "{e}");
    }

    #[test]
    fn ldconfig_cache() {
        let text = "714 libs found in cache `/etc/ld.so.cache'\n\
            \tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6\n\
            \tlibc.so.6 (libc6) => /lib/i386-linux-gnu/libc.so.6\n\
            \tlibcap.so.2 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcap.so.2\n\
            \tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n";
        let e = parse_ldconfig(text);
        assert_eq!(e.len(), 4);
        let libc = PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(pick_library(&e, "libc", Some("x86-64")), Some(libc.clone()));
        assert_eq!(pick_library(&e, "c", Some("x86-64")), Some(libc.clone()));
        assert_eq!(pick_library(&e, "libc.so.6", Some("x86-64")), Some(libc));
        assert_eq!(pick_library(&e, "libc.so.6", Some("nope")), None);
        assert_eq!(
            pick_library(&e, "z", Some("x86-64")),
            Some(PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"))
        );
        assert_eq!(pick_library(&e, "libca", Some("x86-64")), None);
    }

    #[test]
    fn own_binary_symbols() {
        // The test binary itself is an unstripped ELF with a `main`.
        let me = std::env::current_exe().unwrap();
        let b = load(&me).unwrap();
        assert!(!b.stripped);
        let locs = b.resolve(&Pattern::Exact("main".into())).unwrap();
        assert_eq!(locs.len(), 1);
        let main = &locs[0];
        assert!(main.file_offset > 0);
        let plus = b.resolve(&Pattern::SymbolOffset("main".into(), 1)).unwrap();
        assert_eq!(plus[0].address, main.address + 1);
        assert_eq!(plus[0].file_offset, main.file_offset + 1);
        assert_eq!(plus[0].name, "main+0x1");
        let by_addr = b.resolve(&Pattern::Address(main.address)).unwrap();
        assert_eq!(by_addr[0].name, "main");
        let e = err(b.resolve(&Pattern::Address(0x10)));
        assert!(e.contains("not in the code"), "{e}");
        let e = err(b.resolve(&Pattern::Exact("mian".into())));
        assert!(e.contains("did you mean") && e.contains("main"), "{e}");
    }

    #[test]
    fn not_elf_and_missing() {
        let e = err(load(Path::new("/etc/passwd")));
        assert!(e.contains("not an ELF"), "{e}");
        let e = err(resolve_target("/no/such/file", None));
        assert!(e.contains("no such file"), "{e}");
        let e = err(resolve_target("no-such-library-xyz", None));
        assert!(e.contains("cannot find"), "{e}");
    }
}
