//! Where the store lives: `--store DIR` / `KESTREL_STORE`, else the user's data directory
//! (`~/.local/share/kestrel` on Linux). The directory holds `kestrel.db` and `runs/`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use kestrel_store::Store;
use kestrel_store::sqlite::SqliteStore;

/// The `--store` flag shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Store directory (holds kestrel.db and the trial directories) [env: KESTREL_STORE].
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

impl StoreArgs {
    /// The store directory: `--store`, else `$KESTREL_STORE`, else the data directory.
    /// (The variable is read here rather than by clap, so that `store` says whether the
    /// flag itself was given: see `source::settle`.)
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.store {
            return Ok(d.clone());
        }
        if let Some(d) = std::env::var_os("KESTREL_STORE").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(d));
        }
        dirs::data_dir()
            .map(|d| d.join("kestrel"))
            .context("cannot find the user's data directory; pass --store DIR")
    }

    /// Opens (creating if needed) the store.
    pub fn open(&self) -> anyhow::Result<(Arc<dyn Store>, PathBuf)> {
        let dir = self.dir()?;
        let db = dir.join("kestrel.db");
        let store = SqliteStore::open(&db)
            .with_context(|| format!("opening the store {}", db.display()))?;
        Ok((Arc::new(store), dir))
    }

    /// Opens the store for reading only (nothing is created or migrated, so this works on
    /// a store the user cannot write); `None` when there is no store yet.
    pub fn open_read_only(&self) -> anyhow::Result<(Option<Arc<dyn Store>>, PathBuf)> {
        let dir = self.dir()?;
        let db = dir.join("kestrel.db");
        match SqliteStore::open_read_only(&db) {
            Ok(s) => Ok((Some(Arc::new(s)), dir)),
            Err(kestrel_store::StoreError::NotFound(_)) => Ok((None, dir)),
            Err(e) => Err(e).with_context(|| format!("opening the store {}", db.display())),
        }
    }
}
