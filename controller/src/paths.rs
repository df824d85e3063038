//! Where an experiment's trial directories live. Paths are built only from validated
//! experiment names, so nothing a request names can reach outside the store.

use std::path::{Path, PathBuf};

/// `<runs_dir>/<experiment>`, or `None` when `experiment` is not a valid experiment name
/// (which could climb out of `runs_dir`).
pub fn experiment_dir(runs_dir: &Path, experiment: &str) -> Option<PathBuf> {
    kestrel_core::validate::experiment_name(experiment).ok()?;
    let dir = runs_dir.join(experiment);
    (dir.parent() == Some(runs_dir)).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_names_become_directories_under_the_runs_dir() {
        let runs = Path::new("/store/runs");
        assert_eq!(
            experiment_dir(runs, "digits"),
            Some(PathBuf::from("/store/runs/digits"))
        );
        for bad in ["..", "../../victim", "/etc", "a/b", ".", ""] {
            assert_eq!(experiment_dir(runs, bad), None, "{bad}");
        }
    }
}
