//! Server-side apply in the fake API server, as far as leader election needs it: every
//! patch records which field manager wrote each field (a field set to null loses its
//! owner), and an apply (`application/apply-patch+yaml`) that would change a field
//! another manager owns is refused with 409 Conflict unless forced, as the API server
//! refuses it.

use hyper::StatusCode;
use serde_json::Value as Json;

use super::api::{Key, State, param, status};

/// Who writes, and how.
pub(super) struct Writer {
    manager: String,
    force: bool,
    /// An apply patch (else merge or strategic merge).
    pub apply: bool,
}

/// The leaf fields of `patch` (below its top level, `metadata`, `apiVersion` and `kind`
/// left out) as `.a.b` paths with their values.
fn leaves(v: &Json, at: String, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                if at.is_empty() && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                    continue;
                }
                leaves(x, format!("{at}.{k}"), out);
            }
        }
        other => out.push((at, other.clone())),
    }
}

fn at<'a>(object: &'a Json, path: &str) -> Option<&'a Json> {
    object.pointer(&path.replace('.', "/"))
}

impl Writer {
    /// The writer of a PATCH with this query and content type.
    pub fn of(query: &str, content_type: &str) -> Self {
        Writer {
            manager: param(query, "fieldManager").unwrap_or_default(),
            force: param(query, "force").as_deref() == Some("true"),
            apply: content_type.starts_with("application/apply-patch"),
        }
    }

    /// Refuses an apply changing a field another manager owns.
    pub fn check(
        &self,
        state: &State,
        key: &Key,
        current: &Json,
        patch: &Json,
    ) -> Result<(), (StatusCode, Json)> {
        if !self.apply || self.force {
            return Ok(());
        }
        let owners = state.owners.get(key);
        let mut fields = Vec::new();
        leaves(patch, String::new(), &mut fields);
        let conflicts: Vec<String> = fields
            .iter()
            .filter_map(|(path, value)| {
                let owner = owners?.get(path)?;
                (*owner != self.manager && at(current, path) != Some(value))
                    .then(|| format!("conflict with {owner:?}: {path}"))
            })
            .collect();
        if conflicts.is_empty() {
            return Ok(());
        }
        Err(status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Apply failed with {} conflict(s): {}",
                conflicts.len(),
                conflicts.join("; ")
            ),
        ))
    }

    /// Records the writer as the owner of the fields `patch` sets.
    pub fn own(&self, state: &mut State, key: &Key, patch: &Json) {
        let mut fields = Vec::new();
        leaves(patch, String::new(), &mut fields);
        let owners = state.owners.entry(key.clone()).or_default();
        for (path, value) in fields {
            if value.is_null() {
                owners.remove(&path);
            } else if !self.manager.is_empty() {
                owners.insert(path, self.manager.clone());
            }
        }
    }
}
