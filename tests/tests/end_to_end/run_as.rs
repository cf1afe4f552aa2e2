//! Who `-- COMMAND` runs as: the user behind sudo, doas or pkexec, or `--user`, with that user's
//! groups and environment (HOME, USER, LOGNAME, SHELL, MAIL) and without the launchers'
//! variables; the recorder says which user on stderr. Bad users are one-line errors.
use std::{collections::BTreeMap, os::unix::fs::MetadataExt as _, path::Path, process::Command};

use mmap_capture_tests::{require_root, workspace_bin};

/// What the command saw: `id -u`, `id -g`, `id -G` and its environment.
struct Seen {
    uid: String,
    gid: String,
    groups: String,
    env: BTreeMap<String, String>,
    stderr: String,
}

/// `mmap-recorder record -q [ARGS] -o OUT -- sh -c 'id; env'` with the recorder's environment
/// extended by `vars` (and root's own SHELL and MAIL, which the command must not keep).
fn run(out: &Path, args: &[&str], vars: &[(&str, &str)]) -> Seen {
    let output = Command::new(workspace_bin("mmap-recorder"))
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("SUDO_USER")
        .env_remove("SUDO_COMMAND")
        .env_remove("DOAS_USER")
        .env_remove("PKEXEC_UID")
        .env("HOME", "/root")
        .env("SHELL", "/bin/root-shell")
        .env("MAIL", "/var/mail/root")
        .envs(vars.iter().copied())
        .args(["record", "-q"])
        .args(args)
        .arg("-o")
        .arg(out)
        .args(["--", "sh", "-c", "id -u; id -g; id -G; env"])
        .output()
        .expect("run mmap-recorder");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{vars:?} {args:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = stdout.lines();
    let mut next = || lines.next().unwrap_or_default().to_owned();
    let (uid, gid, groups) = (next(), next(), next());
    let env = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Seen {
        uid,
        gid,
        groups,
        env,
        stderr,
    }
}

/// nobody's home and shell, as /etc/passwd has them.
fn nobody_entry() -> (String, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[5].to_owned(), fields[6].to_owned())
}

fn assert_no_launcher_vars(seen: &Seen, case: &str) {
    let left: Vec<&String> = seen
        .env
        .keys()
        .filter(|k| k.starts_with("SUDO_") || *k == "DOAS_USER" || *k == "PKEXEC_UID")
        .collect();
    assert!(left.is_empty(), "{case}: the command got {left:?}");
}

#[test]
#[ignore = "needs root"]
fn the_command_runs_as_the_launchers_user_with_its_environment() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (home, shell) = nobody_entry();
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "sudo",
            vec![
                ("SUDO_UID", "65534"),
                ("SUDO_GID", "65534"),
                ("SUDO_USER", "nobody"),
                ("SUDO_COMMAND", "/usr/bin/mmap-recorder"),
            ],
        ),
        // No SUDO_GID: the group comes from the passwd entry (it used to run as root).
        ("sudo without SUDO_GID", vec![("SUDO_UID", "65534")]),
        ("doas", vec![("DOAS_USER", "nobody")]),
        ("pkexec", vec![("PKEXEC_UID", "65534")]),
    ];
    for (i, (case, vars)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("{i}.parquet"));
        let seen = run(&out, &[], vars);
        assert!(
            seen.stderr
                .contains("mmap-recorder: running sh as user nobody (uid 65534, gid 65534)"),
            "{case}: {}",
            seen.stderr
        );
        assert_eq!(
            (seen.uid.as_str(), seen.gid.as_str()),
            ("65534", "65534"),
            "{case}"
        );
        assert_eq!(seen.groups, "65534", "{case}: root's groups dropped");
        assert_no_launcher_vars(&seen, case);
        for (var, want) in [
            ("HOME", home.as_str()),
            ("USER", "nobody"),
            ("LOGNAME", "nobody"),
            ("SHELL", shell.as_str()),
            ("MAIL", "/var/mail/nobody"),
        ] {
            assert_eq!(
                seen.env.get(var).map(String::as_str),
                Some(want),
                "{case}: {var}"
            );
        }
        let meta = std::fs::metadata(&out).expect("capture");
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{case}: owner");
    }

    // A uid without a passwd entry, with its group: usable, with a neutral environment.
    let seen = run(
        &dir.path().join("numeric.parquet"),
        &[],
        &[("SUDO_UID", "54321"), ("SUDO_GID", "54321")],
    );
    assert!(
        seen.stderr.contains("running sh as uid 54321 (gid 54321)"),
        "{}",
        seen.stderr
    );
    assert_eq!((seen.uid.as_str(), seen.gid.as_str()), ("54321", "54321"));
    assert_eq!(seen.env.get("HOME").map(String::as_str), Some("/"));
    assert_eq!(seen.env.get("USER").map(String::as_str), Some("54321"));
    assert_eq!(seen.env.get("MAIL"), None, "no mailbox without a name");

    // Started by root itself: the command runs as root, and says so.
    let seen = run(&dir.path().join("root.parquet"), &[], &[]);
    assert!(
        seen.stderr.contains("mmap-recorder: running sh as root"),
        "{}",
        seen.stderr
    );
    assert_eq!(seen.uid, "0");
}

/// Recorder arguments, environment, and the expected error.
type BadCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
#[ignore = "needs root"]
fn user_chooses_who_runs_the_command_and_bad_users_are_one_line_errors() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    for spec in ["nobody", "65534"] {
        let out = dir.path().join(format!("user-{spec}.parquet"));
        let seen = run(&out, &["--user", spec], &[("SUDO_UID", "0")]);
        assert!(
            seen.stderr
                .contains("running sh as user nobody (uid 65534, gid 65534)"),
            "--user {spec}: {}",
            seen.stderr
        );
        assert_eq!((seen.uid.as_str(), seen.gid.as_str()), ("65534", "65534"));
        assert_eq!(seen.env.get("USER").map(String::as_str), Some("nobody"));
        assert_no_launcher_vars(&seen, spec);
        // The files still belong to who started the recorder (root here).
        assert_eq!(std::fs::metadata(&out).expect("capture").uid(), 0);
    }

    let bad: [BadCase; 5] = [
        (
            &["--user", "no-such-user-here"],
            &[],
            "--user no-such-user-here: no user no-such-user-here in the passwd database",
        ),
        (
            &["--user", "nobody"],
            &[],
            "--user needs a command after --",
        ),
        (
            &[],
            &[("SUDO_UID", "alice")],
            "SUDO_UID=alice is not a numeric id",
        ),
        (
            &[],
            &[("DOAS_USER", "no-such-user-here")],
            "DOAS_USER=no-such-user-here: no user no-such-user-here",
        ),
        (
            &[],
            &[("PKEXEC_UID", "54321")],
            "no user with uid 54321 in the passwd database",
        ),
    ];
    for (args, vars, message) in bad {
        let out = dir.path().join("bad.parquet");
        let mut cmd = Command::new(workspace_bin("mmap-recorder"));
        cmd.args(["record", "-q"]).args(args).arg("-o").arg(&out);
        if args != ["--user", "nobody"] {
            cmd.args(["--", "true"]);
        }
        let output = cmd
            .envs(vars.iter().copied())
            .output()
            .expect("run mmap-recorder");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {vars:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(message), "{message:?} in {stderr}");
        assert!(!out.exists(), "nothing created");
    }
}
