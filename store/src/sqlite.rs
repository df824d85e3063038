//! The default [`Store`]: one SQLite file in WAL mode (`synchronous=NORMAL`, which keeps
//! every committed write across a killed process), readable by other processes (the CLI)
//! while an experiment runs.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kestrel_core::{ExperimentRecord, ExperimentStatus, MetricLog, TrialRecord, TrialState};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Acquire, Lease, Result, Store, StoreError, decide};

/// 2: observation logs no longer require a known trial (Katib's DB manager keeps logs of
/// trials it never saw); a trigger removes a deleted trial's logs.
/// 3: `leases` (one process drives an experiment).
const SCHEMA_VERSION: i64 = 3;

/// How long opening waits for other processes that create or migrate the same store.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Version 1 to 2: `metric_logs` without the foreign key, rows kept (run inside the
/// opening transaction).
const MIGRATE_1_TO_2: &str = "
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
CREATE TABLE IF NOT EXISTS leases (
    experiment TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    record     TEXT NOT NULL
);
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

    /// Opens an existing database for reading only: nothing is created or migrated, so
    /// reading commands work on a store they cannot write. `NotFound` when there is none.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(StoreError::NotFound(format!("store {}", path.display())));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(OPEN_TIMEOUT)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(newer(version));
        }
        if version == 0 {
            // The file exists but its schema is not written yet (a writer is creating the
            // store right now): it holds nothing, as if there were no store.
            return Err(StoreError::NotFound(format!("store {}", path.display())));
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    /// A private in-memory database (for tests).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(OPEN_TIMEOUT)?;
        // Several processes may open a new store at once: switching to WAL and creating
        // the schema take the write lock, and SQLite reports a busy database at once in
        // some of these cases instead of waiting, so both are retried.
        let deadline = Instant::now() + OPEN_TIMEOUT;
        retry_busy(deadline, || {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            Ok(())
        })?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        retry_busy(deadline, || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(newer(version));
            }
            if version == 1 {
                tx.execute_batch(MIGRATE_1_TO_2)?;
            }
            tx.execute_batch(SCHEMA)?;
            if version != SCHEMA_VERSION {
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            tx.commit()?;
            Ok(())
        })?;
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

fn newer(version: i64) -> StoreError {
    StoreError::Conflict(format!(
        "the database has schema version {version}, newer than this kestrel understands ({SCHEMA_VERSION})"
    ))
}

fn is_busy(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Runs `f` until it does not fail with a busy or locked database, or `deadline` passes.
fn retry_busy(deadline: Instant, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    let mut pause = Duration::from_millis(2);
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
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

    fn replace_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE experiments SET state = ?2, record = ?3 WHERE name = ?1",
            params![e.name(), e.status.state.as_str(), encode(e)],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("experiment {}", e.name())));
        }
        Ok(())
    }

    fn delete_experiment(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM leases WHERE experiment = ?1", [name])?;
        let n = tx.execute("DELETE FROM experiments WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(n > 0)
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

    fn acquire_lease(
        &self,
        experiment: &str,
        me: &Lease,
        stale: &dyn Fn(&Lease) -> bool,
    ) -> Result<Acquire> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur: Option<String> = tx
            .query_row(
                "SELECT record FROM leases WHERE experiment = ?1",
                [experiment],
                |r| r.get(0),
            )
            .optional()?;
        let cur: Option<Lease> = cur.map(|c| decode(experiment, &c)).transpose()?;
        let a = decide(cur, me, stale);
        if matches!(a, Acquire::Acquired { .. }) {
            tx.execute(
                "INSERT INTO leases (experiment, holder, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (experiment) DO UPDATE SET holder = ?2, record = ?3",
                params![experiment, me.holder, encode(me)],
            )?;
        }
        tx.commit()?;
        Ok(a)
    }

    fn renew_lease(&self, experiment: &str, holder: &str, at: Timestamp) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cur: Option<String> = tx
            .query_row(
                "SELECT record FROM leases WHERE experiment = ?1 AND holder = ?2",
                [experiment, holder],
                |r| r.get(0),
            )
            .optional()?;
        let Some(cur) = cur else {
            return Ok(false);
        };
        let mut lease: Lease = decode(experiment, &cur)?;
        lease.heartbeat = at;
        tx.execute(
            "UPDATE leases SET record = ?2 WHERE experiment = ?1",
            params![experiment, encode(&lease)],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn release_lease(&self, experiment: &str, holder: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM leases WHERE experiment = ?1 AND holder = ?2",
            [experiment, holder],
        )?;
        Ok(())
    }

    fn lease(&self, experiment: &str) -> Result<Option<Lease>> {
        let s: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM leases WHERE experiment = ?1",
                [experiment],
                |r| r.get(0),
            )
            .optional()?;
        s.map(|s| decode(experiment, &s)).transpose()
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

    #[test]
    fn concurrent_opens_of_a_new_store_all_succeed() {
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("r{round}/kestrel.db"));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let p = path.clone();
                    std::thread::spawn(move || SqliteStore::open(&p).map(|_| ()))
                })
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn read_only_opens_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kestrel.db");
        assert!(matches!(
            SqliteStore::open_read_only(&path),
            Err(StoreError::NotFound(_))
        ));
        assert!(!path.exists(), "a read-only open created the store");
        // A file a writer has created but not yet given its schema holds nothing.
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            SqliteStore::open_read_only(&path),
            Err(StoreError::NotFound(_))
        ));
        let writer = SqliteStore::open(&path).unwrap();
        writer
            .create_experiment(&crate::conformance::experiment("ro"))
            .unwrap();
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(reader.experiments().unwrap().len(), 1);
        assert!(matches!(
            reader.create_experiment(&crate::conformance::experiment("other")),
            Err(StoreError::Database(_))
        ));
    }
}
