//! The command line, as one clap definition; `sim completions` and `sim man`
//! are generated from it, so help, completions and the manual never drift.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Check, plan and (later) simulate a multi-region VPN deployment described
/// in one TOML scenario file.
///
/// `sim check` reports every problem of a scenario at file:line:column with
/// the field to change; `sim plan` prints its address plan and site
/// reachability. Generating host configs and the simulator are not
/// implemented yet: `sim run` says so rather than evaluating expectations.
#[derive(Debug, Parser)]
#[command(name = "sim", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 no error findings, 1 error findings, 2 bad input or usage.")]
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
    /// Run a scenario: checks, plan, then the simulation (not implemented yet).
    Run(RunArgs),
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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Seed for every random choice; overrides `[scenario] seed`.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FormatArg,
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
