//! The SQL destination's schema on real servers: PostgreSQL and MariaDB, started for the
//! tests by `infra/with_databases.sh` (which `make test` runs). Each test works under its
//! own table prefix, so tests share the servers without meeting.
#![allow(clippy::unwrap_used)]

use callsync::destinations::sql::{Database, Dialect, SCHEMA_VERSION, SqlError};

fn url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is set by infra/with_databases.sh (`make test` runs it); it needs Debian's postgresql and mariadb-server, which .ci/run installs"
        )
    })
}

/// Both servers, each with a prefix of its own for this test.
fn databases() -> Vec<(Database, String)> {
    ["CALLSYNC_TEST_POSTGRES_URL", "CALLSYNC_TEST_MYSQL_URL"]
        .into_iter()
        .map(|var| {
            let db = Database::connect(&url(var)).unwrap();
            (db, format!("t{:08x}_", fastrand::u32(..)))
        })
        .collect()
}

/// The names of callsync's tables under `prefix`.
async fn tables(db: &Database, prefix: &str) -> Vec<String> {
    let names: Vec<String> = match db {
        Database::Postgres(pool) => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Database::MySql(pool) => sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    let mut ours: Vec<String> = names
        .into_iter()
        .filter_map(|n| n.strip_prefix(prefix).map(str::to_owned))
        .collect();
    ours.sort();
    ours
}

async fn count(db: &Database, sql: String) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql);
    match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Database::MySql(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

#[tokio::test]
async fn a_fresh_database_gets_the_whole_schema_once() {
    for (db, p) in databases() {
        assert_eq!(
            db.schema_version(&p).await.unwrap(),
            0,
            "{:?}",
            db.dialect()
        );
        assert_eq!(db.migrate(&p).await.unwrap(), 0, "found nothing before");
        assert_eq!(db.schema_version(&p).await.unwrap(), SCHEMA_VERSION);
        assert_eq!(
            tables(&db, &p).await,
            ["calls", "callsync_schema", "deliveries"],
            "{:?}",
            db.dialect()
        );
        // Run again (every cold start does): nothing to do.
        assert_eq!(db.migrate(&p).await.unwrap(), SCHEMA_VERSION);
        assert_eq!(
            count(&db, format!("SELECT count(*) FROM {p}callsync_schema")).await,
            SCHEMA_VERSION
        );
    }
}

#[tokio::test]
async fn an_older_schema_is_brought_up_to_date_and_its_rows_kept() {
    for (db, p) in databases() {
        assert_eq!(db.migrate_to(&p, 1).await.unwrap(), 0);
        assert_eq!(db.schema_version(&p).await.unwrap(), 1);
        assert_eq!(tables(&db, &p).await, ["calls", "callsync_schema"]);
        let insert = sqlx::AssertSqlSafe(format!(
            "INSERT INTO {p}calls (candidate, call_id, local_date, started_at, result_key, updated_at) VALUES ('ny14', '1001', '2026-11-21', '2026-11-21 18:02:11', 'agent cust 1', '2026-11-22 09:00:00')"
        ));
        match &db {
            Database::Postgres(pool) => sqlx::query(insert).execute(pool).await.map(drop),
            Database::MySql(pool) => sqlx::query(insert).execute(pool).await.map(drop),
        }
        .unwrap();
        assert_eq!(db.migrate(&p).await.unwrap(), 1, "found version 1");
        assert_eq!(db.schema_version(&p).await.unwrap(), SCHEMA_VERSION);
        assert_eq!(
            tables(&db, &p).await,
            ["calls", "callsync_schema", "deliveries"]
        );
        assert_eq!(
            count(&db, format!("SELECT count(*) FROM {p}calls")).await,
            1
        );
    }
}

#[tokio::test]
async fn workers_migrating_at_once_apply_each_version_once() {
    for (db, p) in databases() {
        let url = match db.dialect() {
            Dialect::Postgres => url("CALLSYNC_TEST_POSTGRES_URL"),
            Dialect::MySql => url("CALLSYNC_TEST_MYSQL_URL"),
        };
        // Four Lambda instances starting cold together, each with its own pool.
        let workers: Vec<Database> = (0..4).map(|_| Database::connect(&url).unwrap()).collect();
        let found = futures::future::join_all(workers.iter().map(|w| w.migrate(&p))).await;
        let found: Vec<i64> = found.into_iter().map(Result::unwrap).collect();
        assert_eq!(found.iter().filter(|f| **f == 0).count(), 1, "{found:?}");
        assert!(
            found.iter().all(|f| *f == 0 || *f == SCHEMA_VERSION),
            "{found:?}"
        );
        assert_eq!(
            count(&db, format!("SELECT count(*) FROM {p}callsync_schema")).await,
            SCHEMA_VERSION
        );
    }
}

#[tokio::test]
async fn a_database_that_is_down_is_unavailable_for_now_not_a_refusal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("postgres://callsync@127.0.0.1:{port}/postgres?sslmode=disable"),
        format!("mysql://callsync@127.0.0.1:{port}/callsync?ssl-mode=disabled"),
    ] {
        let db = Database::connect(&url).unwrap();
        let err = db.migrate("down_").await.unwrap_err();
        assert!(matches!(err, SqlError::Unavailable(_)), "{err:?}");
    }
}
