//! The default [`Store`]: one SQLite file in WAL mode (`synchronous=NORMAL`, which keeps
//! every committed write across a killed process), readable by other processes (the CLI)
//! while an experiment runs.

use std::path::Path;
use std::sync::Mutex;

use jiff::Timestamp;
use kestrel_core::{ExperimentRecord, ExperimentStatus, MetricLog, TrialRecord, TrialState};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, Store, StoreError};

/// 2: observation logs no longer require a known trial (Katib's DB manager keeps logs of
/// trials it never saw); a trigger removes a deleted trial's logs.
const SCHEMA_VERSION: i64 = 2;

/// Version 1 to 2: `metric_logs` without the foreign key, rows kept.
const MIGRATE_1_TO_2: &str = "
BEGIN;
ALTER TABLE metric_logs RENAME TO metric_logs_v1;
CREATE TABLE metric_logs (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    trial TEXT NOT NULL,
    time  TEXT NOT NULL,
    name  TEXT NOT NULL,
    value TEXT NOT NULL
);
INSERT INTO metric_logs (id, trial, time, name, value)
    SELECT id, trial, time, name, value FROM metric_logs_v1;
DROP TABLE metric_logs_v1;
COMMIT;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS experiments (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    state      TEXT NOT NULL,
    record     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    name       TEXT PRIMARY KEY,
    experiment TEXT NOT NULL REFERENCES experiments(name) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    state      TEXT NOT NULL,
    objective  REAL,
    record     TEXT NOT NULL,
    UNIQUE (experiment, idx)
);
CREATE TABLE IF NOT EXISTS metric_logs (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    trial TEXT NOT NULL,
    time  TEXT NOT NULL,
    name  TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_logs_by_trial ON metric_logs (trial, name);
CREATE TRIGGER IF NOT EXISTS trial_logs_cascade AFTER DELETE ON trials
BEGIN
    DELETE FROM metric_logs WHERE trial = OLD.name;
END;
";

/// A SQLite-backed store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn encode<T: Serialize>(v: &T) -> String {
    // Serializing plain data structs to JSON cannot fail (no maps with non-string keys).
    serde_json::to_string(v).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database (for tests).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Conflict(format!(
                "the database has schema version {version}, newer than this kestrel understands ({SCHEMA_VERSION})"
            )));
        }
        if version == 1 {
            conn.execute_batch(MIGRATE_1_TO_2)?;
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every write is a single statement or transaction, so a poisoned lock still
        // guards a consistent connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl Store for SqliteStore {
    fn create_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        let r = self.conn().execute(
            "INSERT INTO experiments (name, created_at, state, record) VALUES (?1, ?2, ?3, ?4)",
            params![
                e.name(),
                e.created_at.to_string(),
                e.status.state.as_str(),
                encode(e)
            ],
        );
        match r {
            Err(err) if is_constraint(&err) => Err(StoreError::Conflict(format!(
                "experiment {} already exists",
                e.name()
            ))),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        let s: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM experiments WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        s.map(|s| decode(name, &s)).transpose()
    }

    fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, record FROM experiments ORDER BY created_at, name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (name, rec) = row?;
            decode(&name, &rec)
        })
        .collect()
    }

    fn set_experiment_status(&self, name: &str, status: &ExperimentStatus) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let s: Option<String> = tx
            .query_row(
                "SELECT record FROM experiments WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        let mut rec: ExperimentRecord = decode(
            name,
            &s.ok_or_else(|| StoreError::NotFound(format!("experiment {name}")))?,
        )?;
        rec.status = status.clone();
        tx.execute(
            "UPDATE experiments SET state = ?2, record = ?3 WHERE name = ?1",
            params![name, status.state.as_str(), encode(&rec)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_experiment(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM experiments WHERE name = ?1", [name])?
            > 0)
    }

    fn insert_trial(&self, t: &TrialRecord) -> Result<()> {
        let r = self.conn().execute(
            "INSERT INTO trials (name, experiment, idx, state, objective, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.name, t.experiment, t.index as i64, t.state.as_str(), t.objective, encode(t)],
        );
        match r {
            Err(err) if is_constraint(&err) => {
                let exists = self.experiment(&t.experiment)?.is_some();
                if exists {
                    Err(StoreError::Conflict(format!(
                        "trial {} (index {}) already exists",
                        t.name, t.index
                    )))
                } else {
                    Err(StoreError::NotFound(format!("experiment {}", t.experiment)))
                }
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    fn update_trial(&self, t: &TrialRecord, from: TrialState) -> Result<()> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE trials SET state = ?2, objective = ?3, record = ?4 WHERE name = ?1 AND state = ?5",
            params![t.name, t.state.as_str(), t.objective, encode(t), from.as_str()],
        )?;
        if n == 1 {
            return Ok(());
        }
        let cur: Option<String> = conn
            .query_row("SELECT state FROM trials WHERE name = ?1", [&t.name], |r| {
                r.get(0)
            })
            .optional()?;
        match cur {
            None => Err(StoreError::NotFound(format!("trial {}", t.name))),
            Some(s) => Err(StoreError::Conflict(format!(
                "trial {} is {s}, not {from}",
                t.name
            ))),
        }
    }

    fn trials(&self, experiment: &str) -> Result<Vec<TrialRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, record FROM trials WHERE experiment = ?1 ORDER BY idx")?;
        let rows = stmt.query_map([experiment], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (name, rec) = row?;
            decode(&name, &rec)
        })
        .collect()
    }

    fn trial(&self, name: &str) -> Result<Option<TrialRecord>> {
        let s: Option<String> = self
            .conn()
            .query_row("SELECT record FROM trials WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        s.map(|s| decode(name, &s)).transpose()
    }

    fn append_metrics(&self, trial: &str, logs: &[MetricLog]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO metric_logs (trial, time, name, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for l in logs {
                stmt.execute(params![trial, l.time.to_string(), l.name, l.value])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_metrics(&self, trial: &str) -> Result<usize> {
        Ok(self
            .conn()
            .execute("DELETE FROM metric_logs WHERE trial = ?1", [trial])?)
    }

    fn metrics(&self, trial: &str, metric: Option<&str>) -> Result<Vec<MetricLog>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT time, name, value FROM metric_logs WHERE trial = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![trial, metric], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (time, name, value) = row?;
            let time: Timestamp = time.parse().map_err(|_| {
                StoreError::Conflict(format!("bad timestamp {time:?} in metric_logs of {trial}"))
            })?;
            Ok(MetricLog { time, name, value })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_migrated_with_its_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE experiments (name TEXT PRIMARY KEY, created_at TEXT NOT NULL,
                     state TEXT NOT NULL, record TEXT NOT NULL);
                 CREATE TABLE trials (name TEXT PRIMARY KEY,
                     experiment TEXT NOT NULL REFERENCES experiments(name) ON DELETE CASCADE,
                     idx INTEGER NOT NULL, state TEXT NOT NULL, objective REAL,
                     record TEXT NOT NULL, UNIQUE (experiment, idx));
                 CREATE TABLE metric_logs (id INTEGER PRIMARY KEY AUTOINCREMENT,
                     trial TEXT NOT NULL REFERENCES trials(name) ON DELETE CASCADE,
                     time TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL);
                 PRAGMA foreign_keys = OFF;
                 INSERT INTO metric_logs (trial, time, name, value)
                     VALUES ('t', '2026-11-23T00:00:00Z', 'loss', '0.5');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.metrics("t", None).unwrap()[0].value, "0.5");
        s.append_metrics("unknown", &[]).unwrap();
        let v: i64 = s
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn conforms_in_memory() {
        crate::conformance::run_all(|| SqliteStore::in_memory().unwrap());
    }

    #[test]
    fn survives_reopen_and_is_shared_between_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/kestrel.db");
        let writer = SqliteStore::open(&path).unwrap();
        let e = crate::conformance::experiment("persist");
        writer.create_experiment(&e).unwrap();
        let reader = SqliteStore::open(&path).unwrap();
        assert_eq!(reader.experiment("persist").unwrap(), Some(e));
        drop(writer);
        drop(reader);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.experiments().unwrap().len(), 1);
    }
}
