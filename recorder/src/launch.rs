//! Starting `-- COMMAND` so that its very first mmap call is recorded.
//!
//! The child reports its pid through a pipe and then waits on a second pipe until the recorder has
//! put that pid in the kernel's target map; only then does it exec the command. Through sudo the
//! command runs as the invoking user (SUDO_UID / SUDO_GID), not as root.
//!
//! When the recorder gives up before the release (an error, a signal, SIGKILL), the held child
//! sees end-of-file on that pipe and ends at once with [`NEVER_STARTED`], silently: it never runs
//! the command and never writes anything (it must not return an error from `pre_exec` either,
//! since the standard library would then report it through a pipe the recorder may have closed,
//! and abort with "fatal runtime error").
use std::{
    ffi::OsString,
    fs::File,
    io::{Read as _, Write as _},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    process::{Child, Command},
};

use anyhow::Context as _;
use nix::unistd::{Gid, Uid, User, pipe2};

/// The user a command runs as when the recorder was started through sudo.
#[derive(Clone, Debug)]
pub struct InvokingUser {
    pub uid: u32,
    pub gid: u32,
}

impl InvokingUser {
    /// SUDO_UID / SUDO_GID when running as root through sudo.
    pub fn from_sudo_env() -> Option<Self> {
        if !Uid::effective().is_root() {
            return None;
        }
        let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
        let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
        (uid != 0).then_some(Self { uid, gid })
    }
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
    // Credentials to drop to in the child: (uid, gid, supplementary groups).
    let mut creds: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)> = None;
    if let Some(user) = user {
        let mut groups = vec![user.gid];
        if let Ok(Some(pw)) = User::from_uid(Uid::from_raw(user.uid)) {
            if let Ok(name) = std::ffi::CString::new(pw.name.clone())
                && let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(user.gid))
            {
                groups = list.into_iter().map(Gid::as_raw).collect();
            }
            cmd.env("HOME", &pw.dir)
                .env("USER", &pw.name)
                .env("LOGNAME", &pw.name);
        }
        creds = Some((user.uid, user.gid, groups));
    }
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
