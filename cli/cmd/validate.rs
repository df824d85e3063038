//! `kestrel validate FILE`: parse and check an experiment without running anything.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kestrel validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Katib Experiment YAML file.
    pub file: PathBuf,
    /// Check that this executor can run it (local, kubernetes); without one, the file is
    /// valid when some executor can run it, and the others say why they cannot.
    #[arg(long, value_name = "NAME")]
    executor: Option<String>,
    /// Output: a summary line (errors on stderr), or JSON (or YAML) on stdout for CI
    /// (`{"file", "valid", "name", "notes"}` or `{"file", "valid": false, "errors": [{"path",
    /// "message"}]}`); invalid files exit 2 either way.
    #[arg(short, long, value_enum, default_value_t)]
    output: super::Format,
}

/// The JSON verdict on `file`.
fn verdict(a: &Args) -> anyhow::Result<(serde_json::Value, bool)> {
    let file = a.file.display().to_string();
    let errors = |list: Vec<(String, String)>| {
        let list: Vec<serde_json::Value> = list
            .into_iter()
            .map(|(path, message)| serde_json::json!({"path": path, "message": message}))
            .collect();
        (
            serde_json::json!({"file": file, "valid": false, "errors": list}),
            false,
        )
    };
    let text = match super::read_bounded(&a.file, kestrel_core::MAX_DOCUMENT_BYTES) {
        Ok(t) => t,
        Err(e) => return Ok(errors(vec![("<file>".into(), e.to_string())])),
    };
    let exp = match kestrel_core::parse_experiment(&text, &kestrel_algorithms::Catalog) {
        Ok(e) => e,
        Err(e) => {
            let list = e
                .field_errors()
                .into_iter()
                .map(|f| (f.path, f.message))
                .collect();
            return Ok(errors(list));
        }
    };
    let mut notes = Vec::new();
    let names: Vec<&str> = match &a.executor {
        Some(n) => {
            super::check_executor(n)?;
            vec![n.as_str()]
        }
        None => kestrel_controller::executor::executors().collect(),
    };
    for name in &names {
        if let Err(e) = kestrel_controller::reconciler::preflight(&exp, name) {
            notes.push(format!("not with --executor {name}: {e}"));
        }
    }
    if notes.len() == names.len() {
        return Ok(errors(
            notes
                .into_iter()
                .map(|n| ("<executor>".into(), n))
                .collect(),
        ));
    }
    Ok((
        serde_json::json!({"file": file, "valid": true, "name": exp.name, "notes": notes}),
        true,
    ))
}

/// Prints a one-line summary of a valid file (errors are returned).
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    use super::Format;
    let format = a
        .output
        .only(&[Format::Table, Format::Json, Format::Yaml])?;
    if format.is_document() {
        let (doc, valid) = verdict(&a)?;
        crate::formats::print_document(format, &doc)?;
        return Ok(if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let (exp, _) = super::load_experiment(&a.file)?;
    let usage = |e: String| super::UsageError(format!("{}: {e}", a.file.display()));
    let mut notes = Vec::new();
    match &a.executor {
        Some(name) => {
            super::check_executor(name)?;
            kestrel_controller::reconciler::preflight(&exp, name)
                .map_err(|e| usage(e.to_string()))?;
        }
        None => {
            let all: Vec<&str> = kestrel_controller::executor::executors().collect();
            for name in &all {
                if let Err(e) = kestrel_controller::reconciler::preflight(&exp, name) {
                    notes.push(format!("not with --executor {name}: {e}"));
                }
            }
            if notes.len() == all.len() {
                return Err(usage(notes.join("; ")).into());
            }
        }
    }
    out!(
        "{}: valid Experiment {:?}: {} {} ({}), {}, algorithm {}, maxTrialCount {}, parallelTrialCount {}",
        a.file.display(),
        exp.name,
        exp.objective.kind.as_str(),
        exp.objective.metric,
        exp.objective
            .goal
            .map_or("no goal".to_string(), |g| format!("goal {g}")),
        match &exp.nas_config {
            Some(nas) => format!(
                "architecture search over {} operation types",
                nas.operations.len()
            ),
            None => format!("{} parameters", exp.space.len()),
        },
        exp.algorithm.name,
        exp.max_trial_count
            .map_or("unbounded".to_string(), |m| m.to_string()),
        exp.parallel_trial_count,
    );
    for n in notes {
        out!("  note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
