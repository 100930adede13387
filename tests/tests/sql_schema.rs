//! The SQL destination's schema on real servers: PostgreSQL and MariaDB, started for the
//! tests by `infra/with_databases.sh` (which `make test` runs). Each test works under its
//! own table prefix, so tests share the servers without meeting.
#![allow(clippy::unwrap_used)]

use callsync::destinations::sql::{
    CallRow, Database, DeliveryRow, Dialect, SCHEMA_VERSION, SqlError,
};

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

fn call(id: &str, result_name: &str, updated: &str) -> CallRow {
    CallRow {
        candidate: "ny14".into(),
        call_id: id.into(),
        local_date: jiff::civil::date(2026, 11, 21),
        started_at: "2026-11-21T23:02:11Z".parse().unwrap(),
        ended_at: Some("2026-11-21T23:04:00.250Z".parse().unwrap()),
        agent: Some("agent7".into()),
        result_key: "agent cust 1".into(),
        result_name: Some(result_name.into()),
        van_id: Some(100_003),
        database_mode: Some("voter_file".into()),
        first_name: Some("José".into()),
        last_name: Some("O'Brien, \"Jr\"".into()),
        phone: Some("2125550101".into()),
        source_file: Some("inbox/ny14/cdr.csv".into()),
        source_line: Some(7),
        updated_at: updated.parse().unwrap(),
    }
}

async fn text(db: &Database, sql: String) -> Option<String> {
    let sql = sqlx::AssertSqlSafe(sql);
    match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Database::MySql(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

#[tokio::test]
async fn upserts_never_duplicate_a_row_and_its_update_time_only_moves_forward() {
    for (db, p) in databases() {
        db.migrate(&p).await.unwrap();
        let night: Vec<CallRow> = (1..=1_234)
            .map(|i| call(&i.to_string(), "Strong support", "2026-11-22T09:00:00Z"))
            .collect();
        db.upsert_calls(&p, &night).await.unwrap();
        // A re-delivery of the whole night (more rows than one statement takes).
        db.upsert_calls(&p, &night).await.unwrap();
        assert_eq!(
            count(&db, format!("SELECT count(*) FROM {p}calls")).await,
            1_234
        );
        let name = format!("SELECT first_name FROM {p}calls WHERE call_id = '7'");
        assert_eq!(text(&db, name).await.as_deref(), Some("José"));
        let last = format!("SELECT last_name FROM {p}calls WHERE call_id = '7'");
        assert_eq!(text(&db, last).await.as_deref(), Some("O'Brien, \"Jr\""));

        let started = match db.dialect() {
            Dialect::Postgres => format!(
                "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM {p}calls WHERE call_id = '7'"
            ),
            Dialect::MySql => format!(
                "SELECT DATE_FORMAT(started_at, '%Y-%m-%d %H:%i:%s.%f') FROM {p}calls WHERE call_id = '7'"
            ),
        };
        assert_eq!(
            text(&db, started).await.as_deref(),
            Some("2026-11-21 23:02:11.000000"),
            "UTC"
        );
        let result = format!("SELECT result_name FROM {p}calls WHERE call_id = '1'");
        db.upsert_calls(&p, &[call("1", "Older", "2026-11-22T08:00:00Z")])
            .await
            .unwrap();
        assert_eq!(
            text(&db, result.clone()).await.as_deref(),
            Some("Strong support"),
            "an older write changes nothing"
        );
        db.upsert_calls(&p, &[call("1", "Lean support", "2026-11-23T08:00:00Z")])
            .await
            .unwrap();
        assert_eq!(
            text(&db, result).await.as_deref(),
            Some("Lean support"),
            "a newer one wins"
        );

        let delivery = |destination: &str, state: &str, updated: &str| DeliveryRow {
            candidate: "ny14".into(),
            call_id: "1".into(),
            destination: destination.into(),
            state: state.into(),
            attempts: 1,
            receipt: Some("{\"status\":204}".into()),
            error: None,
            updated_at: updated.parse().unwrap(),
        };
        db.upsert_deliveries(
            &p,
            &[
                delivery("van", "finished", "2026-11-22T09:00:00Z"),
                delivery("crm-hook", "finished", "2026-11-22T09:00:00Z"),
            ],
        )
        .await
        .unwrap();
        db.upsert_deliveries(
            &p,
            &[delivery("van", "in_progress", "2026-11-22T08:59:00Z")],
        )
        .await
        .unwrap();
        assert_eq!(
            count(&db, format!("SELECT count(*) FROM {p}deliveries")).await,
            2
        );
        let state = format!("SELECT state FROM {p}deliveries WHERE destination = 'van'");
        assert_eq!(
            text(&db, state).await.as_deref(),
            Some("finished"),
            "{:?}",
            db.dialect()
        );
    }
}
