//! The CSV export: calls that are kept but not posted, in the original app's nine columns
//! plus the call id, the result key and why the call went to the CSV.
//!
//! Files are UTF-8 with a byte-order mark, so Excel on Windows shows `José`, not `JosÃ©`.
//! Text comes from outside (names, agent logins, display names), so a cell that a
//! spreadsheet would run as a formula — one starting with `=`, `+`, `-`, `@`, a tab or a
//! carriage return — is written with a leading `'`, as OWASP advises against CSV
//! injection; a cell already starting with `'` gets one more, so every cell reads back to
//! exactly one value.

use std::borrow::Cow;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::ledger::CallRecord;
use crate::values::CandidateSlug;
use crate::values::DatabaseMode;

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
    records: &[CallRecord],
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
            call.van_id.to_string().as_str(),
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
