//! The generated tree as data: every file with the host it belongs to, its
//! path in that host's filesystem, its mode and what produced it, plus the
//! `manifest.json` that lists them with their SHA-256.
//!
//! Writing the tree to disk (atomically) is the caller's job; this module
//! stays pure so the simulator can take a `FileSet` straight from memory.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Mode of ordinary configuration files.
pub const MODE_CONFIG: u32 = 0o644;
/// Mode of files holding a secret (private keys, PSKs, inline keys).
pub const MODE_SECRET: u32 = 0o600;
/// Mode of scripts the daemons execute.
pub const MODE_SCRIPT: u32 = 0o755;

/// One generated file.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Host name (the first directory of the tree).
    pub host: String,
    /// Path inside the host's filesystem, relative, e.g. `etc/wireguard/wg0.conf`.
    pub path: String,
    pub mode: u32,
    /// Which renderer produced it, e.g. `wgquick`.
    pub producer: &'static str,
    pub contents: String,
}

impl std::fmt::Debug for RenderedFile {
    /// Contents are left out: files may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("host", &self.host)
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("producer", &self.producer)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// Why a file cannot join a set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("{host}/{path}: generated twice (by {first} and {second})")]
    Duplicate {
        host: String,
        path: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("{host}/{path}: not a safe relative path (no `..`, no leading `/`, no empty parts)")]
    UnsafePath { host: String, path: String },
}

/// The files of every host, ordered by host then path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    files: BTreeMap<(String, String), RenderedFile>,
}

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    pub host: String,
    pub path: String,
    /// Octal, e.g. `"0600"`.
    pub mode: String,
    pub sha256: String,
    pub producer: String,
}

impl FileSet {
    pub fn new() -> Self {
        FileSet::default()
    }

    /// Adds a file; two renderers writing one path is a bug worth failing on.
    pub fn add(&mut self, file: RenderedFile) -> Result<(), TreeError> {
        if !is_safe_relative(&file.host) || !is_safe_relative(&file.path) {
            return Err(TreeError::UnsafePath {
                host: file.host,
                path: file.path,
            });
        }
        let key = (file.host.clone(), file.path.clone());
        if let Some(first) = self.files.get(&key) {
            return Err(TreeError::Duplicate {
                host: file.host,
                path: file.path,
                first: first.producer,
                second: file.producer,
            });
        }
        self.files.insert(key, file);
        Ok(())
    }

    pub fn files(&self) -> impl Iterator<Item = &RenderedFile> {
        self.files.values()
    }

    /// The files of one host, in path order (a range of the map, not a
    /// scan of every host's files).
    pub fn host_files<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a RenderedFile> + 'a {
        let host = host.to_string();
        self.files
            .range((host.clone(), String::new())..)
            .take_while(move |((h, _), _)| *h == host)
            .map(|(_, f)| f)
    }

    pub fn get(&self, host: &str, path: &str) -> Option<&RenderedFile> {
        self.files.get(&(host.to_string(), path.to_string()))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The manifest entries, in tree order.
    pub fn manifest(&self) -> Vec<ManifestEntry> {
        self.files
            .values()
            .map(|f| ManifestEntry {
                host: f.host.clone(),
                path: f.path.clone(),
                mode: format!("{:04o}", f.mode),
                sha256: hex(&Sha256::digest(f.contents.as_bytes())),
                producer: f.producer.to_string(),
            })
            .collect()
    }

    /// `manifest.json`: `{"scenario": ..., "files": [...]}`, pretty, ending in a newline.
    pub fn manifest_json(&self, scenario: &str) -> String {
        #[derive(Serialize)]
        struct Manifest<'a> {
            scenario: &'a str,
            files: Vec<ManifestEntry>,
        }
        let manifest = Manifest {
            scenario,
            files: self.manifest(),
        };
        let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        text.push('\n');
        text
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(host: &str, path: &str, mode: u32, contents: &str) -> RenderedFile {
        RenderedFile {
            host: host.into(),
            path: path.into(),
            mode,
            producer: "test",
            contents: contents.into(),
        }
    }

    #[test]
    fn manifest_lists_files_in_order_with_digests() {
        let mut set = FileSet::new();
        set.add(file("hub", "etc/wireguard/wg0.conf", MODE_SECRET, "x"))
            .unwrap_or_else(|e| panic!("{e}"));
        set.add(file("a", "etc/sysctl.d/90-vpnsim.conf", MODE_CONFIG, ""))
            .unwrap_or_else(|e| panic!("{e}"));
        let m = set.manifest();
        assert_eq!(m[0].host, "a");
        assert_eq!(
            m[0].sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(m[1].mode, "0600");
        assert!(set.manifest_json("s").ends_with("}\n"));
    }

    #[test]
    fn host_files_are_exactly_that_hosts_even_with_prefix_names() {
        let mut set = FileSet::new();
        for (host, path) in [("a", "x"), ("ab", "y"), ("a", "z"), ("b", "w")] {
            set.add(file(host, path, MODE_CONFIG, ""))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let paths =
            |h: &str| -> Vec<String> { set.host_files(h).map(|f| f.path.clone()).collect() };
        assert_eq!(paths("a"), ["x", "z"]);
        assert_eq!(paths("ab"), ["y"]);
        assert!(paths("c").is_empty());
    }

    #[test]
    fn duplicates_and_escaping_paths_are_refused() {
        let mut set = FileSet::new();
        set.add(file("h", "etc/a", MODE_CONFIG, ""))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            set.add(file("h", "etc/a", MODE_CONFIG, "")),
            Err(TreeError::Duplicate { .. })
        ));
        for bad in ["../etc/passwd", "/etc/a", "etc//a", "etc/./a", ""] {
            assert!(
                matches!(
                    set.add(file("h", bad, MODE_CONFIG, "")),
                    Err(TreeError::UnsafePath { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_contents() {
        let f = file("h", "etc/k", MODE_SECRET, "PrivateKey = SECRET");
        assert!(!format!("{f:?}").contains("SECRET"));
    }
}
