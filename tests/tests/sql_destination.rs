//! The `sql` destination end to end: a night read from the S3 inbox (moto), planned into
//! the ledger (DynamoDB in moto), fanned out on SQS (moto) and delivered by `sync-call` to
//! real PostgreSQL and MariaDB servers (started by `infra/with_databases.sh`), VAN's side
//! to the fake VAN. Each test writes under a table prefix of its own.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use callsync::call::CallId;
use callsync::destinations::DeliverContext;
use callsync::destinations::sql::{Database, Dialect, SCHEMA_VERSION};
use callsync::ledger::{CallKey, CallState, DayKey, DeliveryKey, Receipt};
use callsync::services::Services;
use callsync::values::CandidateSlug;
use callsync_tests::night::{
    NightStack, drain, drain_killing, drop_cdr, night_doc, run_day, ten_call_night, tick,
};
use jiff::civil::{Date, date};
use serde_json::{Value, json};

const DAY: Date = date(2026, 11, 21);
const WAREHOUSE: &str = "warehouse";

fn url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is set by infra/with_databases.sh (`make test` runs it); it needs Debian's postgresql and mariadb-server, which .ci/run installs"
        )
    })
}

fn server(dialect: Dialect) -> String {
    url(match dialect {
        Dialect::Postgres => "CALLSYNC_TEST_POSTGRES_URL",
        Dialect::MySql => "CALLSYNC_TEST_MYSQL_URL",
    })
}

fn slug() -> CandidateSlug {
    CandidateSlug::parse("night").unwrap()
}

fn day() -> DayKey {
    DayKey {
        candidate: slug(),
        date: DAY,
    }
}

/// A TCP relay to a database server that can be taken down (every open connection cut,
/// new ones closed at once) and brought back: the database going away mid-night.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &str) -> Self {
        let target = target.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_up, conns) = (Arc::clone(&up), Arc::clone(&open));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self { port, up, open }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by the relay's.
fn through(url: &str, relay: &Relay) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_port(Some(relay.port)).unwrap();
    u.to_string()
}

fn host_port(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
}

/// The night's stack (its fields reached through the world) and the warehouse, its
/// tables under `prefix`.
struct World {
    night: NightStack,
    database: Database,
    prefix: String,
}

impl std::ops::Deref for World {
    type Target = NightStack;

    fn deref(&self) -> &NightStack {
        &self.night
    }
}

/// The candidate: VAN for synced calls, the CSV for `csv` rows, and the warehouse for
/// every call.
fn doc(report: &str, prefix: &str, secret: &str) -> callsync::candidate::CandidateDoc {
    night_doc(
        report,
        json!({"destinations": [
            {"name": "van", "kind": "van"},
            {"name": WAREHOUSE, "kind": "sql", "secret_name": secret,
             "table_prefix": prefix, "select": "all"}
        ]}),
    )
}

/// A world whose warehouse is reached at `database_url` (the server's own, or a relay's).
async fn world(dialect: Dialect, database_url: &str) -> World {
    // Candidate secrets are shared by every stack on one moto: a name of this world's own.
    let secret_name = format!("callsync/night/warehouse-{:08x}", fastrand::u32(..));
    let secret = json!({ "url": database_url }).to_string();
    let mut night = NightStack::up(100_001..=100_020, &[(secret_name.as_str(), secret)], &[]).await;
    night.svc.settings.requeue_stale_after = Duration::from_secs(3600);
    let prefix = format!("t{:08x}_", fastrand::u32(..));
    night
        .svc
        .config
        .put(&doc(&night.report.url, &prefix, &secret_name))
        .await
        .unwrap();
    World {
        night,
        database: Database::connect(&server(dialect)).unwrap(),
        prefix,
    }
}

/// The destinations' ten calls ([`ten_call_night`]) and 1011, a name with accents, a comma
/// and a quote, whose call ends past midnight UTC.
fn night_rows() -> Vec<String> {
    let mut rows = ten_call_night();
    rows.push(
        "1011,ny14-van-100011,Zoë,\"O'Brien, Núñez\",212-555-0111,21-11-2026 19:50:00,21-11-2026 19:50:00,21-11-2026 19:51:30,agent7,Agent Cust 1,C1"
            .into(),
    );
    rows
}

const CALLS: usize = 11;

impl World {
    async fn run(&self) -> Value {
        run_day(&self.svc, "night", DAY).await
    }

    async fn tick(&self) -> Value {
        tick(&self.svc).await
    }

    /// Run the night, then let the workers and the ticks work until nothing is left.
    async fn night(&self) {
        self.run().await;
        self.settle().await;
    }

    async fn settle(&self) {
        for _ in 0..4 {
            drain(&self.stack, &self.svc).await;
            self.tick().await;
        }
    }

    /// Move the clock past any back-off, then let the ticks and the workers work.
    async fn later(&self) {
        self.clock.advance(Duration::from_secs(4 * 3600));
        self.settle().await;
    }

    async fn warehouse_states(&self) -> BTreeMap<CallState, u64> {
        let mut out = BTreeMap::new();
        for d in self.svc.ledger.deliveries(&day(), WAREHOUSE).await.unwrap() {
            *out.entry(d.delivery.state).or_default() += 1;
        }
        out
    }

    fn table(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// How many rows `table` (under this world's prefix) holds.
    async fn rows(&self, table: &str) -> i64 {
        self.count(format!("SELECT count(*) FROM {}", self.table(table)))
            .await
    }

    async fn count(&self, sql: String) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql);
        match &self.database {
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Database::MySql(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// One row's columns as text, `NULL` for a null.
    async fn row(&self, sql: String) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(sql);
        match &self.database {
            Database::Postgres(pool) => {
                use sqlx::Row;
                let row = sqlx::query(sql).fetch_one(pool).await.unwrap();
                (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .unwrap()
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect()
            }
            Database::MySql(pool) => {
                use sqlx::Row;
                let row = sqlx::query(sql).fetch_one(pool).await.unwrap();
                (0..row.len())
                    .map(|i| {
                        row.try_get::<Option<String>, _>(i)
                            .unwrap()
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect()
            }
        }
    }

    /// A call's columns as text (times in UTC, as both servers print them).
    async fn call_row(&self, id: &str) -> Vec<String> {
        let (date, ts) = match self.database.dialect() {
            Dialect::Postgres => (
                "to_char(local_date, 'YYYY-MM-DD')",
                "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
            ),
            Dialect::MySql => (
                "DATE_FORMAT(local_date, '%Y-%m-%d')",
                "DATE_FORMAT(started_at, '%Y-%m-%d %H:%i:%s')",
            ),
        };
        let ended = ts.replace("started_at", "ended_at");
        self.row(format!(
            "SELECT {date}, {ts}, {ended}, agent, result_key, result_name, CAST(van_id AS CHAR(20)), database_mode, first_name, last_name, phone, source_file, CAST(source_line AS CHAR(20)) FROM {} WHERE candidate = 'night' AND call_id = '{id}'",
            self.table("calls")
        ).replace("CAST(van_id AS CHAR(20))", match self.database.dialect() {
            Dialect::Postgres => "van_id::text",
            Dialect::MySql => "CAST(van_id AS CHAR)",
        }).replace("CAST(source_line AS CHAR(20))", match self.database.dialect() {
            Dialect::Postgres => "source_line::text",
            Dialect::MySql => "CAST(source_line AS CHAR)",
        }))
        .await
    }

    /// A call's delivery row to `destination`: state, attempts, receipt, error.
    async fn delivery_row(&self, id: &str, destination: &str) -> Vec<String> {
        let attempts = match self.database.dialect() {
            Dialect::Postgres => "attempts::text",
            Dialect::MySql => "CAST(attempts AS CHAR)",
        };
        self.row(format!(
            "SELECT state, {attempts}, receipt, error FROM {} WHERE candidate = 'night' AND call_id = '{id}' AND destination = '{destination}'",
            self.table("deliveries")
        ))
        .await
    }

    async fn last_write(&self) -> String {
        let sql = match self.database.dialect() {
            Dialect::Postgres => format!(
                "SELECT to_char(max(updated_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM {}",
                self.table("calls")
            ),
            Dialect::MySql => format!(
                "SELECT DATE_FORMAT(max(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM {}",
                self.table("calls")
            ),
        };
        self.row(sql).await.remove(0)
    }
}

async fn a_night_lands_in(dialect: Dialect) {
    let w = world(dialect, &server(dialect)).await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night().await;

    // Every call delivered to the warehouse once, after its VAN or CSV outcome was final.
    assert_eq!(
        w.warehouse_states().await,
        [(CallState::Finished, CALLS as u64)].into_iter().collect()
    );
    let d = w
        .svc
        .ledger
        .get_delivery(&DeliveryKey {
            call: CallKey {
                day: day(),
                call_id: CallId("1001".into()),
            },
            destination: WAREHOUSE.into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&d.delivery.receipt, Some(Receipt::Sql { table, attempts: 1, .. }) if *table == w.table("calls")),
        "{:?}",
        d.delivery.receipt
    );
    assert_eq!(w.rows("calls").await, CALLS as i64);
    if dialect == Dialect::Postgres {
        // A queue batch's rows go in one statement: the night's eleven calls reached the
        // warehouse in as many statements as batches (the CSV's and the unknown result's
        // calls first, VAN's once posted), never one a call.
        let statements = w
            .count(format!(
                "SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query LIKE 'INSERT INTO {}calls %'",
                w.prefix
            ))
            .await;
        assert!((1..=3).contains(&statements), "{statements} statements");
    }

    // The call as the warehouse holds it: typed dates and times (18:01 in New York is
    // 23:01 UTC), the mapping's display name, VAN's id and mode, where the CDR had it.
    assert_eq!(
        w.call_row("1001").await,
        [
            "2026-11-21",
            "2026-11-21 23:01:00",
            "2026-11-21 23:01:00",
            "agent7",
            "agent cust 1",
            "Strong support",
            "100001",
            "voter_file",
            "Pat",
            "Doe 1001",
            "2125550101",
            "inbox/night/cdr.csv",
            "2"
        ]
    );
    let accents = w.call_row("1011").await;
    assert_eq!(
        (accents[8].as_str(), accents[9].as_str()),
        ("Zoë", "O'Brien, Núñez")
    );
    assert_eq!(
        accents[2], "2026-11-22 00:51:30",
        "the end, past midnight UTC"
    );
    // An unknown result is kept with its key and no display name.
    assert_eq!(w.call_row("1009").await[5], "NULL");

    // VAN's outcome next to each call: posted, refused with VAN's reason, or the CSV's.
    let posted = w.delivery_row("1001", "van").await;
    assert_eq!(posted[..2], ["finished", "1"]);
    assert!(posted[2].contains("fingerprint"), "{posted:?}");
    let refused = w.delivery_row("1010", "van").await;
    assert_eq!(refused[0], "attempted_error");
    assert!(refused[3].starts_with("van_"), "{refused:?}");
    let exported = w.delivery_row("1007", "csv").await;
    assert_eq!(exported[0], "finished");
    assert!(exported[2].contains("exports/night/"), "{exported:?}");
    assert_eq!(w.delivery_row("1009", "none").await[0], "unattempted_error");
    assert_eq!(
        w.rows("deliveries").await,
        CALLS as i64,
        "one row per call: its VAN, CSV or no delivery"
    );

    // Running the night again sends nothing to the warehouse and changes no row.
    let written = w.last_write().await;
    w.clock.advance(Duration::from_secs(3600));
    w.night().await;
    assert_eq!(w.last_write().await, written);
    assert_eq!(w.rows("calls").await, CALLS as i64);
    assert_eq!(w.van.canvass_posts().len(), 7, "1001–1006 and 1011, once");
}

#[tokio::test]
async fn a_night_lands_in_postgres_once_with_vans_outcome_beside_each_call() {
    a_night_lands_in(Dialect::Postgres).await;
}

#[tokio::test]
async fn a_night_lands_in_mariadb_once_with_vans_outcome_beside_each_call() {
    a_night_lands_in(Dialect::MySql).await;
}

async fn a_database_down_for_part_of_the_night(dialect: Dialect) {
    let real = server(dialect);
    let relay = Relay::start(&host_port(&real)).await;
    let w = world(dialect, &through(&real, &relay)).await;
    relay.down();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night().await;

    // VAN is not held back by the warehouse; the warehouse's calls wait, none lost.
    assert_eq!(w.van.canvass_posts().len(), 7);
    let waiting = w.warehouse_states().await;
    assert_eq!(waiting.get(&CallState::Finished), None, "{waiting:?}");
    assert_eq!(
        waiting.get(&CallState::Unsynced).copied(),
        Some(CALLS as u64),
        "{waiting:?}"
    );
    let d = w.svc.ledger.deliveries(&day(), WAREHOUSE).await.unwrap();
    let error = d[0].delivery.error.as_ref().unwrap();
    assert_eq!(error.code, "destination_unavailable");
    assert!(
        error.message.contains("database is unavailable"),
        "{error:?}"
    );

    // The database comes back: every call lands, once.
    relay.up();
    for _ in 0..3 {
        w.later().await;
    }
    assert_eq!(
        w.warehouse_states().await,
        [(CallState::Finished, CALLS as u64)].into_iter().collect()
    );
    assert_eq!(w.rows("calls").await, CALLS as i64);
    assert_eq!(w.van.canvass_posts().len(), 7, "VAN was sent nothing twice");

    // A re-run changes nothing.
    let written = w.last_write().await;
    w.night().await;
    assert_eq!(w.last_write().await, written);
}

#[tokio::test]
async fn postgres_down_for_part_of_the_night_recovers_with_nothing_lost() {
    a_database_down_for_part_of_the_night(Dialect::Postgres).await;
}

#[tokio::test]
async fn mariadb_down_for_part_of_the_night_recovers_with_nothing_lost() {
    a_database_down_for_part_of_the_night(Dialect::MySql).await;
}

/// A user that may only read: what validate reports before and after the grants.
async fn validate_names_missing_grants(dialect: Dialect) {
    let real = server(dialect);
    let user = format!("ro{:08x}", fastrand::u32(..));
    let admin = Database::connect(&real).unwrap();
    let grant_all = match (&admin, dialect) {
        (Database::Postgres(pool), _) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {user} LOGIN")))
                .execute(pool)
                .await
                .unwrap();
            format!("GRANT CREATE ON SCHEMA public TO {user}")
        }
        (Database::MySql(pool), _) => {
            for sql in [
                format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"),
                format!("GRANT SELECT ON callsync.* TO '{user}'@'%'"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .unwrap();
            }
            format!("GRANT CREATE, INSERT, UPDATE ON callsync.* TO '{user}'@'%'")
        }
    };
    let mut as_user = url::Url::parse(&real).unwrap();
    as_user.set_username(&user).unwrap();
    as_user.set_password(Some("pw")).unwrap();
    let w = world(dialect, as_user.as_str()).await;
    let candidate = w.svc.candidate(&slug()).await.unwrap();
    let destination = candidate.destination(WAREHOUSE).unwrap();
    let ctx = DeliverContext {
        secrets: w.svc.secrets.as_ref(),
        connectors: &w.svc.connectors,
        candidate: &candidate,
        clock: w.svc.clock.as_ref(),
        meter: None,
    };
    let problems = destination.adapter.inspect(ctx).await.problems;
    assert!(
        problems.iter().any(|p| p.contains("may not create tables")),
        "{problems:#?}"
    );
    if dialect == Dialect::MySql {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("may not insert rows of {}", w.table("calls")))),
            "{problems:#?}"
        );
    }
    assert!(
        problems.iter().all(|p| p.contains("GRANT ")),
        "each says how to fix it: {problems:#?}"
    );
    // What the live database lacks never stops a night: only validate asks.
    assert_eq!(destination.adapter.check(ctx).await, Vec::<String>::new());
    assert_eq!(
        destination.adapter.inspect(ctx).await.notes,
        [format!(
            "no callsync schema yet: the first delivery creates version {SCHEMA_VERSION}"
        )]
    );

    match &admin {
        Database::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(grant_all))
            .execute(pool)
            .await
            .map(drop)
            .unwrap(),
        Database::MySql(pool) => sqlx::query(sqlx::AssertSqlSafe(grant_all))
            .execute(pool)
            .await
            .map(drop)
            .unwrap(),
    }
    assert_eq!(
        destination.adapter.inspect(ctx).await.problems,
        Vec::<String>::new()
    );
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night().await;
    assert_eq!(
        w.warehouse_states().await,
        [(CallState::Finished, CALLS as u64)].into_iter().collect()
    );
    assert_eq!(
        destination.adapter.inspect(ctx).await.notes,
        [format!("schema version {SCHEMA_VERSION} (current)")]
    );
    assert_eq!(
        destination.adapter.inspect(ctx).await.problems,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn validate_names_the_grants_a_postgres_user_lacks_and_the_schema_version() {
    validate_names_missing_grants(Dialect::Postgres).await;
}

#[tokio::test]
async fn validate_names_the_grants_a_mariadb_user_lacks_and_the_schema_version() {
    validate_names_missing_grants(Dialect::MySql).await;
}

#[tokio::test]
async fn workers_killed_anywhere_in_a_batch_leave_every_call_in_the_warehouse_once() {
    let w = world(Dialect::Postgres, &server(Dialect::Postgres)).await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    // Workers stopped wherever they are, between any two requests: before the lease, after
    // it, between the statement and the receipt. What they leave is swept back once their
    // leases run out, and a batch written twice changes no row.
    let mut rng = fastrand::Rng::with_seed(24);
    for _ in 0..4 {
        drain_killing(&w.stack, &w.svc, &mut || {
            Some(Duration::from_millis(rng.u64(0..150)))
        })
        .await;
        w.tick().await;
    }
    for _ in 0..3 {
        w.later().await;
    }
    assert_eq!(
        w.warehouse_states().await,
        [(CallState::Finished, CALLS as u64)].into_iter().collect()
    );
    assert_eq!(w.rows("calls").await, CALLS as i64);
    assert_eq!(w.rows("deliveries").await, CALLS as i64);
    assert_eq!(w.delivery_row("1001", "van").await[0], "finished");
}

#[tokio::test]
async fn a_refusal_fixed_and_retried_is_written_again_with_its_new_outcome() {
    let w = world(Dialect::MySql, &server(Dialect::MySql)).await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night().await;
    assert_eq!(w.delivery_row("1010", "van").await[0], "attempted_error");
    let before = w.delivery_row("1001", "van").await;

    // VAN learns the person; the refusal is retried and posted.
    w.van.add_people(950_000_001..=950_000_001);
    let retried = retry_refusals(&w.svc, callsync::nightly::RetryScope::Everything)
        .await
        .unwrap();
    assert_eq!(retried.destinations[WAREHOUSE].updated, 1, "{retried:?}");
    w.settle().await;

    let after = w.delivery_row("1010", "van").await;
    assert_eq!(
        after[..2],
        ["finished", "2"],
        "the refused send and the posted one: {after:?}"
    );
    assert_eq!(after[3], "NULL", "the refusal is gone");
    assert_eq!(
        w.delivery_row("1001", "van").await,
        before,
        "no other call is written again"
    );
    assert_eq!(
        w.warehouse_states().await,
        [(CallState::Finished, CALLS as u64)].into_iter().collect()
    );
    assert_eq!(w.rows("calls").await, CALLS as i64);
}

#[tokio::test]
async fn a_retry_that_dies_before_marking_the_warehouse_row_leaves_that_to_the_next_settle() {
    let w = world(Dialect::Postgres, &server(Dialect::Postgres)).await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night().await;
    assert_eq!(w.delivery_row("1010", "van").await[0], "attempted_error");

    // VAN learns the person and the refusal is retried, but the process dies right after
    // the call is planned again, before its warehouse row is marked to be written again.
    w.van.add_people(950_000_001..=950_000_001);
    let svc = stopping_at_delivery_reads(&w);
    let died = retry_refusals(&svc, callsync::nightly::RetryScope::Everything).await;
    assert!(died.is_err(), "{died:?}");
    let key = CallKey {
        day: day(),
        call_id: CallId("1010".into()),
    };
    let call = w.svc.ledger.get(&key).await.unwrap().unwrap();
    assert_eq!(call.delivery.state, CallState::Unsynced, "planned again");
    assert!(call.remirror, "the intent is on the call");

    // The ticks and workers that come next post it to VAN — once the run that planned it
    // is surely gone — and write the row again.
    w.later().await;
    let after = w.delivery_row("1010", "van").await;
    assert_eq!(
        after[..2],
        ["finished", "2"],
        "the warehouse has VAN's new outcome: {after:?}"
    );
    assert!(!w.svc.ledger.get(&key).await.unwrap().unwrap().remirror);
    assert_eq!(
        w.warehouse_states().await,
        [(CallState::Finished, CALLS as u64)].into_iter().collect()
    );
}

const SUPPORTERS: &str = "supporters";

/// The warehouse (MariaDB) with Action Network beside it, whose every person was refused
/// on the night (400): each call's delivery there is an attempted error.
async fn warehouse_and_refused_supporters() -> (
    World,
    callsync_tests::fake_action_network::FakeActionNetwork,
) {
    const TAG: &str = "PB 2026 Supporter";
    let w = world(Dialect::MySql, &server(Dialect::MySql)).await;
    let an = callsync_tests::fake_action_network::FakeActionNetwork::start("an-key", &[TAG]).await;
    an.fail_next(100, 400);
    let secret = format!("callsync/night/an-{:08x}", fastrand::u32(..));
    aws_sdk_secretsmanager::Client::new(&w.stack.aws)
        .create_secret()
        .name(&secret)
        .secret_string(json!({"api_key": "an-key"}).to_string())
        .send()
        .await
        .unwrap();
    let mut svc = w.svc.clone();
    svc.connectors.action_network_base_url = Some(an.base_url.clone());
    let mut doc = svc.config.get(&slug()).await.unwrap().unwrap();
    doc.destinations.push(
        serde_json::from_value(json!({
            "name": SUPPORTERS, "kind": "action_network", "secret_name": secret,
            "select": "all", "results": {"Agent Cust 1": {"add_tags": [TAG]}}
        }))
        .unwrap(),
    );
    svc.config.put(&doc).await.unwrap();
    let mut w = w;
    w.night.svc = svc;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night().await;
    let refused = w.delivery_row("1001", SUPPORTERS).await;
    assert_eq!(refused[0], "attempted_error", "{refused:?}");
    an.fail_next(0, 400);
    (w, an)
}

#[tokio::test]
async fn a_destination_retry_that_dies_before_marking_the_warehouse_row_leaves_that_to_the_next_settle()
 {
    let (w, _an) = warehouse_and_refused_supporters().await;

    // Action Network takes people again and its refusals are retried; the process dies
    // right after the first is planned again, before its call's warehouse row is marked.
    let dying = stopping_at_delivery_reads(&w);
    let died = retry_refusals(
        &dying,
        callsync::nightly::RetryScope::Destination(SUPPORTERS.into()),
    )
    .await;
    assert!(died.is_err(), "{died:?}");
    let marked: Vec<String> = w
        .svc
        .ledger
        .day(&day())
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.remirror)
        .map(|c| c.key.call_id.0.into())
        .collect();
    assert_eq!(marked, ["1001"], "the intent is on the call re-planned");

    // The ticks after it finish what it began: the call's warehouse row shows Action
    // Network's delivery as it is now.
    w.later().await;
    let after = w.delivery_row("1001", SUPPORTERS).await;
    assert_eq!(after[0], "finished", "{after:?}");
    let call = CallKey {
        day: day(),
        call_id: CallId("1001".into()),
    };
    assert!(!w.svc.ledger.get(&call).await.unwrap().unwrap().remirror);
}

#[tokio::test]
async fn a_destination_retry_takes_a_call_a_worker_wrote_since_its_page_was_read() {
    let (w, _an) = warehouse_and_refused_supporters().await;
    // A worker writes the first call between the retry's page and its own write of it.
    let svc = racing_the_next_call_write(&w);
    let retried = retry_refusals(
        &svc,
        callsync::nightly::RetryScope::Destination(SUPPORTERS.into()),
    )
    .await
    .unwrap();
    let refused = retried.destinations[SUPPORTERS]
        .replanned
        .values()
        .sum::<u64>();
    w.later().await;
    // Every refusal was planned again and delivered, the raced call's too, and the
    // warehouse shows each.
    let rows = w
        .count(format!(
            "SELECT count(*) FROM {} WHERE destination = '{SUPPORTERS}' AND state = 'finished'",
            w.table("deliveries")
        ))
        .await;
    assert_eq!(rows as u64, refused, "{retried:?}");
    assert_eq!(w.delivery_row("1001", SUPPORTERS).await[0], "finished");
}

/// `/retry` of the day's attempted errors in `scope`.
async fn retry_refusals(
    svc: &Services,
    scope: callsync::nightly::RetryScope,
) -> Result<callsync::nightly::RetrySummary, callsync::nightly::RunError> {
    callsync::nightly::retry(svc, &slug(), DAY, &[CallState::AttemptedError], &scope).await
}

/// `w`'s services on a ledger that fails every read of a single delivery: a run that asks
/// for one stops there, as if the process died.
fn stopping_at_delivery_reads(w: &World) -> Services {
    let stopping = callsync_tests::faults::FailingLedger::new(w.svc.ledger.clone());
    stopping.fail_delivery_reads(true);
    let mut svc = w.svc.clone();
    svc.ledger = Arc::new(stopping);
    svc
}

/// `w`'s services on a ledger whose next write of a call meets another writer's first.
fn racing_the_next_call_write(w: &World) -> Services {
    let racing = callsync_tests::faults::FailingLedger::new(w.svc.ledger.clone());
    racing.race_next_call_write();
    let mut svc = w.svc.clone();
    svc.ledger = Arc::new(racing);
    svc
}
