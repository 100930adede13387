//! Reading a Call Detail Report (CDR) CSV exported from the LiveVox portal, row by row,
//! with columns found by header name.

use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::normalise::{
    FieldNames, Memo, RawCall, RawTime, RowError, RowOrigin, RowOutcome, normalise_in,
};
use crate::call::{AccountPattern, CdrFile, CdrPosition};
use crate::mapping::FieldError;

/// Which header names hold which field. LiveVox report formats are customisable, so
/// every name can be changed; the defaults are the standard export's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CdrColumns {
    pub call_id: String,
    pub account: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub start_time: String,
    pub finish_time: Option<String>,
    pub agent: Option<String>,
    pub result: String,
    pub campaign: Option<String>,
    pub service: Option<String>,
    /// How times are written (strftime), in the candidate's local wall-clock time.
    pub time_format: String,
}

impl Default for CdrColumns {
    fn default() -> Self {
        Self {
            call_id: "id".into(),
            account: "account number".into(),
            first_name: "first name".into(),
            last_name: "last name".into(),
            phone: "phone dialed".into(),
            start_time: "start time".into(),
            finish_time: Some("finish time".into()),
            agent: Some("caller login".into()),
            result: "result".into(),
            campaign: Some("campaign id".into()),
            service: None,
            time_format: DEFAULT_TIME_FORMAT.into(),
        }
    }
}

impl CdrColumns {
    /// Every problem with the map, by field path under `at` (`source.cdr.columns`): an
    /// empty header name, two fields naming one header (the reader could not tell them
    /// apart), a `time_format` that is not one a time can be read with.
    pub fn check(&self, at: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut named: Vec<(&str, &str)> = Vec::new();
        for (field, name) in self.fields() {
            let Some(name) = name else { continue };
            let path = format!("{at}.{field}");
            if name.trim().is_empty() {
                let fix = if Self::REQUIRED.contains(&field) {
                    "name the CDR header that holds it"
                } else {
                    "name the CDR header that holds it, or set null to read no such column"
                };
                errors.push(FieldError::new(path, format!("is empty: {fix}")));
            } else if let Some((other, _)) = named
                .iter()
                .find(|(_, n)| n.trim().eq_ignore_ascii_case(name.trim()))
            {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "names the header \"{}\", as {at}.{other} does: each field needs a column of its own",
                        name.trim()
                    ),
                ));
            } else {
                named.push((field, name));
            }
        }
        if let Err(message) = check_time_format(&self.time_format) {
            errors.push(FieldError::new(format!("{at}.time_format"), message));
        }
        errors
    }

    const REQUIRED: &[&str] = &[
        "call_id",
        "account",
        "first_name",
        "last_name",
        "phone",
        "start_time",
        "result",
    ];

    /// Each field's name in the document and the header it names (`None`: not read).
    fn fields(&self) -> [(&'static str, Option<&str>); 11] {
        [
            ("call_id", Some(self.call_id.as_str())),
            ("account", Some(self.account.as_str())),
            ("first_name", Some(self.first_name.as_str())),
            ("last_name", Some(self.last_name.as_str())),
            ("phone", Some(self.phone.as_str())),
            ("start_time", Some(self.start_time.as_str())),
            ("finish_time", self.finish_time.as_deref()),
            ("agent", self.agent.as_deref()),
            ("result", Some(self.result.as_str())),
            ("campaign", self.campaign.as_deref()),
            ("service", self.service.as_deref()),
        ]
    }
}

/// A `time_format` must write a known time and read it back as the same date and time:
/// that refuses unknown directives (`%Q`) and formats that lose the date or the hour.
fn check_time_format(format: &str) -> Result<(), String> {
    let sample = jiff::civil::date(2026, 11, 21).at(18, 4, 5, 0);
    let example = "use strftime directives such as %d-%m-%Y %H:%M:%S (the LiveVox export's)";
    if format.trim().is_empty() {
        return Err(format!("is empty: {example}"));
    }
    let written = jiff::fmt::strtime::format(format, sample)
        .map_err(|e| format!("{format:?} is not a time format ({e}): {example}"))?;
    let read = jiff::fmt::strtime::parse(format, &written)
        .and_then(|tm| tm.to_datetime())
        .map_err(|e| {
            format!(
                "{format:?} cannot be read back as a date and time ({e}): it needs the day, month, year, hour and minute; {example}"
            )
        })?;
    if read.date() != sample.date() || (read.hour(), read.minute()) != (18, 4) {
        return Err(format!(
            "{format:?} does not keep the whole date and time (it wrote {written:?} and read it back as {read}): it needs the day, month, year, hour and minute; {example}"
        ));
    }
    Ok(())
}

/// A CDR file that cannot be read at all. Bad rows are not this: they come out of
/// [`CdrReader::rows`] as [`RowOutcome::Bad`].
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    #[error("{file}: the file is empty — expected a header line naming the columns")]
    NoHeader { file: String },
    /// `found` is the header's names; it is shown only when the first line is a header at
    /// all (it names one of the expected columns): otherwise it is a call, whose names and
    /// phone number must not travel into error notes.
    #[error(
        "{file}: the header has no column {} (found: {}) — export the report with these columns or set the candidate's CDR column map",
        quoted(.missing), quoted(.found)
    )]
    MissingColumns {
        file: String,
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error(
        "{file}: the first line names none of the expected columns {} — the file has probably no header line (export the report with its header), or its columns are named differently (set the candidate's source.cdr.columns)",
        quoted(.expected)
    )]
    NotAHeader { file: String, expected: Vec<String> },
    #[error(
        "{file}: the header has the column {column:?} {count} times, and the candidate reads it — keep one column of that name (or rename the others) and load the file again"
    )]
    DuplicateColumn {
        file: String,
        column: String,
        count: usize,
    },
    #[error("{file}: could not read the header: {source}")]
    Unreadable {
        file: String,
        #[source]
        source: csv::Error,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How LiveVox's CDR export writes times: `21-11-2026 18:02:11`.
pub const DEFAULT_TIME_FORMAT: &str = "%d-%m-%Y %H:%M:%S";

/// Reads CDR files for one candidate: its column map, account pattern and time zone.
#[derive(Debug, Clone)]
pub struct CdrReader {
    file_name: String,
    columns: CdrColumns,
    accounts: AccountPattern,
    zone: TimeZone,
}

/// Where each field sits in this particular file.
#[derive(Debug)]
struct Layout {
    call_id: usize,
    account: usize,
    first_name: usize,
    last_name: usize,
    phone: usize,
    start: usize,
    end: Option<usize>,
    agent: Option<usize>,
    result: usize,
    campaign: Option<usize>,
    service: Option<usize>,
    headers: Vec<String>,
    fields: Arc<FieldNames>,
}

impl CdrReader {
    pub fn new(
        file_name: &str,
        columns: &CdrColumns,
        account: AccountPattern,
        zone: TimeZone,
    ) -> Self {
        Self {
            file_name: file_name.to_owned(),
            columns: columns.clone(),
            accounts: account,
            zone,
        }
    }

    /// Streams rows from any reader without loading the file into memory. Fails only
    /// when the header itself is unusable; every later problem is a bad row, and reading
    /// goes on after it.
    pub fn rows<R: Read>(
        &self,
        input: R,
    ) -> Result<impl Iterator<Item = RowOutcome> + use<R>, CdrError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(LfLines::new(input));
        let headers = csv
            .byte_headers()
            .map_err(|source| CdrError::Unreadable {
                file: self.file_name.clone(),
                source,
            })?
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_owned()
            })
            .collect::<Vec<_>>();
        if headers.iter().all(String::is_empty) {
            return Err(CdrError::NoHeader {
                file: self.file_name.clone(),
            });
        }
        let layout = self.layout(headers)?;
        Ok(Rows {
            position: Arc::new(CdrFile {
                key: self.file_name.clone(),
                result_column: layout.fields.result.clone(),
            }),
            csv,
            record: csv::StringRecord::new(),
            layout,
            file: self.file_name.clone(),
            format: Arc::from(self.columns.time_format.as_str()),
            accounts: self.accounts.clone(),
            zone: self.zone.clone(),
            memo: Memo::default(),
            done: false,
        })
    }

    fn layout(&self, headers: Vec<String>) -> Result<Layout, CdrError> {
        let find = |name: &str| {
            let name = name.trim();
            headers.iter().position(|h| h.eq_ignore_ascii_case(name))
        };
        let c = &self.columns;
        let used: Vec<&str> = c.fields().iter().filter_map(|(_, n)| *n).collect();
        if !used.iter().any(|name| find(name).is_some()) {
            return Err(CdrError::NotAHeader {
                file: self.file_name.clone(),
                expected: [
                    &c.call_id,
                    &c.account,
                    &c.first_name,
                    &c.last_name,
                    &c.phone,
                    &c.start_time,
                    &c.result,
                ]
                .iter()
                .map(|name| name.trim().to_owned())
                .collect(),
            });
        }
        for name in &used {
            let count = headers
                .iter()
                .filter(|h| h.eq_ignore_ascii_case(name.trim()))
                .count();
            if count > 1 {
                return Err(CdrError::DuplicateColumn {
                    file: self.file_name.clone(),
                    column: name.trim().to_owned(),
                    count,
                });
            }
        }
        let mut missing = Vec::new();
        let mut required = |name: &String| {
            find(name).unwrap_or_else(|| {
                missing.push(name.clone());
                0
            })
        };
        let call_id = required(&c.call_id);
        let account = required(&c.account);
        let first_name = required(&c.first_name);
        let last_name = required(&c.last_name);
        let phone = required(&c.phone);
        let start = required(&c.start_time);
        let result = required(&c.result);
        // An optional column that is configured but absent is left out, not an error:
        // the standard export has no service column, customised ones may drop others.
        let optional = |name: &Option<String>| name.as_deref().and_then(find);
        let end = optional(&c.finish_time);
        let agent = optional(&c.agent);
        let campaign = optional(&c.campaign);
        let service = optional(&c.service);
        if !missing.is_empty() {
            return Err(CdrError::MissingColumns {
                file: self.file_name.clone(),
                missing,
                found: headers,
            });
        }
        let fields = Arc::new(FieldNames {
            call_id: headers[call_id].clone(),
            account: headers[account].clone(),
            phone: headers[phone].clone(),
            start: headers[start].clone(),
            result: headers[result].clone(),
        });
        Ok(Layout {
            call_id,
            account,
            first_name,
            last_name,
            phone,
            start,
            end,
            agent,
            result,
            campaign,
            service,
            headers,
            fields,
        })
    }
}

/// `inner` with every line break read as LF: CRLF, and a lone CR (old Mac files, or CRLF
/// converted twice into CR CR LF) as the editors that show such files count it. The csv
/// crate counts lines by LF only, and stamps a record that follows a CRLF with the line
/// before that LF is counted: every line number of a file saved by a spreadsheet (or
/// exported by LiveVox) would be one too low. A CR inside a quoted field becomes LF too,
/// which no field of a call minds.
struct LfLines<R> {
    inner: R,
    /// The last byte read was a CR, so an LF next is the rest of its line break.
    after_cr: bool,
}

impl<R: Read> LfLines<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            after_cr: false,
        }
    }
}

impl<R: Read> Read for LfLines<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.inner.read(out)?;
            if n == 0 {
                return Ok(0);
            }
            // Most files have no CR at all: what was read stands (but for an LF that
            // ends a CRLF split across two reads).
            let skip = usize::from(self.after_cr && out[0] == b'\n');
            let Some(first_cr) = memchr::memchr(b'\r', &out[skip..n]) else {
                self.after_cr = false;
                if skip == 0 {
                    return Ok(n);
                }
                out.copy_within(1..n, 0);
                if n > 1 {
                    return Ok(n - 1);
                }
                continue;
            };
            // Never longer than what was read, so it is rewritten in place.
            out.copy_within(skip..skip + first_cr, 0);
            let mut written = first_cr;
            self.after_cr = false;
            for i in skip + first_cr..n {
                let b = out[i];
                match b {
                    b'\r' => {
                        out[written] = b'\n';
                        written += 1;
                        self.after_cr = true;
                    }
                    b'\n' if self.after_cr => self.after_cr = false,
                    _ => {
                        out[written] = b;
                        written += 1;
                        self.after_cr = false;
                    }
                }
            }
            if written > 0 {
                return Ok(written);
            }
        }
    }
}

/// Row `record` (at `line`) as raw input, borrowing its text.
fn raw<'a>(
    layout: &'a Layout,
    file: &'a str,
    position: &Arc<CdrFile>,
    format: &'a str,
    record: &'a csv::StringRecord,
    line: u64,
) -> RawCall<'a> {
    let text = |i: usize| Cow::Borrowed(record.get(i).unwrap_or(""));
    let optional = |i: Option<usize>| i.map(text);
    let time = |i: Option<usize>| {
        i.map(text)
            .filter(|t| !t.trim().is_empty())
            .map(|text| RawTime::Local { text, format })
    };
    RawCall {
        origin: RowOrigin {
            file: Cow::Borrowed(file),
            line,
        },
        position: Some(CdrPosition {
            file: Arc::clone(position),
            line,
        }),
        fields: &layout.fields,
        call_id: text(layout.call_id),
        account: text(layout.account),
        first_name: text(layout.first_name),
        last_name: text(layout.last_name),
        phone: text(layout.phone),
        start: time(Some(layout.start)),
        end: time(layout.end),
        agent: optional(layout.agent).unwrap_or_default(),
        result: text(layout.result),
        service: optional(layout.service),
        campaign: optional(layout.campaign),
    }
}

struct Rows<R> {
    csv: csv::Reader<LfLines<R>>,
    /// Every row is read into this one record: a row costs no allocation of its own.
    record: csv::StringRecord,
    layout: Layout,
    file: String,
    /// Shared by the position of every call read.
    position: Arc<CdrFile>,
    format: Arc<str>,
    accounts: AccountPattern,
    zone: TimeZone,
    memo: Memo,
    done: bool,
}

impl<R: Read> Iterator for Rows<R> {
    type Item = RowOutcome;

    fn next(&mut self) -> Option<RowOutcome> {
        if self.done {
            return None;
        }
        match self.csv.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, csv::Position::line);
                let raw = raw(
                    &self.layout,
                    &self.file,
                    &self.position,
                    &self.format,
                    &self.record,
                    line,
                );
                Some(normalise_in(
                    raw,
                    &self.accounts,
                    &self.zone,
                    &mut self.memo,
                ))
            }
            Err(err) => match err.kind() {
                csv::ErrorKind::Utf8 { pos, err: utf8 } => {
                    let line = pos.as_ref().map_or(0, csv::Position::line);
                    Some(RowOutcome::Bad(self.not_utf8(line, utf8.field())))
                }
                _ => Some(RowOutcome::Bad(self.malformed(err))),
            },
        }
    }
}

impl<R: Read> Rows<R> {
    /// A field that is not UTF-8 (Excel's "CSV" is Windows-1252): named, never shown.
    fn not_utf8(&self, line: u64, field: usize) -> RowError {
        let column = self
            .layout
            .headers
            .get(field)
            .map_or("(unknown)", String::as_str);
        let origin = RowOrigin {
            file: Cow::Borrowed(&self.file),
            line,
        };
        RowError::new(
            &origin,
            column,
            "",
            "is not valid UTF-8 text — export the report as UTF-8 CSV (from Excel: Save As \"CSV UTF-8 (Comma delimited)\")",
        )
    }

    /// A record the CSV parser refused. Its text is never echoed: it holds names and
    /// phone numbers.
    fn malformed(&mut self, err: csv::Error) -> RowError {
        let line = err
            .position()
            .map_or_else(|| self.csv.position().line(), csv::Position::line);
        let origin = RowOrigin {
            file: Cow::Borrowed(&self.file),
            line,
        };
        match err.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                // An unclosed quote joins the lines after it into this record until the
                // next quote; say so, or those calls would vanish without a word.
                let last = self.csv.position().line().saturating_sub(1);
                let reason = if last > line {
                    format!(
                        "has {len} fields but the header has {expected_len}, and runs on to line {last} — an unclosed quote probably joined lines {line}–{last}, and none of them were read as calls; fix the quote and load the file again"
                    )
                } else {
                    format!(
                        "has {len} fields but the header has {expected_len} — look for an unquoted comma, a stray quote or a missing field on this line"
                    )
                };
                RowError::new(&origin, "(whole row)", "", reason)
            }
            _ => {
                // An I/O error ends the stream: the reader cannot tell where the next
                // record starts.
                self.done = true;
                RowError::new(
                    &origin,
                    "(whole row)",
                    "",
                    format!(
                        "reading stopped here: {err} — the rest of the file was not read; upload it again"
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::call::Call;

    const HEADER: &str = "id,account number,first name,last name,phone dialed,connect time,start time,finish time,caller login,result,campaign id\n";

    fn reader(zone: &str) -> CdrReader {
        CdrReader::new(
            "calls-2026-11-21.csv",
            &CdrColumns::default(),
            AccountPattern::default(),
            TimeZone::get(zone).unwrap(),
        )
    }

    fn read(r: &CdrReader, text: &str) -> (Vec<Call>, Vec<RowError>, usize) {
        let (mut calls, mut bad, mut tests) = (Vec::new(), Vec::new(), 0);
        for row in r.rows(text.as_bytes()).unwrap() {
            match row {
                RowOutcome::Call(c) => calls.push(c),
                RowOutcome::Bad(e) => bad.push(e),
                RowOutcome::TestAccount => tests += 1,
            }
        }
        (calls, bad, tests)
    }

    fn row(id: &str, account: &str, start: &str, agent: &str, result: &str) -> String {
        format!(
            "{id},{account},Ada,Lovelace,(212) 555-0143,{start},{start},21-11-2026 18:05:00,{agent},{result},88\n"
        )
    }

    #[test]
    fn bad_rows_are_reported_and_every_good_row_still_comes_through() {
        let text = [
            HEADER.to_owned(),
            row(
                "1001",
                "ny14-van-18372073",
                "21-11-2026 18:04:05",
                "jdoe",
                "Agent Cust 1 (167)",
            ), // line 2
            row(
                "1002",
                "ny14-van-",
                "21-11-2026 18:04:05",
                "jdoe",
                "No Answer",
            ), // 3
            row("1003", "ny14-van-101", "31-11-2026 18:04:05", "", "Busy"), // 4
            row("1004", "ny14-van-102", "21-11-2026 18:10:00", "", " "),    // 5
            "1005,ny14-van-103,Ada,Lovelace\n".to_owned(),                  // 6
            row(
                "1006",
                "TEST123456",
                "21-11-2026 18:04:05",
                "jdoe",
                "No Answer",
            ), // 7
            row(
                "1007",
                "ny14-van-104",
                "21-11-2026 18:20:00",
                "",
                "Answering Machine (Hung Up)",
            ), // 8
        ]
        .concat();
        let (calls, bad, tests) = read(&reader("America/New_York"), &text);

        let ids: Vec<_> = calls.iter().map(|c| c.call_id.0.as_str()).collect();
        assert_eq!(ids, ["1001", "1007"]);
        assert_eq!(calls[1].agent(), "", "system results have no agent");
        assert_eq!(calls[1].result.as_str(), "answering machine hung up");
        assert_eq!(tests, 1);

        let found: Vec<_> = bad
            .iter()
            .map(|e| (e.line, e.column.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (3, "account number", "ny14-van-"),
                (4, "start time", "31-11-2026 18:04:05"),
                (5, "result", ""),
                (6, "(whole row)", ""),
            ]
        );
        for e in &bad {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("calls-2026-11-21.csv line {}, column ", e.line)),
                "{text}"
            );
            assert!(
                !text.contains("Ada") && !text.contains("Lovelace") && !text.contains("555"),
                "{text}"
            );
        }
        assert!(
            bad[3].reason.contains("has 4 fields but the header has 11"),
            "{}",
            bad[3]
        );
    }

    #[test]
    fn an_unclosed_quote_names_the_lines_it_swallowed() {
        let text = [
            HEADER.to_owned(),
            row("1001", "ny14-van-5", "21-11-2026 18:04:05", "", "Busy"), // line 2
            "1002,ny14-van-6,\"Ada,L,2125550143,,21-11-2026 18:04:05,,,Busy,88\n".to_owned(), // 3
            row("1003", "ny14-van-7", "21-11-2026 18:04:05", "", "Busy"), // 4
            row("1004", "ny14-van-8", "21-11-2026 18:04:05", "", "Busy"), // 5
        ]
        .concat();
        let (calls, bad, _) = read(&reader("America/New_York"), &text);
        assert_eq!(calls.len(), 1);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].line, 3);
        assert!(bad[0].reason.contains("joined lines 3–5"), "{}", bad[0]);
    }

    #[test]
    fn invalid_utf8_spoils_only_its_own_row() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(
            b"1001,ny14-van-5,Ad\xff,L,2125550143,x,21-11-2026 18:04:05,,jdoe,Busy,88\n",
        );
        bytes.extend_from_slice(
            row("1002", "ny14-van-6", "21-11-2026 18:04:05", "", "Busy").as_bytes(),
        );
        let rows: Vec<_> = reader("America/New_York")
            .rows(&bytes[..])
            .unwrap()
            .collect();
        assert!(
            matches!(&rows[0], RowOutcome::Bad(e) if e.line == 2 && e.column == "first name" && e.value.is_empty()),
            "{rows:?}"
        );
        assert!(
            matches!(&rows[1], RowOutcome::Call(c) if c.call_id.0 == "1002"),
            "{rows:?}"
        );
    }

    #[test]
    fn a_header_in_windows_1252_still_reads_every_row() {
        // An extra column Excel saved as "Notes é" in Windows-1252: the rows are UTF-8.
        let mut bytes = HEADER.trim_end().as_bytes().to_vec();
        bytes.extend_from_slice(b",Notes \xe9\n");
        for id in ["1001", "1002"] {
            let mut line = row(id, "ny14-van-6", "21-11-2026 18:04:05", "", "Busy");
            line.insert(line.len() - 1, ',');
            bytes.extend_from_slice(line.as_bytes());
        }
        let rows: Vec<_> = reader("America/New_York")
            .rows(&bytes[..])
            .unwrap()
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows.iter().all(|r| matches!(r, RowOutcome::Call(_))),
            "{rows:?}"
        );
    }

    #[test]
    fn a_quoted_field_spanning_lines_keeps_later_line_numbers_physical() {
        let text = format!(
            "{HEADER}1001,ny14-van-5,\"Ada\nMarie\",L,2125550143,,21-11-2026 18:04:05,,,Busy,88\n{}",
            row("1002", "bad", "21-11-2026 18:04:05", "", "Busy")
        );
        let (calls, bad, _) = read(&reader("America/New_York"), &text);
        assert_eq!(calls.len(), 1);
        assert_eq!(bad[0].line, 4);
    }

    /// The same file with LF, CRLF, and CRLF behind a UTF-8 BOM (what Excel writes): a
    /// quoted first name spanning two lines, then a bad row on physical line 5.
    #[test]
    fn bad_rows_point_at_their_physical_line_in_lf_crlf_and_bom_files() {
        let lf = [
            HEADER.to_owned(),
            row("1001", "ny14-van-5", "21-11-2026 18:04:05", "", "Busy"), // line 2
            "1002,ny14-van-6,\"Ada\nMarie\",L,2125550143,,21-11-2026 18:04:05,,,Busy,88\n"
                .to_owned(), // 3–4
            row("1003", "ny14-van-", "21-11-2026 18:04:05", "", "Busy"),  // 5
            row("1004", "ny14-van-8", "31-11-2026 18:04:05", "", "Busy"), // 6
            row("1005", "ny14-van-9", "21-11-2026 18:04:05", "", "Busy"), // 7
        ]
        .concat();
        let crlf = lf.replace('\n', "\r\n");
        let bom = format!("\u{feff}{crlf}");
        for (name, text) in [("LF", &lf), ("CRLF", &crlf), ("BOM + CRLF", &bom)] {
            let (calls, bad, _) = read(&reader("America/New_York"), text);
            let ids: Vec<_> = calls.iter().map(|c| c.call_id.0.as_str()).collect();
            assert_eq!(ids, ["1001", "1002", "1005"], "{name}");
            let lines: Vec<_> = calls
                .iter()
                .map(|c| c.origin.as_ref().map(|o| o.line))
                .collect();
            assert_eq!(lines, [Some(2), Some(3), Some(7)], "{name}");
            let found: Vec<_> = bad.iter().map(|e| (e.line, e.column.as_str())).collect();
            assert_eq!(found, [(5, "account number"), (6, "start time")], "{name}");
            assert_eq!(
                calls[2].campaign.as_deref(),
                Some("88"),
                "{name}: no CR left"
            );
        }
    }

    #[test]
    fn crlf_survives_any_chunking_of_the_input() {
        let text = format!(
            "{HEADER}{}",
            row("1", "ny14-van-5", "21-11-2026 18:04:05", "", "Busy")
        )
        .replace('\n', "\r\n")
            + "x\ry\r\n\r\r\n\r";
        let want = text.replace("\r\n", "\n").replace('\r', "\n");
        for chunk in [1, 2, 3, 7, 64] {
            let mut out = Vec::new();
            let mut lf = LfLines::new(Chunked(text.as_bytes(), chunk));
            let mut buf = vec![0; chunk];
            loop {
                let n = lf.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8(out).unwrap(), want, "chunks of {chunk}");
        }
    }

    /// Hands out at most `.1` bytes a read.
    struct Chunked<'a>(&'a [u8], usize);

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_file_without_a_header_says_which_columns_are_missing_and_never_echoes_the_row() {
        let text = row("1001", "ny14-van-5", "21-11-2026 18:04:05", "jdoe", "Busy")
            + &row("1002", "ny14-van-6", "21-11-2026 18:04:05", "jdoe", "Busy");
        let Err(err) = reader("America/New_York").rows(text.as_bytes()) else {
            panic!("a file without a header is refused")
        };
        assert!(matches!(err, CdrError::NotAHeader { .. }), "{err:?}");
        let message = err.to_string();
        for want in [
            r#""id""#,
            r#""account number""#,
            r#""result""#,
            "no header line",
        ] {
            assert!(message.contains(want), "missing {want}: {message}");
        }
        for private in ["Ada", "Lovelace", "555", "0143", "ny14-van-5", "1001"] {
            assert!(!message.contains(private), "{private} leaked: {message}");
        }
    }

    #[test]
    fn a_header_that_repeats_a_column_the_candidate_reads_rejects_the_file() {
        let header =
            "id,account number,first name,last name,phone dialed,start time,Result,result\n";
        let Err(err) = reader("America/New_York").rows(header.as_bytes()) else {
            panic!("a repeated column is refused")
        };
        let message = err.to_string();
        assert!(
            message.contains(r#"the column "result" 2 times"#),
            "{message}"
        );
        // A repeated column nobody reads does not matter.
        let header =
            "id,account number,first name,last name,phone dialed,start time,result,notes,notes\n";
        assert!(reader("America/New_York").rows(header.as_bytes()).is_ok());
    }

    #[test]
    fn the_column_map_refuses_empty_and_shared_headers_and_unknown_time_directives() {
        assert!(CdrColumns::default().check("source.cdr.columns").is_empty());
        let columns = CdrColumns {
            call_id: " ".into(),
            agent: Some(String::new()),
            phone: "Account Number".into(),
            time_format: "%d-%m-%Y %H:%M:%Q".into(),
            ..CdrColumns::default()
        };
        let errors = columns.check("source.cdr.columns");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "source.cdr.columns.call_id",
                "source.cdr.columns.phone",
                "source.cdr.columns.agent",
                "source.cdr.columns.time_format",
            ],
            "{errors:#?}"
        );
        assert!(
            errors[1].message.contains("source.cdr.columns.account"),
            "{}",
            errors[1]
        );
        assert!(errors[2].message.contains("null"), "{}", errors[2]);
        assert!(errors[3].message.contains("%Q"), "{}", errors[3]);
        for (format, ok) in [
            ("%Y-%m-%d %H:%M", true),
            ("%m/%d/%Y %I:%M:%S %p", true),
            ("%d-%m-%Y", false),
            ("%H:%M:%S", false),
            ("", false),
            ("%", false),
        ] {
            let columns = CdrColumns {
                time_format: format.into(),
                ..CdrColumns::default()
            };
            assert_eq!(
                columns.check("c").is_empty(),
                ok,
                "{format:?}: {:?}",
                columns.check("c")
            );
        }
    }

    #[test]
    fn a_custom_column_map_finds_reordered_and_renamed_columns() {
        let columns = CdrColumns {
            call_id: "Call ID".into(),
            account: "Account".into(),
            phone: "Phone".into(),
            start_time: "Started".into(),
            finish_time: None,
            agent: Some("Agent".into()),
            result: "Disposition".into(),
            service: Some("Service".into()),
            campaign: None,
            time_format: "%Y-%m-%d %H:%M".into(),
            ..CdrColumns::default()
        };
        let r = CdrReader::new(
            "custom.csv",
            &columns,
            AccountPattern::default(),
            TimeZone::get("America/Chicago").unwrap(),
        );
        let text = "\u{feff} disposition ,SERVICE,started,last name,first name,call id,phone,account,agent\n\
                    Busy,GOTV,2026-11-21 09:30,L,A,77,2125550143,MYV-NY-42,\n";
        let (calls, bad, _) = read(&r, text);
        assert!(bad.is_empty(), "{bad:?}");
        let c = &calls[0];
        assert_eq!((c.call_id.0.as_str(), c.van_id.unwrap().get()), ("77", 42));
        assert_eq!(c.result.as_str(), "busy");
        assert_eq!(c.service.as_deref(), Some("GOTV"));
        assert_eq!(c.started_at.to_string(), "2026-11-21T15:30:00Z");
        assert_eq!(c.ended_at, None);
    }

    #[test]
    fn a_header_missing_required_columns_names_them_and_lists_what_was_found() {
        let Err(err) = reader("America/New_York")
            .rows("call,account number,first name,when\n1,2,3,4\n".as_bytes())
        else {
            panic!("expected a header error")
        };
        let text = err.to_string();
        for want in [
            r#""id""#,
            r#""last name""#,
            r#""phone dialed""#,
            r#""start time""#,
            r#""result""#,
        ] {
            assert!(text.contains(want), "missing {want}: {text}");
        }
        assert!(
            text.contains(r#"(found: "call", "account number", "first name", "when")"#),
            "{text}"
        );
        let Err(CdrError::NoHeader { .. }) = reader("America/New_York").rows(&b""[..]) else {
            panic!("an empty file has no header")
        };
    }

    #[test]
    fn the_local_date_is_the_day_in_the_candidates_zone_not_in_utc() {
        // 23:59 and 00:01 Pacific are 07:59 and 08:01 UTC on the same UTC day.
        let text = [
            HEADER.to_owned(),
            row("1", "1", "20-11-2026 23:59:00", "", "Busy"),
            row("2", "2", "21-11-2026 00:01:00", "", "Busy"),
        ]
        .concat();
        let (calls, bad, _) = read(&reader("America/Los_Angeles"), &text);
        assert!(bad.is_empty(), "{bad:?}");
        let utc = TimeZone::UTC;
        assert_eq!(
            utc.to_datetime(calls[0].started_at).date(),
            utc.to_datetime(calls[1].started_at).date()
        );
        assert_eq!(calls[0].local_date.to_string(), "2026-11-20");
        assert_eq!(calls[1].local_date.to_string(), "2026-11-21");
    }

    #[test]
    fn times_in_a_dst_fold_or_gap_resolve_instead_of_failing() {
        let text = [
            HEADER.to_owned(),
            row("1", "1", "01-11-2026 01:30:00", "", "Busy"), // fall back: 01:30 happens twice
            row("2", "2", "08-03-2026 02:30:00", "", "Busy"), // spring forward: 02:30 never happens
        ]
        .concat();
        let (calls, bad, _) = read(&reader("America/New_York"), &text);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            calls[0].started_at.to_string(),
            "2026-11-01T05:30:00Z",
            "the earlier 01:30 (EDT)"
        );
        assert_eq!(
            calls[1].started_at.to_string(),
            "2026-03-08T07:30:00Z",
            "03:30 EDT"
        );
        assert_eq!(calls[0].local_date.to_string(), "2026-11-01");
    }

    #[test]
    fn rows_are_read_as_they_are_consumed_not_all_at_once() {
        let r = reader("America/New_York");
        let line = row("1", "ny14-van-9", "21-11-2026 18:04:05", "jdoe", "Busy");
        let read = Rc::new(Cell::new(0));
        let body = HEADER.as_bytes().chain(StreamOf {
            line: line.as_bytes(),
            left: 20_000,
            at: 0,
            read: Rc::clone(&read),
        });
        let mut rows = r.rows(body).unwrap();
        for _ in 0..100 {
            assert!(matches!(rows.next(), Some(RowOutcome::Call(_))));
        }
        let file_size = 20_000 * line.len();
        // 100 rows plus the parser's buffer: a small fraction of the file.
        assert!(
            read.get() < file_size / 20,
            "read {} of {file_size} bytes for 100 rows",
            read.get()
        );
        assert_eq!(rows.count(), 19_900);
        assert_eq!(read.get(), file_size);
    }

    /// The same line many times over, counting the bytes handed out.
    struct StreamOf<'a> {
        line: &'a [u8],
        left: usize,
        at: usize,
        read: Rc<Cell<usize>>,
    }

    impl Read for StreamOf<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Ok(0);
            }
            let n = (self.line.len() - self.at).min(buf.len());
            buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
            self.at += n;
            self.read.set(self.read.get() + n);
            if self.at == self.line.len() {
                self.at = 0;
                self.left -= 1;
            }
            Ok(n)
        }
    }

    #[test]
    fn the_default_column_map_round_trips_and_rejects_unknown_keys() {
        let json = serde_json::to_string(&CdrColumns::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<CdrColumns>(&json).unwrap(),
            CdrColumns::default()
        );
        let partial: CdrColumns = serde_json::from_str(r#"{"result":"Disposition"}"#).unwrap();
        assert_eq!(partial.call_id, "id");
        assert!(serde_json::from_str::<CdrColumns>(r#"{"reslt":"x"}"#).is_err());
    }
}
