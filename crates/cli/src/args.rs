//! The command line, as one clap definition; `sim completions` and `sim man`
//! are generated from it, so help, completions and the manual never drift.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Check, plan and (later) simulate a multi-region VPN deployment described
/// in one TOML scenario file.
///
/// `sim check` reports every problem of a scenario at file:line:column with
/// the field to change; `sim plan` prints its address plan and site
/// reachability; `sim gen` writes every host's config files; `sim diff`
/// compares them with a tree collected from the hosts; `sim run` simulates
/// the rendered files on a virtual clock and judges the expectations.
#[derive(Debug, Parser)]
#[command(name = "sim", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 error findings, a failed expectation or drift, 2 bad input or usage, \
                  3 `sim run --check-determinism` found two passes that differ (a bug in vpnsim)."
)]
pub struct Cli {
    /// Print less: only error findings, no summary, only error logs.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log more to stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load, plan and statically verify scenario files; print every finding.
    Check(CheckArgs),
    /// Print the address plan and the site reachability matrix of a scenario.
    Plan(PlanArgs),
    /// Run a scenario: checks, plan, render, then the simulation.
    Run(RunArgs),
    /// Generate every host's config files into a directory, with a manifest.
    Gen(GenArgs),
    /// Compare what a scenario would generate with a tree collected from hosts.
    Diff(DiffArgs),
    /// Manage the production key store.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the JSON Schema of the scenario format (for editors).
    Schema,
    /// Print a shell completion script.
    Completions {
        /// Shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of `sim`.
    Man,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FormatArg {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

impl From<FormatArg> for vpnsim_report::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text => vpnsim_report::Format::Text,
            FormatArg::Json => vpnsim_report::Format::Json,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
}

/// Output format of `sim run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RunFormatArg {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
    /// JUnit XML, one testcase per expectation (for CI gates).
    Junit,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Seed of the simulation's random choices (jitter, loss, protocol
    /// timers); overrides `[scenario] seed` for the simulation only. The
    /// host files, demo keys included, are always rendered with the file's
    /// own seed, so they are the files `sim gen --demo-keys` writes.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: RunFormatArg,

    /// Run the host files in DIR (the layout `sim gen` writes, e.g. collected
    /// from real hosts or edited by hand) instead of rendering them.
    #[arg(long, value_name = "DIR", conflicts_with = "keys")]
    pub configs: Option<PathBuf>,

    /// Render with the production keys in KEYDIR instead of demo keys.
    #[arg(long, value_name = "KEYDIR")]
    pub keys: Option<PathBuf>,

    /// Render the host files and run everything twice, and exit 3 unless
    /// every output byte is equal: host files, the report in every format
    /// (text, JSON, JUnit), the trace and the pcap files.
    #[arg(long)]
    pub check_determinism: bool,

    /// Run N seeds in all: the run's seed and the N-1 following ones, all
    /// with the same host files. Reports how often each expectation held
    /// and the distribution (min/median/p90/max) of every measured figure:
    /// recovery times, each probe's average RTT and loss, each transfer's
    /// goodput.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub seeds: Option<u32>,

    /// Write the event trace (one line per event, virtual time first) to FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Write one pcap file per link and subnet (what crossed it, raw IP) into
    /// DIR, for Wireshark, tshark or tcpdump.
    #[arg(long, value_name = "DIR")]
    pub pcap: Option<PathBuf>,
}

/// Where keys come from: exactly one of the two.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct KeyArgs {
    /// Production keys: drawn from the OS CSPRNG on first use, stored in
    /// KEYDIR (files 0600) and reused on every later run. Only
    /// `sim keys rotate` changes one.
    #[arg(long, value_name = "KEYDIR")]
    pub keys: Option<PathBuf>,

    /// Keys derived from the scenario seed, for tests and demos only: anyone
    /// with the scenario file can derive them. Every file holding one says so.
    #[arg(long)]
    pub demo_keys: bool,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Output directory: DIR/<host>/... mirrors each host's filesystem, plus
    /// DIR/manifest.json. Replaced atomically.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    #[command(flatten)]
    pub keys: KeyArgs,

    /// Generate the WireGuard files as they are after promoting this worker
    /// to leader of its star.
    #[arg(long, value_name = "HOST")]
    pub promote: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Tree collected from the hosts, in the layout `sim gen` writes.
    #[arg(long, value_name = "DIR")]
    pub against: PathBuf,

    #[command(flatten)]
    pub keys: KeyArgs,

    /// Compare with the files as they are after promoting this worker.
    #[arg(long, value_name = "HOST")]
    pub promote: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Replace keys in the store with fresh ones from the OS CSPRNG; the next
    /// `sim gen` renders every file that uses them.
    Rotate(RotateArgs),
    /// List the labels of the keys in the store (never their values).
    List {
        /// The key store.
        #[arg(long, value_name = "KEYDIR")]
        keys: PathBuf,
    },
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["host", "link", "label"])))]
pub struct RotateArgs {
    /// The key store.
    #[arg(long, value_name = "KEYDIR")]
    pub keys: PathBuf,

    /// Every key and certificate of this host (its WireGuard keys and the
    /// certificates issued to it).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// The shared secret of one link: an IPsec tunnel, a PeerVPN mesh, or a
    /// WireGuard pre-shared key scope.
    #[arg(long, value_name = "NAME")]
    pub link: Option<String>,

    /// Every key whose label starts with this prefix, e.g. `wireguard/hub`.
    #[arg(long, value_name = "PREFIX")]
    pub label: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
