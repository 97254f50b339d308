//! The production key store: one file per secret under a directory.
//!
//! Layout: `KEYDIR/<label>.<ext>` (see [`KeyKind::extension`]), e.g.
//! `KEYDIR/wireguard/hub/wg0.key`. Secret files are created 0600 and
//! directories 0700, written to a `.`-prefixed temporary file in the same
//! directory, synced, then linked into place, so a reader never sees half a
//! key and two concurrent runs agree on one key (the second one's link fails
//! with "exists" and it reads the first one's). A key present on disk is
//! never regenerated: only [`KeyStore::rotate`] replaces one.
//!
//! Certificates are public: they are derived deterministically from the keys
//! and the scenario (see [`crate::pki`]) and mirrored next to their key as
//! `<label>.crt` (0644) for operators.

use std::fs;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use crate::material::{self, OsEntropy};
use crate::{KeyError, KeyKind, Label};

/// Mode of secret files.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of directories the store creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of certificate files (public).
pub const PUBLIC_FILE_MODE: u32 = 0o644;
/// Secret files larger than this are refused as corrupt.
const MAX_SECRET_FILE: u64 = 64 * 1024;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of production keys (`--keys KEYDIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStore {
    root: PathBuf,
}

impl KeyStore {
    /// Open (and create, mode 0700, if missing) the key store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let root = root.into();
        match fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(KeyError::NotAFile {
                    path: root,
                    what: "not a directory",
                    expected: "a key store directory",
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&root)
                    .map_err(|e| KeyError::io("create directory", &root, e))?;
            }
            Err(e) => return Err(KeyError::io("inspect", &root, e)),
        }
        Ok(KeyStore { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the secret of `label` lives: `KEYDIR/<label>.<ext>`.
    pub fn path_of(&self, label: &Label) -> PathBuf {
        self.root
            .join(format!("{label}.{}", label.kind().extension()))
    }

    /// Where the certificate of a `pki/...` label is mirrored:
    /// `KEYDIR/<label>.crt`.
    pub fn cert_path_of(&self, label: &Label) -> PathBuf {
        self.root.join(format!("{label}.crt"))
    }

    /// Whether a secret for `label` is on disk.
    pub fn contains(&self, label: &Label) -> bool {
        fs::symlink_metadata(self.path_of(label)).is_ok()
    }

    /// Every key in the store, sorted by label. Files that are not keys
    /// (certificates, temporary files, anything unknown) are skipped.
    pub fn list(&self) -> Result<Vec<Label>, KeyError> {
        let mut out = Vec::new();
        self.walk(&self.root, String::new(), 0, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn walk(
        &self,
        dir: &Path,
        prefix: String,
        depth: usize,
        out: &mut Vec<Label>,
    ) -> Result<(), KeyError> {
        if depth > crate::label::MAX_COMPONENTS {
            return Ok(());
        }
        let entries = fs::read_dir(dir).map_err(|e| KeyError::io("list directory", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| KeyError::io("list directory", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(|e| KeyError::io("inspect", entry.path(), e))?;
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if file_type.is_dir() {
                self.walk(&entry.path(), rel, depth + 1, out)?;
            } else if let Some((stem, ext)) = rel.rsplit_once('.')
                && let Ok(label) = Label::new(stem)
                && label.kind().extension() == ext
            {
                out.push(label);
            }
        }
        Ok(())
    }

    /// Replace every key whose label starts with `prefix` (component-wise:
    /// `wireguard/hub` rotates `wireguard/hub/wg0`, not `wireguard/hub2/wg0`)
    /// with fresh OS randomness. The backend of `sim keys rotate`. Returns the
    /// rotated labels, sorted; an empty list when nothing matched.
    pub fn rotate(&self, prefix: &str) -> Result<Vec<Label>, KeyError> {
        Label::check_prefix(prefix)?;
        self.rotate_where(|label| label.has_prefix(prefix))
    }

    /// Replace every key `select` picks (e.g. all keys of one host across
    /// namespaces). Certificates mirrored for a rotated `pki` key (and, for a
    /// CA, every certificate it issued) are removed: they are re-issued with
    /// the new key on the next run.
    pub fn rotate_where(
        &self,
        mut select: impl FnMut(&Label) -> bool,
    ) -> Result<Vec<Label>, KeyError> {
        let mut rotated = Vec::new();
        for label in self.list()? {
            if !select(&label) {
                continue;
            }
            let kind = label.kind();
            let raw = material::generate(kind, &mut OsEntropy)?;
            let text = material::encode(kind, &raw);
            self.write_atomically(
                &self.path_of(&label),
                text.as_bytes(),
                SECRET_FILE_MODE,
                true,
            )?;
            self.remove_stale_certs(&label)?;
            rotated.push(label);
        }
        Ok(rotated)
    }

    fn remove_stale_certs(&self, label: &Label) -> Result<(), KeyError> {
        if label.kind() != KeyKind::Ed25519 {
            return Ok(());
        }
        remove_if_present(&self.cert_path_of(label))?;
        let components: Vec<&str> = label.components().collect();
        if components.len() == 4 && components[3] == "ca" {
            let issued = self.root.join(components[..3].join("/")).join("issued");
            match fs::read_dir(&issued) {
                Ok(entries) => {
                    for entry in entries {
                        let entry =
                            entry.map_err(|e| KeyError::io("list directory", &issued, e))?;
                        let path = entry.path();
                        if path.extension().is_some_and(|e| e == "crt") {
                            remove_if_present(&path)?;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(KeyError::io("list directory", &issued, e)),
            }
        }
        Ok(())
    }

    /// The raw material of `label`: read from disk when present, otherwise
    /// drawn from the OS CSPRNG and stored first.
    pub(crate) fn load_or_create(&self, label: &Label) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let kind = label.kind();
        let path = self.path_of(label);
        if let Some(raw) = read_secret(&path, kind)? {
            return Ok(raw);
        }
        let raw = material::generate(kind, &mut OsEntropy)?;
        let text = material::encode(kind, &raw);
        if self.write_atomically(&path, text.as_bytes(), SECRET_FILE_MODE, false)? {
            Ok(raw)
        } else {
            // Another run created it between our read and our link: use its key.
            read_secret(&path, kind)?.ok_or_else(|| KeyError::Corrupt {
                path: path.clone(),
                reason: "the file vanished while it was being created".to_owned(),
            })
        }
    }

    /// Mirror a public file (a certificate) at `path`, replacing a different
    /// one. Unchanged content is not rewritten.
    pub(crate) fn write_public(&self, path: &Path, contents: &str) -> Result<(), KeyError> {
        match fs::read(path) {
            Ok(existing) if existing == contents.as_bytes() => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(KeyError::io("read", path, e)),
        }
        self.write_atomically(path, contents.as_bytes(), PUBLIC_FILE_MODE, true)?;
        Ok(())
    }

    /// Write `contents` to a temporary file next to `path` and move it into
    /// place. With `replace`, an existing file is replaced (rename); without,
    /// an existing file wins and `Ok(false)` is returned (hard link, which
    /// fails on an existing target). Returns whether our content is in place.
    fn write_atomically(
        &self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        replace: bool,
    ) -> Result<bool, KeyError> {
        let parent = path.parent().unwrap_or(&self.root);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(parent)
            .map_err(|e| KeyError::io("create directory", parent, e))?;
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
        let (tmp, mut file) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = parent.join(format!(".{file_name}.tmp.{}.{n}", std::process::id()));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
            {
                Ok(file) => break (tmp, file),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(KeyError::io("create", &tmp, e)),
            }
        };
        let result = (|| {
            // The umask may have removed bits from `mode`; set it exactly.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| KeyError::io("set permissions of", &tmp, e))?;
            file.write_all(contents)
                .map_err(|e| KeyError::io("write", &tmp, e))?;
            file.sync_all().map_err(|e| KeyError::io("sync", &tmp, e))?;
            drop(file);
            let placed = if replace {
                fs::rename(&tmp, path).map_err(|e| KeyError::io("rename into place", path, e))?;
                true
            } else {
                match fs::hard_link(&tmp, path) {
                    Ok(()) => true,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                    // File systems without hard links: fall back to a rename
                    // unless the key appeared meanwhile.
                    Err(_) if fs::symlink_metadata(path).is_ok() => false,
                    Err(_) => {
                        fs::rename(&tmp, path)
                            .map_err(|e| KeyError::io("rename into place", path, e))?;
                        true
                    }
                }
            };
            Ok(placed)
        })();
        remove_if_present(&tmp)?;
        let placed = result?;
        if placed {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| KeyError::io("sync directory", parent, e))?;
        }
        Ok(placed)
    }
}

fn remove_if_present(path: &Path) -> Result<(), KeyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KeyError::io("remove", path, e)),
    }
}

/// Read and check one secret file. `Ok(None)` when it does not exist.
fn read_secret(path: &Path, kind: KeyKind) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyError::io("inspect", path, e)),
    };
    check_secret_meta(path, &meta)?;
    let mut file = fs::File::open(path).map_err(|e| KeyError::io("open", path, e))?;
    // Check again on the open file, in case it was swapped in between.
    let meta = file
        .metadata()
        .map_err(|e| KeyError::io("inspect", path, e))?;
    check_secret_meta(path, &meta)?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(KeyError::Corrupt {
            path: path.to_owned(),
            reason: format!("{} bytes is too large for a key file", meta.len()),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.read_to_end(&mut bytes)
        .map_err(|e| KeyError::io("read", path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Corrupt {
        path: path.to_owned(),
        reason: "not UTF-8 text".to_owned(),
    })?;
    material::decode(kind, text)
        .map(Some)
        .map_err(|reason| KeyError::Corrupt {
            path: path.to_owned(),
            reason: format!("not a valid {kind} key file: {reason}"),
        })
}

fn check_secret_meta(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
            what: "a symbolic link",
            expected: "a regular key file (links are refused so a key cannot be redirected)",
        });
    }
    if !file_type.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
            what: "not a regular file",
            expected: "a key file",
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}
