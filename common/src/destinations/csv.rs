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
use std::collections::HashSet;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use futures::StreamExt;

use super::{
    BatchContext, BatchDestination, DESTINATION_CODES, DeliveryError, Metadata, Retry, Unit,
};
use crate::call::CallId;
use crate::ledger::{CallRecord, Receipt};
use crate::ports::{Records, StoreError};
use crate::values::CandidateSlug;
use crate::values::DatabaseMode;

pub const METADATA: Metadata = Metadata {
    kind: "csv",
    description: "one CSV file per day in the deployment's bucket (calls the strategy exports)",
    spends_money: false,
    default_rate_limit: f64::INFINITY,
    resends_updates: false,
    configurable: false,
    batches: false,
    waits_for_call: false,
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

/// What the CSV writer hands the bucket at a time.
const PIECE: usize = 256 * 1024;
/// Room past [`PIECE`] in the writer's buffer for the row that crosses it: a buffer that
/// had to grow for it would double, to twice the piece.
const ROW_ROOM: usize = 16 * 1024;

#[async_trait]
impl BatchDestination for Csv {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    /// A new file holding the calls `calls` yields (with a stored call), in their order,
    /// written to the bucket in pieces as they come. Its number comes from what is in the
    /// bucket, not from the day record: a file is never overwritten, since receipts point
    /// into it.
    async fn deliver_many(
        &self,
        ctx: BatchContext<'_>,
        mut calls: Records<'_, CallRecord>,
    ) -> Result<Option<Unit>, DeliveryError> {
        let first = loop {
            match calls.next().await {
                None => return Ok(None),
                Some(r) => {
                    let r = r.map_err(store_error)?;
                    if r.call.is_some() {
                        break r;
                    }
                }
            }
        };
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
        let mut upload = ctx
            .objects
            .upload(&key, "text/csv; charset=utf-8")
            .await
            .map_err(store_error)?;
        let mut file = Writer::new(
            &ctx.candidate.zone,
            ctx.candidate.van().map(|v| v.database_mode),
            PIECE + ROW_ROOM,
        );
        file.row(&first);
        drop(first);
        let written: Result<(), StoreError> = async {
            while let Some(record) = calls.next().await {
                file.row(&record?);
                if let Some(piece) = file.piece(PIECE) {
                    upload.write(piece).await?;
                }
            }
            if let Some(piece) = file.piece(0) {
                upload.write(piece).await?;
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => upload.finish().await.map_err(store_error)?,
            Err(e) => {
                upload.abort().await;
                return Err(store_error(e));
            }
        }
        Ok(Some(Unit {
            key,
            items: file.rows,
        }))
    }

    /// Each data row's call (its `Call ID` cell) with the row as receipt, the file read as
    /// the stream is taken.
    fn receipts<'a>(
        &'a self,
        ctx: BatchContext<'a>,
        unit: &'a str,
    ) -> Records<'a, (CallId, Receipt)> {
        let at = ctx.clock.now();
        let bucket = ctx.objects.bucket().to_owned();
        let key = unit.to_owned();
        let opened = async move {
            let chunks = ctx.objects.open(unit).await?;
            Ok::<_, StoreError>(call_ids(unit, chunks))
        };
        let rows = futures::stream::once(opened).map(|opened| match opened {
            Ok(rows) => rows,
            Err(e) => Box::pin(futures::stream::iter([Err(e)])),
        });
        Box::pin(rows.flatten().map(move |row| {
            row.map(|(call_id, row)| {
                let receipt = Receipt::Csv {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    row,
                    at,
                };
                (call_id, receipt)
            })
        }))
    }

    /// Files in the day's export folder that are not `recorded`: a run stopped between
    /// writing one and listing it.
    async fn unrecorded(
        &self,
        ctx: BatchContext<'_>,
        recorded: &[&str],
    ) -> Result<Vec<String>, DeliveryError> {
        let prefix = day_prefix(&ctx.day.candidate, ctx.day.date);
        Ok(ctx
            .objects
            .list(&prefix)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !recorded.contains(&k.as_str()) && k.ends_with(".csv"))
            .collect())
    }
}

/// Rows a receipts read hands over at a time.
const RECEIPT_BATCH: usize = 500;

/// The call of every data row of the export `key` (from its `Call ID` cell) with its row
/// number, parsed on a blocking thread as the file streams in.
fn call_ids(key: &str, chunks: crate::ports::Chunks) -> Records<'static, (CallId, u64)> {
    let (input, failed) = crate::ports::blocking_reader(chunks);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<(CallId, u64)>>(1);
    let file = key.to_owned();
    let reading = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        let not_an_export = |message: String| StoreError::Corrupt {
            what: format!("export {file}"),
            message,
        };
        let cut_off = |e: csv::Error| match crate::ports::read_failure(&failed) {
            Some(why) => StoreError::Unavailable("the bucket", why),
            None => not_an_export(e.to_string()),
        };
        let mut reader = csv::ReaderBuilder::new().from_reader(input);
        let column = reader
            .headers()
            .map_err(cut_off)?
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == "Call ID")
            .ok_or_else(|| not_an_export("it has no Call ID column".into()))?;
        let mut batch = Vec::with_capacity(RECEIPT_BATCH);
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(cut_off)?;
            let id = uncell(row.get(column).unwrap_or_default());
            batch.push((CallId(id.into()), i as u64 + 1));
            if batch.len() == RECEIPT_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(RECEIPT_BATCH));
                if tx.blocking_send(full).is_err() {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    });
    let batches = futures::stream::unfold((rx, Some(reading)), |(mut rx, reading)| async move {
        if let Some(batch) = rx.recv().await {
            let items: Vec<Result<(CallId, u64), StoreError>> = batch.into_iter().map(Ok).collect();
            return Some((items, (rx, reading)));
        }
        // The file is done: say so if it was not read to its end.
        let failed = match reading?.await {
            Ok(Ok(())) => return None,
            Ok(Err(e)) => e,
            Err(e) => StoreError::Unavailable("the bucket", format!("the reader stopped: {e}")),
        };
        Some((vec![Err(failed)], (rx, None)))
    });
    Box::pin(batches.map(futures::stream::iter).flatten())
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

/// A cell as read back: the one `'` [`cell`] added taken off.
pub fn uncell(text: &str) -> &str {
    match text.strip_prefix('\'') {
        Some(rest)
            if matches!(
                rest.chars().next(),
                Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\'')
            ) =>
        {
            rest
        }
        _ => text,
    }
}

/// An export being written: rows go into a buffer that is handed over in pieces.
struct Writer<'z> {
    out: csv::Writer<Vec<u8>>,
    zone: &'z TimeZone,
    default_mode: Option<DatabaseMode>,
    rows: u64,
    /// The bytes each buffer is made with.
    capacity: usize,
}

impl<'z> Writer<'z> {
    fn new(zone: &'z TimeZone, default_mode: Option<DatabaseMode>, capacity: usize) -> Self {
        let mut buffer = Vec::with_capacity(capacity.max(BOM.len()));
        buffer.extend_from_slice(BOM);
        let mut out = csv::Writer::from_writer(buffer);
        // Writing to a Vec cannot fail; a record that somehow could not be written would
        // be missing from a file whose row numbers are receipts, so fail loudly instead.
        out.write_record(HEADER).expect("write to memory");
        Self {
            out,
            zone,
            default_mode,
            rows: 0,
            capacity,
        }
    }

    /// One more row (a record without a call has none). Each row's Voter ID Type follows
    /// its call's database (the account's system), else the candidate's.
    fn row(&mut self, record: &CallRecord) {
        let Some(call) = &record.call else { return };
        let local = call.started_at.to_zoned_datetime(self.zone.clone());
        let phone = call.phone.as_ref().map_or("", |p| p.digits());
        self.out
            .write_record([
                call.van_id
                    .map(|v| v.to_string())
                    .unwrap_or_default()
                    .as_str(),
                voter_id_type(call.database_mode.or(self.default_mode)),
                &cell(call.first_name()),
                &cell(call.last_name()),
                phone,
                &local.strftime("%m/%d/%Y").to_string(),
                &local.strftime("%H:%M:%S").to_string(),
                &cell(record.display_name.as_deref().unwrap_or(&call.result_text)),
                &cell(call.agent()),
                &cell(&call.call_id.0),
                &cell(call.result.as_str()),
                record.csv_reason.map_or("", |r| r.as_str()),
            ])
            .expect("write to memory");
        self.rows += 1;
    }

    /// What is written so far, once it is at least `at_least` bytes (and not empty).
    fn piece(&mut self, at_least: usize) -> Option<Vec<u8>> {
        self.out.flush().expect("flush to memory");
        let held = self.out.get_ref().len();
        if held == 0 || held < at_least {
            return None;
        }
        let next = if at_least == 0 {
            Vec::new()
        } else {
            Vec::with_capacity(self.capacity)
        };
        let full = std::mem::replace(&mut self.out, csv::Writer::from_writer(next));
        Some(full.into_inner().expect("flush to memory"))
    }
}

/// The CSV bytes for `records` (calls with a stored call), in the given order; row `i`
/// of the file is the `i`-th record with a call.
pub fn write(
    records: &[&CallRecord],
    zone: &TimeZone,
    default_mode: Option<DatabaseMode>,
) -> Vec<u8> {
    let mut file = Writer::new(zone, default_mode, 0);
    for record in records {
        file.row(record);
    }
    file.piece(0).unwrap_or_default()
}

/// The `Call ID` cell of every data row of an export, in row order (row `i` of the result
/// is data row `i + 1`).
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
            assert_eq!(uncell(&cell(text)), text, "{text:?} reads back as itself");
        }
        // Distinct values stay distinct once written.
        assert_ne!(cell("=1"), cell("'=1"));
    }
}
