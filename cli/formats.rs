//! Printing the documents of `kestrel_core::document` (`-o json|yaml|csv`).

pub use kestrel_core::document::{Logs, experiment, experiments_csv, trial, trials_csv};
use serde_json::Value;

use crate::cmd::Format;

/// Prints `doc` as JSON or YAML (the only document formats).
pub fn print_document(format: Format, doc: &Value) -> anyhow::Result<()> {
    match format {
        Format::Yaml => {
            let text = serde_saphyr::to_string(doc)?;
            out!("{}", text.trim_end());
        }
        _ => out!("{}", serde_json::to_string_pretty(doc)?),
    }
    Ok(())
}
