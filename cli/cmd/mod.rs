//! One module per subcommand.

pub mod collect;
pub mod dashboard;
pub mod delete;
pub mod get;
pub mod list;
pub mod logs;
pub mod resume;
pub mod run;
pub mod serve;
pub mod stop;
pub mod submit;
pub mod validate;
pub mod watch;

use std::path::Path;

use anyhow::Context;
use kestrel_controller::executor::KubeOptions;
use kestrel_core::{Experiment, SpecError};

/// An error caused by the user's input (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How results are printed (`-o`, as kubectl's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Human-readable tables that fit the terminal.
    #[default]
    Table,
    /// Tables with every column (times, reasons, messages).
    Wide,
    /// JSON on stdout.
    Json,
    /// YAML on stdout (the JSON document).
    Yaml,
    /// CSV rows on stdout (trials, or experiments for list).
    Csv,
    /// Names only, one per line (trials best first, or experiments).
    Name,
}

impl Format {
    /// Whether this is a document format (JSON or YAML).
    pub fn is_document(self) -> bool {
        matches!(self, Format::Json | Format::Yaml)
    }

    /// A usage error unless this is one of `allowed` (for commands that print one thing).
    pub fn only(self, allowed: &[Format]) -> anyhow::Result<Format> {
        if allowed.contains(&self) {
            return Ok(self);
        }
        let names: Vec<String> = allowed
            .iter()
            .filter_map(clap::ValueEnum::to_possible_value)
            .map(|v| v.get_name().to_string())
            .collect();
        let this = clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        Err(UsageError(format!(
            "--output {this}: this command prints {}",
            names.join(", ")
        ))
        .into())
    }
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

/// The longest duration a flag in seconds may give (one day): longer ones are mistakes,
/// and a bound keeps every deadline computed from them representable.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Flag `flag`'s value `v` in seconds as a duration: a usage error unless it is a number
/// from 0 to [`MAX_SECONDS`].
pub fn seconds(flag: &str, v: f64) -> anyhow::Result<std::time::Duration> {
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(UsageError(format!(
            "{flag} {v}: must be a number of seconds from 0 to {MAX_SECONDS}"
        ))
        .into());
    }
    Ok(std::time::Duration::from_secs_f64(v))
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

/// Who may report the metrics of a trial that uses the Push collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PushAuth {
    /// The trial itself, with its credential (KESTREL_TRIAL_TOKEN).
    #[default]
    Credential,
    /// Anyone while the trial runs (Katib's SDK `report_metrics` sends no credential).
    Open,
}

/// Options of the Kubernetes executor, shared by `run` and `serve`.
#[derive(Debug, clap::Args)]
pub struct KubeArgs {
    /// With --executor kubernetes: kestrel's image (its /usr/local/bin/kestrel runs each
    /// trial's metrics collector; build it with the repository's Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    kube_image: Option<String>,
    /// With --executor kubernetes: kestrel's DBManager as the trials' pods reach it
    /// (host:port); they report their metrics there.
    #[arg(long, value_name = "HOST:PORT")]
    db_manager_address: Option<String>,
}

impl KubeArgs {
    /// The Kubernetes executor's options; a usage error when it is chosen without them,
    /// or when they are given for another executor.
    pub fn options(&self, executor: &str) -> anyhow::Result<KubeOptions> {
        match (executor, &self.kube_image, &self.db_manager_address) {
            ("kubernetes", Some(image), Some(db)) => {
                check_host_port(db)?;
                Ok(KubeOptions {
                    image: image.clone(),
                    db_manager: db.clone(),
                })
            }
            ("kubernetes", _, _) => Err(UsageError(
                "--executor kubernetes needs --kube-image (kestrel's image) and --db-manager-address (kestrel's DBManager as pods reach it)".into(),
            )
            .into()),
            (_, None, None) => Ok(KubeOptions::default()),
            (other, _, _) => Err(UsageError(format!(
                "--kube-image and --db-manager-address are for --executor kubernetes, not {other}"
            ))
            .into()),
        }
    }

    /// The port of `--db-manager-address`, once [`KubeArgs::options`] accepted it.
    pub fn db_manager_port(&self) -> Option<u16> {
        let a = self.db_manager_address.as_deref()?;
        a.rsplit_once(':')?.1.parse().ok()
    }
}

/// Refuses an address that is not `host:port`.
fn check_host_port(a: &str) -> anyhow::Result<()> {
    let ok = a
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(())
    } else {
        Err(UsageError(format!("--db-manager-address {a:?}: must be host:port")).into())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kube(image: Option<&str>, db: Option<&str>) -> KubeArgs {
        KubeArgs {
            kube_image: image.map(str::to_string),
            db_manager_address: db.map(str::to_string),
        }
    }

    #[test]
    fn seconds_flags_are_bounded_numbers() {
        assert_eq!(seconds("--grace", 1.5).unwrap().as_millis(), 1500);
        assert!(seconds("--grace", 0.0).is_ok());
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300, MAX_SECONDS + 1.0] {
            assert!(seconds("--grace", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kubernetes_options_need_both_and_only_with_that_executor() {
        let ok = kube(Some("kestrel:1"), Some("kestrel.kubeflow:6789"));
        assert_eq!(
            ok.options("kubernetes").unwrap().db_manager,
            "kestrel.kubeflow:6789"
        );
        assert_eq!(ok.db_manager_port(), Some(6789));
        assert!(ok.options("local").is_err(), "given to another executor");
        assert!(kube(None, None).options("local").is_ok());
        for bad in [
            kube(Some("i"), None),
            kube(None, Some("h:1")),
            kube(Some("i"), Some("no-port")),
            kube(Some("i"), Some(":6789")),
            kube(Some("i"), Some("h:0")),
            kube(Some("i"), Some("h:99999")),
        ] {
            assert!(bad.options("kubernetes").is_err(), "{bad:?}");
        }
    }
}
