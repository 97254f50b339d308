//! Writes a generated tree so that readers see the old tree or the new one,
//! never half of either: everything goes into a temporary sibling directory,
//! which is renamed into place only after every file was written. On any
//! failure the temporary directory is removed and the old tree is untouched.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One file of a tree: a relative path, a Unix mode and the contents.
pub struct TreeFile<'a> {
    pub path: PathBuf,
    pub mode: u32,
    pub contents: &'a [u8],
}

/// Removes the temporary directory unless the tree was committed.
struct TempDir {
    path: PathBuf,
    committed: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `files` as the tree `dir`, replacing any tree there atomically.
pub fn write_tree<'a>(dir: &Path, files: impl IntoIterator<Item = TreeFile<'a>>) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .with_context(|| format!("{} names no directory", dir.display()))?;
    let temp = TempDir {
        path: parent.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        )),
        committed: false,
    };
    let _ = fs::remove_dir_all(&temp.path);
    create_dir(&temp.path)?;
    for file in files {
        write_file(&temp.path, &file)?;
    }
    let old = parent.join(format!(
        ".{}.old-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let replacing = dir.exists();
    if replacing {
        fs::rename(dir, &old)
            .with_context(|| format!("cannot move the old {} aside", dir.display()))?;
    }
    if let Err(e) = fs::rename(&temp.path, dir) {
        if replacing {
            let _ = fs::rename(&old, dir);
        }
        return Err(e).with_context(|| format!("cannot move the new tree into {}", dir.display()));
    }
    let mut temp = temp;
    temp.committed = true;
    if replacing {
        fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove the old tree {}", old.display()))?;
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn write_file(root: &Path, file: &TreeFile<'_>) -> Result<()> {
    if file.path.is_absolute()
        || file
            .path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        bail!(
            "refusing to write {}: not a plain relative path",
            file.path.display()
        );
    }
    let target = root.join(&file.path);
    if let Some(dir) = target.parent() {
        create_dir(dir)?;
    }
    // The mode is set at creation, so a secret is never readable by others,
    // not even for a moment.
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.mode)
        .open(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    out.write_all(file.contents)
        .with_context(|| format!("cannot write {}", target.display()))?;
    out.sync_all()
        .with_context(|| format!("cannot flush {}", target.display()))?;
    // create() is subject to the umask; set the exact mode asked for.
    fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))
        .with_context(|| format!("cannot set the mode of {}", target.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vpnsim-write-tree-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn file<'a>(path: &str, mode: u32, contents: &'a str) -> TreeFile<'a> {
        TreeFile {
            path: PathBuf::from(path),
            mode,
            contents: contents.as_bytes(),
        }
    }

    #[test]
    fn writes_with_modes_and_replaces_the_old_tree() {
        let root = scratch("modes");
        let out = root.join("out");
        write_tree(
            &out,
            [
                file("hub/etc/wireguard/wg0.conf", 0o600, "k"),
                file("hub/etc/a.conf", 0o644, "a"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let mode = |p: &str| {
            fs::metadata(out.join(p))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode("hub/etc/wireguard/wg0.conf"), 0o600);
        assert_eq!(mode("hub/etc/a.conf"), 0o644);
        write_tree(&out, [file("other/x", 0o644, "x")]).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            !out.join("hub").exists(),
            "the old tree is replaced, not merged"
        );
        assert!(out.join("other/x").exists());
        let leftovers: Vec<_> = fs::read_dir(&root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(leftovers, ["out"]);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_failure_leaves_the_old_tree_and_no_temporary_directory() {
        let root = scratch("failure");
        let out = root.join("out");
        write_tree(&out, [file("h/keep", 0o644, "old")]).unwrap_or_else(|e| panic!("{e:#}"));
        let result = write_tree(
            &out,
            [file("h/new", 0o644, "new"), file("../escape", 0o644, "x")],
        );
        assert!(result.is_err());
        assert_eq!(
            fs::read_to_string(out.join("h/keep")).unwrap_or_default(),
            "old"
        );
        assert!(!out.join("h/new").exists());
        let leftovers: Vec<_> = fs::read_dir(&root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(leftovers, ["out"]);
        let _ = fs::remove_dir_all(&root);
    }
}
