//! The CSV as a destination kind: calls that are kept but not posted, one file per day's
//! export, in the original app's nine columns plus the call id, the result key and why the
//! call went to the CSV. A batch kind ([`BatchDestination`]): its delivery is a file, and
//! each call's receipt is its row in it.
//!
//! Files are UTF-8 with a byte-order mark, so Excel on Windows shows `José`, not `JosÃ©`.
//! Text comes from outside (names, agent logins, display names), so a cell that a
//! spreadsheet would run as a formula — one starting with `=`, `+`, `-`, `@`, a tab or a
//! carriage return — is written with a leading `'`, as OWASP advises against CSV
//! injection; a cell already starting with `'` gets one more, so every cell reads back to
//! exactly one value.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::{
    Batch, BatchContext, BatchDestination, DESTINATION_CODES, DeliveryError, Metadata, Retry,
};
use crate::ledger::{CallRecord, Receipt};
use crate::ports::StoreError;
use crate::values::CandidateSlug;
use crate::values::DatabaseMode;

pub const METADATA: Metadata = Metadata {
    kind: "csv",
    description: "one CSV file per day in the deployment's bucket (calls the strategy exports)",
    spends_money: false,
    default_rate_limit: f64::INFINITY,
    resends_updates: false,
    configurable: false,
    codes: DESTINATION_CODES,
    retry: Retry::Backoff,
};

/// The CSV destination: files in the deployment's bucket, under the day's export folder.
#[derive(Debug, Default)]
pub struct Csv;

fn store_error(e: StoreError) -> DeliveryError {
    DeliveryError::Retryable {
        message: e.to_string(),
        status: None,
        answer: None,
    }
}

#[async_trait]
impl BatchDestination for Csv {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    /// A new file holding `calls` (data row `i + 1` is `calls[i]`). Its number comes from
    /// what is in the bucket, not from the day record: a file is never overwritten, since
    /// receipts point into it.
    async fn deliver_many(
        &self,
        ctx: BatchContext<'_>,
        calls: &[&CallRecord],
    ) -> Result<Batch, DeliveryError> {
        let (candidate, date) = (&ctx.day.candidate, ctx.day.date);
        let existing: HashSet<String> = ctx
            .objects
            .list(&day_prefix(candidate, date))
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let key = (existing.len() + 1..)
            .map(|n| object_key(candidate, date, n))
            .find(|k| !existing.contains(k))
            .unwrap_or_default();
        let bytes = write(
            calls,
            &ctx.candidate.zone,
            ctx.candidate.van().map(|v| v.database_mode),
        );
        ctx.objects
            .put(&key, bytes, "text/csv; charset=utf-8")
            .await
            .map_err(store_error)?;
        let at = ctx.clock.now();
        let bucket = ctx.objects.bucket().to_owned();
        let receipts = (0..calls.len())
            .map(|i| {
                let receipt = Receipt::Csv {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    row: i as u64 + 1,
                    at,
                };
                (i, receipt)
            })
            .collect();
        Ok(Batch {
            unit: key,
            items: calls.len() as u64,
            receipts,
        })
    }

    /// Files in the day's export folder that are not `recorded`: a run stopped between
    /// writing one and listing it. Their rows name their calls (the `Call ID` column);
    /// each of `pending` found in one gets its row as receipt. A file that is not an
    /// export is left alone (and logged).
    async fn recover(
        &self,
        ctx: BatchContext<'_>,
        recorded: &[&str],
        pending: &[&CallRecord],
    ) -> Result<Vec<Batch>, DeliveryError> {
        let prefix = day_prefix(&ctx.day.candidate, ctx.day.date);
        let unlisted: Vec<String> = ctx
            .objects
            .list(&prefix)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !recorded.contains(&k.as_str()) && k.ends_with(".csv"))
            .collect();
        if unlisted.is_empty() {
            return Ok(Vec::new());
        }
        let by_cell: HashMap<String, usize> = pending
            .iter()
            .enumerate()
            .map(|(i, r)| (cell(&r.key.call_id.0).into_owned(), i))
            .collect();
        let at = ctx.clock.now();
        let bucket = ctx.objects.bucket().to_owned();
        let mut found = Vec::new();
        for key in unlisted {
            let bytes = ctx.objects.get(&key).await.map_err(store_error)?;
            let cells = match call_id_cells(&bytes) {
                Ok(cells) => cells,
                Err(e) => {
                    tracing::error!(key = %key, error = %e, "an unlisted file in the export folder is not an export; left alone");
                    continue;
                }
            };
            let receipts = cells
                .iter()
                .enumerate()
                .filter_map(|(row, c)| {
                    by_cell.get(c).map(|&i| {
                        let receipt = Receipt::Csv {
                            bucket: bucket.clone(),
                            key: key.clone(),
                            row: row as u64 + 1,
                            at,
                        };
                        (i, receipt)
                    })
                })
                .collect();
            found.push(Batch {
                unit: key,
                items: cells.len() as u64,
                receipts,
            });
        }
        Ok(found)
    }
}

pub const HEADER: [&str; 12] = [
    "Voter ID",
    "Voter ID Type",
    "Voter First Name",
    "Voter Last Name",
    "Voter Phone",
    "Date Called",
    "Time Called",
    "Result",
    "Caller Login",
    "Call ID",
    "Result Key",
    "CSV Reason",
];

/// `exports/<candidate>/<YYYY-MM-DD>/`: the folder of one day's exports.
pub fn day_prefix(candidate: &CandidateSlug, date: Date) -> String {
    format!("exports/{candidate}/{date}/")
}

/// `exports/<candidate>/<YYYY-MM-DD>/<candidate>-<MM-DD-YYYY>-<n>.csv`, `n` counting the
/// day's exports from 1 (a late file or a retry adds a file; none is overwritten).
pub fn object_key(candidate: &CandidateSlug, date: Date, n: usize) -> String {
    format!(
        "{}{candidate}-{}-{n}.csv",
        day_prefix(candidate, date),
        date.strftime("%m-%d-%Y")
    )
}

/// What VAN calls the id in column one, by database.
pub fn voter_id_type(mode: Option<DatabaseMode>) -> &'static str {
    match mode {
        Some(DatabaseMode::MyCampaign) => "MyCampaignID",
        _ => "VANID",
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A cell as written: formula-looking text defused (see the module doc).
pub fn cell(text: &str) -> Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\'') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// The CSV bytes for `records` (calls with a stored call), in the given order; row `i`
/// of the slice is data row `i + 1` of the file. Each row's Voter ID Type follows its
/// call's database (the account's system), else `default_mode` (the candidate's).
pub fn write(
    records: &[&CallRecord],
    zone: &TimeZone,
    default_mode: Option<DatabaseMode>,
) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(BOM.to_vec());
    // Writing to a Vec cannot fail; a record that somehow could not be written would be
    // missing from a file whose row numbers are receipts, so fail loudly instead.
    out.write_record(HEADER).expect("write to memory");
    for record in records {
        let Some(call) = &record.call else { continue };
        let local = call.started_at.to_zoned_datetime(zone.clone());
        let phone = call.phone.as_ref().map_or("", |p| p.digits());
        out.write_record([
            call.van_id
                .map(|v| v.to_string())
                .unwrap_or_default()
                .as_str(),
            voter_id_type(call.database_mode.or(default_mode)),
            &cell(&call.first_name),
            &cell(&call.last_name),
            phone,
            &local.strftime("%m/%d/%Y").to_string(),
            &local.strftime("%H:%M:%S").to_string(),
            &cell(record.display_name.as_deref().unwrap_or(&call.result_text)),
            &cell(&call.agent),
            &cell(&call.call_id.0),
            &cell(call.result.as_str()),
            record.csv_reason.map_or("", |r| r.as_str()),
        ])
        .expect("write to memory");
    }
    out.into_inner().expect("flush to memory")
}

/// The `Call ID` cell of every data row of an export, in row order (row `i` of the result
/// is data row `i + 1`): how a file a crashed run wrote is matched back to its calls.
pub fn call_id_cells(bytes: &[u8]) -> Result<Vec<String>, String> {
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let column = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .position(|h| h == "Call ID")
        .ok_or("it has no Call ID column")?;
    reader
        .records()
        .map(|row| {
            row.map_err(|e| e.to_string())
                .map(|r| r.get(column).unwrap_or_default().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formula_looking_cells_are_defused_and_read_back_as_one_value() {
        for (text, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1 555", "'+1 555"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "'\rcmd"),
            ("'quoted", "''quoted"),
            ("José", "José"),
            ("O'Brien, Jr.", "O'Brien, Jr."),
            ("", ""),
        ] {
            assert_eq!(cell(text), written, "{text:?}");
        }
        // Distinct values stay distinct once written.
        assert_ne!(cell("=1"), cell("'=1"));
    }
}
