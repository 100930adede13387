//! The SQL destination's database: a PostgreSQL or MySQL / MariaDB server named by a URL
//! (from the candidate's secret), reached with TLS unless the URL says otherwise, through
//! one small pool per Lambda instance; and the schema callsync owns there, created and
//! upgraded by versioned migrations that callsync runs itself, once, never on every call.
//!
//! The schema (every table's name starts with the destination's optional prefix):
//!
//! - `calls` — one row per call: key `(candidate, call_id)`; the call's local date, start
//!   and end as real timestamps (UTC), agent, result key and display name, VAN id and
//!   database mode, names, phone, source file and line, and when callsync last wrote it.
//! - `deliveries` — one row per call and destination: key `(candidate, call_id,
//!   destination)`; state, attempts, receipt, error and update time, so a campaign can
//!   query VAN's outcome next to the call.
//! - `callsync_schema` — the migrations applied: version and time.
//!
//! Why not sqlx's own migrator: its bookkeeping table has one fixed name per database,
//! and two candidates (two prefixes) sharing a database would share it.

use std::time::Duration;

use sqlx::mysql::MySqlPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, MySqlPool, PgPool};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

/// The connections a Lambda instance keeps to the database: a batch is written by one
/// statement at a time, and a campaign's database must not be crowded by workers.
const POOL_SIZE: u32 = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(
        "the database URL is not one callsync can use: {0} (expected postgres://… or mysql://…)"
    )]
    Url(String),
    /// The server did not answer, refused, or failed for now: try again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The server refused what was asked (permissions, a schema it does not accept).
    #[error("the database refused: {0}")]
    Refused(String),
}

impl From<sqlx::Error> for SqlError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(_) => Self::Refused(e.to_string()),
            _ => Self::Unavailable(e.to_string()),
        }
    }
}

/// Which SQL a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

/// A database reached through a small pool.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// A table prefix: letters, digits and `_`, at most 32, so that it is safe to write into
/// statements (names cannot be bound as parameters).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > 32 {
        return Err(format!(
            "table_prefix is {} characters long; at most 32",
            prefix.len()
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "table_prefix may hold letters, digits and `_` only, not {c:?}"
        ));
    }
    Ok(())
}

/// The URL with TLS required unless it says otherwise (`sslmode=` / `ssl-mode=`).
fn with_tls(url: &str, dialect: Dialect) -> String {
    let (key, required) = match dialect {
        Dialect::Postgres => ("sslmode=", "sslmode=require"),
        Dialect::MySql => ("ssl-mode=", "ssl-mode=required"),
    };
    if url.contains(key) {
        return url.to_owned();
    }
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{required}")
}

impl Database {
    /// A pool for `url` (`postgres://` or `postgresql://`, `mysql://` or `mariadb://`);
    /// connections are made when first needed.
    pub fn connect(url: &str) -> Result<Self, SqlError> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => PgPoolOptions::new()
                .max_connections(POOL_SIZE)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy(&with_tls(url, Dialect::Postgres))
                .map(Self::Postgres)
                .map_err(|e| SqlError::Url(e.to_string())),
            "mysql" | "mariadb" => {
                let url = format!("mysql://{}", url.split_once("://").map_or("", |(_, r)| r));
                MySqlPoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy(&with_tls(&url, Dialect::MySql))
                    .map(Self::MySql)
                    .map_err(|e| SqlError::Url(e.to_string()))
            }
            _ => Err(SqlError::Url(format!("the scheme {scheme:?}"))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Postgres(_) => Dialect::Postgres,
            Self::MySql(_) => Dialect::MySql,
        }
    }

    /// The schema version applied under `prefix` (0: none yet).
    pub async fn schema_version(&self, prefix: &str) -> Result<i64, SqlError> {
        check_prefix(prefix).map_err(SqlError::Url)?;
        let table = format!("{prefix}callsync_schema");
        let exists: i64 = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(&table)
                .fetch_one(pool)
                .await?
            }
            Self::MySql(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
                )
                .bind(&table)
                .fetch_one(pool)
                .await?
            }
        };
        if exists == 0 {
            return Ok(0);
        }
        let sql = format!("SELECT COALESCE(MAX(version), 0) FROM {table}");
        Ok(match self {
            Self::Postgres(pool) => sqlx::query_scalar::<_, i32>(safe(sql.clone()))
                .fetch_one(pool)
                .await?
                .into(),
            Self::MySql(pool) => sqlx::query_scalar::<_, i32>(safe(sql.clone()))
                .fetch_one(pool)
                .await?
                .into(),
        })
    }

    /// Bring the schema under `prefix` to [`SCHEMA_VERSION`]; returns the version found
    /// before. Safe to run from several workers at once: one applies, the others find it
    /// done.
    pub async fn migrate(&self, prefix: &str) -> Result<i64, SqlError> {
        self.migrate_to(prefix, SCHEMA_VERSION).await
    }

    /// As [`Database::migrate`], stopping at `target` (tests: an older schema).
    pub async fn migrate_to(&self, prefix: &str, target: i64) -> Result<i64, SqlError> {
        check_prefix(prefix).map_err(SqlError::Url)?;
        let lock = format!("callsync-schema-{prefix}");
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // One migrating transaction per prefix at a time; DDL is transactional
                // here, so a migration is applied whole or not at all.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&lock)
                    .execute(&mut *tx)
                    .await?;
                tx.execute(safe(bookkeeping(Dialect::Postgres, prefix)))
                    .await?;
                let found: i32 = sqlx::query_scalar(safe(format!(
                    "SELECT COALESCE(MAX(version), 0) FROM {prefix}callsync_schema"
                )))
                .fetch_one(&mut *tx)
                .await?;
                for m in pending(found, target) {
                    for statement in (m.postgres)(prefix) {
                        tx.execute(safe(statement)).await?;
                    }
                    sqlx::query(safe(format!(
                        "INSERT INTO {prefix}callsync_schema (version, applied_at) VALUES ($1, now())"
                    )))
                    .bind(m.version)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(found.into())
            }
            Self::MySql(pool) => {
                // DDL commits itself in MySQL: a named lock keeps workers apart, and every
                // statement is safe to repeat, so a migration cut short is finished by the
                // next run.
                let mut conn = pool.acquire().await?;
                let got: Option<i32> = sqlx::query_scalar("SELECT GET_LOCK(?, 30)")
                    .bind(&lock)
                    .fetch_one(&mut *conn)
                    .await?;
                if got != Some(1) {
                    return Err(SqlError::Unavailable(
                        "another worker has been migrating the schema for 30 s".into(),
                    ));
                }
                let result = async {
                    conn.execute(safe(bookkeeping(Dialect::MySql, prefix)))
                        .await?;
                    let found: i32 = sqlx::query_scalar(safe(format!(
                        "SELECT COALESCE(MAX(version), 0) FROM {prefix}callsync_schema"
                    )))
                    .fetch_one(&mut *conn)
                    .await?;
                    for m in pending(found, target) {
                        for statement in (m.mysql)(prefix) {
                            conn.execute(safe(statement)).await?;
                        }
                        sqlx::query(safe(format!(
                            "INSERT IGNORE INTO {prefix}callsync_schema (version, applied_at) VALUES (?, UTC_TIMESTAMP(6))"
                        )))
                        .bind(m.version)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok::<_, sqlx::Error>(found)
                }
                .await;
                let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
                    .bind(&lock)
                    .execute(&mut *conn)
                    .await;
                Ok(result?.into())
            }
        }
    }
}

/// One call as the `calls` table holds it. Times are UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub candidate: String,
    pub call_id: String,
    pub local_date: jiff::civil::Date,
    pub started_at: jiff::Timestamp,
    pub ended_at: Option<jiff::Timestamp>,
    pub agent: Option<String>,
    pub result_key: String,
    pub result_name: Option<String>,
    pub van_id: Option<i64>,
    pub database_mode: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub source_file: Option<String>,
    pub source_line: Option<i64>,
    pub updated_at: jiff::Timestamp,
}

/// One delivery as the `deliveries` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub candidate: String,
    pub call_id: String,
    pub destination: String,
    pub state: String,
    pub attempts: i32,
    pub receipt: Option<String>,
    pub error: Option<String>,
    pub updated_at: jiff::Timestamp,
}

/// Rows written by one statement at most (16 values a call row: far under both servers'
/// 65,535 parameters).
pub const ROWS_PER_STATEMENT: usize = 500;

/// A time as both servers read it from text (UTC, microseconds).
fn sql_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A value bound as text (casts turn it into the column's type where the server needs one).
type Value = Option<String>;

/// `INSERT … ON CONFLICT/DUPLICATE KEY UPDATE` of `rows` (each `columns.len()` values) into
/// `table` keyed by `key`: a row is replaced only by one at least as new (`updated_at`
/// never moves back), and written again unchanged by a re-delivery.
fn upsert_sql(
    dialect: Dialect,
    table: &str,
    columns: &[(&str, &str)],
    key: &[&str],
    rows: usize,
) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, (_, cast)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match dialect {
                // Times are written as UTC whatever the session's time zone.
                Dialect::Postgres if *cast == "timestamptz" => {
                    sql.push_str(&format!("(CAST(${n} AS timestamp) AT TIME ZONE 'UTC')"));
                }
                Dialect::Postgres => sql.push_str(&format!("CAST(${n} AS {cast})")),
                Dialect::MySql => sql.push('?'),
            }
        }
        sql.push(')');
    }
    let updated: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !key.contains(n) && *n != "updated_at")
        .collect();
    match dialect {
        Dialect::Postgres => {
            let sets: Vec<String> = updated
                .iter()
                .chain(["updated_at"].iter())
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {} WHERE {table}.updated_at <= EXCLUDED.updated_at",
                key.join(", "),
                sets.join(", ")
            ));
        }
        Dialect::MySql => {
            // Assignments apply left to right: `updated_at` last, so every other column
            // still compares against the stored time.
            let sets: Vec<String> = updated
                .iter()
                .chain(["updated_at"].iter())
                .map(|c| format!("{c} = IF(VALUES(updated_at) >= updated_at, VALUES({c}), {c})"))
                .collect();
            sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", ")));
        }
    }
    sql
}

const CALL_COLUMNS: &[(&str, &str)] = &[
    ("candidate", "text"),
    ("call_id", "text"),
    ("local_date", "date"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("agent", "text"),
    ("result_key", "text"),
    ("result_name", "text"),
    ("van_id", "bigint"),
    ("database_mode", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("phone", "text"),
    ("source_file", "text"),
    ("source_line", "bigint"),
    ("updated_at", "timestamptz"),
];

const DELIVERY_COLUMNS: &[(&str, &str)] = &[
    ("candidate", "text"),
    ("call_id", "text"),
    ("destination", "text"),
    ("state", "text"),
    ("attempts", "integer"),
    ("receipt", "text"),
    ("error", "text"),
    ("updated_at", "timestamptz"),
];

impl CallRow {
    fn values(&self) -> Vec<Value> {
        vec![
            Some(self.candidate.clone()),
            Some(self.call_id.clone()),
            Some(self.local_date.to_string()),
            Some(sql_time(self.started_at)),
            self.ended_at.map(sql_time),
            self.agent.clone(),
            Some(self.result_key.clone()),
            self.result_name.clone(),
            self.van_id.map(|v| v.to_string()),
            self.database_mode.clone(),
            self.first_name.clone(),
            self.last_name.clone(),
            self.phone.clone(),
            self.source_file.clone(),
            self.source_line.map(|v| v.to_string()),
            Some(sql_time(self.updated_at)),
        ]
    }
}

impl DeliveryRow {
    fn values(&self) -> Vec<Value> {
        vec![
            Some(self.candidate.clone()),
            Some(self.call_id.clone()),
            Some(self.destination.clone()),
            Some(self.state.clone()),
            Some(self.attempts.to_string()),
            self.receipt.clone(),
            self.error.clone(),
            Some(sql_time(self.updated_at)),
        ]
    }
}

impl Database {
    /// Upsert `rows` into `calls` under `prefix`, [`ROWS_PER_STATEMENT`] a statement.
    pub async fn upsert_calls(&self, prefix: &str, rows: &[CallRow]) -> Result<(), SqlError> {
        let values: Vec<Vec<Value>> = rows.iter().map(CallRow::values).collect();
        self.upsert(
            prefix,
            "calls",
            CALL_COLUMNS,
            &["candidate", "call_id"],
            &values,
        )
        .await
    }

    /// Upsert `rows` into `deliveries` under `prefix`, [`ROWS_PER_STATEMENT`] a statement.
    pub async fn upsert_deliveries(
        &self,
        prefix: &str,
        rows: &[DeliveryRow],
    ) -> Result<(), SqlError> {
        let values: Vec<Vec<Value>> = rows.iter().map(DeliveryRow::values).collect();
        self.upsert(
            prefix,
            "deliveries",
            DELIVERY_COLUMNS,
            &["candidate", "call_id", "destination"],
            &values,
        )
        .await
    }

    async fn upsert(
        &self,
        prefix: &str,
        table: &str,
        columns: &[(&str, &str)],
        key: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), SqlError> {
        check_prefix(prefix).map_err(SqlError::Url)?;
        let table = format!("{prefix}{table}");
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_sql(self.dialect(), &table, columns, key, chunk.len());
            match self {
                Self::Postgres(pool) => {
                    let mut q = sqlx::query(safe(sql));
                    for v in chunk.iter().flatten() {
                        q = q.bind(v.clone());
                    }
                    q.execute(pool).await?;
                }
                Self::MySql(pool) => {
                    let mut q = sqlx::query(safe(sql));
                    for v in chunk.iter().flatten() {
                        q = q.bind(v.clone());
                    }
                    q.execute(pool).await?;
                }
            }
        }
        Ok(())
    }
}

/// A statement built with a table prefix: the only text ever put into SQL here, checked by
/// [`check_prefix`] before any statement is made (values are always bound).
fn safe(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// The migrations after version `found`, up to `target`, in order.
fn pending(found: i32, target: i64) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS
        .iter()
        .filter(move |m| m.version > found && i64::from(m.version) <= target)
}

/// The table of applied versions.
fn bookkeeping(dialect: Dialect, prefix: &str) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "CREATE TABLE IF NOT EXISTS {prefix}callsync_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
        ),
        Dialect::MySql => format!(
            "CREATE TABLE IF NOT EXISTS {prefix}callsync_schema (version INT PRIMARY KEY, applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    }
}

/// One schema version: its statements in each dialect, each safe to repeat.
struct Migration {
    version: i32,
    postgres: fn(&str) -> Vec<String>,
    mysql: fn(&str) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        postgres: |p| {
            vec![format!(
                "CREATE TABLE IF NOT EXISTS {p}calls (
                    candidate varchar(64) NOT NULL,
                    call_id varchar(256) NOT NULL,
                    local_date date NOT NULL,
                    started_at timestamptz NOT NULL,
                    ended_at timestamptz NULL,
                    agent varchar(256) NULL,
                    result_key varchar(256) NOT NULL,
                    result_name varchar(256) NULL,
                    van_id bigint NULL,
                    database_mode varchar(16) NULL,
                    first_name varchar(256) NULL,
                    last_name varchar(256) NULL,
                    phone varchar(32) NULL,
                    source_file varchar(1024) NULL,
                    source_line bigint NULL,
                    updated_at timestamptz NOT NULL,
                    PRIMARY KEY (candidate, call_id))"
            )]
        },
        mysql: |p| {
            vec![format!(
                "CREATE TABLE IF NOT EXISTS {p}calls (
                    candidate VARCHAR(64) NOT NULL,
                    call_id VARCHAR(256) NOT NULL,
                    local_date DATE NOT NULL,
                    started_at DATETIME(6) NOT NULL,
                    ended_at DATETIME(6) NULL,
                    agent VARCHAR(256) NULL,
                    result_key VARCHAR(256) NOT NULL,
                    result_name VARCHAR(256) NULL,
                    van_id BIGINT NULL,
                    database_mode VARCHAR(16) NULL,
                    first_name VARCHAR(256) NULL,
                    last_name VARCHAR(256) NULL,
                    phone VARCHAR(32) NULL,
                    source_file VARCHAR(1024) NULL,
                    source_line BIGINT NULL,
                    updated_at DATETIME(6) NOT NULL,
                    PRIMARY KEY (candidate, call_id)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )]
        },
    },
    Migration {
        version: 2,
        postgres: |p| {
            vec![format!(
                "CREATE TABLE IF NOT EXISTS {p}deliveries (
                    candidate varchar(64) NOT NULL,
                    call_id varchar(256) NOT NULL,
                    destination varchar(64) NOT NULL,
                    state varchar(32) NOT NULL,
                    attempts integer NOT NULL,
                    receipt text NULL,
                    error text NULL,
                    updated_at timestamptz NOT NULL,
                    PRIMARY KEY (candidate, call_id, destination))"
            )]
        },
        mysql: |p| {
            vec![format!(
                "CREATE TABLE IF NOT EXISTS {p}deliveries (
                    candidate VARCHAR(64) NOT NULL,
                    call_id VARCHAR(256) NOT NULL,
                    destination VARCHAR(64) NOT NULL,
                    state VARCHAR(32) NOT NULL,
                    attempts INT NOT NULL,
                    receipt TEXT NULL,
                    error TEXT NULL,
                    updated_at DATETIME(6) NOT NULL,
                    PRIMARY KEY (candidate, call_id, destination)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )]
        },
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_prefix_is_a_plain_name_or_refused_saying_why() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("ny14_").is_ok());
        let err = check_prefix("x; DROP TABLE calls; --").unwrap_err();
        assert!(err.contains("letters, digits and `_`"), "{err}");
        assert!(
            check_prefix(&"a".repeat(33))
                .unwrap_err()
                .contains("at most 32")
        );
    }

    #[test]
    fn tls_is_required_unless_the_url_says_otherwise() {
        assert_eq!(
            with_tls("postgres://u@db.example.org/calls", Dialect::Postgres),
            "postgres://u@db.example.org/calls?sslmode=require"
        );
        assert_eq!(
            with_tls("postgres://u@h/db?sslmode=disable", Dialect::Postgres),
            "postgres://u@h/db?sslmode=disable"
        );
        assert_eq!(
            with_tls("mysql://u@h/db?charset=utf8mb4", Dialect::MySql),
            "mysql://u@h/db?charset=utf8mb4&ssl-mode=required"
        );
        assert!(matches!(
            Database::connect("sqlite://x"),
            Err(SqlError::Url(_))
        ));
    }
}
