//! cgroup v2: where the hierarchy is mounted, `--cgroup PATH` targets, and id -> path names for
//! the `cgroup_path` column (a cgroup v2 id is the inode number of its directory).
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use recorder_common::CgroupTarget;

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// A `--cgroup` argument: a directory in the cgroup2 hierarchy, given as an absolute path under
/// its mount (/sys/fs/cgroup/system.slice/x.service) or relative to it (system.slice/x.service).
pub fn target(arg: &str, mount: &Path) -> anyhow::Result<(CgroupTarget, String)> {
    let given = Path::new(arg);
    let full = if given.starts_with(mount) {
        given.to_path_buf()
    } else {
        mount.join(given.strip_prefix("/").unwrap_or(given))
    };
    let meta = std::fs::metadata(&full)
        .with_context(|| format!("--cgroup {arg}: {} is not a cgroup", full.display()))?;
    if !meta.is_dir() || !full.join("cgroup.procs").exists() {
        bail!(
            "--cgroup {arg}: {} is not a cgroup v2 directory",
            full.display()
        );
    }
    let rel = full.strip_prefix(mount).unwrap_or(&full);
    let level = rel.components().count() as u32;
    Ok((
        CgroupTarget {
            id: meta.ino(),
            level,
            _pad: 0,
        },
        format!("/{}", rel.display()),
    ))
}

/// The cgroup v2 path of a process, from /proc/PID/cgroup ("0::/path").
pub fn of_pid(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Whether cgroup `path` is `cgroup` or one of its descendants (both as "/a/b").
pub fn is_within(path: &str, cgroup: &str) -> bool {
    cgroup == "/"
        || path == cgroup
        || path
            .strip_prefix(cgroup)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// cgroup id -> path, rescanning the hierarchy (at most once a second) for ids it does not know.
pub struct CgroupNames {
    mount: Option<PathBuf>,
    /// Looked up once per row the recorder writes: hashed with foldhash, not SipHash.
    names: HashMap<u64, Arc<str>, foldhash::fast::RandomState>,
    /// The id asked last and its name: rows come in runs of one thread (one cgroup).
    last: Option<(u64, Arc<str>)>,
    last_scan: Option<Instant>,
}

impl CgroupNames {
    pub fn new() -> Self {
        let mut names = Self {
            mount: cgroup2_mount(),
            names: HashMap::default(),
            last: None,
            last_scan: None,
        };
        names.rescan();
        names
    }

    /// The path of cgroup `id`, if it exists (or existed at the last scan).
    pub fn name(&mut self, id: u64) -> Option<Arc<str>> {
        if let Some((last, name)) = &self.last
            && *last == id
        {
            return Some(Arc::clone(name));
        }
        let name = match self.names.get(&id) {
            Some(name) => Arc::clone(name),
            None => {
                if self
                    .last_scan
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    self.rescan();
                }
                Arc::clone(self.names.get(&id)?)
            }
        };
        self.last = Some((id, Arc::clone(&name)));
        Some(name)
    }

    /// The id of a path relative to the mount ("/a/b").
    pub fn id_of(&self, rel: &str) -> Option<u64> {
        let mount = self.mount.as_ref()?;
        let full = mount.join(rel.trim_start_matches('/'));
        std::fs::metadata(full).ok().map(|m| m.ino())
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        self.last = None;
        let Some(mount) = self.mount.clone() else {
            return;
        };
        let mut stack = vec![mount.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = dir.strip_prefix(&mount).unwrap_or(&dir);
            let name = format!("/{}", rel.display());
            self.names.entry(meta.ino()).or_insert_with(|| name.into());
            if let Ok(entries) = std::fs::read_dir(&dir) {
                stack.extend(
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_own_cgroup_resolve() {
        let Some(mount) = cgroup2_mount() else {
            say!("skipping: no cgroup2 mount");
            return;
        };
        let (root, name) = target(&mount.display().to_string(), &mount).expect("root cgroup");
        assert_eq!((root.level, name.as_str()), (0, "/"));
        let mut names = CgroupNames::new();
        assert_eq!(names.name(root.id).as_deref(), Some("/"));
        let own = of_pid(std::process::id()).expect("own cgroup");
        let id = names.id_of(&own).expect("own cgroup id");
        assert_eq!(names.name(id).as_deref(), Some(own.as_str()));
        let err = target("no/such/cgroup", &mount).expect_err("missing");
        assert!(err.to_string().contains("is not a cgroup"), "{err}");
    }

    /// The name asked last is kept, and asking another id, then the first again, gives each
    /// its own name (a tree of plain directories stands for the hierarchy: ids are inodes).
    #[test]
    fn each_id_keeps_its_own_name_across_the_last_name_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["a", "a/b", "c"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let mut names = CgroupNames {
            mount: Some(dir.path().to_path_buf()),
            names: HashMap::default(),
            last: None,
            last_scan: None,
        };
        let ids: Vec<(u64, &str)> = ["/a", "/a/b", "/c", "/"]
            .into_iter()
            .map(|rel| (names.id_of(rel).expect("id"), rel))
            .collect();
        for _ in 0..2 {
            for &(id, rel) in ids.iter().chain(ids.iter().rev()) {
                assert_eq!(names.name(id).as_deref(), Some(rel));
                assert_eq!(names.name(id).as_deref(), Some(rel));
            }
        }
        assert_eq!(names.name(u64::MAX), None);
        assert_eq!(names.name(ids[0].0).as_deref(), Some("/a"));
    }

    #[test]
    fn descendants_are_within_and_siblings_are_not() {
        assert!(is_within("/a/b", "/"));
        assert!(is_within("/a/b", "/a/b"));
        assert!(is_within("/a/b/c", "/a/b"));
        assert!(!is_within("/a/bc", "/a/b"));
        assert!(!is_within("/a", "/a/b"));
    }
}
