//! `kestrel resume NAME [--max-trials N]`: continue a stored experiment on this machine.
//!
//! An unfinished one (kestrel was killed) runs on as it is; a stopped or finished one runs
//! again with a larger budget, keeping its trials, so the model-based algorithms learn
//! from the whole history (Katib's way is to raise `maxTrialCount`; this does it without
//! the file). Only the counts may change, as in Katib; the stored YAML is updated to match.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::UsageError;
use super::run::{Plan, RunOptions};

/// Arguments of `kestrel resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    /// New maxTrialCount (must exceed the trials it completed).
    #[arg(long, value_name = "N")]
    max_trials: Option<u32>,
    /// New parallelTrialCount.
    #[arg(long, value_name = "N")]
    parallel: Option<u32>,
    /// New maxFailedTrialCount.
    #[arg(long, value_name = "N")]
    max_failed: Option<u32>,
    /// Continue it on this kestrel server instead (it keeps running there).
    #[command(flatten)]
    server: crate::remote::ServerArgs,
    #[command(flatten)]
    opts: RunOptions,
}

/// `yaml` (an Experiment) with `spec.<key>` set to each given value; the document is
/// re-serialised (its comments and layout are not kept).
pub fn with_counts(yaml: &str, counts: &[(&str, Option<u32>)]) -> anyhow::Result<String> {
    let mut doc: Value =
        serde_saphyr::from_str(yaml).context("re-reading the stored experiment's YAML")?;
    let spec = doc
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .context("the stored experiment's YAML has no spec")?;
    for (key, v) in counts {
        if let Some(v) = v {
            spec.insert((*key).to_string(), Value::from(*v));
        }
    }
    Ok(serde_saphyr::to_string(&doc)?)
}

/// Continues the experiment on the server: its stored YAML with the new counts, submitted
/// again under its name.
fn remote(a: &Args, counts: &[(&str, Option<u32>)]) -> anyhow::Result<ExitCode> {
    use kestrel_proto::manager as pb;
    let url = a.server.server.clone().unwrap_or_default();
    let rt = crate::remote::runtime()?;
    let info = rt.block_on(async {
        let mut c = crate::remote::connect(&a.server).await?;
        let (rec, _) = crate::remote::get(&mut c, &a.name).await?;
        let yaml = with_counts(&rec.source, counts)?;
        c.create_experiment(pb::CreateExperimentRequest {
            yaml,
            base_dir: String::new(),
            seed: None,
            name: a.name.clone(),
        })
        .await
        .map_err(crate::remote::status_error)
        .map(tonic::Response::into_inner)
    })?;
    super::submit::print_submitted(&info, &url)?;
    Ok(ExitCode::SUCCESS)
}

/// Resumes or continues the experiment.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    crate::source::settle(a.opts.store(), &mut a.server)?;
    for (flag, v) in [("--max-trials", a.max_trials), ("--parallel", a.parallel)] {
        if v == Some(0) {
            return Err(UsageError(format!("{flag} 0: must be at least 1")).into());
        }
    }
    // The counts given, by their Experiment field names.
    let counts = [
        ("maxTrialCount", a.max_trials),
        ("parallelTrialCount", a.parallel),
        ("maxFailedTrialCount", a.max_failed),
    ];
    let changed = counts.iter().any(|(_, v)| v.is_some());
    if a.server.server.is_some() {
        if !changed {
            return Err(UsageError(
                "a server resumes its unfinished experiments itself; give --max-trials (or --parallel, --max-failed) to continue one".into(),
            )
            .into());
        }
        return remote(&a, &counts);
    }
    let (store, dir) = a.opts.store().open_read_only()?;
    let rec = match store {
        Some(s) => s.experiment(&a.name)?,
        None => None,
    };
    let rec = super::require(rec, &a.name, &dir)?;
    let mut exp = rec.spec.clone();
    exp.max_trial_count = a.max_trials.or(exp.max_trial_count);
    exp.parallel_trial_count = a.parallel.unwrap_or(exp.parallel_trial_count);
    exp.max_failed_trial_count = a.max_failed.or(exp.max_failed_trial_count);
    let source = if changed {
        with_counts(&rec.source, &counts)?
    } else {
        rec.source.clone()
    };
    let base_dir = match rec.base_dir.clone() {
        Some(d) => d,
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let plan = Plan {
        exp,
        source,
        base_dir,
        origin: format!("experiment {}", a.name),
        seed: None,
        warm_start: None,
    };
    super::run::execute(&a.opts, plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_set_in_the_yaml_and_the_rest_is_kept() {
        let yaml = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata:\n  name: e\nspec:\n  maxTrialCount: 4 # old\n  objective: {type: minimize}\n";
        let out = with_counts(
            yaml,
            &[("maxTrialCount", Some(9)), ("parallelTrialCount", None)],
        )
        .unwrap();
        let doc: Value = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(doc["spec"]["maxTrialCount"], 9);
        assert!(doc["spec"].get("parallelTrialCount").is_none());
        assert_eq!(doc["spec"]["objective"]["type"], "minimize");
        assert_eq!(doc["metadata"]["name"], "e");
        assert!(with_counts("spec: 3", &[]).is_err());
    }
}
