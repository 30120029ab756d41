//! Finding (and, as root, mounting) tracefs, and reading tracepoint formats.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn mounted() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .find(|c| Path::new(c).join("events").is_dir())
        .map(PathBuf::from)
}

/// The tracefs mount point, mounting it at /sys/kernel/tracing if nothing is mounted.
///
/// Tracers started at once take turns: each holds an exclusive flock on the
/// mount-point directory while it checks and mounts, so exactly one mounts and
/// the others find it mounted. A mount that fails with EBUSY (someone else,
/// not a tracer, mounting at that moment) is followed by a few checks before
/// giving up.
pub fn ensure_mounted() -> Result<PathBuf> {
    if let Some(p) = mounted() {
        return Ok(p);
    }
    let target = CANDIDATES[0];
    let dir = std::fs::File::open(target);
    if let Ok(d) = &dir {
        use std::os::fd::AsRawFd as _;
        // Released when `dir` is closed, at the end of this function.
        unsafe { libc::flock(d.as_raw_fd(), libc::LOCK_EX) };
        if let Some(p) = mounted() {
            return Ok(p);
        }
    }
    // Mounted, but closed to this process (tracefs is root's, mode 0700).
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(at) = tracefs_mount_point(&mountinfo) {
        if let Some(p) = mounted() {
            return Ok(p);
        }
        bail!(
            "tracefs is mounted at {at} but this process cannot read it: tracepoints need \
             root, or CAP_DAC_READ_SEARCH besides CAP_BPF and CAP_PERFMON"
        );
    }
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EBUSY) {
            for _ in 0..50 {
                if let Some(p) = mounted() {
                    return Ok(p);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        bail!(
            "tracefs is not mounted and mounting it failed ({err}); mount it with \
             `mount -t tracefs nodev {target}` and try again"
        );
    }
    log::info!("mounted tracefs at {target}");
    Ok(PathBuf::from(target))
}

/// Where tracefs is mounted, from /proc/self/mountinfo (`... MOUNTPOINT ... - tracefs ...`).
fn tracefs_mount_point(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "tracefs")
            .then(|| left.split_whitespace().nth(4).map(str::to_string))?
    })
}

/// One field of a tracepoint's format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub decl: String,
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
}

/// Parse a `format` file (`field:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;`).
pub fn parse_format(text: &str) -> Vec<Field> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line
                .trim()
                .strip_prefix("field:")?
                .split(';')
                .map(str::trim);
            let decl = parts.next().unwrap_or_default().to_string();
            let (mut offset, mut size, mut signed) = (None, None, false);
            for p in parts {
                match p.split_once(':') {
                    Some(("offset", v)) => offset = v.parse().ok(),
                    Some(("size", v)) => size = v.parse().ok(),
                    Some(("signed", v)) => signed = v == "1",
                    _ => {}
                }
            }
            // `char comm[16]`, `const char * filename`, `__data_loc char[] name`: the last word.
            let last = decl.rsplit(' ').next().unwrap_or_default();
            let name = last.split('[').next().unwrap_or(last);
            Some(Field {
                name: name.trim_start_matches('*').to_string(),
                offset: offset?,
                size: size?,
                signed,
                decl,
            })
        })
        .collect()
}

/// The fields of `category:name`.
pub fn tracepoint_format(tracefs: &Path, category: &str, name: &str) -> Result<Vec<Field>> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no tracepoint {category}:{name} ({})", path.display()))?;
    Ok(parse_format(&text))
}

/// The offset of `field` in `category:name`.
pub fn field_offset(tracefs: &Path, category: &str, name: &str, field: &str) -> Result<usize> {
    tracepoint_format(tracefs, category, name)?
        .into_iter()
        .find(|f| f.name == field)
        .map(|f| f.offset)
        .ok_or_else(|| anyhow!("tracepoint {category}:{name} has no field `{field}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mount_point() {
        let mi = "22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
                  36 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev shared:15 - tracefs nodev rw\n";
        assert_eq!(
            tracefs_mount_point(mi).as_deref(),
            Some("/sys/kernel/tracing")
        );
        assert_eq!(
            tracefs_mount_point("22 1 0:21 / /sys rw - sysfs sysfs rw\n"),
            None
        );
    }

    const FORK: &str = "name: sched_process_fork
ID: 300
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;

print fmt: \"comm=%s pid=%d child_comm=%s child_pid=%d\", REC->parent_comm, REC->parent_pid, REC->child_comm, REC->child_pid
";

    #[test]
    fn parses_fork_format() {
        let f = parse_format(FORK);
        assert_eq!(f.len(), 8);
        let child = f.iter().find(|f| f.name == "child_pid").unwrap();
        assert_eq!((child.offset, child.size, child.signed), (44, 4, true));
        let comm = f.iter().find(|f| f.name == "parent_comm").unwrap();
        assert_eq!((comm.offset, comm.size), (8, 16));
        assert_eq!(comm.decl, "char parent_comm[16]");
        let ty = f.iter().find(|f| f.name == "common_type").unwrap();
        assert!(!ty.signed);
    }
}
