//! Katib's CustomResourceDefinitions: `experiments`, `trials` and `suggestions` in
//! `kubeflow.org/v1beta1`, namespaced, with a status subresource, schemaless as Katib ships
//! them (`x-kubernetes-preserve-unknown-fields`), so every Katib object is accepted
//! unchanged; `kubectl get experiments,trials` shows Katib's columns (the latest
//! condition's type and status, and the age).

use serde_json::{Value as Json, json};

use crate::{GROUP, VERSION};

/// One resource's names.
struct Names {
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
}

const RESOURCES: [Names; 3] = [
    Names {
        kind: "Experiment",
        plural: "experiments",
        singular: "experiment",
    },
    Names {
        kind: "Trial",
        plural: "trials",
        singular: "trial",
    },
    Names {
        kind: "Suggestion",
        plural: "suggestions",
        singular: "suggestion",
    },
];

fn definition(n: &Names) -> Json {
    let column =
        |name: &str, path: &str, ty: &str| json!({"name": name, "jsonPath": path, "type": ty});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{GROUP}", n.plural)},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": n.kind,
                "listKind": format!("{}List", n.kind),
                "plural": n.plural,
                "singular": n.singular,
                "shortNames": [n.singular],
                "categories": ["all", "kubeflow", "katib"],
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    column("Type", ".status.conditions[-1:].type", "string"),
                    column("Status", ".status.conditions[-1:].status", "string"),
                    column("Age", ".metadata.creationTimestamp", "date"),
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                }},
            }],
        },
    })
}

/// The three definitions.
pub fn definitions() -> Vec<Json> {
    RESOURCES.iter().map(definition).collect()
}

/// The definitions as one multi-document YAML text (what `kestrel crd` prints and
/// `deploy/crds/katib.yaml` holds).
pub fn yaml() -> String {
    let docs: Vec<String> = definitions()
        .iter()
        .map(|d| serde_saphyr::to_string(d).unwrap_or_default())
        .collect();
    let mut out = String::from(
        "# Katib's resources (kubeflow.org/v1beta1), as kestrel serves them: `kestrel crd`.\n",
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&d);
        if !d.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katib_names_and_columns() {
        let all = definitions();
        let names: Vec<&str> = all
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "experiments.kubeflow.org",
                "trials.kubeflow.org",
                "suggestions.kubeflow.org"
            ]
        );
        let v = &all[1]["spec"]["versions"][0];
        assert_eq!(v["name"], "v1beta1");
        assert_eq!(v["subresources"], json!({"status": {}}));
        assert_eq!(
            v["additionalPrinterColumns"][0]["jsonPath"],
            ".status.conditions[-1:].type"
        );
        assert_eq!(all[1]["spec"]["names"]["listKind"], "TrialList");
        assert_eq!(all[0]["spec"]["scope"], "Namespaced");
    }

    #[test]
    fn the_yaml_reads_back_as_the_definitions() {
        let text = yaml();
        let docs: Vec<Json> = text
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_saphyr::from_str(d).unwrap_or(Json::Null))
            .collect();
        assert_eq!(docs, definitions());
    }

    #[test]
    fn the_committed_manifest_is_current() {
        let committed = include_str!("../../deploy/crds/katib.yaml");
        assert_eq!(
            committed,
            yaml(),
            "deploy/crds/katib.yaml is stale: cargo run -- crd > deploy/crds/katib.yaml"
        );
    }
}
