//! Starting `-- COMMAND` so that its very first mmap call is recorded.
//!
//! The child reports its pid through a pipe and then waits on a second pipe until the recorder has
//! put that pid in the kernel's target map; only then does it exec the command. Through sudo,
//! doas or pkexec the command runs as the invoking user (or as `--user`), not as root, with
//! that user's groups and environment.
//!
//! When the recorder gives up before the release (an error, a signal, SIGKILL), the held child
//! sees end-of-file on that pipe and ends at once with [`NEVER_STARTED`], silently: it never runs
//! the command and never writes anything (it must not return an error from `pre_exec` either,
//! since the standard library would then report it through a pipe the recorder may have closed,
//! and abort with "fatal runtime error").
use std::{
    ffi::{OsStr, OsString},
    fs::File,
    io::{Read as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _, process::CommandExt as _},
    },
    path::{Path, PathBuf},
    process::{Child, Command},
};

use anyhow::{Context as _, bail};
use nix::{
    sys::statvfs::{FsFlags, statvfs},
    unistd::{Gid, Uid, User, pipe2},
};

/// A user other than root that the recorder acts for: the one who started it through sudo,
/// doas or pkexec (who owns the capture files), or the one `--user` names (who runs the
/// command). Resolved once, before anything starts: its groups are read from the group database
/// here (as `initgroups` would), since the forked child may not read files.
#[derive(Clone, Debug)]
pub struct InvokingUser {
    pub uid: u32,
    pub gid: u32,
    /// The passwd entry's name, home and shell (none for a uid without an entry).
    pub name: Option<String>,
    pub home: PathBuf,
    pub shell: PathBuf,
    /// Primary and supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

/// Variables the launchers set for the process they start, never passed on to the command
/// (besides every `SUDO_*`).
const LAUNCHER_VARS: [&str; 2] = ["DOAS_USER", "PKEXEC_UID"];

impl InvokingUser {
    /// The user behind sudo (SUDO_UID, and SUDO_GID or the passwd entry's group), doas
    /// (DOAS_USER) or pkexec (PKEXEC_UID), when the recorder runs as root; `None` for root or
    /// when none of them is set. A value that names no user is an error.
    pub fn from_launcher_env() -> anyhow::Result<Option<Self>> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let user = if let Some(uid) = var("SUDO_UID") {
            let uid = parse_id("SUDO_UID", &uid)?;
            let gid = var("SUDO_GID")
                .map(|gid| parse_id("SUDO_GID", &gid))
                .transpose()?;
            Self::from_uid(uid, gid).with_context(|| format!("SUDO_UID={uid}"))?
        } else if let Some(name) = var("DOAS_USER") {
            Self::named(&name).with_context(|| format!("DOAS_USER={name}"))?
        } else if let Some(uid) = var("PKEXEC_UID") {
            let uid = parse_id("PKEXEC_UID", &uid)?;
            Self::from_uid(uid, None).with_context(|| format!("PKEXEC_UID={uid}"))?
        } else {
            return Ok(None);
        };
        Ok((user.uid != 0).then_some(user))
    }

    /// `--user NAME|UID`: a user of the passwd database.
    pub fn named(spec: &str) -> anyhow::Result<Self> {
        let entry = match spec.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(spec),
        }
        .with_context(|| format!("reading the passwd entry of {spec}"))?
        .with_context(|| format!("no user {spec} in the passwd database"))?;
        Ok(Self::from_entry(entry, None))
    }

    /// The user with this uid; its group is `gid` if given, else the passwd entry's. Without a
    /// passwd entry the uid is still usable when `gid` is given (home /, shell /bin/sh).
    fn from_uid(uid: u32, gid: Option<u32>) -> anyhow::Result<Self> {
        let entry = User::from_uid(Uid::from_raw(uid))
            .with_context(|| format!("reading the passwd entry of uid {uid}"))?;
        match (entry, gid) {
            (Some(entry), gid) => Ok(Self::from_entry(entry, gid)),
            (None, Some(gid)) => Ok(Self {
                uid,
                gid,
                name: None,
                home: PathBuf::from("/"),
                shell: PathBuf::from("/bin/sh"),
                groups: vec![gid],
            }),
            (None, None) => {
                bail!("no user with uid {uid} in the passwd database, and no group given")
            }
        }
    }

    fn from_entry(entry: User, gid: Option<u32>) -> Self {
        let gid = gid.unwrap_or(entry.gid.as_raw());
        let groups = std::ffi::CString::new(entry.name.clone())
            .ok()
            .and_then(|name| nix::unistd::getgrouplist(&name, Gid::from_raw(gid)).ok())
            .map_or_else(
                || vec![gid],
                |list| list.into_iter().map(Gid::as_raw).collect(),
            );
        Self {
            uid: entry.uid.as_raw(),
            gid,
            name: Some(entry.name),
            home: entry.dir,
            shell: entry.shell,
            groups,
        }
    }

    /// "user alice (uid 1000, gid 1000)", or "uid 1000 (gid 1000)" without a passwd entry.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("user {name} (uid {}, gid {})", self.uid, self.gid),
            None => format!("uid {} (gid {})", self.uid, self.gid),
        }
    }
}

fn parse_id(var: &str, value: &str) -> anyhow::Result<u32> {
    value
        .parse()
        .with_context(|| format!("{var}={value} is not a numeric id"))
}

/// Who `-- COMMAND` runs as, for the line the recorder prints before starting it: `user`, else
/// the recorder's own user (root, or the user of a recorder run with capabilities).
pub fn describe_runner(user: Option<&InvokingUser>) -> String {
    if let Some(user) = user {
        return user.describe();
    }
    let uid = Uid::current();
    if uid.is_root() {
        return "root".to_owned();
    }
    match User::from_uid(uid) {
        Ok(Some(entry)) => {
            InvokingUser::from_entry(entry, Some(Gid::current().as_raw())).describe()
        }
        _ => format!("uid {uid} (gid {})", Gid::current()),
    }
}

/// The environment of the command, as sudo users expect it: no launcher variables (`SUDO_*`,
/// DOAS_USER, PKEXEC_UID), and HOME, USER, LOGNAME, SHELL and MAIL of the user it runs as.
fn set_environment(cmd: &mut Command, user: Option<&InvokingUser>) {
    for (key, _) in std::env::vars_os() {
        let launcher = key.as_bytes().starts_with(b"SUDO_")
            || LAUNCHER_VARS.iter().any(|v| key == OsStr::new(v));
        if launcher {
            cmd.env_remove(&key);
        }
    }
    let Some(user) = user else {
        return;
    };
    let name = user.name.clone().unwrap_or_else(|| user.uid.to_string());
    cmd.env("HOME", &user.home)
        .env("USER", &name)
        .env("LOGNAME", &name)
        .env("SHELL", &user.shell);
    match &user.name {
        Some(name) => cmd.env("MAIL", format!("/var/mail/{name}")),
        // No name, no mailbox.
        None => cmd.env_remove("MAIL"),
    };
}

/// Checks `-- COMMAND` before anything is created or loaded: its program is found where exec
/// will look for it (in PATH unless it names a path) and is a file that the user it will run
/// as may execute. What exec alone can tell (ACLs, a broken binary, ...) still fails at the
/// start, which then removes what it created.
pub fn check_command(argv: &[OsString], user: Option<&InvokingUser>) -> anyhow::Result<()> {
    let Some(program) = argv.first() else {
        return Ok(());
    };
    let name = program.to_string_lossy();
    let names_a_path = program.as_bytes().contains(&b'/');
    let path_var = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    let candidates = if names_a_path {
        vec![PathBuf::from(program)]
    } else {
        search_path(program, &path_var)
    };
    let runner = user.map_or_else(|| "root".to_owned(), |u| format!("uid {}", u.uid));
    // The first candidate that exists but cannot be run, as exec would report it.
    let mut refused = None;
    for path in candidates {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let problem = if !meta.is_file() {
            "is not a regular file".to_owned()
        } else if may_execute(&path, &meta, user) {
            return Ok(());
        } else {
            format!("is not executable by {runner}")
        };
        refused.get_or_insert(format!("{} {problem}", path.display()));
    }
    match refused {
        Some(problem) => bail!("cannot start {name}: {problem}"),
        None if names_a_path => bail!("cannot start {name}: no such file"),
        None => bail!(
            "cannot start {name}: not found in PATH ({})",
            path_var.to_string_lossy()
        ),
    }
}

/// Where execvp looks for `program`, in order (an empty PATH entry is the current directory).
fn search_path(program: &OsStr, path_var: &OsStr) -> Vec<PathBuf> {
    path_var
        .as_bytes()
        .split(|&b| b == b':')
        .map(|dir| match dir {
            b"" => Path::new(".").join(program),
            dir => Path::new(OsStr::from_bytes(dir)).join(program),
        })
        .collect()
}

/// Whether `user` (root when `None`) may execute the regular file at `path`: its mode bits for
/// that user (root: any execute bit), on a file system mounted without noexec.
fn may_execute(path: &Path, meta: &std::fs::Metadata, user: Option<&InvokingUser>) -> bool {
    let mode = meta.mode();
    let allowed = match user {
        None => mode & 0o111 != 0,
        Some(user) if meta.uid() == user.uid => mode & 0o100 != 0,
        Some(user) if user.groups.contains(&meta.gid()) => mode & 0o010 != 0,
        Some(_) => mode & 0o001 != 0,
    };
    allowed && statvfs(path).is_ok_and(|fs| !fs.flags().contains(FsFlags::ST_NOEXEC))
}

/// The exit status of a held child whose recorder went away before releasing it.
pub const NEVER_STARTED: i32 = 125;

/// A started child, held at the pipe until [`Pending::release`]. Dropped without a release, it
/// lets the child end without running the command and reaps it.
pub struct Pending {
    pub pid: u32,
    go: Option<File>,
    spawner: Option<std::thread::JoinHandle<std::io::Result<Child>>>,
}

/// Forks `argv`; the child waits before exec until [`Pending::release`].
pub fn spawn_held(argv: &[OsString], user: Option<&InvokingUser>) -> anyhow::Result<Pending> {
    let (program, args) = argv.split_first().context("no command given after --")?;
    let (pid_r, pid_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let (go_r, go_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;

    let mut cmd = Command::new(program);
    cmd.args(args);
    set_environment(&mut cmd, user);
    // Credentials to drop to in the child: (uid, gid, supplementary groups).
    let creds = user.map(|user| (user.uid, user.gid, user.groups.clone()));
    let pid_w_fd = pid_w.as_raw_fd();
    let go_r_fd = go_r.as_raw_fd();
    // The recorder's ends, closed in the child so that it sees EOF when the recorder goes away.
    let pid_r_fd = pid_r.as_raw_fd();
    let go_w_fd = go_w.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // calls (close, getpid, write, read, setgroups, setgid, setuid, _exit) on memory prepared before the fork
    // and on descriptors that stay open until exec (they are CLOEXEC).
    unsafe {
        cmd.pre_exec(move || {
            libc::close(pid_r_fd);
            libc::close(go_w_fd);
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(pid_w_fd, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                libc::_exit(NEVER_STARTED);
            }
            let mut byte = 0u8;
            if libc::read(go_r_fd, (&raw mut byte).cast(), 1) != 1 {
                // The recorder gave up: end here, silently (see the module comment).
                libc::_exit(NEVER_STARTED);
            }
            if let Some((uid, gid, groups)) = &creds
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Command::spawn returns only once the child has exec'd, so it runs on its own thread while
    // this one answers the handshake.
    // The child's ends of the pipes stay open until spawn returns (the fork happens inside it);
    // closing them then lets the read below see EOF when the child died before writing.
    let spawner = std::thread::spawn(move || {
        let child = cmd.spawn();
        drop((pid_w, go_r));
        child
    });
    let mut pid_bytes = [0u8; 4];
    let mut pid_r = File::from(pid_r);
    if let Err(e) = pid_r.read_exact(&mut pid_bytes) {
        let spawn_err = spawner
            .join()
            .map_err(|_| anyhow::anyhow!("spawner thread panicked"))?
            .err();
        return Err(match spawn_err {
            Some(err) => anyhow::Error::new(err),
            None => anyhow::Error::new(e),
        })
        .with_context(|| format!("cannot start {}", program.to_string_lossy()));
    }
    Ok(Pending {
        pid: u32::from_ne_bytes(pid_bytes),
        go: Some(File::from(go_w)),
        spawner: Some(spawner),
    })
}

impl Pending {
    /// Lets the child exec; returns it once exec succeeded.
    pub fn release(mut self, program: &str) -> anyhow::Result<Child> {
        let mut go = self.go.take().context("the command was released already")?;
        go.write_all(&[1]).context("releasing the command")?;
        drop(go);
        self.spawner
            .take()
            .context("the command was released already")?
            .join()
            .map_err(|_| anyhow::anyhow!("spawner thread panicked"))?
            .with_context(|| format!("cannot start {program}"))
    }
}

impl Drop for Pending {
    /// Not released: closing the pipe ends the child (it exits with [`NEVER_STARTED`]); wait for
    /// it so that no zombie is left.
    fn drop(&mut self) {
        drop(self.go.take());
        if let Some(spawner) = self.spawner.take()
            && let Ok(Ok(mut child)) = spawner.join()
        {
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Command, time::Duration};

    use super::*;

    /// Set in a re-run of this test binary, which then plays a recorder that gives up after
    /// starting the command: `drop` drops the pending child, `exit` exits without dropping it.
    const ROLE: &str = "MMAP_RECORDER_TEST_HELD_CHILD";
    const MARKER: &str = "MMAP_RECORDER_TEST_MARKER";

    fn give_up(role: &str) -> ! {
        let marker = std::env::var(MARKER).expect("marker path");
        let script = format!("echo COMMAND-RAN; echo COMMAND-RAN >&2; touch '{marker}'");
        let argv: Vec<OsString> = ["sh", "-c", &script].map(OsString::from).to_vec();
        let pending = spawn_held(&argv, None).expect("spawn_held");
        println!("HELD-PID {}", pending.pid);
        if role == "drop" {
            drop(pending);
        } else {
            std::mem::forget(pending);
        }
        std::process::exit(2)
    }

    #[test]
    fn a_command_is_checked_as_exec_would_find_and_run_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        let argv = |p: &Path| vec![p.as_os_str().to_owned()];
        let set_mode = |mode| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(mode))
                .expect("chmod");
        };
        let user = |uid| InvokingUser {
            uid,
            gid: 65534,
            name: None,
            home: PathBuf::from("/"),
            shell: PathBuf::from("/bin/sh"),
            groups: vec![65534],
        };
        let as_owner = user(std::fs::metadata(dir.path()).expect("meta").uid());
        let stranger = user(as_owner.uid.wrapping_add(12345));
        set_mode(0o700);
        check_command(&argv(&script), None).expect("root may run an owner-only program");
        check_command(&argv(&script), Some(&as_owner)).expect("its owner may run it");
        let err = check_command(&argv(&script), Some(&stranger)).expect_err("not for others");
        assert!(
            err.to_string().contains("is not executable by uid"),
            "{err}"
        );
        set_mode(0o644);
        let err = check_command(&argv(&script), None).expect_err("no execute bit");
        assert!(
            err.to_string().contains("is not executable by root"),
            "{err}"
        );
        let err = check_command(&argv(dir.path()), None).expect_err("a directory");
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        let err = check_command(&argv(&dir.path().join("none")), None).expect_err("missing");
        assert!(err.to_string().ends_with("none: no such file"), "{err}");
        check_command(&["sh".into()], None).expect("sh is found in PATH");
        let err = check_command(&["no-such-program-in-path".into()], None).expect_err("none");
        assert!(err.to_string().contains("not found in PATH"), "{err}");
        check_command(&[], None).expect("no command");
    }

    #[test]
    fn path_search_follows_execvp() {
        let found = search_path(OsStr::new("ls"), OsStr::new("/usr/bin::/bin"));
        assert_eq!(
            found,
            [
                PathBuf::from("/usr/bin/ls"),
                PathBuf::from("./ls"),
                PathBuf::from("/bin/ls")
            ]
        );
    }

    #[test]
    fn a_held_child_never_runs_or_prints_when_the_recorder_gives_up() {
        if let Ok(role) = std::env::var(ROLE) {
            give_up(&role);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = std::env::current_exe().expect("current_exe");
        for role in ["drop", "exit"] {
            for round in 0..5 {
                let marker = dir.path().join(format!("{role}-{round}"));
                let out = Command::new(&exe)
                    .args([
                        "--exact",
                        "launch::tests::a_held_child_never_runs_or_prints_when_the_recorder_gives_up",
                        "--nocapture",
                    ])
                    .env(ROLE, role)
                    .env(MARKER, &marker)
                    .output()
                    .expect("re-run the test binary");
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{role}: {stdout}{stderr}");
                let pid: i32 = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("HELD-PID "))
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{role}: no pid in {stdout}"));
                // `exit` leaves the child to notice on its own: wait until it is gone.
                for _ in 0..500 {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                // Reaped by the drop, or by init after the exit: either way no longer there.
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                assert!(
                    status.is_empty() || status.contains("State:\tZ"),
                    "{role}: the held child {pid} is still running"
                );
                for text in [&stdout, &stderr] {
                    assert!(
                        !text.contains("COMMAND-RAN"),
                        "{role}: the command ran: {text}"
                    );
                    assert!(!text.contains("fatal runtime error"), "{role}: {text}");
                }
                assert!(!marker.exists(), "{role}: the command ran");
            }
        }
    }
}
