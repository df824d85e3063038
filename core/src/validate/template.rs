//! Validation of `spec.trialTemplate` and `spec.metricsCollectorSpec`, with Katib's
//! defaults for success/failure conditions and collector sources.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::error::FieldError;
use crate::experiment::{
    CollectorKind, FileFormat, MetricsCollector, TemplateSource, TrialParameter, TrialTemplate,
};
use crate::raw::{RawMetricsCollectorSpec, RawTrialTemplate};
use crate::template::{METADATA_REFERENCES, placeholders};

/// Katib's default File collector path.
pub const DEFAULT_METRICS_FILE: &str = "/var/log/katib/metrics.log";

/// Katib's default directory of the TensorFlowEvent collector.
pub const DEFAULT_TFEVENT_DIR: &str = "/var/log/katib/tfevent/";

pub(crate) fn metrics_collector(
    raw: RawMetricsCollectorSpec,
    errs: &mut Vec<FieldError>,
) -> MetricsCollector {
    let p = "spec.metricsCollectorSpec";
    let source = raw.source.unwrap_or_default();
    let filters = source.filter.map(|f| f.metrics_format).unwrap_or_default();
    for (i, f) in filters.iter().enumerate() {
        let at = format!("{p}.source.filter.metricsFormat[{i}]");
        match Regex::new(&crate::goregex::to_rust(f)) {
            Err(e) => errs.push(FieldError::new(
                at,
                format!("{f:?} is not a valid regular expression: {e}"),
            )),
            Ok(re) if re.captures_len() < 3 => errs.push(FieldError::new(
                at,
                format!("{f:?} must have two capture groups (metric name, then value)"),
            )),
            Ok(_) => {}
        }
    }
    let kind_name = raw
        .collector
        .as_ref()
        .and_then(|c| c.kind.clone())
        .unwrap_or_else(|| "StdOut".into());
    let kind = match kind_name.as_str() {
        "StdOut" => CollectorKind::StdOut,
        "File" => {
            let fsp = source.file_system_path.unwrap_or_default();
            let format = match fsp.format.as_deref() {
                None | Some("") | Some("TEXT") => FileFormat::Text,
                Some("JSON") => FileFormat::Json,
                Some(other) => {
                    errs.push(FieldError::new(
                        format!("{p}.source.fileSystemPath.format"),
                        format!("{other:?} is not TEXT or JSON"),
                    ));
                    FileFormat::Text
                }
            };
            if let Some(k) = fsp.kind.as_deref().filter(|k| *k != "File") {
                errs.push(FieldError::new(
                    format!("{p}.source.fileSystemPath.kind"),
                    format!("{k:?} is not supported by the File collector (use File)"),
                ));
            }
            if format == FileFormat::Json && !filters.is_empty() {
                errs.push(FieldError::new(
                    format!("{p}.source.filter"),
                    "must not be set with the JSON format",
                ));
            }
            let path = fsp
                .path
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_METRICS_FILE.into());
            CollectorKind::File { path, format }
        }
        "Push" | "None" => CollectorKind::Push,
        "TensorFlowEvent" => {
            let fsp = source.file_system_path.unwrap_or_default();
            if let Some(k) = fsp.kind.as_deref().filter(|k| *k != "Directory") {
                errs.push(FieldError::new(
                    format!("{p}.source.fileSystemPath.kind"),
                    format!("{k:?}: the TensorFlowEvent collector reads a Directory"),
                ));
            }
            let path = fsp
                .path
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_TFEVENT_DIR.into());
            CollectorKind::TensorFlowEvent { path }
        }
        "PrometheusMetric" | "Custom" => {
            errs.push(FieldError::new(
                format!("{p}.collector.kind"),
                format!("{kind_name:?} is a Katib collector kestrel does not support yet (supported: StdOut, File, Push, TensorFlowEvent)"),
            ));
            CollectorKind::StdOut
        }
        other => {
            errs.push(FieldError::new(
                format!("{p}.collector.kind"),
                format!("unknown collector kind {other:?} (one of: StdOut, File, Push, TensorFlowEvent, PrometheusMetric, Custom)"),
            ));
            CollectorKind::StdOut
        }
    };
    MetricsCollector { kind, filters }
}

/// Katib's defaults for one workload kind.
type KindDefaults = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// Katib's default (successCondition, failureCondition, primaryPodLabels) per workload kind.
fn kind_defaults(kind: &str) -> Option<KindDefaults> {
    const COMPLETE: &str = r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;
    const FAILED: &str = r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;
    const SUCCEEDED: &str = r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#;
    match kind {
        "Job" => Some((COMPLETE, FAILED, vec![])),
        "TFJob" | "PyTorchJob" | "XGBoostJob" | "MPIJob" => Some((
            SUCCEEDED,
            FAILED,
            vec![("training.kubeflow.org/job-role", "master")],
        )),
        "TrainJob" => Some((
            COMPLETE,
            FAILED,
            vec![
                ("jobset.sigs.k8s.io/replicatedjob-name", "node"),
                ("batch.kubernetes.io/job-completion-index", "0"),
            ],
        )),
        _ => None,
    }
}

pub(crate) fn trial_template(
    raw: Option<RawTrialTemplate>,
    declared: &BTreeSet<String>,
    nas: bool,
    errs: &mut Vec<FieldError>,
) -> Option<TrialTemplate> {
    let p = "spec.trialTemplate";
    let Some(t) = raw else {
        errs.push(FieldError::new(p, "is required"));
        return None;
    };
    let before = errs.len();
    let mut workload_kind = None;
    let source = match (t.trial_spec, t.config_map) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::new(
                p,
                "exactly one of trialSpec and configMap must be set, not both",
            ));
            None
        }
        (None, None) => {
            errs.push(FieldError::new(
                format!("{p}.trialSpec"),
                "is required (or configMap)",
            ));
            None
        }
        (Some(spec), None) => {
            check_trial_spec(&spec, errs);
            workload_kind = spec
                .get("kind")
                .and_then(|k| k.as_str())
                .map(str::to_string);
            Some(TemplateSource::Inline(spec))
        }
        (None, Some(cm)) => {
            let name = cm.config_map_name.filter(|s| !s.is_empty());
            let path = cm.template_path.filter(|s| !s.is_empty());
            if name.is_none() {
                errs.push(FieldError::new(
                    format!("{p}.configMap.configMapName"),
                    "is required",
                ));
            }
            if path.is_none() {
                errs.push(FieldError::new(
                    format!("{p}.configMap.templatePath"),
                    "is required",
                ));
            }
            name.zip(path)
                .map(|(name, template_path)| TemplateSource::ConfigMap {
                    name,
                    namespace: cm.config_map_namespace,
                    template_path,
                })
        }
    };
    let trial_parameters = trial_parameters(&t.trial_parameters, declared, nas, errs);
    if let Some(TemplateSource::Inline(spec)) = &source {
        let declared: BTreeSet<&str> = trial_parameters.iter().map(|tp| tp.name.as_str()).collect();
        let used = placeholders(spec);
        for u in used.iter().filter(|u| !declared.contains(u.as_str())) {
            errs.push(FieldError::new(
                format!("{p}.trialSpec"),
                format!("uses ${{trialParameters.{u}}}, which is not declared in trialParameters"),
            ));
        }
        for (i, tp) in trial_parameters.iter().enumerate() {
            if !used.contains(&tp.name) {
                errs.push(FieldError::new(
                    format!("{p}.trialParameters[{i}].name"),
                    format!(
                        "{:?} is declared but ${{trialParameters.{}}} never appears in trialSpec",
                        tp.name, tp.name
                    ),
                ));
            }
        }
    }
    let defaults = workload_kind.as_deref().and_then(kind_defaults);
    let primary_container_name = t
        .primary_container_name
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            errs.push(FieldError::new(
                format!("{p}.primaryContainerName"),
                "is required",
            ));
            String::new()
        });
    if let Some(TemplateSource::Inline(spec)) = &source
        && !primary_container_name.is_empty()
        && crate::template::find_container(spec, &primary_container_name).is_none()
    {
        errs.push(FieldError::new(
            format!("{p}.primaryContainerName"),
            format!(
                "{} names no container of trialSpec",
                crate::error::shown(&primary_container_name)
            ),
        ));
    }
    let mut condition = |v: Option<String>, field: &str, default: Option<&str>| {
        v.filter(|s| !s.is_empty()).or(default.map(str::to_string)).unwrap_or_else(|| {
            errs.push(FieldError::new(
                format!("{p}.{field}"),
                format!("is required for kind {:?} (Katib has defaults only for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob, TrainJob)", workload_kind.as_deref().unwrap_or("")),
            ));
            String::new()
        })
    };
    let is_inline = matches!(source, Some(TemplateSource::Inline(_)));
    let (success_condition, failure_condition) = if is_inline {
        (
            condition(
                t.success_condition,
                "successCondition",
                defaults.as_ref().map(|d| d.0),
            ),
            condition(
                t.failure_condition,
                "failureCondition",
                defaults.as_ref().map(|d| d.1),
            ),
        )
    } else {
        (
            t.success_condition.unwrap_or_default(),
            t.failure_condition.unwrap_or_default(),
        )
    };
    let primary_pod_labels = t.primary_pod_labels.unwrap_or_else(|| {
        defaults
            .map(|d| {
                d.2.into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    });
    if errs.len() != before {
        return None;
    }
    Some(TrialTemplate {
        source: source?,
        trial_parameters,
        primary_container_name,
        primary_pod_labels,
        success_condition,
        failure_condition,
        retain: t.retain.unwrap_or(false),
    })
}

fn check_trial_spec(spec: &serde_json::Value, errs: &mut Vec<FieldError>) {
    let p = "spec.trialTemplate.trialSpec";
    let Some(obj) = spec.as_object() else {
        errs.push(FieldError::new(
            p,
            format!(
                "must be an object (a Job or similar), found {}",
                crate::raw::kind_of(spec)
            ),
        ));
        return;
    };
    for field in ["apiVersion", "kind"] {
        let present = obj
            .get(field)
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.is_empty());
        if !present {
            errs.push(FieldError::new(format!("{p}.{field}"), "is required"));
        }
    }
    if let Some(meta) = obj.get("metadata").and_then(|m| m.as_object()) {
        for field in ["name", "namespace"] {
            if meta.contains_key(field) {
                errs.push(FieldError::new(
                    format!("{p}.metadata.{field}"),
                    "must not be set (the trial sets it)",
                ));
            }
        }
    }
}

fn trial_parameters(
    raw: &[crate::raw::RawTrialParameter],
    declared: &BTreeSet<String>,
    nas: bool,
    errs: &mut Vec<FieldError>,
) -> Vec<TrialParameter> {
    let p = "spec.trialTemplate.trialParameters";
    let mut names = BTreeSet::new();
    let mut refs: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, tp) in raw.iter().enumerate() {
        let at = format!("{p}[{i}]");
        let name = tp.name.clone().filter(|s| !s.is_empty());
        let reference = tp.reference.clone().filter(|s| !s.is_empty());
        match &name {
            None => errs.push(FieldError::new(format!("{at}.name"), "is required")),
            Some(n) if !names.insert(n.clone()) => errs.push(FieldError::new(
                format!("{at}.name"),
                format!("duplicate trial parameter name {n:?}"),
            )),
            _ => {}
        }
        match &reference {
            None => errs.push(FieldError::new(format!("{at}.reference"), "is required")),
            Some(r) => {
                if let Some(j) = refs.insert(r.clone(), i) {
                    errs.push(FieldError::new(
                        format!("{at}.reference"),
                        format!("{r:?} is already referenced by {p}[{j}]"),
                    ));
                }
                let is_meta = is_metadata_reference(r);
                let is_param = declared.contains(r);
                if !is_meta && !is_param && !nas {
                    errs.push(FieldError::new(
                        format!("{at}.reference"),
                        format!("{r:?} is neither a parameter in spec.parameters nor a metadata reference ({})", METADATA_REFERENCES.join(", ")),
                    ));
                }
            }
        }
        if let (Some(name), Some(reference)) = (name, reference) {
            out.push(TrialParameter {
                name,
                description: tp.description.clone(),
                reference,
            });
        }
    }
    if !nas {
        for name in declared {
            if !refs.contains_key(name) {
                errs.push(FieldError::new(
                    p.to_string(),
                    format!("parameter {name:?} is not referenced by any trial parameter, so trials would not receive it"),
                ));
            }
        }
    }
    out
}

/// Whether `r` is a `${trialSpec.*}` metadata reference Katib accepts.
pub(crate) fn is_metadata_reference(r: &str) -> bool {
    let Some(inner) = r
        .strip_prefix("${trialSpec.")
        .and_then(|s| s.strip_suffix('}'))
    else {
        return false;
    };
    matches!(inner, "Name" | "Namespace" | "Kind" | "APIVersion")
        || ["Labels[", "Annotations["].iter().any(|pre| {
            inner.starts_with(pre) && inner.ends_with(']') && inner.len() > pre.len() + 1
        })
}
