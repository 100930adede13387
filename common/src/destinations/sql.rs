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

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, MySqlPool, PgPool};

use super::{DeliverContext, DeliveryError, Destination, Inspection, Metadata};
use crate::call::Call;
use crate::candidate::Candidate;
use crate::ledger::{DeliveryPlan, DeliveryRecord, Receipt};
use crate::mapping::{FieldError, ResultRow};
use crate::values::CandidateSlug;

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

/// A table prefix: lowercase letters, digits and `_`, at most 32, so that it is safe to
/// write into statements (names cannot be bound as parameters) and names the same table
/// in both servers (PostgreSQL folds unquoted names to lowercase; MySQL on Linux does not).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > 32 {
        return Err(format!(
            "table_prefix is {} characters long; at most 32",
            prefix.len()
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "table_prefix may hold lowercase letters, digits and `_` only, not {c:?}"
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

impl Database {
    /// What the URL's user lacks for callsync's writes under `prefix`, each with the grant
    /// that gives it: creating tables (while a migration is pending) and inserting,
    /// updating and reading rows of `calls` and `deliveries`. Empty when it has all.
    /// `version` is the schema version found under `prefix` ([`Database::schema_version`]).
    pub async fn missing_privileges(
        &self,
        prefix: &str,
        version: i64,
    ) -> Result<Vec<String>, SqlError> {
        let tables = [format!("{prefix}calls"), format!("{prefix}deliveries")];
        let rows = ["INSERT", "UPDATE", "SELECT"];
        let mut missing = Vec::new();
        match self {
            Self::Postgres(pool) => {
                if version < SCHEMA_VERSION {
                    let can: Option<bool> = sqlx::query_scalar(
                        "SELECT has_schema_privilege(current_schema(), 'CREATE')",
                    )
                    .fetch_one(pool)
                    .await?;
                    if can != Some(true) {
                        missing.push("the URL's user may not create tables in its schema, and callsync creates and upgrades its own: GRANT CREATE ON SCHEMA <schema> TO <user>".to_owned());
                    }
                }
                for table in &tables {
                    for privilege in rows {
                        let can: Option<bool> = sqlx::query_scalar(
                            "SELECT CASE WHEN to_regclass($1) IS NULL THEN true ELSE has_table_privilege($1, $2) END",
                        )
                        .bind(table)
                        .bind(privilege)
                        .fetch_one(pool)
                        .await?;
                        if can != Some(true) {
                            missing.push(format!(
                                "the URL's user may not {} rows of {table}: GRANT {privilege} ON {table} TO <user>",
                                privilege.to_lowercase()
                            ));
                        }
                    }
                }
            }
            Self::MySql(pool) => {
                // Grants of the user itself: global, on this database, and on each table.
                let grantee: String = sqlx::query_scalar(
                    "SELECT CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
                )
                .fetch_one(pool)
                .await?;
                let broad: Vec<String> = sqlx::query_scalar(
                    "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?
                     UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES
                       WHERE GRANTEE = ? AND TABLE_SCHEMA = DATABASE()",
                )
                .bind(&grantee)
                .bind(&grantee)
                .fetch_all(pool)
                .await?;
                let has = |p: &str| broad.iter().any(|b| b.eq_ignore_ascii_case(p));
                if version < SCHEMA_VERSION && !has("CREATE") {
                    missing.push("the URL's user may not create tables in its database, and callsync creates and upgrades its own: GRANT CREATE ON <db>.* TO <user>".to_owned());
                }
                for table in &tables {
                    let own: Vec<String> = sqlx::query_scalar(
                        "SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES
                         WHERE GRANTEE = ? AND TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                    )
                    .bind(&grantee)
                    .bind(table)
                    .fetch_all(pool)
                    .await?;
                    for privilege in rows {
                        if !has(privilege) && !own.iter().any(|o| o.eq_ignore_ascii_case(privilege))
                        {
                            missing.push(format!(
                                "the URL's user may not {} rows of {table}: GRANT {privilege} ON <db>.{table} TO <user>",
                                privilege.to_lowercase()
                            ));
                        }
                    }
                }
            }
        }
        Ok(missing)
    }
}

/// One call as the `calls` table holds it. Times are UTC. As a planned payload it holds
/// no update time: that is the delivery's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    #[serde(skip, default)]
    pub updated_at: jiff::Timestamp,
}

/// One delivery as the `deliveries` table holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

// ---------------------------------------------------------------------------------------
// The `sql` kind.

pub const METADATA: Metadata = Metadata {
    kind: "sql",
    description: "every call upserted into the campaign's PostgreSQL or MySQL / MariaDB database, with the outcome of each of its deliveries",
    spends_money: false,
    // Rows a second across workers: a statement carries a queue batch's rows, and the
    // campaign's database is shared with everything else it serves.
    default_rate_limit: 100.0,
    resends_updates: true,
    configurable: true,
    batches: true,
    waits_for_call: true,
    codes: super::DESTINATION_CODES,
    retry: super::Retry::Backoff,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Secrets Manager secret holding `{"url": "postgres://…"}`.
    secret_name: String,
    #[serde(default)]
    table_prefix: Option<String>,
}

/// The secret's JSON.
#[derive(Deserialize)]
struct UrlSecret {
    url: String,
}

/// What a delivery to the `sql` kind is handed: the call's row, planned, and the call's
/// other deliveries as the deliver loop found them (see [`Metadata::waits_for_call`]).
#[derive(Debug, Deserialize)]
struct Parcel {
    call: CallRow,
    #[serde(default)]
    deliveries: Vec<DeliveryRow>,
}

/// The `sql` destination of one candidate: its secret, its table prefix, and the pool of
/// this instance (kept while the candidate's document is unchanged; replaced when the
/// secret's URL changes).
pub struct Sql {
    secret_name: String,
    prefix: String,
    pool: tokio::sync::Mutex<Option<Pool>>,
}

struct Pool {
    /// SHA-256 of the URL it was made for: a rotated secret makes a new pool.
    url: String,
    database: Database,
    /// Whether this instance brought the schema to [`SCHEMA_VERSION`] already.
    migrated: bool,
}

impl std::fmt::Debug for Sql {
    // Never the pool: its options hold the URL, password included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("secret_name", &self.secret_name)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Sql {
    pub(super) fn from_doc(
        doc: &serde_json::Map<String, serde_json::Value>,
        at: &str,
        slug: Option<&CandidateSlug>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let s: Settings = super::settings(doc, at, errors)?;
        let before = errors.len();
        crate::candidate::check_secret(
            &format!("{at}.secret_name"),
            &s.secret_name,
            "the database URL ({\"url\": \"postgres://user:password@host:5432/db\"})",
            slug,
            errors,
        );
        let prefix = s.table_prefix.unwrap_or_default();
        if let Err(e) = check_prefix(&prefix) {
            errors.push(FieldError::new(
                format!("{at}.table_prefix"),
                format!("{e}, such as \"callsync_\""),
            ));
        }
        (errors.len() == before).then(|| Self {
            secret_name: s.secret_name,
            prefix,
            pool: tokio::sync::Mutex::new(None),
        })
    }

    /// A pool for the URL in the secret, not connected yet (for checks).
    async fn connect(&self, ctx: DeliverContext<'_>) -> Result<Database, DeliveryError> {
        let secret: UrlSecret = super::own_secret(ctx, &self.secret_name).await?;
        Database::connect(secret.url.trim())
            .map_err(|e| DeliveryError::Setup(format!("secret {:?}: {e}", self.secret_name)))
    }

    /// This instance's pool for the URL in the secret, the schema brought up to date once.
    async fn database(&self, ctx: DeliverContext<'_>) -> Result<Database, DeliveryError> {
        let secret: UrlSecret = super::own_secret(ctx, &self.secret_name).await?;
        let digest = crate::values::sha256_hex(secret.url.as_bytes());
        let mut pool = self.pool.lock().await;
        let p = match pool.take() {
            Some(p) if p.url == digest => pool.insert(p),
            // None yet, or one for a URL the secret no longer holds.
            _ => pool.insert(Pool {
                url: digest,
                database: Database::connect(secret.url.trim()).map_err(|e| {
                    DeliveryError::Setup(format!("secret {:?}: {e}", self.secret_name))
                })?,
                migrated: false,
            }),
        };
        if !p.migrated {
            p.database.migrate(&self.prefix).await.map_err(|e| match e {
                SqlError::Refused(why) => DeliveryError::Setup(format!(
                    "the database refused callsync's schema ({why}): let the URL's user create tables (PostgreSQL: GRANT CREATE ON SCHEMA …; MySQL: GRANT CREATE, INSERT, UPDATE, SELECT ON db.*), then POST /retry with this destination"
                )),
                e => delivery_error(e),
            })?;
            p.migrated = true;
        }
        Ok(p.database.clone())
    }
}

/// A database failure as a delivery's: one that may pass (the server is down, busy,
/// restarting) is tried again; a refusal of the rows is final.
fn delivery_error(e: SqlError) -> DeliveryError {
    match e {
        SqlError::Url(m) => DeliveryError::Setup(m),
        SqlError::Unavailable(m) => DeliveryError::Retryable {
            message: format!("the database is unavailable: {m}"),
            status: None,
            answer: None,
        },
        SqlError::Refused(m) => DeliveryError::Rejected {
            message: format!("the database refused the rows: {m}"),
            status: None,
            answer: None,
            envelope: None,
        },
    }
}

/// The row `call` is planned as.
pub fn call_row(call: &Call, row: Option<&ResultRow>, candidate: &Candidate) -> CallRow {
    let database_mode = call
        .database_mode
        .or(candidate.van().map(|v| v.database_mode));
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    CallRow {
        candidate: candidate.slug.to_string(),
        call_id: call.call_id.0.to_string(),
        local_date: call.local_date,
        started_at: call.started_at,
        ended_at: call.ended_at,
        agent: text(call.agent()),
        result_key: call.result.as_str().to_owned(),
        result_name: row.map(|r| r.display_name.clone()),
        van_id: call.van_id.and_then(|v| i64::try_from(v.get()).ok()),
        database_mode: database_mode.and_then(|m| {
            serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        }),
        first_name: text(call.first_name()),
        last_name: text(call.last_name()),
        phone: call.phone.as_ref().map(|p| p.digits().to_owned()),
        source_file: call.origin.as_ref().map(|o| o.file.key.clone()),
        source_line: call
            .origin
            .as_ref()
            .and_then(|o| i64::try_from(o.line).ok()),
        updated_at: jiff::Timestamp::default(),
    }
}

/// A delivery as the `deliveries` table holds it: a call record's own (VAN or the CSV;
/// `none` for a call that went to neither — ignored, or an error before planning) or a
/// destination's.
pub fn delivery_row<R: crate::ledger::Tracked>(
    record: &R,
    updated_at: jiff::Timestamp,
) -> DeliveryRow {
    let d = record.delivery();
    let key = record.call_key();
    DeliveryRow {
        candidate: key.day.candidate.to_string(),
        call_id: key.call_id.0.to_string(),
        destination: record.destination_name().unwrap_or("none").to_owned(),
        state: d.state.to_string(),
        attempts: i32::try_from(d.attempts).unwrap_or(i32::MAX),
        receipt: d
            .receipt
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok()),
        error: d
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.code, e.message)),
        updated_at,
    }
}

#[async_trait]
impl Destination for Sql {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    /// The host is in the secret, not the document: the campaign's database may well be
    /// at a private address inside its VPC.
    fn endpoint(&self) -> Option<(&str, &'static str)> {
        None
    }

    /// The secret reads and holds a URL callsync can use; nothing connects (a database
    /// that is down must not stop a night: only its own deliveries wait).
    async fn check(&self, ctx: DeliverContext<'_>) -> Vec<String> {
        match self.connect(ctx).await {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }

    async fn inspect(&self, ctx: DeliverContext<'_>) -> Inspection {
        let mut found = Inspection::default();
        let database = match self.connect(ctx).await {
            Ok(d) => d,
            Err(e) => {
                found.problems.push(e.to_string());
                return found;
            }
        };
        let unreachable = |why: String| {
            format!(
                "the database did not answer ({why}): its deliveries wait until it does; if it is inside a VPC, deploy with the VPC parameters (README, \"sql\")"
            )
        };
        let version = match database.schema_version(&self.prefix).await {
            Ok(v) => v,
            Err(SqlError::Unavailable(why)) => {
                found.notes.push(unreachable(why));
                return found;
            }
            Err(e) => {
                found.problems.push(e.to_string());
                return found;
            }
        };
        match database.missing_privileges(&self.prefix, version).await {
            Ok(missing) => found.problems = missing,
            Err(SqlError::Unavailable(why)) => found.notes.push(unreachable(why)),
            Err(e) => found.problems.push(e.to_string()),
        }
        match version {
            v if v == SCHEMA_VERSION => found.notes.push(format!("schema version {v} (current)")),
            0 => found.notes.push(format!(
                "no callsync schema yet: the first delivery creates version {SCHEMA_VERSION}"
            )),
            v if v < SCHEMA_VERSION => found.notes.push(format!(
                "schema version {v}: the next delivery upgrades it to {SCHEMA_VERSION}"
            )),
            v => found.problems.push(format!(
                "schema version {v} is newer than this deployment's {SCHEMA_VERSION}: deploy the newer callsync"
            )),
        }
        found
    }

    fn plan(
        &self,
        _name: &str,
        call: &Call,
        row: Option<&ResultRow>,
        candidate: &Candidate,
    ) -> DeliveryPlan {
        DeliveryPlan::Send(serde_json::json!({ "call": call_row(call, row, candidate) }))
    }

    async fn deliver(
        &self,
        ctx: DeliverContext<'_>,
        delivery: &DeliveryRecord,
    ) -> Result<Receipt, DeliveryError> {
        let mut out = self.deliver_many(ctx, std::slice::from_ref(delivery)).await;
        out.pop()
            .unwrap_or_else(|| Err(DeliveryError::Setup("nothing was delivered".into())))
    }

    /// Every row of the batch in one statement per table: the calls, then their
    /// deliveries. Each is an upsert, so a batch sent again changes nothing.
    async fn deliver_many(
        &self,
        ctx: DeliverContext<'_>,
        deliveries: &[DeliveryRecord],
    ) -> Vec<Result<Receipt, DeliveryError>> {
        let now = ctx.clock.now();
        let mut out: Vec<Option<Result<Receipt, DeliveryError>>> = vec![None; deliveries.len()];
        let mut calls = Vec::new();
        let mut rows = Vec::new();
        let mut sent = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            let parcel = d
                .payload
                .clone()
                .map(serde_json::from_value::<Parcel>)
                .transpose();
            match parcel {
                Ok(Some(mut p)) => {
                    p.call.updated_at = now;
                    calls.push(p.call);
                    rows.extend(p.deliveries);
                    sent.push(i);
                }
                Ok(None) => {
                    out[i] = Some(Err(DeliveryError::Setup(
                        "the delivery holds no payload".into(),
                    )))
                }
                Err(e) => {
                    out[i] = Some(Err(DeliveryError::Setup(format!(
                        "the delivery's payload is not a call row ({e}): POST /retry with this destination plans it again"
                    ))))
                }
            }
        }
        if !sent.is_empty() {
            let written = async {
                let database = self.database(ctx).await?;
                database
                    .upsert_calls(&self.prefix, &calls)
                    .await
                    .map_err(delivery_error)?;
                database
                    .upsert_deliveries(&self.prefix, &rows)
                    .await
                    .map_err(delivery_error)
            }
            .await;
            for i in sent {
                out[i] = Some(match &written {
                    Ok(()) => Ok(Receipt::Sql {
                        table: format!("{}calls", self.prefix),
                        at: now,
                        attempts: deliveries[i].delivery.attempts,
                    }),
                    Err(e) => Err(e.clone()),
                });
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(DeliveryError::Setup("nothing was delivered".into()))))
            .collect()
    }
}

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
        assert!(check_prefix("NY14_").is_err());
        assert!(
            check_prefix(&"a".repeat(33))
                .unwrap_err()
                .contains("at most 32")
        );
    }

    #[test]
    fn a_url_that_cannot_work_is_refused_without_repeating_its_password() {
        for url in [
            "postgres://ana:s3cr3t-pw@db.example.org:notaport/calls",
            "mysql://ana:s3cr3t-pw@db.example.org:99999/calls",
            "postgres://ana:s3cr3t-pw@db.example.org/calls?sslmode=bogus",
            "ftp://ana:s3cr3t-pw@db.example.org/calls",
        ] {
            let Err(e) = Database::connect(url) else {
                panic!("{url} was accepted");
            };
            let text = e.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(matches!(e, SqlError::Url(_)), "{text}");
        }
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
