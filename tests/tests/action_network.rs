//! The `action_network` destination end to end: a night read from the S3 inbox (moto),
//! planned into the ledger (DynamoDB in moto), fanned out on SQS (moto) and delivered by
//! `sync-call` to the fake Action Network (tests/src/fake_action_network.rs), VAN's side
//! to the fake VAN.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use callsync::call::CallId;
use callsync::destinations::DeliverContext;
use callsync::ledger::{CallKey, CallState, DayKey, DeliveryKey, DeliveryRecord, Receipt};
use callsync::values::CandidateSlug;
use callsync_tests::fake_action_network::{FakeActionNetwork, RATE_PER_SECOND};
use callsync_tests::harness::{Answer, TEST_TOKEN, event, for_candidate, request, with_token};
use callsync_tests::night::{
    NightStack, cdr_row, drain, drop_cdr, night_doc, run_day, ten_call_night, tick,
};
use jiff::civil::{Date, date};
use serde_json::{Value, json};

const DAY: Date = date(2026, 11, 21);
const AN: &str = "supporters";
const KEY: &str = "an-test-key-1f0c";
const SUPPORTER: &str = "PB 2026 Supporter";
const NOT_HOME: &str = "PB 2026 Not Home";
const WRONG: &str = "PB 2026 Wrong Number";

/// The night's stack (its fields reached through the world), Action Network, and the
/// secret holding its key.
struct World {
    night: NightStack,
    an: FakeActionNetwork,
    secret_name: String,
}

impl std::ops::Deref for World {
    type Target = NightStack;

    fn deref(&self) -> &NightStack {
        &self.night
    }
}

fn slug() -> CandidateSlug {
    CandidateSlug::parse("night").unwrap()
}

fn day(date: Date) -> DayKey {
    DayKey {
        candidate: slug(),
        date,
    }
}

/// The candidate: VAN for synced calls, the CSV for `csv` rows, and Action Network for
/// every call: supporters tagged (and no longer "not home"), wrong numbers tagged by their
/// display name, no-answers tagged "not home"; the last result and date in custom fields.
fn doc(report: &str, secret: &str, tags: Value) -> callsync::candidate::CandidateDoc {
    night_doc(
        report,
        json!({"destinations": [
            {"name": "van", "kind": "van"},
            {"name": AN, "kind": "action_network", "secret_name": secret, "select": "all",
             "results": tags,
             "custom_fields": {"last_call_result": "display_name", "last_call_date": "local_date"}}
        ]}),
    )
}

fn tags() -> Value {
    json!({
        "AGENT - CUST 1": {"add_tags": [SUPPORTER], "remove_tags": [NOT_HOME]},
        "Wrong number": {"add_tags": [WRONG]},
        "No Answer": {"add_tags": [NOT_HOME]}
    })
}

async fn world_with(key_in_secret: &str, tags: Value) -> World {
    let an = FakeActionNetwork::start(KEY, &[SUPPORTER, NOT_HOME, WRONG, "Volunteer"]).await;
    // Candidate secrets are shared by every stack on one moto: a name of this world's own.
    let secret_name = format!("callsync/night/an-{:08x}", fastrand::u32(..));
    let mut night = NightStack::up(
        100_001..=100_099,
        &[(
            secret_name.as_str(),
            json!({ "api_key": key_in_secret }).to_string(),
        )],
        &[("CALLSYNC_ACTION_NETWORK_BASE_URL", an.base_url.clone())],
    )
    .await;
    night.svc.settings.requeue_stale_after = Duration::from_secs(3600);
    night
        .svc
        .config
        .put(&doc(&night.report.url, &secret_name, tags))
        .await
        .unwrap();
    World {
        night,
        an,
        secret_name,
    }
}

async fn world() -> World {
    world_with(KEY, tags()).await
}

/// The destinations' ten calls ([`ten_call_night`]).
fn night_rows() -> Vec<String> {
    ten_call_night()
}

impl World {
    async fn run(&self, date: Date) -> Value {
        run_day(&self.svc, "night", date).await
    }

    async fn tick(&self) {
        tick(&self.svc).await;
    }

    async fn night(&self, date: Date) {
        self.run(date).await;
        self.settle().await;
    }

    /// Let the workers and the ticks work until no delivery is waiting: at 4 requests a
    /// second a batch's later messages go back to the queue for a few seconds (their
    /// slots are further off than a worker waits), so this waits for them as SQS would.
    async fn settle(&self) {
        for _ in 0..240 {
            drain(&self.stack, &self.svc).await;
            self.tick().await;
            if self.waiting().await == 0 {
                drain(&self.stack, &self.svc).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deliveries not yet final — the calls' own and Action Network's — on either test
    /// night, and not waiting out a back-off.
    async fn waiting(&self) -> usize {
        self.not_final(self.svc.clock.now()).await
    }

    /// Deliveries not yet final — the calls' own and Action Network's — on either test
    /// night, but those backed off past `now`.
    async fn not_final(&self, now: jiff::Timestamp) -> usize {
        let mut n = 0;
        for date in [DAY, date(2026, 11, 22)] {
            // The calls' own deliveries (VAN, the CSV) too: the night is done when all are.
            n += self
                .svc
                .ledger
                .day(&day(date))
                .await
                .unwrap()
                .iter()
                .filter(|r| !r.delivery.state.is_terminal())
                .filter(|r| r.delivery.next_attempt_at.is_none_or(|t| t <= now))
                .count();
            for name in [AN, "members"] {
                n += self
                    .svc
                    .ledger
                    .deliveries(&day(date), name)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|d| !d.delivery.state.is_terminal())
                    .filter(|d| d.delivery.next_attempt_at.is_none_or(|t| t <= now))
                    .count();
            }
        }
        n
    }

    async fn later(&self) {
        self.clock.advance(Duration::from_secs(4 * 3600));
        self.settle().await;
    }

    async fn deliveries(&self, date: Date) -> BTreeMap<String, DeliveryRecord> {
        self.svc
            .ledger
            .deliveries(&day(date), AN)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.key.call.call_id.0.to_string(), d))
            .collect()
    }

    async fn states(&self, date: Date) -> BTreeMap<CallState, u64> {
        let mut out = BTreeMap::new();
        for d in self.deliveries(date).await.values() {
            *out.entry(d.delivery.state).or_default() += 1;
        }
        out
    }

    /// The person holding `phone` (digits).
    fn person(&self, phone: &str) -> callsync_tests::fake_action_network::Person {
        let found: Vec<_> = self
            .an
            .people()
            .into_iter()
            .filter(|p| p.phones.iter().any(|(n, _)| n == phone))
            .collect();
        assert_eq!(found.len(), 1, "one person holds {phone}: {found:#?}");
        found.into_iter().next().unwrap()
    }

    fn posts(&self) -> usize {
        self.an
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    }
}

fn set(tags: &[&str]) -> BTreeSet<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

#[tokio::test]
async fn a_night_tags_each_contact_once_on_one_person_and_changes_no_subscription() {
    let w = world().await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night(DAY).await;

    assert_eq!(
        w.states(DAY).await,
        [(CallState::Finished, 10)].into_iter().collect(),
        "every call of the night, whatever VAN made of it"
    );
    // Nine people: 1007 and 1008 dialled one phone, which is one person.
    assert_eq!(w.an.people().len(), 9);
    assert_eq!(w.posts(), 10, "one signup call per call, none twice");

    let strong = w.person("2125550101");
    assert_eq!(strong.tags, set(&[SUPPORTER]));
    assert_eq!(strong.given_name.as_deref(), Some("Pat"));
    assert_eq!(strong.family_name.as_deref(), Some("Doe 1001"));
    assert_eq!(strong.custom_fields["last_call_result"], "Strong support");
    assert_eq!(strong.custom_fields["last_call_date"], "2026-11-21");
    // Phone-bank contacts opted in to nothing: no email, and the number unsubscribed.
    assert!(strong.emails.is_empty(), "{strong:?}");
    assert_eq!(
        strong.phones,
        [("2125550101".to_owned(), "unsubscribed".to_owned())]
    );
    // Tagged by display name; the shared phone's person carries the no-answer tag once.
    assert_eq!(w.person("2125550102").tags, set(&[WRONG]));
    assert_eq!(w.person("2125550199").tags, set(&[NOT_HOME]));
    // A result the mapping lacks still records the date, with no result name and no tag.
    let unknown = w.person("2125550109");
    assert!(unknown.tags.is_empty());
    assert_eq!(unknown.custom_fields.get("last_call_result"), None);

    // Each receipt names the person the call is recorded on.
    let d = &w.deliveries(DAY).await["1001"];
    match &d.delivery.receipt {
        Some(Receipt::Person {
            system,
            id,
            status: 200,
            attempts: 1,
            fingerprint,
            ..
        }) => {
            assert_eq!(system, "action_network");
            assert_eq!(id.as_deref(), Some(strong.id.as_str()));
            assert_eq!(fingerprint.len(), 64);
        }
        other => panic!("{other:?}"),
    }
    // Kept to Action Network's 4 requests a second: never one too many.
    assert!(w.an.busiest_second() <= RATE_PER_SECOND);
    assert!(w.an.requests().iter().all(|r| r.status != 429));

    // A re-run sends nothing again.
    w.night(DAY).await;
    assert_eq!(w.posts(), 10);
    assert_eq!(w.van.canvass_posts().len(), 6);
}

#[tokio::test]
async fn a_contact_called_on_two_nights_is_one_person_and_an_opted_in_one_stays_opted_in() {
    let w = world().await;
    // A supporter who signed up on a form: email and texts subscribed, a tag of their own.
    let seeded = reqwest::Client::new()
        .post(format!("{}people/", w.an.base_url))
        .header("OSDI-API-Token", KEY)
        .json(&json!({
            "person": {"given_name": "Pat", "family_name": "Doe",
                       "email_addresses": [{"address": "pat@example.org"}],
                       "phone_numbers": [{"number": "212-555-0103", "status": "subscribed"}]},
            "add_tags": ["Volunteer"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 200);

    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night(DAY).await;
    // The next night the supporter (1003's phone) and 1001's contact are called again and
    // not reached.
    let next = date(2026, 11, 22);
    w.clock.advance(Duration::from_secs(24 * 3600));
    drop_cdr(
        &w.svc,
        "inbox/night/cdr-2.csv",
        &[
            cdr_row(
                2001,
                "ny14-van-100001",
                "212-555-0101",
                "22-11-2026 18:00:00",
                "No Answer",
            ),
            cdr_row(
                2003,
                "ny14-van-100003",
                "(212) 555-0103",
                "22-11-2026 18:05:00",
                "No Answer",
            ),
        ],
    )
    .await;
    w.night(next).await;
    assert_eq!(
        w.states(next).await,
        [(CallState::Finished, 2)].into_iter().collect()
    );

    assert_eq!(w.an.people().len(), 9, "nobody was created twice");
    let first = w.person("2125550101");
    assert_eq!(first.tags, set(&[SUPPORTER, NOT_HOME]));
    assert_eq!(first.custom_fields["last_call_result"], "No answer");
    assert_eq!(first.custom_fields["last_call_date"], "2026-11-22");
    let both = w.deliveries(next).await;
    let night_one = w.deliveries(DAY).await;
    let id = |d: &DeliveryRecord| match &d.delivery.receipt {
        Some(Receipt::Person { id, .. }) => id.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(id(&both["2001"]), id(&night_one["1001"]), "the same person");

    let supporter = w.person("2125550103");
    assert_eq!(supporter.tags, set(&["Volunteer", SUPPORTER, NOT_HOME]));
    assert_eq!(
        supporter.emails,
        [("pat@example.org".to_owned(), "subscribed".to_owned())],
        "the email subscription is theirs to change"
    );
    assert_eq!(
        supporter.phones,
        [("2125550103".to_owned(), "subscribed".to_owned())],
        "and so is the texting one"
    );
}

fn ctx<'a>(w: &'a World, candidate: &'a callsync::destinations::Compiled) -> DeliverContext<'a> {
    DeliverContext {
        secrets: w.svc.secrets.as_ref(),
        connectors: &w.svc.connectors,
        candidate,
        clock: w.svc.clock.as_ref(),
        meter: None,
    }
}

#[tokio::test]
async fn validate_names_each_configured_tag_the_group_lacks_and_configure_lists_the_tags() {
    let w = world_with(
        KEY,
        json!({
            "Agent Cust 1": {"add_tags": ["PB 2026 Supportr"], "remove_tags": [NOT_HOME]},
            "No Answer": {"add_tags": [NOT_HOME, "pb 2026 not home"]}
        }),
    )
    .await;
    // A group with more tags than a page: the listing reads on to the empty page.
    for i in 0..30 {
        w.an.add_tag(&format!("Event {i:02}"));
    }
    let candidate = w.svc.candidate(&slug()).await.unwrap();
    let d = candidate.destination(AN).unwrap();
    let found = d.adapter.inspect(ctx(&w, &candidate)).await;
    assert_eq!(found.problems.len(), 2, "{:#?}", found.problems);
    assert!(found.problems[0].contains("\"PB 2026 Supportr\""));
    assert!(found.problems[0].starts_with("results.Agent Cust 1.add_tags"));
    assert!(
        found.problems[1].contains("\"pb 2026 not home\""),
        "names are exact"
    );
    assert!(
        found
            .problems
            .iter()
            .all(|p| p.contains("ignores unknown tags"))
    );
    assert_eq!(found.notes, ["34 tags in the group"]);
    // What does not exist never stops a night: only validate asks.
    assert!(d.adapter.check(ctx(&w, &candidate)).await.is_empty());

    // The validate route reports them as errors of the destination.
    let api = w.stack.api_context();
    let get = with_token(
        for_candidate(event("validate-get.json"), "night"),
        Some(TEST_TOKEN),
    );
    let a = Answer::from(callsync::entrypoints::validate::handle(&api, request(&get)).await);
    let report = a.json();
    assert_eq!(report["ok"], false, "{report:#}");
    let errors: Vec<&Value> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == "destinations[1]")
        .collect();
    assert_eq!(errors.len(), 2, "{report:#}");

    // GET /configure lists the group's tags, every page of them.
    let get = with_token(
        for_candidate(event("configure-get.json"), "night"),
        Some(TEST_TOKEN),
    );
    let a = Answer::from(callsync::entrypoints::configure::handle(&api, request(&get)).await);
    assert_eq!(a.status, 200, "{}", a.body);
    let listed = &a.json()["destinations"][AN];
    assert_eq!(listed["kind"], "action_network");
    let tags: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 34);
    assert!(tags.contains(&SUPPORTER) && tags.contains(&"Event 29"));
}

#[tokio::test]
async fn a_refused_key_is_an_attempted_error_with_action_networks_words_and_an_outage_is_retried() {
    let w = world_with("not-the-key", tags()).await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..2]).await;
    w.night(DAY).await;
    let d = &w.deliveries(DAY).await["1001"];
    assert_eq!(d.delivery.state, CallState::AttemptedError);
    let error = d.delivery.error.as_ref().unwrap();
    assert_eq!(error.status, Some(401));
    assert!(
        error.message.contains("API Key invalid or not present")
            && error.message.contains("check the API key"),
        "{error:?}"
    );
    assert_eq!(d.delivery.attempts, 1, "a refusal is not tried again");

    // An outage (503s) is waited out and the calls land once.
    let w = world().await;
    w.an.fail_next(3, 503);
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.night(DAY).await;
    w.later().await;
    w.later().await;
    assert_eq!(
        w.states(DAY).await,
        [(CallState::Finished, 10)].into_iter().collect()
    );
    let accepted =
        w.an.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.status == 200)
            .count();
    assert_eq!(accepted, 10, "each call accepted once");
    assert_eq!(w.an.people().len(), 9);
}

#[tokio::test]
async fn several_workers_and_two_destinations_share_the_keys_four_requests_a_second() {
    let w = world().await;
    // A second destination on the same key (another list of the group, say): one limit.
    let mut doc = w.svc.config.get(&slug()).await.unwrap().unwrap();
    let mut members = doc.destinations[1].clone();
    members.name = "members".into();
    doc.destinations.push(members);
    w.svc.config.put(&doc).await.unwrap();
    let rows: Vec<String> = (1..=40u64)
        .map(|i| {
            cdr_row(
                3000 + i,
                &format!("ny14-van-{}", 100_000 + i),
                &format!("212-555-{:04}", 2000 + i),
                &format!("21-11-2026 20:{:02}:00", i),
                "Agent Cust 1",
            )
        })
        .collect();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &rows).await;
    w.run(DAY).await;
    // Four workers at once, as four Lambda instances would take the queue. 80 posts at
    // 3.5 a second take 23 s at best; a busy machine is given up to two minutes. The
    // ledger's clock keeps time with the queue's, so a delivery backed off (a request a
    // starved machine sent late and Action Network refused) comes due when its delayed
    // message comes back, as it would in the cloud.
    let mut last = std::time::Instant::now();
    for _ in 0..240 {
        futures::future::join_all((0..4).map(|_| drain(&w.stack, &w.svc))).await;
        w.clock.advance(last.elapsed());
        last = std::time::Instant::now();
        w.tick().await;
        // Every delivery, a backed-off one too: the pacing hands messages back for later.
        if w.not_final(jiff::Timestamp::MAX).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        w.states(DAY).await,
        [(CallState::Finished, 40)].into_iter().collect()
    );
    let members = w.svc.ledger.deliveries(&day(DAY), "members").await.unwrap();
    assert_eq!(members.len(), 40);
    assert!(
        members
            .iter()
            .all(|d| d.delivery.state == CallState::Finished)
    );
    let accepted =
        w.an.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.status == 200)
            .count();
    assert_eq!(accepted, 80, "each call once to each destination");
    // One pace for the key: workers each keeping their own 3.5 a second would send 14 a
    // second and see most of their posts refused. A machine too busy to send a request at
    // its slot may bunch one with the next; that stays rare (at most one in ten here, on
    // a machine running the whole suite at once), and is waited out above.
    let refused = w.an.requests().iter().filter(|r| r.status == 429).count();
    assert!(
        refused * 10 <= accepted,
        "{refused} requests over the limit ({} in the busiest second)",
        w.an.busiest_second()
    );
    assert_eq!(w.an.people().len(), 40);
    let key = DeliveryKey {
        call: CallKey {
            day: day(DAY),
            call_id: CallId("3001".into()),
        },
        destination: AN.into(),
    };
    assert!(w.svc.ledger.get_delivery(&key).await.unwrap().is_some());
}

/// A key replaced in Secrets Manager (Action Network refuses the old one at once) does not
/// fail the contacts a warm worker sends in the minutes it still holds the old one: the
/// refused key is read afresh and the person sent again with the new one. A key refused
/// that was not replaced stays an error, sent once.
#[tokio::test]
async fn a_key_replaced_while_workers_hold_the_old_one_still_lands_each_contact_once() {
    let w = world().await;
    let posts = |status: u16| {
        w.an.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.status == status)
            .count()
    };
    drop_cdr(&w.svc, "inbox/night/a.csv", &night_rows()[..2]).await;
    w.night(DAY).await;
    assert_eq!(posts(200), 2, "the workers hold the first key");

    w.stack
        .put_secret(
            &w.secret_name,
            &json!({"api_key": "an-replaced-key"}).to_string(),
        )
        .await;
    w.an.replace_key("an-replaced-key");
    drop_cdr(&w.svc, "inbox/night/b.csv", &night_rows()[2..4]).await;
    w.night(DAY).await;
    w.later().await;
    let delivered = w.deliveries(DAY).await;
    for id in ["1003", "1004"] {
        assert_eq!(delivered[id].delivery.state, CallState::Finished, "{id}");
    }
    assert_eq!(posts(200), 4, "each contact landed once");
    let refused = posts(401);
    assert!(
        (1..=2).contains(&refused),
        "the old key was refused before the new one was read: {refused}"
    );

    w.an.replace_key("an-elsewhere-key");
    drop_cdr(&w.svc, "inbox/night/c.csv", &night_rows()[4..5]).await;
    w.night(DAY).await;
    let d = &w.deliveries(DAY).await["1005"];
    assert_eq!(d.delivery.state, CallState::AttemptedError);
    assert_eq!(d.delivery.error.as_ref().unwrap().status, Some(401));
    assert_eq!(
        posts(401),
        refused + 1,
        "a key that was not replaced is sent once"
    );
}
