//! Reading a candidate's calls from its sources: CDR files dropped in its S3 inbox (each
//! streamed in, its rows handed on in batches, and moved aside once every row is in the
//! ledger) and the LiveVox API for one local day, a page at a time. A bad row becomes an error for that row;
//! a file whose header is unusable is set aside with a note beside it; a file that cannot
//! be read to its end this time stays for the next run; nothing else stops.

use jiff::civil::Date;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::call::AccountPattern;
use crate::call::CallId;
use crate::candidate::Candidate;
use crate::connect::ConnectError;
use crate::ledger::{CallKey, CallRecord, DayKey};
use crate::livevox::{
    CallDetailCursor, CallDetailPosition, CallDetailSource, CdrColumns, CdrReader, LiveVoxClient,
    Memo, RowError, RowOutcome, normalise_in,
};
use crate::ports::{ObjectStore, StoreError};
use crate::services::Services;

/// Rows reach the run in batches of at most this many: with a file streamed in rather
/// than read whole, what bounds the memory a night of any size needs.
pub const BATCH_ROWS: usize = 1_000;

/// One CDR file read from the inbox (or the rows of one LiveVox API read).
#[derive(Debug, Clone, Serialize)]
pub struct FileRead {
    pub key: String,
    pub rows: u64,
    pub bad_rows: u64,
    pub test_rows: u64,
    /// Rows at its start that earlier runs of the day recorded: read past, not counted.
    #[serde(skip_serializing_if = "is_zero")]
    pub recorded_before: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FileRead {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            rows: 0,
            bad_rows: 0,
            test_rows: 0,
            recorded_before: 0,
        }
    }
}

/// A source that could not be read at all this time; the rest went on.
#[derive(Debug, Clone, Serialize)]
pub struct SourceProblem {
    pub source: String,
    pub message: String,
    /// Where a rejected file was moved, with a `.error.txt` note beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    /// The file itself is at fault (its header): it is moved to `rejected/`. Otherwise it
    /// stays in the inbox and the next run reads it again.
    #[serde(skip)]
    pub reject: bool,
}

impl SourceProblem {
    /// A problem of this time (a service that did not answer): nothing is moved.
    pub fn for_now(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            message: message.into(),
            moved_to: None,
            reject: false,
        }
    }
}

/// A bad row's ledger record. It belongs to no readable day, so it is filed under the
/// day being run, keyed by where it was read: reading the same file again finds it known.
pub fn bad_row(
    candidate: &Candidate,
    day: Date,
    err: &RowError,
    now: jiff::Timestamp,
) -> CallRecord {
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
        return CallId(id.into());
    }
    let hex = crate::values::sha256_hex(file.as_bytes());
    CallId(format!("row:sha256-{hex}:{line}").into())
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Where a file goes once every row of it is in the ledger.
pub fn processed_key(candidate: &Candidate, key: &str, today: Date) -> String {
    format!("processed/{}/{today}/{}", candidate.slug, file_name(key))
}

/// Why a file was not read to its end.
#[derive(Debug)]
pub enum FileFailure {
    /// Its header is unusable: the file is at fault.
    Unusable(String),
    /// The bucket failed while it streamed in: the rows read so far are good, the rest
    /// come with the next run.
    Unread(String),
}

impl FileFailure {
    pub fn into_problem(self, key: &str) -> SourceProblem {
        match self {
            Self::Unusable(message) => SourceProblem {
                reject: true,
                ..SourceProblem::for_now(key, message)
            },
            Self::Unread(why) => SourceProblem::for_now(
                key,
                format!(
                    "could not be read to its end this time ({why}); the rows read are recorded, and the next run reads the file again"
                ),
            ),
        }
    }
}

/// One inbox file being read: it streams in from the bucket on a blocking thread, and its
/// rows arrive here in batches of at most [`BATCH_ROWS`], at most two batches ahead of the
/// run. Dropping it stops the reading.
#[derive(Debug)]
pub struct FileRows {
    batches: mpsc::Receiver<Vec<RowOutcome>>,
    reading: tokio::task::JoinHandle<Result<(), FileFailure>>,
}

impl FileRows {
    /// The next batch of rows, in file order; `None` once the file is done (or failed:
    /// see [`FileRows::finish`]).
    pub async fn next(&mut self) -> Option<Vec<RowOutcome>> {
        self.batches.recv().await
    }

    /// Whether the whole file was read.
    pub async fn finish(self) -> Result<(), FileFailure> {
        drop(self.batches);
        self.reading
            .await
            .map_err(|e| FileFailure::Unread(format!("the reader stopped: {e}")))?
    }
}

/// Start reading the inbox file `key` of `candidate`, after its first `skip` rows (rows an
/// earlier run recorded: they are read past, never handed on).
pub async fn open_file(
    objects: &dyn ObjectStore,
    candidate: &Candidate,
    key: &str,
    skip: u64,
) -> Result<FileRows, StoreError> {
    let columns: CdrColumns = candidate
        .doc()
        .source
        .cdr
        .as_ref()
        .map(|c| c.columns.clone())
        .unwrap_or_default();
    let reader = CdrReader::new(
        key,
        &columns,
        candidate.accounts.clone(),
        candidate.zone.clone(),
    );
    // The bucket's failure is kept aside: the CSV reader sees only that reading stopped.
    let (input, failed) = crate::ports::blocking_reader(objects.open(key).await?);
    let (tx, batches) = mpsc::channel(1);
    let reading = tokio::task::spawn_blocking(move || {
        let rows = reader
            .rows(input)
            .map_err(|e| match crate::ports::read_failure(&failed) {
                Some(why) => FileFailure::Unread(why),
                None => FileFailure::Unusable(e.to_string()),
            })?;
        let stopped = || FileFailure::Unread("the run stopped reading".into());
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut cut_off = None;
        for outcome in rows.skip(usize::try_from(skip).unwrap_or(usize::MAX)) {
            // The row the failure cut off is not a bad row: the next run reads it whole.
            cut_off = crate::ports::read_failure(&failed);
            if cut_off.is_some() {
                break;
            }
            batch.push(outcome);
            if batch.len() == BATCH_ROWS {
                // Handed on before the next batch's room is made: a reader waiting for
                // the run holds one batch, not a full one and an empty one as large.
                tx.blocking_send(std::mem::take(&mut batch))
                    .map_err(|_| stopped())?;
                batch.reserve_exact(BATCH_ROWS);
            }
        }
        cut_off = cut_off.or_else(|| crate::ports::read_failure(&failed));
        // The rows read whole before a failure are good: they are recorded now.
        if !batch.is_empty() {
            tx.blocking_send(batch).map_err(|_| stopped())?;
        }
        cut_off.map_or(Ok(()), |why| Err(FileFailure::Unread(why)))
    });
    Ok(FileRows { batches, reading })
}

/// Move read files out of the inbox (to `processed/`), and files that are at fault (to
/// `rejected/`, with a note saying why). Call only after every row of the read files is
/// in the ledger: a run that dies before reads them again, harmlessly.
pub async fn set_aside(
    objects: &dyn ObjectStore,
    candidate: &Candidate,
    today: Date,
    files: &[FileRead],
    problems: &mut [SourceProblem],
) -> Result<(), StoreError> {
    // Only the candidate's own inbox is ever moved from: nothing a run read can take
    // another candidate's files (or the exports, which are receipts) with it.
    for file in files {
        if !candidate.owns_inbox_object(&file.key) {
            tracing::error!(key = %file.key, "not in the candidate's inbox; left where it is");
            continue;
        }
        objects
            .rename(&file.key, &processed_key(candidate, &file.key, today))
            .await?;
    }
    for problem in problems.iter_mut().filter(|p| p.reject) {
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

/// The key a LiveVox API read is reported under.
pub const LIVEVOX_SOURCE: &str = "livevox:callDetail";

/// One local day of calls read from the LiveVox API a page at a time (a page holds at
/// most [`BATCH_ROWS`] calls), each page's rows normalised and handed on as one batch:
/// nothing of the day is held but the page being read.
#[derive(Debug)]
pub struct LiveVoxRows {
    client: LiveVoxClient,
    cursor: CallDetailCursor,
    accounts: AccountPattern,
    zone: jiff::tz::TimeZone,
    date: Date,
    /// Rows read so far: a row's position in the answer, for its errors.
    read: u64,
    memo: Memo,
}

impl LiveVoxRows {
    /// Start reading `date` for `candidate` at `from` (where an earlier read stopped, or
    /// the start); `None` when it has no LiveVox source.
    pub async fn open(
        svc: &Services,
        candidate: &Candidate,
        date: Date,
        from: CallDetailPosition,
    ) -> Result<Option<Self>, ConnectError> {
        let Some(lv) = candidate.doc().source.livevox.as_ref() else {
            return Ok(None);
        };
        let client = svc
            .connectors
            .livevox(svc.secrets.as_ref(), candidate)
            .await?;
        let (start, end) = day_window(candidate, date);
        let mut cursor = client.call_details_from(start, end, &lv.services);
        cursor.resume(from);
        Ok(Some(Self {
            client,
            cursor,
            accounts: candidate.accounts.clone(),
            zone: candidate.zone.clone(),
            date,
            read: 0,
            memo: Memo::default(),
        }))
    }

    /// How far the read has come (taken up there by [`LiveVoxRows::open`]).
    pub fn position(&self) -> CallDetailPosition {
        self.cursor.position()
    }

    /// The next page's rows, in the API's order; `None` once the day is read.
    pub async fn next(&mut self) -> Result<Option<Vec<RowOutcome>>, ConnectError> {
        let Some(page) = self.client.next_calls(&mut self.cursor).await? else {
            return Ok(None);
        };
        let mut rows = Vec::with_capacity(page.len());
        for detail in &page {
            let outcome = normalise_in(
                detail.to_raw(self.read),
                &self.accounts,
                &self.zone,
                &mut self.memo,
            );
            self.read += 1;
            // The API may return a neighbouring day's call at the window's edge; it
            // belongs to its own day, and that day's run reads it.
            if !matches!(&outcome, RowOutcome::Call(c) if c.local_date != self.date) {
                rows.push(outcome);
            }
        }
        Ok(Some(rows))
    }
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
