//! The `kestrel` command: run Katib Experiment YAML locally or on a `kestrel serve` server,
//! and inspect stored results.
//!
//! Exit codes: 0 success; 1 the experiment failed, was stopped, or ended without reaching
//! its goal; 2 bad input or usage (invalid YAML, unknown experiment, bad flags).

/// Prints a line to stdout through [`output::emit`]; `?`-propagates write errors.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(format_args!($($arg)*))? };
}

mod cmd;
mod curve;
mod formats;
mod output;
mod remote;
mod source;
mod store;
mod tls;

/// jemalloc on glibc Linux: a server's GetSuggestions requests free large blocks from
/// many threads, and glibc keeps what its per-thread arenas freed (16 GP clients left
/// 119 MiB of a 319 MiB peak resident; jemalloc, with a background thread purging after a
/// second, returns to 22 MiB). The purge settings are jemalloc's build-time defaults here,
/// from `.cargo/config.toml` (bench/README.md, "Memory under load").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// kestrel: hyperparameter search that reads Katib Experiment YAML.
#[derive(Debug, Parser)]
#[command(name = "kestrel", version, about, propagate_version = true)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment to completion on this machine.
    Run(cmd::run::Args),
    /// Continue a stored experiment: an unfinished one as it is, a stopped or finished one
    /// with a larger budget (--max-trials), keeping its trials.
    Resume(cmd::resume::Args),
    /// Check an experiment file without running it.
    Validate(cmd::validate::Args),
    /// List stored experiments.
    List(cmd::list::Args),
    /// Show an experiment and its trials, best first; or one trial and its learning curve.
    Get(cmd::get::Args),
    /// Print a trial's output (stdout and stderr), or every trial's; -f follows it.
    Logs(cmd::logs::Args),
    /// Delete a stored experiment, its trials, metrics and trial directories.
    Delete(cmd::delete::Args),
    /// Serve Katib's gRPC services and kestrel's management API; run submitted experiments.
    Serve(cmd::serve::Args),
    /// Serve the web dashboard over the local store.
    Dashboard(cmd::dashboard::Args),
    /// Send an experiment to a kestrel server, which runs it.
    Submit(cmd::submit::Args),
    /// Stop a running experiment (on a server, or the `kestrel run` driving it here).
    Stop(cmd::stop::Args),
    /// Live view of an experiment: trials best first, counts, best so far over time.
    Watch(cmd::watch::Args),
    /// Print Katib's CustomResourceDefinitions (Experiment, Trial, Suggestion) as YAML.
    Crd,
    /// Metrics-collector sidecar: run a training command, report its metrics to a DBManager.
    Collect(cmd::collect::Args),
    /// Print a shell completion script (e.g. `kestrel completions bash >
    /// ~/.local/share/bash-completion/completions/kestrel`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Exit status for bad input or usage.
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Resume(a) => cmd::resume::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::List(a) => cmd::list::run(a),
        Command::Get(a) => cmd::get::run(a),
        Command::Logs(a) => cmd::logs::run(a),
        Command::Delete(a) => cmd::delete::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Dashboard(a) => cmd::dashboard::run(a),
        Command::Submit(a) => cmd::submit::run(a),
        Command::Stop(a) => cmd::stop::run(a),
        Command::Watch(a) => cmd::watch::run(a),
        Command::Collect(a) => cmd::collect::run(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "kestrel", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            print!("{}", kestrel_operator::crd::yaml());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if e.is::<cmd::UsageError>() {
                EXIT_USAGE
            } else {
                1
            })
        }
    }
}
