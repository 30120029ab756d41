//! `--container ID|NAME`: the cgroup v2 directory of a container, found the
//! way the runtimes lay their cgroups out, without asking a runtime (no
//! socket, no daemon, no runtime binary on the box). The cgroup v2 tree is
//! walked for directory names such as `docker-<id>.scope`; names come from
//! the state files Docker and Podman keep on disk.
//!
//! An argument is matched as Docker does: a full id first, then a name, then
//! a unique id prefix (of at least [`MIN_PREFIX`] hex digits, so that a short
//! typo does not pick a container by chance).
use std::{
    fmt,
    path::{Path, PathBuf},
};

/// How deep below the cgroup v2 mount the walk looks. Kubernetes' systemd
/// layout puts a container at depth 4
/// (`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`),
/// rootless Podman at 5 or 6, a kind node's pods (Kubernetes inside a Docker
/// container) at 7.
pub const MAX_DEPTH: usize = 8;
/// At most this many directories are read, whatever the tree.
const MAX_DIRS: usize = 200_000;
/// The shortest id prefix taken (Docker's `docker ps` shows 12).
pub const MIN_PREFIX: usize = 4;

/// The directory layouts recognised, for messages and `--help`.
pub const LAYOUTS: &str = "docker-ID.scope, docker/ID, libpod-ID.scope, libpod_parent/libpod-ID, \
                           cri-containerd-ID.scope, crio-ID.scope, nerdctl-ID.scope, \
                           kubepods/.../podUID/ID";

/// Environment variables naming where the runtimes keep their state (each a
/// colon-separated list of directories).
pub const DOCKER_ROOT_ENV: &str = "TRACER_DOCKER_ROOT";
pub const PODMAN_ROOT_ENV: &str = "TRACER_PODMAN_ROOT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    Crio,
    /// A container of a Kubernetes pod in the cgroupfs layout
    /// (`kubepods/<qos>/pod<uid>/<id>`), whose runtime the path does not say.
    Kubernetes,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Docker => "Docker",
            Runtime::Podman => "Podman",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "CRI-O",
            Runtime::Kubernetes => "Kubernetes",
        })
    }
}

/// A container found by its cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// 64 lowercase hex digits.
    pub id: String,
    pub runtime: Runtime,
    pub dir: PathBuf,
}

/// The names a runtime's state gives a container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub runtime: Runtime,
    pub names: Vec<String>,
}

/// A resolved `--container` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Its first name, if a runtime's state gives one.
    pub name: Option<String>,
    pub runtime: Runtime,
    /// Its cgroup v2 directory.
    pub dir: PathBuf,
}

impl Container {
    /// As the banner names it: `web (3f2a1b0c9d8e)`, or the short id alone.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", short(&self.id)),
            None => short(&self.id).to_string(),
        }
    }
}

/// The 12-digit id `docker ps` shows.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Why an argument names no container: one line each.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "--container {arg}: cgroup v2 is not mounted here, and tracer finds containers by \
         their cgroup v2 directories"
    )]
    NoCgroup2 { arg: String },
    #[error(
        "--container {arg}: no container cgroups on this machine (looked {MAX_DEPTH} levels \
         deep under {root} for {LAYOUTS}); is the container running, with cgroup v2?"
    )]
    NoneFound { arg: String, root: String },
    #[error(
        "--container {arg}: no such container among the {found} running here (give a full id, \
         an id prefix of at least {MIN_PREFIX} hex digits, or a Docker or Podman name){hint}"
    )]
    Unknown {
        arg: String,
        found: usize,
        hint: &'static str,
    },
    #[error("--container {arg}: ambiguous, it matches {}: {}; give more of the id", .candidates.len(), .candidates.join(", "))]
    Ambiguous {
        arg: String,
        /// `3f2a1b0c9d8e (web, Docker)`, at most 5, then `...`.
        candidates: Vec<String>,
    },
    #[error("--container {arg}: {runtime} container {label} has no cgroup under {root}: it is not running")]
    NotRunning {
        arg: String,
        runtime: Runtime,
        label: String,
        root: String,
    },
}

/// 64 lowercase hex digits.
fn is_id(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The container a cgroup directory named `name`, in a directory named
/// `parent`, belongs to, if its name follows a runtime's layout. The
/// monitors' scopes (`libpod-conmon-ID.scope`, `crio-conmon-ID.scope`) are
/// not containers and do not match.
pub fn container_of<'a>(parent: &str, name: &'a str) -> Option<(Runtime, &'a str)> {
    let bare = name.strip_suffix(".scope").unwrap_or(name);
    for (prefix, runtime) in [
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("nerdctl-", Runtime::Containerd),
    ] {
        if let Some(id) = bare.strip_prefix(prefix).filter(|id| is_id(id)) {
            return Some((runtime, id));
        }
    }
    if !is_id(name) {
        return None;
    }
    let runtime = match parent {
        "docker" => Runtime::Docker,
        "nerdctl" => Runtime::Containerd,
        p if p.starts_with("pod") => Runtime::Kubernetes,
        _ => return None,
    };
    Some((runtime, name))
}

/// The last component of a path, as UTF-8 ("" if none or not UTF-8).
fn file_name(p: Option<&Path>) -> &str {
    p.and_then(|p| p.file_name()?.to_str()).unwrap_or("")
}

/// Every container cgroup under `root`, at most [`MAX_DEPTH`] levels down,
/// shallowest first; an id found twice (nested layouts) counts once.
pub fn find(root: &Path) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    // Containers may run containers (Docker in Docker, kind): the whole
    // depth is walked.
    for (dir, _) in super::cgroup::dirs_below(root, MAX_DEPTH, MAX_DIRS)
        .into_iter()
        .skip(1)
    {
        let (parent, own) = (file_name(dir.parent()), file_name(Some(&dir)));
        if let Some((runtime, id)) = container_of(parent, own) {
            if !out.iter().any(|f| f.id == id) {
                out.push(Found {
                    id: id.to_string(),
                    runtime,
                    dir: dir.clone(),
                });
            }
        }
    }
    out
}

/// A Docker container's name from its `config.v2.json`: `"Name": "/web"` is `web`.
pub fn docker_name(config: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(config).ok()?;
    let name = v.get("Name")?.as_str()?;
    let name = name.strip_prefix('/').unwrap_or(name);
    (!name.is_empty()).then(|| name.to_string())
}

/// Podman's `containers.json` (a JSON array of objects with `id` and
/// `names`): (id, names) of each container.
pub fn podman_names(containers: &str) -> Vec<(String, Vec<String>)> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(containers) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|c| {
            let id = c.get("id")?.as_str()?.to_ascii_lowercase();
            let names = c
                .get("names")
                .and_then(|n| n.as_array())
                .map(|n| {
                    n.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            is_id(&id).then_some((id, names))
        })
        .collect()
}

/// Docker's `data-root` (or its old name `graph`) from `daemon.json`.
pub fn docker_data_root(daemon_json: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(daemon_json).ok()?;
    let root = v.get("data-root").or_else(|| v.get("graph"))?.as_str()?;
    (!root.is_empty()).then(|| PathBuf::from(root))
}

/// Podman's `graphroot` from `storage.conf` (`[storage]`).
pub fn podman_graphroot(storage_conf: &str) -> Option<PathBuf> {
    let v: toml::Table = storage_conf.parse().ok()?;
    let root = v.get("storage")?.get("graphroot")?.as_str()?;
    (!root.is_empty()).then(|| PathBuf::from(root))
}

/// The directories of `var` (colon-separated), or else the one `default` gives.
fn roots(var: &str, default: impl FnOnce() -> PathBuf) -> Vec<PathBuf> {
    match std::env::var_os(var) {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => vec![default()],
    }
}

/// Docker's data roots: `TRACER_DOCKER_ROOT`, else the `data-root` of
/// /etc/docker/daemon.json, else /var/lib/docker.
fn docker_roots() -> Vec<PathBuf> {
    roots(DOCKER_ROOT_ENV, || {
        std::fs::read_to_string("/etc/docker/daemon.json")
            .ok()
            .and_then(|s| docker_data_root(&s))
            .unwrap_or_else(|| "/var/lib/docker".into())
    })
}

/// Podman's storage roots: `TRACER_PODMAN_ROOT`, else the `graphroot` of
/// /etc/containers/storage.conf, else /var/lib/containers/storage.
fn podman_roots() -> Vec<PathBuf> {
    roots(PODMAN_ROOT_ENV, || {
        std::fs::read_to_string("/etc/containers/storage.conf")
            .ok()
            .and_then(|s| podman_graphroot(&s))
            .unwrap_or_else(|| "/var/lib/containers/storage".into())
    })
}

/// The names in the runtimes' state under these roots: Docker's
/// `<root>/containers/<id>/config.v2.json`, Podman's
/// `<root>/<driver>-containers/containers.json`. Missing or unreadable
/// files name nothing.
pub fn named(docker: &[PathBuf], podman: &[PathBuf]) -> Vec<Named> {
    let mut out = Vec::new();
    for root in docker {
        let Ok(entries) = std::fs::read_dir(root.join("containers")) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(id) = e
                .file_name()
                .to_str()
                .filter(|n| is_id(n))
                .map(str::to_string)
            else {
                continue;
            };
            let config = std::fs::read_to_string(e.path().join("config.v2.json"));
            if let Some(name) = config.ok().and_then(|c| docker_name(&c)) {
                out.push(Named {
                    id,
                    runtime: Runtime::Docker,
                    names: vec![name],
                });
            }
        }
    }
    for root in podman {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().ends_with("-containers") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(e.path().join("containers.json")) {
                out.extend(podman_names(&text).into_iter().map(|(id, names)| Named {
                    id,
                    runtime: Runtime::Podman,
                    names,
                }));
            }
        }
    }
    out
}

/// The container `arg` names among those `found` running (their cgroups
/// under `root`) and those the runtimes' state `named`: a full id, a name,
/// or a unique id prefix of at least [`MIN_PREFIX`] hex digits, in that order.
pub fn pick(arg: &str, found: &[Found], named: &[Named], root: &Path) -> Result<Container, Error> {
    let wanted = arg.trim();
    let lower = wanted.to_ascii_lowercase();
    let name_of = |id: &str| {
        named
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.names.first().cloned())
    };
    let container = |f: &Found| Container {
        id: f.id.clone(),
        name: name_of(&f.id),
        runtime: f.runtime,
        dir: f.dir.clone(),
    };
    let not_running = |n: &Named| Error::NotRunning {
        arg: arg.to_string(),
        runtime: n.runtime,
        label: match n.names.first() {
            Some(name) => format!("{name} ({})", short(&n.id)),
            None => short(&n.id).to_string(),
        },
        root: root.display().to_string(),
    };
    let ambiguous = |mut ids: Vec<(&str, Runtime)>| {
        ids.sort();
        ids.dedup();
        let mut candidates: Vec<String> = ids
            .iter()
            .take(5)
            .map(|(id, runtime)| match name_of(id) {
                Some(name) => format!("{} ({name}, {runtime})", short(id)),
                None => format!("{} ({runtime})", short(id)),
            })
            .collect();
        if ids.len() > 5 {
            candidates.push(format!("and {} more", ids.len() - 5));
        }
        Error::Ambiguous {
            arg: arg.to_string(),
            candidates,
        }
    };
    // A full id.
    if let Some(f) = found.iter().find(|f| f.id == lower) {
        return Ok(container(f));
    }
    // A name (Docker's names start with a slash in its state, not on its command line).
    let bare = wanted.strip_prefix('/').unwrap_or(wanted);
    let mut by_name: Vec<&Named> = named
        .iter()
        .filter(|n| n.names.iter().any(|x| x == bare))
        .collect();
    by_name.sort_by(|a, b| a.id.cmp(&b.id));
    by_name.dedup_by(|a, b| a.id == b.id);
    match by_name[..] {
        [n] => {
            return match found.iter().find(|f| f.id == n.id) {
                Some(f) => Ok(container(f)),
                None => Err(not_running(n)),
            };
        }
        [_, _, ..] => {
            return Err(ambiguous(
                by_name.iter().map(|n| (n.id.as_str(), n.runtime)).collect(),
            ))
        }
        [] => {}
    }
    // A unique id prefix.
    if lower.len() >= MIN_PREFIX && is_hex(&lower) {
        let running: Vec<&Found> = found.iter().filter(|f| f.id.starts_with(&lower)).collect();
        match running[..] {
            [f] => return Ok(container(f)),
            [_, _, ..] => {
                return Err(ambiguous(
                    running.iter().map(|f| (f.id.as_str(), f.runtime)).collect(),
                ))
            }
            [] => {
                let stopped: Vec<&Named> =
                    named.iter().filter(|n| n.id.starts_with(&lower)).collect();
                if let [n] = stopped[..] {
                    return Err(not_running(n));
                }
            }
        }
    }
    if found.is_empty() {
        return Err(Error::NoneFound {
            arg: arg.to_string(),
            root: root.display().to_string(),
        });
    }
    Err(Error::Unknown {
        arg: arg.to_string(),
        found: found.len(),
        hint: if is_hex(&lower) && lower.len() < MIN_PREFIX {
            "; an id prefix needs at least 4 hex digits"
        } else {
            ""
        },
    })
}

/// Resolve every `--container` argument to its container's cgroup v2
/// directory: one walk of the cgroup tree and one read of the runtimes'
/// state for all of them.
pub fn resolve_all(args: &[String]) -> anyhow::Result<Vec<Container>> {
    let Some(first) = args.first() else {
        return Ok(Vec::new());
    };
    let Some(root) = super::cgroup::cgroup2_mount() else {
        return Err(Error::NoCgroup2 { arg: first.clone() }.into());
    };
    let found = find(&root);
    let named = named(&docker_roots(), &podman_roots());
    log::debug!(
        "containers: {} cgroups under {}, {} names in the runtimes' state",
        found.len(),
        root.display(),
        named.len()
    );
    args.iter()
        .map(|a| pick(a, &found, &named, &root).map_err(anyhow::Error::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const B: &str = "3f2a99990000111122223333444455556666777788889999aaaabbbbccccdddd";
    const C: &str = "77aa0000111122223333444455556666777788889999aaaabbbbccccddddeeee";

    #[test]
    fn recognises_the_runtimes_layouts() {
        let cases = [
            (
                "system.slice",
                format!("docker-{A}.scope"),
                Some(Runtime::Docker),
            ),
            ("docker", A.to_string(), Some(Runtime::Docker)),
            (
                "machine.slice",
                format!("libpod-{A}.scope"),
                Some(Runtime::Podman),
            ),
            (
                "libpod_parent",
                format!("libpod-{A}"),
                Some(Runtime::Podman),
            ),
            (
                "kubepods-besteffort-pod1234.slice",
                format!("cri-containerd-{A}.scope"),
                Some(Runtime::Containerd),
            ),
            (
                "kubepods-pod1.slice",
                format!("crio-{A}.scope"),
                Some(Runtime::Crio),
            ),
            (
                "pod0b5e0f46-3c5e-4b5e-9d3e-1a2b3c4d5e6f",
                A.to_string(),
                Some(Runtime::Kubernetes),
            ),
            (
                "nerdctl.slice",
                format!("nerdctl-{A}.scope"),
                Some(Runtime::Containerd),
            ),
            // The monitors are not containers.
            ("machine.slice", format!("libpod-conmon-{A}.scope"), None),
            (
                "kubepods-pod1.slice",
                format!("crio-conmon-{A}.scope"),
                None,
            ),
            // Not an id: too short, upper case, or a bare id in an unknown parent.
            ("system.slice", format!("docker-{}.scope", &A[..63]), None),
            (
                "system.slice",
                format!("docker-{}.scope", A.to_uppercase()),
                None,
            ),
            ("system.slice", A.to_string(), None),
            ("system.slice", "docker.service".to_string(), None),
        ];
        for (parent, name, want) in cases {
            let got = container_of(parent, &name);
            assert_eq!(got.map(|g| g.0), want, "{parent}/{name}");
            if let Some((_, id)) = got {
                assert_eq!(id, A);
            }
        }
    }

    /// A fake cgroup tree (plain directories: the walk only reads names).
    fn tree(dirs: &[&str]) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "tracer-container-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        root
    }

    #[test]
    fn walks_the_tree_within_its_depth() {
        let deep = format!("a/b/c/d/e/f/g/h/docker-{C}.scope");
        let root = tree(&[
            &format!("system.slice/docker-{A}.scope/init.scope"),
            &format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{B}.scope"),
            &format!("machine.slice/libpod-conmon-{C}.scope"),
            &deep,
        ]);
        let found = find(&root);
        let _ = std::fs::remove_dir_all(&root);
        let ids: Vec<(&str, Runtime)> = found.iter().map(|f| (f.id.as_str(), f.runtime)).collect();
        assert_eq!(ids, [(A, Runtime::Docker), (B, Runtime::Containerd)]);
        assert_eq!(
            found[0].dir,
            root.join(format!("system.slice/docker-{A}.scope"))
        );
    }

    #[test]
    fn reads_names() {
        let config = r#"{"ID":"x","Name":"/web","State":{"Running":true}}"#;
        assert_eq!(docker_name(config), Some("web".into()));
        assert_eq!(docker_name(r#"{"Name":""}"#), None);
        assert_eq!(docker_name("not json"), None);
        let podman = format!(
            r#"[{{"id":"{A}","names":["db","db-alias"],"image":"x"}},{{"id":"short","names":["bad"]}},{{"id":"{C}"}}]"#
        );
        assert_eq!(
            podman_names(&podman),
            vec![
                (
                    A.to_string(),
                    vec!["db".to_string(), "db-alias".to_string()]
                ),
                (C.to_string(), vec![])
            ]
        );
        assert!(podman_names("{}").is_empty());
        assert_eq!(
            docker_data_root(r#"{"data-root": "/srv/docker", "debug": true}"#),
            Some("/srv/docker".into())
        );
        assert_eq!(
            docker_data_root(r#"{"graph": "/old"}"#),
            Some("/old".into())
        );
        assert_eq!(docker_data_root("{}"), None);
        let conf = "[storage]\ndriver = \"overlay\"\ngraphroot = \"/srv/containers\"\nrunroot = \"/run/containers\"\n";
        assert_eq!(podman_graphroot(conf), Some("/srv/containers".into()));
        assert_eq!(podman_graphroot("[storage]\ndriver = \"vfs\"\n"), None);
    }

    #[test]
    fn reads_the_state_directories() {
        let root = tree(&[
            &format!("docker/containers/{A}"),
            "docker/containers/not-an-id",
            "podman/overlay-containers",
        ]);
        std::fs::write(
            root.join(format!("docker/containers/{A}/config.v2.json")),
            r#"{"Name":"/web"}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("podman/overlay-containers/containers.json"),
            format!(r#"[{{"id":"{C}","names":["db"]}}]"#),
        )
        .unwrap();
        let n = named(
            &[root.join("docker")],
            &[root.join("podman"), root.join("none")],
        );
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            n,
            [
                Named {
                    id: A.into(),
                    runtime: Runtime::Docker,
                    names: vec!["web".into()]
                },
                Named {
                    id: C.into(),
                    runtime: Runtime::Podman,
                    names: vec!["db".into()]
                }
            ]
        );
    }

    fn found(id: &str, runtime: Runtime) -> Found {
        Found {
            id: id.into(),
            runtime,
            dir: PathBuf::from(format!("/cg/{id}")),
        }
    }

    fn name(id: &str, runtime: Runtime, n: &str) -> Named {
        Named {
            id: id.into(),
            runtime,
            names: vec![n.into()],
        }
    }

    #[test]
    fn matches_ids_names_and_prefixes() {
        let root = Path::new("/cg");
        let running = [found(A, Runtime::Docker), found(B, Runtime::Docker)];
        let names = [
            name(A, Runtime::Docker, "web"),
            name(C, Runtime::Podman, "old"),
        ];
        let pick = |arg: &str| pick(arg, &running, &names, root);
        // Full id, upper case too; names with or without Docker's slash.
        assert_eq!(pick(A).unwrap().dir, PathBuf::from(format!("/cg/{A}")));
        assert_eq!(pick(&A.to_uppercase()).unwrap().id, A);
        let web = pick("web").unwrap();
        assert_eq!(
            (web.id.as_str(), web.label()),
            (A, "web (3f2a1b0c9d8e)".into())
        );
        assert_eq!(pick("/web").unwrap().id, A);
        // A unique prefix; B has no name.
        let b = pick("3f2a9").unwrap();
        assert_eq!((b.id.as_str(), b.label()), (B, "3f2a99990000".into()));
        // Ambiguous: both candidates listed.
        let e = pick("3f2a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--container 3f2a: ambiguous, it matches 2: 3f2a1b0c9d8e (web, Docker), \
             3f2a99990000 (Docker); give more of the id"
        );
        // Too short for a prefix.
        let e = pick("3f2").unwrap_err();
        assert!(matches!(e, Error::Unknown { found: 2, .. }), "{e}");
        assert!(e.to_string().contains("at least 4 hex digits"), "{e}");
        // Known to Podman, but not running.
        let e = pick("old").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--container old: Podman container old (77aa00001111) has no cgroup under /cg: it is not running"
        );
        assert!(matches!(
            pick("77aa00").unwrap_err(),
            Error::NotRunning { .. }
        ));
        // Unknown.
        let e = pick("nope").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--container nope: no such container among the 2 running here (give a full id, an \
             id prefix of at least 4 hex digits, or a Docker or Podman name)"
        );
    }

    #[test]
    fn a_name_of_two_runtimes_is_ambiguous() {
        let running = [found(A, Runtime::Docker), found(C, Runtime::Podman)];
        let names = [
            name(A, Runtime::Docker, "web"),
            name(C, Runtime::Podman, "web"),
        ];
        let e = pick("web", &running, &names, Path::new("/cg")).unwrap_err();
        assert!(
            matches!(&e, Error::Ambiguous { candidates, .. } if candidates.len() == 2),
            "{e}"
        );
    }

    #[test]
    fn no_containers_says_where_it_looked() {
        let e = pick("web", &[], &[], Path::new("/sys/fs/cgroup")).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::NoneFound { .. }));
        assert!(text.contains("under /sys/fs/cgroup"), "{text}");
        assert!(
            text.contains("docker-ID.scope") && text.contains("crio-ID.scope"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
