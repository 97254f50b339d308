//! `sim`: the command-line face of vpnsim. A thin layer: parse arguments,
//! set up logging, call the library crates through [`commands`], print what
//! they return, exit with the documented code. Rendering lives in
//! `vpnsim-report`; nothing here knows what a finding means.
//!
//! Exit codes: 0 no error findings (warnings allowed), 1 at least one error
//! finding (or a failed expectation, or drift), 2 bad input (unreadable,
//! malformed or invalid file) or usage, 3 `sim run --check-determinism`
//! found two passes that differ (an internal error).

mod args;
mod commands;
mod determinism;
mod generate;
mod pipeline;
mod progress;
mod simulate;
mod write_tree;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vpnsim_report::Style;

use crate::args::{Cli, Command};
use crate::commands::{Outcome, Output, Terminal};

fn main() -> ExitCode {
    // Usage errors exit 2, --help and --version exit 0 (clap's own codes).
    let cli = Cli::parse();
    init_logging(&cli);
    match dispatch(&cli) {
        Ok((output, outcome)) => match print(&output) {
            Ok(()) => ExitCode::from(outcome.code()),
            Err(error) => fail(&error),
        },
        Err(error) => fail(&error),
    }
}

/// Something outside the scenario went wrong (e.g. stdout closed): say so
/// and exit 2, never panic.
fn fail(error: &anyhow::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "sim: error: {error:#}");
    ExitCode::from(Outcome::BadInput.code())
}

fn dispatch(cli: &Cli) -> anyhow::Result<(Output, Outcome)> {
    let term = terminal(cli.quiet);
    Ok(match &cli.command {
        Command::Check(args) => commands::check(args, term),
        Command::Plan(args) => commands::plan(args, term),
        Command::Run(args) => commands::run(args, term),
        Command::Gen(args) => generate::gen_command(args, term),
        Command::Diff(args) => generate::diff_command(args, term),
        Command::Keys(command) => generate::keys_command(command),
        Command::Schema => (commands::schema(), Outcome::Clean),
        Command::Completions { shell } => (commands::completions(*shell), Outcome::Clean),
        Command::Man => (commands::man()?, Outcome::Clean),
    })
}

/// Colour only on a terminal, and never when NO_COLOR is set
/// (<https://no-color.org>), so pipes, CI logs and snapshots are plain.
fn terminal(quiet: bool) -> Terminal {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let style = |is_terminal: bool| {
        if is_terminal && !no_color {
            Style::Color
        } else {
            Style::Plain
        }
    };
    Terminal {
        stdout: style(std::io::stdout().is_terminal()),
        stderr: style(std::io::stderr().is_terminal()),
        quiet,
        progress: std::io::stderr().is_terminal() && !quiet,
    }
}

/// Logs go to stderr without timestamps (output must not depend on the
/// clock). Default level warn; -q error; -v info, -vv debug, -vvv trace;
/// RUST_LOG, when set, wins.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .without_time()
        .with_target(false)
        .try_init();
}

/// Writes the output; a closed pipe (`sim plan x | head`) is not an error.
fn print(output: &Output) -> anyhow::Result<()> {
    fn write(mut sink: impl Write, text: &str) -> std::io::Result<()> {
        sink.write_all(text.as_bytes())?;
        sink.flush()
    }
    for result in [
        write(std::io::stderr().lock(), &output.stderr),
        write(std::io::stdout().lock(), &output.stdout),
    ] {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
    }
    Ok(())
}
