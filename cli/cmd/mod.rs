//! One module per subcommand.

pub mod collect;
pub mod delete;
pub mod get;
pub mod list;
pub mod run;
pub mod serve;
pub mod stop;
pub mod submit;
pub mod validate;
pub mod watch;

use std::path::Path;

use anyhow::Context;
use kestrel_core::{Experiment, SpecError};

/// An error caused by the user's input (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Table,
    /// JSON on stdout.
    Json,
}

/// Reads and validates an experiment file; validation errors become a [`UsageError`]
/// listing every problem.
pub fn load_experiment(path: &Path) -> anyhow::Result<(Experiment, String)> {
    let text = read_bounded(path, kestrel_core::MAX_DOCUMENT_BYTES)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    match kestrel_core::parse_experiment(&text, &kestrel_algorithms::Catalog) {
        Ok(exp) => Ok((exp, text)),
        Err(e @ SpecError::Invalid(_)) => {
            Err(UsageError(format!("{}: {e}", path.display())).into())
        }
        Err(e) => Err(UsageError(format!("{}: invalid Experiment: {e}", path.display())).into()),
    }
}

/// Fails with a usage error when `name` is not an executor kestrel has (`--executor`).
pub fn check_executor(name: &str) -> anyhow::Result<()> {
    let mut all = kestrel_controller::executor::executors();
    if all.any(|e| e == name) {
        return Ok(());
    }
    let names: Vec<&str> = kestrel_controller::executor::executors().collect();
    Err(UsageError(format!(
        "--executor {name:?}: not one of {}",
        names.join(", ")
    ))
    .into())
}

/// The text of `path`, refusing one longer than `limit` bytes without reading more
/// (`/dev/zero` is not read until memory runs out).
pub fn read_bounded(path: &Path, limit: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes an Experiment may have"),
        ));
    }
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Fails with a usage error when `name` is not a stored experiment.
pub fn require<T>(found: Option<T>, name: &str, store: &Path) -> anyhow::Result<T> {
    found
        .ok_or_else(|| {
            UsageError(format!(
                "no experiment named {name:?} in {}",
                store.display()
            ))
        })
        .context("looking up the experiment")
}
