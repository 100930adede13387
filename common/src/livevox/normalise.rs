//! Turning one raw dialer row — from a CDR file or the API — into a [`Call`], or into a
//! precise error for that row alone.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::call::{Account, AccountError, AccountPattern, Call, CallId, CallText, CdrPosition};
use crate::values::{PhoneNumber, ResultKey, trim};

/// Where a raw row came from, for error messages: a file and its physical line, or (API
/// rows) the endpoint and the row's position in the result, counted from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOrigin<'a> {
    pub file: Cow<'a, str>,
    pub line: u64,
}

/// What the source calls each field, so a row error names the column the user can find
/// (`account number` in a CDR file, `account` in an API response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNames {
    pub call_id: String,
    pub account: String,
    pub phone: String,
    pub start: String,
    pub result: String,
}

/// A time as the source wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawTime<'a> {
    /// Local wall-clock text (CDR files) and the strftime format it is written in; it is
    /// resolved in the candidate's zone.
    Local { text: Cow<'a, str>, format: &'a str },
    /// An instant (API epoch milliseconds).
    Instant(Timestamp),
}

/// One row as read, before anything is checked: borrowed from the record it was read
/// from where it can be (a CDR file's), owned where it cannot (the API's). Names and the
/// phone number are kept out of `Debug`.
#[derive(Clone)]
pub struct RawCall<'a> {
    pub origin: RowOrigin<'a>,
    /// Where the call is kept as coming from (a CDR file's line), handed on to the call.
    pub position: Option<CdrPosition>,
    pub fields: &'a FieldNames,
    pub call_id: Cow<'a, str>,
    pub account: Cow<'a, str>,
    pub first_name: Cow<'a, str>,
    pub last_name: Cow<'a, str>,
    pub phone: Cow<'a, str>,
    pub start: Option<RawTime<'a>>,
    pub end: Option<RawTime<'a>>,
    pub agent: Cow<'a, str>,
    pub result: Cow<'a, str>,
    pub service: Option<Cow<'a, str>>,
    pub campaign: Option<Cow<'a, str>>,
}

impl fmt::Debug for RawCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawCall")
            .field("origin", &self.origin)
            .field("position", &self.position)
            .field("call_id", &self.call_id)
            .field("account", &self.account)
            .field("first_name", &"<redacted>")
            .field("last_name", &"<redacted>")
            .field("phone", &mask_digits(&self.phone))
            .field("start", &self.start)
            .field("end", &self.end)
            .field("agent", &self.agent)
            .field("result", &self.result)
            .field("service", &self.service)
            .field("campaign", &self.campaign)
            .finish()
    }
}

/// What became of one row.
// A row's outcome lives only until the next row is read; boxing the call would cost an
// allocation per row for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    Call(Call),
    /// The account matched the test-account pattern: skipped on purpose, not an error.
    TestAccount,
    Bad(RowError),
}

/// A row that could not become a call: where it is, which value is wrong, why, and what
/// to do about it. `value` never holds a name, and a phone number only masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}, column {column:?} = {value:?}: {reason}")]
pub struct RowError {
    pub file: String,
    pub line: u64,
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl RowError {
    /// `value` is cut to [`SHOWN_VALUE_CHARS`]: a runaway cell must not fill the error.
    pub fn new(origin: &RowOrigin, column: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            file: origin.file.clone().into_owned(),
            line: origin.line,
            column: column.to_owned(),
            value: shown(value),
            reason: reason.into(),
        }
    }
}

/// How much of a bad value an error shows.
pub const SHOWN_VALUE_CHARS: usize = 80;

fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// The longest call id kept, in bytes. The ledger keys a call by its id (a DynamoDB sort
/// key, at most 1,024 bytes); dialer ids are a dozen digits, so anything near this is a
/// column mix-up, and refusing the row beats a ledger write that fails on every run.
pub const MAX_CALL_ID_BYTES: usize = 256;

/// Calls before this year are misread dates (a wrong `time_format`, a two-digit year, an
/// epoch of 0), not calls.
pub const EARLIEST_CALL_YEAR: i16 = 2000;

/// Checks one raw row against the candidate's account pattern and time zone.
///
/// An unusable phone number becomes `phone: None` rather than an error: the call still
/// happened and its result still counts.
pub fn normalise(raw: RawCall<'_>, accounts: &AccountPattern, zone: &TimeZone) -> RowOutcome {
    normalise_in(raw, accounts, zone, &mut Memo::default())
}

/// What reading one source (a file, an API answer) remembers from row to row: its rows
/// repeat a few result texts, services and campaigns and run through the night hour by
/// hour, so a result's key and an hour's offset are worked out once, not per row, and the
/// repeated texts are shared by the calls that hold them.
#[derive(Debug, Default)]
pub struct Memo {
    /// The last local hour read and its offset, when the zone keeps one offset all of it.
    hour: Option<(DateTime, jiff::tz::Offset)>,
    /// That hour as LiveVox's format writes it (`dd-mm-yyyy HH`), when it was read in that
    /// format: a value that starts with it is read from its minutes and seconds alone.
    hour_text: Option<HourText>,
    /// Result texts seen, with their keys.
    results: Vec<(Arc<str>, ResultKey)>,
    services: Vec<Arc<str>>,
    campaigns: Vec<Arc<str>>,
}

/// A local hour of one offset, as [`DEFAULT_TIME_FORMAT`] writes its start.
#[derive(Debug)]
struct HourText {
    text: [u8; 13],
    /// The Unix second the hour starts at.
    start: i64,
    date: Date,
}

/// How many distinct values of each kind a [`Memo`] keeps: a dialer has a few dozen
/// results, and a night a few services and campaigns. Past that, each row's value is its
/// own.
const REMEMBERED: usize = 128;

/// `text` as a shared string: the one `seen` holds, or a new one it keeps.
fn shared(seen: &mut Vec<Arc<str>>, text: &str) -> Arc<str> {
    if let Some(known) = seen.iter().find(|s| ***s == *text) {
        return Arc::clone(known);
    }
    let new: Arc<str> = Arc::from(text);
    if seen.len() < REMEMBERED {
        seen.push(Arc::clone(&new));
    }
    new
}

impl Memo {
    /// The text and key of result text `text`.
    fn result(&mut self, text: &str) -> Result<(Arc<str>, ResultKey), crate::values::ValueError> {
        if let Some((t, key)) = self.results.iter().find(|(t, _)| **t == *text) {
            return Ok((Arc::clone(t), key.clone()));
        }
        let key = ResultKey::normalise(text)?;
        let text: Arc<str> = Arc::from(text);
        if self.results.len() < REMEMBERED {
            self.results.push((Arc::clone(&text), key.clone()));
        }
        Ok((text, key))
    }

    /// The instant of local time `civil` in `zone` ("compatible" in a gap or fold), and the
    /// local time itself when it is unambiguous.
    fn instant(
        &mut self,
        zone: &TimeZone,
        civil: DateTime,
    ) -> Result<(Timestamp, Option<DateTime>), jiff::Error> {
        let hour = civil.date().at(civil.hour(), 0, 0, 0);
        if let Some((h, offset)) = self.hour
            && h == hour
        {
            return Ok((offset.to_timestamp(civil)?, Some(civil)));
        }
        let at = zone.to_ambiguous_timestamp(civil);
        let exact = matches!(at.offset(), AmbiguousOffset::Unambiguous { .. });
        let ts = at.compatible()?;
        self.hour_text = None;
        let last = hour.date().at(hour.hour(), 59, 59, 999_999_999);
        if let (
            AmbiguousOffset::Unambiguous { offset: first },
            AmbiguousOffset::Unambiguous { offset: end },
        ) = (
            zone.to_ambiguous_timestamp(hour).offset(),
            zone.to_ambiguous_timestamp(last).offset(),
        ) && first == end
        {
            self.hour = Some((hour, first));
        }
        Ok((ts, exact.then_some(civil)))
    }

    /// The instant and local date of `text` in LiveVox's format when it lies in the hour
    /// read last (the rows of a night run through it hour by hour), without parsing the
    /// date or asking the zone; `None` when it does not, and the general path reads it.
    fn in_last_hour(&self, text: &[u8]) -> Option<(Timestamp, Date)> {
        let hour = self.hour_text.as_ref()?;
        let [m1, m2, b':', s1, s2] = *text.strip_prefix(&hour.text)?.strip_prefix(b":")? else {
            return None;
        };
        let two = |a: u8, b: u8| {
            (a.is_ascii_digit() && b.is_ascii_digit())
                .then(|| i64::from((a - b'0') * 10 + (b - b'0')))
        };
        let (minute, second) = (two(m1, m2)?, two(s1, s2)?);
        if minute > 59 || second > 59 {
            return None;
        }
        let at = Timestamp::from_second(hour.start + minute * 60 + second).ok()?;
        Some((at, hour.date))
    }

    /// Remembers `text` (read in LiveVox's format as `civil`) as the hour read last, when
    /// the zone keeps one offset all of it.
    fn note_hour_text(&mut self, text: &[u8], civil: DateTime) {
        let Some((hour, offset)) = self.hour else {
            return;
        };
        let (Some(prefix), Ok(start)) = (
            text.get(..13).and_then(|p| <[u8; 13]>::try_from(p).ok()),
            offset.to_timestamp(hour),
        ) else {
            return;
        };
        if hour.date() == civil.date() && hour.hour() == civil.hour() {
            self.hour_text = Some(HourText {
                text: prefix,
                start: start.as_second(),
                date: hour.date(),
            });
        }
    }
}

/// [`normalise`], remembering across the rows of one source in `memo`.
pub fn normalise_in(
    raw: RawCall<'_>,
    accounts: &AccountPattern,
    zone: &TimeZone,
    memo: &mut Memo,
) -> RowOutcome {
    match build(raw, accounts, zone, memo) {
        Ok(Some(call)) => RowOutcome::Call(call),
        Ok(None) => RowOutcome::TestAccount,
        Err(err) => RowOutcome::Bad(err),
    }
}

fn build(
    raw: RawCall<'_>,
    accounts: &AccountPattern,
    zone: &TimeZone,
    memo: &mut Memo,
) -> Result<Option<Call>, RowError> {
    let names = raw.fields;
    let bad = |column: &str, value: &str, reason: String| {
        let value = if column == names.phone {
            mask_digits(value)
        } else {
            value.to_owned()
        };
        RowError::new(&raw.origin, column, &value, reason)
    };

    let account = trim(&raw.account);
    let (van_id, database_mode) = match accounts.parse(account) {
        // No account number: a person the list carries without a VAN id.
        _ if account.is_empty() => (None, None),
        Ok(Account::Voter(id, mode)) => (Some(id), mode),
        Ok(Account::Test) => return Ok(None),
        Err(AccountError::NoMatch { pattern, .. }) => {
            return Err(bad(
                &names.account,
                account,
                format!(
                    "does not match the account pattern {pattern} — fix the account or the candidate's account_pattern"
                ),
            ));
        }
        // Not `source`'s text: it repeats the value, which `bad` may have had to mask.
        Err(AccountError::BadVanId { .. }) => {
            return Err(bad(
                &names.account,
                account,
                "the VAN id in it is not a positive whole number — fix the account or the candidate's account_pattern".into(),
            ));
        }
        Err(AccountError::UnknownSystem { system, .. }) => {
            return Err(bad(
                &names.account,
                account,
                format!(
                    "names system {system:?}, which is not a VAN database — use van (VoterFile) or myc (MyCampaign), or fix the candidate's account_pattern"
                ),
            ));
        }
        Err(AccountError::OtherDistrict {
            district, expected, ..
        }) => {
            return Err(bad(
                &names.account,
                account,
                format!(
                    "belongs to district {district:?}, not this candidate's {expected:?} — the row is another campaign's; drop it from this candidate's files, or fix the candidate's district"
                ),
            ));
        }
    };

    let call_id = trim(&raw.call_id);
    if call_id.is_empty() {
        return Err(bad(
            &names.call_id,
            "",
            "the call id is missing — every row needs the dialer's call id; check the report's column map".into(),
        ));
    }
    if call_id.len() > MAX_CALL_ID_BYTES {
        return Err(bad(
            &names.call_id,
            call_id,
            format!(
                "is {} bytes long; a call id may have at most {MAX_CALL_ID_BYTES} — check that the column map's call_id names the dialer's call id column",
                call_id.len()
            ),
        ));
    }

    let (started_at, local_date) = match &raw.start {
        None => {
            return Err(bad(
                &names.start,
                "",
                "the start time is missing — every row needs the time the call started".into(),
            ));
        }
        Some(time) => resolve(time, zone, memo)
            .map_err(|(value, reason)| bad(&names.start, &value, reason))?,
    };
    // A finish time is informational; one that does not parse is dropped rather than
    // costing the call.
    let ended_at = raw
        .end
        .as_ref()
        .and_then(|time| resolve(time, zone, memo).ok())
        .map(|(at, _)| at);

    let result_text = trim(&raw.result);
    let (result_text, result) = memo.result(result_text).map_err(|_| {
        bad(
            &names.result,
            result_text,
            "the result is empty — every call needs the dialer's result; check the report's column map".into(),
        )
    })?;

    Ok(Some(Call {
        call_id: CallId(call_id.into()),
        text: CallText::new(
            account,
            trim(&raw.first_name),
            trim(&raw.last_name),
            trim(&raw.agent),
        ),
        van_id,
        database_mode,
        phone: PhoneNumber::parse(&raw.phone).ok(),
        started_at,
        ended_at,
        result,
        result_text,
        service: non_empty(raw.service.as_deref()).map(|s| shared(&mut memo.services, s)),
        campaign: non_empty(raw.campaign.as_deref()).map(|c| shared(&mut memo.campaigns, c)),
        local_date,
        origin: raw.position,
    }))
}

/// The instant a raw time stands for; on failure, the value to report and why.
/// Local times in a DST gap or fold resolve the "compatible" way (later offset in a gap,
/// earlier in a fold), so a real call is never refused for the hour it was made in.
fn resolve(
    time: &RawTime,
    zone: &TimeZone,
    memo: &mut Memo,
) -> Result<(Timestamp, Date), (String, String)> {
    let (at, local) = read_time(time, zone, memo)?;
    let local = local.unwrap_or_else(|| zone.to_datetime(at).date());
    if local.year() < EARLIEST_CALL_YEAR {
        let value = match time {
            RawTime::Local { text, .. } => text.trim().to_owned(),
            RawTime::Instant(ts) => ts.to_string(),
        };
        let hint = match time {
            RawTime::Local { format, .. } => format!(
                "check the value, or the column map's time_format {format:?} (a two-digit year is %y, a four-digit one %Y)"
            ),
            RawTime::Instant(_) => "the dialer sent no real time for this call".to_owned(),
        };
        return Err((
            value,
            format!("is before {EARLIEST_CALL_YEAR}, which cannot be a call's date — {hint}"),
        ));
    }
    Ok((at, local))
}

/// The instant, and the local date when the local time is unambiguous.
fn read_time(
    time: &RawTime,
    zone: &TimeZone,
    memo: &mut Memo,
) -> Result<(Timestamp, Option<Date>), (String, String)> {
    match time {
        RawTime::Instant(ts) => Ok((*ts, None)),
        RawTime::Local { text, format } => {
            let text = trim(text);
            let livevox = *format == crate::livevox::cdr::DEFAULT_TIME_FORMAT;
            if livevox && let Some((at, date)) = memo.in_last_hour(text.as_bytes()) {
                return Ok((at, Some(date)));
            }
            let shaped = livevox.then(|| day_month_year(text)).flatten();
            let civil = match shaped {
                Some(civil) => civil,
                None => jiff::fmt::strtime::parse(&**format, text)
                    .and_then(|tm| tm.to_datetime())
                    .map_err(|e| {
                        (
                            text.to_owned(),
                            format!(
                                "is not a time in the format {format:?} ({e}) — fix the value or the column map's time_format"
                            ),
                        )
                    })?,
            };
            let (at, local) = memo.instant(zone, civil).map_err(|e| {
                (
                    text.to_owned(),
                    format!(
                        "cannot be placed in the time zone {} ({e})",
                        zone.iana_name().unwrap_or("given")
                    ),
                )
            })?;
            if shaped.is_some() {
                memo.note_hour_text(text.as_bytes(), civil);
            }
            Ok((at, local.map(|l| l.date())))
        }
    }
}

/// A value in LiveVox's own format, `%d-%m-%Y %H:%M:%S`, read without the general parser
/// (it reads the format again for every value); `None` for a value that is not exactly
/// that shape, which the general parser then reads (or explains).
fn day_month_year(text: &str) -> Option<DateTime> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[2] != b'-'
        || b[5] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i16> {
        b[range].iter().try_fold(0i16, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i16::from(d - b'0'))
        })
    };
    let convert = |v: i16| i8::try_from(v).ok();
    DateTime::new(
        num(6..10)?,
        convert(num(3..5)?)?,
        convert(num(0..2)?)?,
        convert(num(11..13)?)?,
        convert(num(14..16)?)?,
        convert(num(17..19)?)?,
        0,
    )
    .ok()
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(trim).filter(|v| !v.is_empty())
}

/// Hides every digit but the last four, for values that may be phone numbers.
pub(crate) fn mask_digits(raw: &str) -> String {
    let total = raw.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    raw.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 4 <= total { '*' } else { c }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fields() -> &'static FieldNames {
        static FIELDS: std::sync::LazyLock<FieldNames> = std::sync::LazyLock::new(|| FieldNames {
            call_id: "id".into(),
            account: "account number".into(),
            phone: "phone dialed".into(),
            start: "start time".into(),
            result: "result".into(),
        });
        &FIELDS
    }

    fn raw(start: &str) -> RawCall<'_> {
        RawCall {
            origin: RowOrigin {
                file: "calls.csv".into(),
                line: 7,
            },
            position: None,
            fields: fields(),
            call_id: "101312525040".into(),
            account: "ny14-van-18372073".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            phone: "212-555-0143".into(),
            start: Some(RawTime::Local {
                text: start.into(),
                format: "%d-%m-%Y %H:%M:%S",
            }),
            end: None,
            agent: "".into(),
            result: "Agent Cust 1 (167)".into(),
            service: Some(" ".into()),
            campaign: Some("88".into()),
        }
    }

    fn zone() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    #[test]
    fn a_good_row_becomes_a_call() {
        let RowOutcome::Call(call) = normalise(
            raw("21-11-2026 18:04:05"),
            &AccountPattern::default(),
            &zone(),
        ) else {
            panic!("expected a call")
        };
        assert_eq!(call.van_id.unwrap().get(), 18372073);
        assert_eq!(call.result.as_str(), "agent cust 1");
        assert_eq!(&*call.result_text, "Agent Cust 1 (167)");
        assert_eq!(call.started_at.to_string(), "2026-11-21T23:04:05Z");
        assert_eq!(call.phone.unwrap().digits(), "2125550143");
        assert_eq!(call.service, None, "blank service is no service");
        assert_eq!(call.campaign.as_deref(), Some("88"));
    }

    /// What a row with start time `text` becomes: its instant and local date, or the
    /// error's value and reason.
    fn read_start(text: &str, zone: &TimeZone, memo: &mut Memo) -> Result<(String, Date), String> {
        match normalise_in(raw(text), &AccountPattern::default(), zone, memo) {
            RowOutcome::Call(call) => Ok((call.started_at.to_string(), call.local_date)),
            RowOutcome::Bad(err) => Err(format!("{:?}: {}", err.value, err.reason)),
            RowOutcome::TestAccount => panic!("not a test account"),
        }
    }

    #[test]
    fn rows_read_in_turn_are_placed_as_each_read_alone_through_dst_changes() {
        // Both of 2026's changes in New York and Lord Howe's half-hour one, at steps that
        // land every minute and second of an hour sooner or later; a value in the hour
        // just read but odd after it (a leap second, a letter, cut short) must be read as
        // it would be alone.
        let cases = [
            ("America/New_York", jiff::civil::date(2026, 3, 7)),
            ("America/New_York", jiff::civil::date(2026, 10, 31)),
            ("Australia/Lord_Howe", jiff::civil::date(2026, 4, 4)),
        ];
        for (name, day) in cases {
            let zone = TimeZone::get(name).unwrap();
            let mut memo = Memo::default();
            let mut at = day.at(0, 0, 0, 0);
            let end = day.at(0, 0, 0, 0) + jiff::Span::new().hours(48);
            let mut step = 0;
            while at < end {
                let text = at.strftime("%d-%m-%Y %H:%M:%S").to_string();
                let in_turn = read_start(&text, &zone, &mut memo);
                assert_eq!(
                    in_turn,
                    read_start(&text, &zone, &mut Memo::default()),
                    "{name} {text}"
                );
                assert!(in_turn.is_ok(), "{name} {text}: {in_turn:?}");
                let odd_ones = if step % 4 == 0 {
                    &[":60:00", ":00:60", ":5x:00", ":00", ":00:000"][..]
                } else {
                    &[]
                };
                for odd in odd_ones {
                    let text = format!("{}{odd}", &text[..13]);
                    let in_turn = read_start(&text, &zone, &mut memo);
                    assert_eq!(
                        in_turn,
                        read_start(&text, &zone, &mut Memo::default()),
                        "{name} {text}"
                    );
                    if odd.contains('x') || odd.len() == 3 {
                        assert!(in_turn.is_err(), "{name} {text}");
                    }
                }
                at += jiff::Span::new().minutes(11).seconds(7);
                step += 1;
            }
        }
    }

    #[test]
    fn an_unusable_phone_is_no_phone_not_an_error() {
        let mut r = raw("21-11-2026 18:04:05");
        r.phone = "555-01".into();
        let RowOutcome::Call(call) = normalise(r, &AccountPattern::default(), &zone()) else {
            panic!("expected a call")
        };
        assert_eq!(call.phone, None);
    }

    #[test]
    fn an_unreadable_finish_time_does_not_cost_the_call() {
        let mut r = raw("21-11-2026 18:04:05");
        r.end = Some(RawTime::Local {
            text: "soon".into(),
            format: "%d-%m-%Y %H:%M:%S",
        });
        let RowOutcome::Call(call) = normalise(r, &AccountPattern::default(), &zone()) else {
            panic!("expected a call")
        };
        assert_eq!(call.ended_at, None);
    }

    #[test]
    fn a_missing_call_id_names_the_column() {
        let mut r = raw("21-11-2026 18:04:05");
        r.call_id = " ".into();
        let RowOutcome::Bad(err) = normalise(r, &AccountPattern::default(), &zone()) else {
            panic!("expected an error")
        };
        assert_eq!(
            (err.file.as_str(), err.line, err.column.as_str()),
            ("calls.csv", 7, "id")
        );
    }

    #[test]
    fn a_bad_account_says_what_where_and_how_to_fix() {
        let mut r = raw("21-11-2026 18:04:05");
        r.account = "ny14-van-".into();
        let RowOutcome::Bad(err) = normalise(r, &AccountPattern::default(), &zone()) else {
            panic!("expected an error")
        };
        let text = err.to_string();
        assert!(
            text.starts_with(r#"calls.csv line 7, column "account number" = "ny14-van-": does not match the account pattern"#),
            "{text}"
        );
        assert!(
            text.contains("fix the account or the candidate's account_pattern"),
            "{text}"
        );
        assert!(
            !text.contains("Ada") && !text.contains("Lovelace"),
            "{text}"
        );
    }

    #[test]
    fn errors_on_the_phone_column_are_masked() {
        // A report whose account number is the phone number dialed (column map pointing
        // `account` at the phone column) must not leak the number in the error.
        let names = FieldNames {
            account: "phone dialed".into(),
            ..fields().clone()
        };
        let mut r = raw("21-11-2026 18:04:05");
        r.fields = &names;
        r.account = "212-555-0143".into();
        let RowOutcome::Bad(err) = normalise(r, &AccountPattern::default(), &zone()) else {
            panic!("expected an error")
        };
        assert_eq!(err.column, "phone dialed");
        assert_eq!(err.value, "***-***-0143");
        assert!(!err.to_string().contains("555"), "{err}");
    }

    #[test]
    fn a_date_before_2000_is_a_bad_row_naming_value_and_column() {
        for start in [
            "21-11-1999 18:04:05",
            "01-01-0001 00:00:00",
            "21-11-0026 18:04:05",
        ] {
            let RowOutcome::Bad(err) = normalise(raw(start), &AccountPattern::default(), &zone())
            else {
                panic!("{start} should be refused")
            };
            assert_eq!(
                (err.column.as_str(), err.value.as_str()),
                ("start time", start)
            );
            assert!(err.reason.contains("before 2000"), "{err}");
            assert!(err.reason.contains("time_format"), "{err}");
        }
        let mut api = raw("x");
        api.start = Some(RawTime::Instant(Timestamp::UNIX_EPOCH));
        let RowOutcome::Bad(err) = normalise(api, &AccountPattern::default(), &zone()) else {
            panic!("an epoch-0 start should be refused")
        };
        assert_eq!(err.value, "1970-01-01T00:00:00Z");
        assert!(matches!(
            normalise(
                raw("01-01-2000 00:00:00"),
                &AccountPattern::default(),
                &zone()
            ),
            RowOutcome::Call(_)
        ));
    }

    #[test]
    fn a_call_id_longer_than_the_ledger_key_allows_is_a_bad_row() {
        let mut r = raw("21-11-2026 18:04:05");
        r.call_id = "7".repeat(MAX_CALL_ID_BYTES + 1).into();
        let RowOutcome::Bad(err) = normalise(r, &AccountPattern::default(), &zone()) else {
            panic!("expected an error")
        };
        assert_eq!(err.column, "id");
        assert!(err.reason.contains("at most 256"), "{err}");
        assert!(
            err.value.chars().count() <= SHOWN_VALUE_CHARS + 1,
            "the error shows a bounded part of the value: {}",
            err.value.len()
        );
        let mut r = raw("21-11-2026 18:04:05");
        r.call_id = "7".repeat(MAX_CALL_ID_BYTES).into();
        assert!(matches!(
            normalise(r, &AccountPattern::default(), &zone()),
            RowOutcome::Call(_)
        ));
    }

    #[test]
    fn raw_call_debug_hides_names_and_phone() {
        let text = format!("{:?}", raw("21-11-2026 18:04:05"));
        assert!(
            !text.contains("Ada") && !text.contains("Lovelace"),
            "{text}"
        );
        assert!(!text.contains("555"), "{text}");
        assert!(text.contains("0143"), "{text}");
    }
}
