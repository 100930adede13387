//! The call ledger and the day records in DynamoDB, each write a conditional put on the
//! record's version.
//!
//! **Calls table.** Partition key `pk` = `"{candidate}#{date}#{shard:02}"`, sort key `sk` =
//! the call id, where `shard` = FNV-1a 64 of the call id's bytes modulo [`SHARDS`]. A big
//! night is ~100k calls written in minutes; under one partition key per day they would all
//! land on one partition, which takes at most 1,000 writes a second. Sixteen shards spread
//! that burst, while a point lookup still computes its key from the call alone, and a day
//! is read with sixteen queries (run concurrently). The item is the whole [`CallRecord`] as
//! a native map (readable in the console) plus `pk` and `sk`; its top-level `state` and
//! `version` are the record's own fields, and `version` is what every write's condition
//! checks. A new call is put with `attribute_not_exists(pk)`, so a re-run is a no-op.
//!
//! **Deliveries** to configured destinations live in the same table: partition key
//! `"{candidate}#{date}#{shard:02}#{destination}"` (the call's shard), sort key the call
//! id, the item the whole [`DeliveryRecord`]. A destination name is `[a-z0-9-]`, so no
//! delivery key is ever a call key. Why so: a delivery is written and read on its own
//! (leased, settled, swept) with the same compare-and-set as a call, and a destination's
//! day is read without reading the others'. Sizes: a call record is ~1–1.5 KB, a
//! webhook delivery ~1 KB (its payload is the call again, as sent, so what was sent is
//! kept even when the mapping changes later); a templated one is its rendered request
//! (typically 1–3 KB). At 100k calls and 5 destinations a night is 100k call items and
//! 500k delivery items, about 0.6–0.9 GB a night before TTL or archive. Hot partitions:
//! each destination's writes for a day spread over its own sixteen partitions, so a night
//! is 96 partition keys; even a burst of 1,000 writes a second toward one destination puts
//! ~63 a second on each, far from the 1,000 a partition takes. Reading one destination's
//! day is sixteen queries, as for calls.
//!
//! **Days table.** Partition key `candidate`, sort key `sk`: a day's run record at
//! `day#YYYY-MM-DD`, and the VAN requests made on a day at `usage#YYYY-MM-DD`. The counter
//! is a separate item so its atomic `ADD` never races the day record's versioned writes.
//! The rate governors' schedules live there too, under a partition no candidate can have
//! ([`RATES`], not a slug), sort key `rate#{key}`: one small item per destination key,
//! each write a conditional put on its version.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::CallId;
use crate::ledger::{
    CallKey, CallRecord, DayKey, DayRecord, DeliveryKey, DeliveryRecord, Versioned,
};
use crate::ports::{DayStore, Ledger, RateState, RateStore, StoreError};
use crate::values::CandidateSlug;

/// Partitions of a day in the calls table. Changing it orphans every stored call.
pub const SHARDS: u64 = 16;

type Item = HashMap<String, AttributeValue>;

const CALLS: &str = "the calls table";
const DAYS: &str = "the days table";

/// FNV-1a, 64 bit. Stored keys depend on it: it must never change (which is why it is
/// written out here rather than taken from a hasher whose output may change).
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

fn shard(call_id: &CallId) -> u64 {
    fnv1a64(call_id.0.as_bytes()) % SHARDS
}

fn partition(day: &DayKey, shard: u64) -> String {
    format!("{}#{}#{shard:02}", day.candidate, day.date)
}

fn delivery_key(key: &DeliveryKey) -> [(&'static str, AttributeValue); 2] {
    [
        (
            "pk",
            AttributeValue::S(delivery_partition(
                &key.call.day,
                shard(&key.call.call_id),
                &key.destination,
            )),
        ),
        ("sk", AttributeValue::S(key.call.call_id.0.to_string())),
    ]
}

fn delivery_partition(day: &DayKey, shard: u64, destination: &str) -> String {
    format!("{}#{destination}", partition(day, shard))
}

fn call_key(key: &CallKey) -> [(&'static str, AttributeValue); 2] {
    [
        (
            "pk",
            AttributeValue::S(partition(&key.day, shard(&key.call_id))),
        ),
        ("sk", AttributeValue::S(key.call_id.0.to_string())),
    ]
}

/// An SDK error as [`StoreError::Unavailable`], with its whole chain of causes.
fn service<E: std::error::Error>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Unavailable(what, DisplayErrorContext(e).to_string())
}

/// `record` as an item, with `extra` (the key) added.
fn encode<T: Serialize>(
    record: &T,
    what: impl Fn() -> String,
    extra: impl IntoIterator<Item = (&'static str, AttributeValue)>,
) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::aws_sdk_dynamodb_1::to_item(record).map_err(|e| StoreError::Corrupt {
            what: what(),
            message: e.to_string(),
        })?;
    item.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
    Ok(item)
}

/// A record from its item; the key attributes are ignored.
fn decode<T: DeserializeOwned>(item: Item, what: impl Fn() -> String) -> Result<T, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|e| StoreError::Corrupt {
        what: what(),
        message: e.to_string(),
    })
}

fn version(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `Ok(false)` when the put's condition failed; the service's other refusals are errors.
fn conditional(
    what: &'static str,
    result: Result<impl Sized, SdkError<PutItemError>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
        {
            Ok(false)
        }
        Err(e) => Err(service(what)(e)),
    }
}

#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    stream_page: i32,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            stream_page: STREAM_PAGE,
        }
    }

    /// Read streamed days `items` per query (default 250).
    pub fn with_stream_page(self, items: i32) -> Self {
        Self {
            stream_page: items.max(1),
            ..self
        }
    }

    /// Every item under one partition key.
    async fn partition<T: DeserializeOwned>(&self, pk: String) -> Result<Vec<T>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(service(CALLS))?;
            records.push(decode(item, || format!("an item under {pk}"))?);
        }
        Ok(records)
    }

    async fn put_new<T: Serialize>(
        &self,
        record: &T,
        what: impl Fn() -> String,
        key: [(&'static str, AttributeValue); 2],
    ) -> Result<bool, StoreError> {
        let item = encode(record, what, key)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional(CALLS, result)
    }

    async fn get_item<T: DeserializeOwned>(
        &self,
        key: [(&'static str, AttributeValue); 2],
        what: impl Fn() -> String,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.map(|(k, v)| (k.to_owned(), v)).into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(service(CALLS))?;
        out.item.map(|item| decode(item, what)).transpose()
    }

    /// Put `next` if the stored version is still `expected`.
    /// Write `record` with its version bumped, only over the version it was read at; on
    /// success `record` carries the new version.
    async fn put_versioned<T: Serialize + Versioned + Sync>(
        &self,
        record: &mut T,
        what: String,
        key: [(&'static str, AttributeValue); 2],
    ) -> Result<bool, StoreError> {
        let expected = record.version();
        record.set_version(expected + 1);
        let item = encode(&*record, || what.clone(), key);
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                record.set_version(expected);
                return Err(e);
            }
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", version(expected))
            .send()
            .await;
        let written = conditional(CALLS, result);
        if !matches!(written, Ok(true)) {
            record.set_version(expected);
        }
        written
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError> {
        self.put_new(
            record,
            || format!("call {}", record.key),
            call_key(&record.key),
        )
        .await
    }

    async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError> {
        self.get_item(call_key(key), || format!("call {key}")).await
    }

    async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
        let (what, key) = (format!("call {}", record.key), call_key(&record.key));
        self.put_versioned(record, what, key).await
    }

    async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
        let shards =
            try_join_all((0..SHARDS).map(|s| self.partition::<CallRecord>(partition(day, s))))
                .await?;
        let mut records: Vec<CallRecord> = shards.into_iter().flatten().collect();
        records.sort_by(|a, b| a.key.call_id.cmp(&b.key.call_id));
        Ok(records)
    }

    fn day_records<'a>(&'a self, day: &'a DayKey) -> crate::ports::Records<'a, CallRecord> {
        self.merged((0..SHARDS).map(|s| partition(day, s)).collect())
    }

    async fn insert_delivery(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        self.put_new(
            record,
            || format!("delivery {}", record.key),
            delivery_key(&record.key),
        )
        .await
    }

    async fn get_delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError> {
        self.get_item(delivery_key(key), || format!("delivery {key}"))
            .await
    }

    async fn replace_delivery(&self, record: &mut DeliveryRecord) -> Result<bool, StoreError> {
        let (what, key) = (
            format!("delivery {}", record.key),
            delivery_key(&record.key),
        );
        self.put_versioned(record, what, key).await
    }

    async fn deliveries(
        &self,
        day: &DayKey,
        destination: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let shards =
            try_join_all((0..SHARDS).map(|s| {
                self.partition::<DeliveryRecord>(delivery_partition(day, s, destination))
            }))
            .await?;
        let mut records: Vec<DeliveryRecord> = shards.into_iter().flatten().collect();
        records.sort_by(|a, b| a.key.call.call_id.cmp(&b.key.call.call_id));
        Ok(records)
    }

    fn delivery_records<'a>(
        &'a self,
        day: &'a DayKey,
        destination: &'a str,
    ) -> crate::ports::Records<'a, DeliveryRecord> {
        self.merged(
            (0..SHARDS)
                .map(|s| delivery_partition(day, s, destination))
                .collect(),
        )
    }
}

/// Items a streamed read holds per shard: sixteen shards of ~1.5 KB records hold ~6 MB.
const STREAM_PAGE: i32 = 250;

/// One shard of a streamed read: the page being taken, and where the next one starts.
#[derive(Debug)]
struct ShardPage {
    pk: String,
    items: std::collections::VecDeque<Item>,
    next: Option<Item>,
    done: bool,
}

fn sort_key(item: &Item) -> &str {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

impl DynamoLedger {
    /// The items of `partitions` (each in sort-key order) merged into one stream in sort-key
    /// (call-id) order, each partition read a page at a time as its items are taken.
    fn merged<'a, T: DeserializeOwned + Send + 'a>(
        &'a self,
        partitions: Vec<String>,
    ) -> crate::ports::Records<'a, T> {
        let shards: Vec<ShardPage> = partitions
            .into_iter()
            .map(|pk| ShardPage {
                pk,
                items: Default::default(),
                next: None,
                done: false,
            })
            .collect();
        Box::pin(futures::stream::try_unfold(
            shards,
            move |mut shards| async move {
                try_join_all(
                    shards
                        .iter_mut()
                        .filter(|s| s.items.is_empty() && !s.done)
                        .map(|s| self.fill(s)),
                )
                .await?;
                let Some(at) = shards
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.items.front().map(|item| (sort_key(item), i)))
                    .min()
                    .map(|(_, i)| i)
                else {
                    return Ok(None);
                };
                let Some(item) = shards[at].items.pop_front() else {
                    return Ok(None);
                };
                let pk = &shards[at].pk;
                let record = decode(item, || format!("an item under {pk}"))?;
                Ok(Some((record, shards)))
            },
        ))
    }

    /// Read `shard`'s next page (until one has items, or the partition ends).
    async fn fill(&self, shard: &mut ShardPage) -> Result<(), StoreError> {
        while shard.items.is_empty() && !shard.done {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(shard.pk.clone()))
                .consistent_read(true)
                .limit(self.stream_page)
                .set_exclusive_start_key(shard.next.take())
                .send()
                .await
                .map_err(service(CALLS))?;
            shard.next = out.last_evaluated_key;
            shard.done = shard.next.is_none();
            shard.items.extend(out.items.unwrap_or_default());
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct DynamoDayStore {
    client: Client,
    table: String,
}

fn day_key(day: &DayKey) -> [(&'static str, AttributeValue); 2] {
    [
        ("candidate", AttributeValue::S(day.candidate.to_string())),
        ("sk", AttributeValue::S(format!("day#{}", day.date))),
    ]
}

/// The days table's partition of the rate governors' schedules: a slug never starts with `~`.
pub const RATES: &str = "~rates";

fn rate_key(key: &str) -> [(&'static str, AttributeValue); 2] {
    [
        ("candidate", AttributeValue::S(RATES.to_owned())),
        ("sk", AttributeValue::S(format!("rate#{key}"))),
    ]
}

#[async_trait]
impl RateStore for DynamoDayStore {
    async fn rate(&self, key: &str) -> Result<Option<RateState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(rate_key(key).map(|(k, v)| (k.to_owned(), v)).into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(service(DAYS))?;
        out.item
            .map(|item| decode(item, || format!("the rate schedule of {key}")))
            .transpose()
    }

    async fn put_rate(
        &self,
        key: &str,
        state: &RateState,
        read: Option<u64>,
    ) -> Result<bool, StoreError> {
        let item = encode(
            state,
            || format!("the rate schedule of {key}"),
            rate_key(key),
        )?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match read {
            None => put.condition_expression("attribute_not_exists(candidate)"),
            Some(v) => put
                .condition_expression("version = :read")
                .expression_attribute_values(":read", version(v)),
        };
        conditional(DAYS, put.send().await)
    }
}

fn usage_key(day: &DayKey) -> Item {
    HashMap::from([
        (
            "candidate".to_owned(),
            AttributeValue::S(day.candidate.to_string()),
        ),
        (
            "sk".to_owned(),
            AttributeValue::S(format!("usage#{}", day.date)),
        ),
    ])
}

impl DynamoDayStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl DayStore for DynamoDayStore {
    async fn get(&self, day: &DayKey) -> Result<Option<DayRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(day_key(day).map(|(k, v)| (k.to_owned(), v)).into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(service(DAYS))?;
        out.item
            .map(|item| decode(item, || format!("day {day}")))
            .transpose()
    }

    async fn replace(&self, record: &mut DayRecord) -> Result<bool, StoreError> {
        let expected = record.version;
        let mut next = record.clone();
        next.version = expected + 1;
        let item = encode(&next, || format!("day {}", next.key), day_key(&next.key))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(candidate)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", version(expected))
        };
        let written = conditional(DAYS, put.send().await)?;
        if written {
            record.version = next.version;
        }
        Ok(written)
    }

    async fn open_days(&self, candidate: &CandidateSlug) -> Result<Vec<DayRecord>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("candidate = :c AND begins_with(sk, :day)")
            .filter_expression("attribute_not_exists(complete) OR complete = :false")
            .expression_attribute_values(":c", AttributeValue::S(candidate.to_string()))
            .expression_attribute_values(":day", AttributeValue::S("day#".into()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut days = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(service(DAYS))?;
            days.push(decode::<DayRecord>(item, || {
                format!("a day of {candidate}")
            })?);
        }
        days.sort_by_key(|d| d.key.date);
        Ok(days)
    }

    async fn add_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(usage_key(day)))
            .update_expression("ADD van_requests :n")
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .send()
            .await
            .map_err(service(DAYS))?;
        Ok(())
    }

    async fn add_van_requests_within(
        &self,
        day: &DayKey,
        n: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        let Some(most) = cap.checked_sub(n) else {
            return Ok(false);
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(usage_key(day)))
            .update_expression("ADD van_requests :n")
            .condition_expression("attribute_not_exists(van_requests) OR van_requests <= :most")
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .expression_attribute_values(":most", AttributeValue::N(most.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception,
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(service(DAYS)(e)),
        }
    }

    async fn return_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(usage_key(day)))
            .update_expression("ADD van_requests :n")
            .expression_attribute_values(":n", AttributeValue::N(format!("-{n}")))
            .send()
            .await
            .map_err(service(DAYS))?;
        Ok(())
    }

    async fn van_requests(&self, day: &DayKey) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(usage_key(day)))
            .consistent_read(true)
            .send()
            .await
            .map_err(service(DAYS))?;
        match out.item.as_ref().and_then(|i| i.get("van_requests")) {
            None => Ok(0),
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| StoreError::Corrupt {
                what: format!("the VAN request count of {day}"),
                message: format!("{n:?} is not a whole number"),
            }),
            Some(other) => Err(StoreError::Corrupt {
                what: format!("the VAN request count of {day}"),
                message: format!("expected a number, found {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partition_keys_never_change() {
        // Stored calls are found by these keys: if this test fails, existing ledgers break.
        let day = DayKey {
            candidate: CandidateSlug::parse("pa07-lee").unwrap(),
            date: jiff::civil::date(2026, 11, 21),
        };
        let key = |id: &str| {
            call_key(&CallKey {
                day: day.clone(),
                call_id: CallId(id.into()),
            })
        };
        assert_eq!(
            key("101312525040"),
            [
                ("pk", AttributeValue::S("pa07-lee#2026-11-21#13".into())),
                ("sk", AttributeValue::S("101312525040".into())),
            ]
        );
        assert_eq!(
            key("a")[0].1,
            AttributeValue::S("pa07-lee#2026-11-21#12".into())
        );
        assert_eq!(partition(&day, 3), "pa07-lee#2026-11-21#03");
        let delivery = delivery_key(&DeliveryKey {
            call: CallKey {
                day: day.clone(),
                call_id: CallId("101312525040".into()),
            },
            destination: "hook".into(),
        });
        assert_eq!(
            delivery[0].1,
            AttributeValue::S("pa07-lee#2026-11-21#13#hook".into())
        );
    }
}
