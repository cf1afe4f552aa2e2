//! Kernel struct offsets for the eBPF programs, read from the running kernel's BTF.
//!
//! aya 0.14 has no CO-RE relocations for Rust programs, so the programs take the offsets of the
//! few members they walk as a global (`recorder_common::KernelOffsets`) filled in here.
use std::path::Path;

use btf_rs::{Btf, Type};
use recorder_common::KernelOffsets;

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read kernel BTF at {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)"
    )]
    Read {
        path: String,
        #[source]
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf_rs::Error),
}

/// Reads the offsets from `path` (normally [`VMLINUX_BTF`]).
pub fn kernel_offsets(path: &Path) -> Result<KernelOffsets, BtfError> {
    let btf = read_btf(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let off = |strukt: &str, member: &str| member_offset(&btf, strukt, member);
    Ok(KernelOffsets {
        task_files: off("task_struct", "files")?,
        task_real_parent: off("task_struct", "real_parent")?,
        task_tgid: off("task_struct", "tgid")?,
        task_pid: off("task_struct", "pid")?,
        task_exit_code: off("task_struct", "exit_code")?,
        task_group_leader: off("task_struct", "group_leader")?,
        task_thread_pid: off("task_struct", "thread_pid")?,
        pid_level: off("pid", "level")?,
        pid_numbers: off("pid", "numbers")?,
        upid_size: struct_size(&btf, "upid")?,
        upid_ns: off("upid", "ns")?,
        pidns_inum: off("pid_namespace", "ns")? + off("ns_common", "inum")?,
        files_fdt: off("files_struct", "fdt")?,
        fdt_max_fds: off("fdtable", "max_fds")?,
        fdt_fd: off("fdtable", "fd")?,
        file_vfsmount: off("file", "f_path")? + off("path", "mnt")?,
        file_dentry: off("file", "f_path")? + off("path", "dentry")?,
        file_inode: off("file", "f_inode")?,
        inode_ino: off("inode", "i_ino")?,
        inode_sb: off("inode", "i_sb")?,
        sb_dev: off("super_block", "s_dev")?,
        dentry_name: off("dentry", "d_name")? + off("qstr", "name")?,
        dentry_parent: off("dentry", "d_parent")?,
        dentry_hash_pprev: off("dentry", "d_hash")? + off("hlist_bl_node", "pprev")?,
        vfsmount_root: off("vfsmount", "mnt_root")?,
        mount_mnt: off("mount", "mnt")?,
        mount_parent: off("mount", "mnt_parent")?,
        mount_mountpoint: off("mount", "mnt_mountpoint")?,
        binprm_filename: off("linux_binprm", "filename")?,
        task_ti_status: off("task_struct", "thread_info")? + off("thread_info", "status")?,
        task_cred: off("task_struct", "cred")?,
        cred_uid: off("cred", "uid")?,
        cred_gid: off("cred", "gid")?,
        task_cgroups: off("task_struct", "cgroups")?,
        css_set_dfl_cgrp: off("css_set", "dfl_cgrp")?,
        cgroup_kn: off("cgroup", "kn")?,
        kernfs_node_id: off("kernfs_node", "id")?,
    })
}

/// Size in bytes of `struct strukt`.
pub fn struct_size(btf: &Btf, strukt: &str) -> Result<u32, BtfError> {
    btf.resolve_types_by_name(strukt)
        .unwrap_or_default()
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => Some(s.size() as u32),
            _ => None,
        })
        .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))
}

/// Byte offset of `member` in `struct strukt`, looking through anonymous structs and unions.
pub fn member_offset(btf: &Btf, strukt: &str, member: &str) -> Result<u32, BtfError> {
    let types = btf.resolve_types_by_name(strukt).unwrap_or_default();
    for ty in types {
        if let Type::Struct(s) = ty
            && let Some(bits) = find_member(btf, &s, member)?
        {
            return Ok(bits / 8);
        }
    }
    if btf
        .resolve_types_by_name(strukt)
        .unwrap_or_default()
        .iter()
        .any(|t| matches!(t, Type::Struct(_)))
    {
        Err(BtfError::NoMember {
            strukt: strukt.to_owned(),
            member: member.to_owned(),
        })
    } else {
        Err(BtfError::NoStruct(strukt.to_owned()))
    }
}

/// The BTF in `path`, read into memory before it is parsed: parsed from the file, btf-rs asks
/// it for its position (an `lseek`) at every type: ~127,000 system calls for a 6.18 kernel's
/// BTF, ~35 ms of system time at every start (recording `/bin/true`: 0.43-0.45 s -> 0.40-0.41 s).
fn read_btf(path: &Path) -> Result<Btf, btf_rs::Error> {
    Btf::from_bytes(&std::fs::read(path)?)
}

/// Bit offset of `member` inside `s`, searching anonymous members recursively.
fn find_member(btf: &Btf, s: &btf_rs::Struct, member: &str) -> Result<Option<u32>, BtfError> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == member {
            return Ok(Some(m.bit_offset()));
        }
        if name.is_empty() {
            let inner = strip_modifiers(btf, btf.resolve_chained_type(m)?)?;
            if let Type::Struct(inner) | Type::Union(inner) = inner
                && let Some(bits) = find_member(btf, &inner, member)?
            {
                return Ok(Some(m.bit_offset() + bits));
            }
        }
    }
    Ok(None)
}

fn strip_modifiers(btf: &Btf, mut ty: Type) -> Result<Type, BtfError> {
    loop {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t)?,
            Type::Const(t) => btf.resolve_chained_type(t)?,
            Type::Volatile(t) => btf.resolve_chained_type(t)?,
            Type::Restrict(t) => btf.resolve_chained_type(t)?,
            Type::TypeTag(t) => btf.resolve_chained_type(t)?,
            _ => return Ok(ty),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's BTF (present on every machine this project supports), or `None`
    /// with a note.
    fn running_kernel_btf() -> Option<&'static Path> {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            say!("skipping: {VMLINUX_BTF} missing");
            return None;
        }
        Some(path)
    }

    #[test]
    fn offsets_of_running_kernel_are_plausible() {
        let Some(path) = running_kernel_btf() else {
            return;
        };
        let o = kernel_offsets(path).expect("offsets");
        // Members that sit well inside their structs on every kernel of the last decade.
        assert!(o.task_files > 1000, "task_struct.files at {}", o.task_files);
        assert!(o.task_real_parent > 1000);
        assert_eq!(o.fdt_max_fds, 0, "fdtable.max_fds is the first member");
        assert_eq!(o.fdt_fd, 8);
        assert!(o.file_dentry > 0 && o.file_inode > 0);
        assert_eq!(
            o.file_dentry,
            o.file_vfsmount + 8,
            "struct path is {{ mnt, dentry }}"
        );
        assert_eq!(o.dentry_name % 8, 0);
        assert_eq!(
            o.upid_size, 16,
            "struct upid is {{ int nr; struct pid_namespace *ns; }}"
        );
        assert_eq!(o.upid_ns, 8);
        assert_eq!(o.dentry_hash_pprev % 8, 0);
        assert!(o.task_cred > 1000 && o.task_cgroups > 1000);
        assert_eq!(
            o.cred_gid,
            o.cred_uid + 4,
            "struct cred is {{ usage, uid, gid, ... }}"
        );
        assert_eq!(o.kernfs_node_id % 8, 0);
    }

    #[test]
    fn unknown_struct_and_member_are_named() {
        let Some(path) = running_kernel_btf() else {
            return;
        };
        let btf = read_btf(path).expect("btf");
        let err = member_offset(&btf, "no_such_struct_x", "a").expect_err("no struct");
        assert_eq!(err.to_string(), "kernel BTF has no struct no_such_struct_x");
        let err = member_offset(&btf, "task_struct", "no_such_member").expect_err("no member");
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct task_struct has no member no_such_member"
        );
    }
}
