//! cgroup v2: where it is mounted, and the directory of a cgroup id (the
//! directory's inode number, which `bpf_get_current_cgroup_id` returns).
use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// The cgroup v2 mount point from a mountinfo text (field 5 is the mount
/// point; the filesystem type follows the ` - ` separator).
fn cgroup2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// in the hybrid layout), if it is.
pub fn cgroup2_mount() -> Option<PathBuf> {
    cgroup2_mount_in(&std::fs::read_to_string("/proc/self/mountinfo").ok()?)
}

/// `statfs` magic numbers (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// A `--cgroup` argument as the cgroup v2 directory it names: absolute, or
/// relative to the cgroup v2 mount; one clear error for anything else.
pub fn resolve(arg: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::bail;
    let mount = cgroup2_mount();
    let path = if arg.is_absolute() {
        arg.to_path_buf()
    } else {
        match &mount {
            Some(m) => m.join(arg),
            None => bail!(
                "--cgroup {}: cgroup v2 is not mounted here, so a relative path means nothing",
                arg.display()
            ),
        }
    };
    let Ok(meta) = std::fs::metadata(&path) else {
        bail!(
            "--cgroup {}: no such cgroup ({} does not exist)",
            arg.display(),
            path.display()
        );
    };
    let magic = statfs_magic(&path);
    if !meta.is_dir() || (magic != Some(CGROUP2_SUPER_MAGIC) && magic != Some(CGROUP_SUPER_MAGIC)) {
        bail!(
            "--cgroup {}: {} is not a cgroup directory{}",
            arg.display(),
            path.display(),
            mount.as_ref().map_or(String::new(), |m| format!(
                " (cgroup v2 is at {})",
                m.display()
            ))
        );
    }
    if magic == Some(CGROUP_SUPER_MAGIC) {
        bail!(
            "--cgroup {}: {} is a cgroup v1 hierarchy; tracer filters on cgroup v2{}",
            arg.display(),
            path.display(),
            mount
                .as_ref()
                .map_or(" (not mounted here)".into(), |m| format!(
                    ", mounted at {}",
                    m.display()
                ))
        );
    }
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// The filesystem type of `path` (`statfs`'s `f_type`).
fn statfs_magic(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

/// The directories below `root`, breadth-first (shallowest first), with their
/// depth (`root` itself is 0). Those at `max_depth` are listed but not read;
/// at most `max_reads` directories are read.
pub fn dirs_below(root: &Path, max_depth: usize, max_reads: usize) -> Vec<(PathBuf, usize)> {
    let mut out = vec![(root.to_path_buf(), 0)];
    let mut next = 0;
    while next < out.len() && next < max_reads {
        let (dir, depth) = out[next].clone();
        next += 1;
        if depth >= max_depth {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push((e.path(), depth + 1));
            }
        }
    }
    out
}

/// cgroup id -> path below the root (`/` for the root itself), for every
/// cgroup directory under `root`.
pub fn paths_by_id(root: &Path) -> BTreeMap<u64, String> {
    dirs_below(root, usize::MAX, usize::MAX)
        .into_iter()
        .filter_map(|(dir, _)| {
            let ino = std::fs::metadata(&dir).ok()?.ino();
            let rel = dir.strip_prefix(root).unwrap_or(&dir);
            Some((ino, format!("/{}", rel.display())))
        })
        .collect()
}

/// The cgroup v2 path in a `/proc/PID/cgroup` text: its `0::` line.
pub fn v2_path_in(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Names the cgroups of processes as cgroup v2 paths below the mount
/// (`/system.slice/nginx.service`, as `serve --by cgroup` labels them), and
/// remembers them: a process that has exited, or whose cgroup was removed
/// since, keeps the name found while it was there.
#[derive(Debug, Default)]
pub struct Namer {
    root: Option<PathBuf>,
    paths: BTreeMap<u64, String>,
    /// Ids the last walk did not find (their directory was gone).
    missing: BTreeSet<u64>,
    /// What /proc/PID/cgroup said last, for processes without an id.
    by_pid: BTreeMap<u32, String>,
}

impl Namer {
    pub fn new() -> Self {
        Namer {
            root: cgroup2_mount(),
            ..Namer::default()
        }
    }

    /// A namer for a run with `--show-cgroup` (`on`), else an idle one that
    /// never reads the tree.
    pub fn when(on: bool) -> Self {
        if on {
            Namer::new()
        } else {
            Namer::default()
        }
    }

    /// Learn the paths of the cgroup ids not known yet (0 is no id): one
    /// walk of the tree for all of them, none when all are known.
    pub fn learn(&mut self, ids: impl IntoIterator<Item = u64>) {
        let unknown: BTreeSet<u64> = ids
            .into_iter()
            .filter(|id| *id != 0 && !self.paths.contains_key(id) && !self.missing.contains(id))
            .collect();
        if unknown.is_empty() {
            return;
        }
        if let Some(root) = &self.root {
            self.paths.extend(paths_by_id(root));
        }
        let paths = &self.paths;
        self.missing
            .extend(unknown.into_iter().filter(|id| !paths.contains_key(id)));
    }

    /// The cgroup paths of the processes `pids`, whose records (with their
    /// cgroup ids) are in `procs`: one walk of the tree for the ids not known
    /// yet, then each process named once (`of`); those with no name are left out.
    pub fn name_all(
        &mut self,
        pids: impl IntoIterator<Item = u32>,
        procs: &BTreeMap<u32, tracer_common::ProcInfo>,
    ) -> BTreeMap<u32, String> {
        let pids: BTreeSet<u32> = pids.into_iter().collect();
        let id = |pid: &u32| procs.get(pid).map_or(0, |info| info.cgroup);
        self.learn(pids.iter().map(id));
        pids.iter()
            .filter_map(|pid| Some((*pid, self.of(*pid, id(pid))?)))
            .collect()
    }

    /// The cgroup path of process `pid`, whose record holds cgroup id `id`
    /// (0 when none): the id's path (from `learn`), else what its
    /// /proc/PID/cgroup says now or said when last read, else nothing.
    pub fn of(&mut self, pid: u32, id: u64) -> Option<String> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| v2_path_in(&t));
        match now {
            Some(p) => {
                self.by_pid.insert(pid, p.clone());
                Some(p)
            }
            None => self.by_pid.get(&pid).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cgroup_directories_resolve() {
        let e = resolve(&std::env::temp_dir()).unwrap_err().to_string();
        assert!(e.contains("is not a cgroup directory"), "{e}");
        let e = resolve(Path::new("/nonexistent/cg"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such cgroup"), "{e}");
        if let Some(m) = cgroup2_mount() {
            assert_eq!(resolve(Path::new(".")).unwrap(), m);
            assert_eq!(resolve(&m).unwrap(), m);
        }
    }

    #[test]
    fn finds_the_v2_mount() {
        let hybrid = "25 31 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount_in("1 2 0:1 / / rw - ext4 /dev/sda rw\n"),
            None
        );
    }

    #[test]
    fn reads_proc_cgroup() {
        let hybrid = "12:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n\
                      0::/user.slice/session-1.scope\n";
        assert_eq!(
            v2_path_in(hybrid).as_deref(),
            Some("/user.slice/session-1.scope")
        );
        assert_eq!(v2_path_in("0::/\n").as_deref(), Some("/"));
        assert_eq!(v2_path_in("4:memory:/x\n"), None);
    }

    #[test]
    fn names_processes_by_id_then_proc() {
        let Some(root) = cgroup2_mount() else {
            // Without cgroup v2 nothing has a name.
            let mut n = Namer::new();
            n.learn([1]);
            assert_eq!(n.of(u32::MAX, 1), None);
            return;
        };
        let mut n = Namer::new();
        let ino = std::fs::metadata(&root).unwrap().ino();
        n.learn([ino, u64::MAX]);
        assert_eq!(n.of(u32::MAX, ino).as_deref(), Some("/"));
        assert!(n.missing.contains(&u64::MAX));
        // No id: this process's own /proc/PID/cgroup, remembered.
        let me = std::process::id();
        let mine = v2_path_in(&std::fs::read_to_string("/proc/self/cgroup").unwrap());
        assert!(mine.is_some());
        assert_eq!(n.of(me, 0), mine);
        assert_eq!(n.of(me, u64::MAX), mine);
        n.by_pid.insert(u32::MAX, "/gone.scope".into());
        assert_eq!(n.of(u32::MAX, 0).as_deref(), Some("/gone.scope"));
        assert_eq!(n.of(u32::MAX - 1, 0), None);
    }

    #[test]
    fn names_this_machines_cgroups() {
        // Probed: only where cgroup v2 is mounted.
        if let Some(root) = cgroup2_mount() {
            let paths = paths_by_id(&root);
            let ino = std::fs::metadata(&root).unwrap().ino();
            assert_eq!(paths.get(&ino).map(String::as_str), Some("/"));
        }
    }
}
