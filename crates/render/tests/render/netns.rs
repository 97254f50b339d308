//! A throwaway network namespace that is deleted on drop, also when a test
//! fails, and the check that a real tool is installed.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `vpnsim-t<pid>-<n>`.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = format!(
            "vpnsim-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| panic!("ip netns add: {e}"));
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.run("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {program}: {e}", self.name))
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.output(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed in {}:\n{}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Panics with an install hint when a tool the test needs is missing:
/// `scripts/test` installs them, so a missing tool is a setup error, not a skip.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: run scripts/test (it installs Debian package `{package}`)"
    );
}
