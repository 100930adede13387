//! Reading a candidate's calls from its sources: CDR files dropped in its S3 inbox (each
//! moved aside once every row is in the ledger) and the LiveVox API for one local day.
//! A bad row becomes an error for that row; a file whose header is unusable is set aside
//! with a note beside it; nothing else stops.

use std::collections::HashSet;

use jiff::civil::Date;
use serde::Serialize;

use crate::call::{Call, CallId};
use crate::candidate::Candidate;
use crate::connect::ConnectError;
use crate::ledger::{CallKey, CallRecord, DayKey};
use crate::livevox::{CallDetailSource, CdrColumns, CdrReader, RowError, RowOutcome, normalise};
use crate::ports::{ObjectStore, StoreError};
use crate::services::Services;

/// What one read of the sources produced.
#[derive(Debug, Default)]
pub struct Ingested {
    pub calls: Vec<Call>,
    /// Rows that could not become calls, as ledger records (`unattempted_error`).
    pub bad_rows: Vec<CallRecord>,
    pub test_rows: u64,
    /// Rows seen twice (the same call in two files, or in a file and the API).
    pub duplicates: u64,
    pub files: Vec<FileRead>,
    /// What the LiveVox API gave, when it was read.
    pub livevox: Option<FileRead>,
    pub problems: Vec<SourceProblem>,
    seen: HashSet<(Date, CallId)>,
}

/// One CDR file read from the inbox (or the rows of one LiveVox API read).
#[derive(Debug, Clone, Serialize)]
pub struct FileRead {
    pub key: String,
    pub rows: u64,
    pub bad_rows: u64,
    pub test_rows: u64,
}

/// A source that could not be read at all this time; the rest went on.
#[derive(Debug, Clone, Serialize)]
pub struct SourceProblem {
    pub source: String,
    pub message: String,
    /// Where a rejected file was moved, with a `.error.txt` note beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

impl Ingested {
    fn take(
        &mut self,
        outcome: RowOutcome,
        candidate: &Candidate,
        bad_day: Date,
        now: jiff::Timestamp,
        file: &mut FileRead,
    ) {
        file.rows += 1;
        match outcome {
            RowOutcome::Call(call) => {
                if self.seen.insert((call.local_date, call.call_id.clone())) {
                    self.calls.push(call);
                } else {
                    self.duplicates += 1;
                }
            }
            RowOutcome::TestAccount => {
                file.test_rows += 1;
                self.test_rows += 1;
            }
            RowOutcome::Bad(err) => {
                file.bad_rows += 1;
                self.bad_rows.push(bad_row(candidate, bad_day, &err, now));
            }
        }
    }
}

/// A bad row's ledger record. It belongs to no readable day, so it is filed under the
/// day being run, keyed by where it was read: reading the same file again finds it known.
fn bad_row(candidate: &Candidate, day: Date, err: &RowError, now: jiff::Timestamp) -> CallRecord {
    let key = CallKey {
        day: DayKey {
            candidate: candidate.slug.clone(),
            date: day,
        },
        call_id: bad_row_id(&err.file, err.line),
    };
    CallRecord::bad_row(key, err.to_string(), now)
}

/// The longest ledger key a bad row gets, in bytes (DynamoDB allows 1,024 in a sort key).
const MAX_BAD_ROW_ID_BYTES: usize = 512;

/// `row:<file>:<line>`; a file key too long for that (S3 allows 1,024 bytes) is replaced by
/// its SHA-256, so the row is still recorded, once, instead of the file failing every run.
fn bad_row_id(file: &str, line: u64) -> CallId {
    let id = format!("row:{file}:{line}");
    if id.len() <= MAX_BAD_ROW_ID_BYTES {
        return CallId(id);
    }
    let hex = crate::values::sha256_hex(file.as_bytes());
    CallId(format!("row:sha256-{hex}:{line}"))
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Where a file goes once every row of it is in the ledger.
pub fn processed_key(candidate: &Candidate, key: &str, today: Date) -> String {
    format!("processed/{}/{today}/{}", candidate.slug, file_name(key))
}

/// Read every file in the candidate's inbox. `bad_day` files the rows that have no
/// readable day. Files are not moved here: see [`set_aside`].
pub async fn read_inbox(
    svc: &Services,
    candidate: &Candidate,
    bad_day: Date,
    into: &mut Ingested,
) -> Result<(), StoreError> {
    let Some(prefix) = candidate.inbox_prefix() else {
        return Ok(());
    };
    let columns: CdrColumns = candidate
        .doc()
        .source
        .cdr
        .as_ref()
        .map(|c| c.columns.clone())
        .unwrap_or_default();
    let now = svc.clock.now();
    for object in svc.objects.list(&prefix).await? {
        let body = svc.objects.get(&object.key).await?;
        let reader = CdrReader::new(
            &object.key,
            &columns,
            candidate.accounts.clone(),
            candidate.zone.clone(),
        );
        match reader.rows(body.as_slice()) {
            Ok(rows) => {
                let mut file = FileRead {
                    key: object.key.clone(),
                    rows: 0,
                    bad_rows: 0,
                    test_rows: 0,
                };
                for outcome in rows {
                    into.take(outcome, candidate, bad_day, now, &mut file);
                }
                into.files.push(file);
            }
            Err(err) => into.problems.push(SourceProblem {
                source: object.key.clone(),
                message: err.to_string(),
                moved_to: None,
            }),
        }
    }
    Ok(())
}

/// Move read files out of the inbox (to `processed/`), and files that could not be read
/// at all (to `rejected/`, with a note saying why). Call only after every row of the
/// read files is in the ledger: a run that dies before reads them again, harmlessly.
pub async fn set_aside(
    objects: &dyn ObjectStore,
    candidate: &Candidate,
    today: Date,
    ingested: &mut Ingested,
) -> Result<(), StoreError> {
    // Only the candidate's own inbox is ever moved from: nothing a run read can take
    // another candidate's files (or the exports, which are receipts) with it.
    for file in &ingested.files {
        if !candidate.owns_inbox_object(&file.key) {
            tracing::error!(key = %file.key, "not in the candidate's inbox; left where it is");
            continue;
        }
        objects
            .rename(&file.key, &processed_key(candidate, &file.key, today))
            .await?;
    }
    for problem in &mut ingested.problems {
        let Some(prefix) = candidate.inbox_prefix() else {
            continue;
        };
        if !candidate.owns_inbox_object(&problem.source) {
            continue;
        }
        let to = format!(
            "rejected/{}/{today}/{}",
            candidate.slug,
            file_name(&problem.source)
        );
        objects.rename(&problem.source, &to).await?;
        objects
            .put(
                &format!("{to}.error.txt"),
                format!(
                    "{}\n\nFix the file (or the candidate's source.cdr.columns) and drop it in {prefix} again.\n",
                    problem.message
                )
                .into_bytes(),
                "text/plain; charset=utf-8",
            )
            .await?;
        problem.moved_to = Some(to);
    }
    Ok(())
}

/// Read one local day of calls from the LiveVox API.
pub async fn read_livevox(
    svc: &Services,
    candidate: &Candidate,
    date: Date,
    into: &mut Ingested,
) -> Result<(), ConnectError> {
    let Some(lv) = candidate.doc().source.livevox.as_ref() else {
        return Ok(());
    };
    let client = svc
        .connectors
        .livevox(svc.secrets.as_ref(), candidate)
        .await?;
    let (from, to) = day_window(candidate, date);
    let details = client.call_details(from, to, &lv.services).await?;
    let now = svc.clock.now();
    let mut file = FileRead {
        key: "livevox:callDetail".into(),
        rows: 0,
        bad_rows: 0,
        test_rows: 0,
    };
    for (i, detail) in details.iter().enumerate() {
        let outcome = normalise(
            detail.to_raw(i as u64),
            &candidate.accounts,
            &candidate.zone,
        );
        // The API may return a neighbouring day's call at the window's edge; it belongs
        // to its own day, and that day's run reads it.
        if matches!(&outcome, RowOutcome::Call(c) if c.local_date != date) {
            continue;
        }
        into.take(outcome, candidate, date, now, &mut file);
    }
    into.livevox = Some(file);
    Ok(())
}

/// `[start, end)` of a local day as instants (23 or 25 hours long on DST changes).
pub fn day_window(candidate: &Candidate, date: Date) -> (jiff::Timestamp, jiff::Timestamp) {
    let start = |d: Date| {
        d.to_zoned_datetime(candidate.zone.clone())
            .map(|z| z.timestamp())
            .unwrap_or_default()
    };
    (start(date), start(date.tomorrow().unwrap_or(date)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_row_in_a_file_with_a_very_long_key_still_gets_a_ledger_key() {
        assert_eq!(
            bad_row_id("inbox/a/calls.csv", 7).0,
            "row:inbox/a/calls.csv:7"
        );
        let long = format!("inbox/a/{}.csv", "x".repeat(1_010));
        let id = bad_row_id(&long, 7).0;
        assert!(id.len() <= MAX_BAD_ROW_ID_BYTES, "{}", id.len());
        assert!(id.starts_with("row:sha256-") && id.ends_with(":7"), "{id}");
        assert_ne!(id, bad_row_id(&long, 8).0);
    }
}
