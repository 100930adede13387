//! The CSV export: calls that are kept but not posted, in the original app's nine columns
//! plus the call id, the result key and why the call went to the CSV.

use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::ledger::CallRecord;
use crate::values::CandidateSlug;
use crate::van::DatabaseMode;

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

/// `exports/<candidate>/<YYYY-MM-DD>/<candidate>-<MM-DD-YYYY>-<n>.csv`, `n` counting the
/// day's exports from 1 (a late file or a retry adds a file; none is overwritten).
pub fn object_key(candidate: &CandidateSlug, date: Date, n: usize) -> String {
    format!(
        "exports/{candidate}/{date}/{candidate}-{}-{n}.csv",
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

/// The CSV bytes for `records` (calls with a stored call), in the given order; row `i`
/// of the slice is data row `i + 1` of the file.
pub fn write(records: &[CallRecord], zone: &TimeZone, id_type: &str) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail; a record that somehow could not be written would be
    // missing from a file whose row numbers are receipts, so fail loudly instead.
    out.write_record(HEADER).expect("write to memory");
    for record in records {
        let Some(call) = &record.call else { continue };
        let local = call.started_at.to_zoned_datetime(zone.clone());
        let phone = call.phone.as_ref().map_or("", |p| p.digits());
        out.write_record([
            call.van_id.to_string().as_str(),
            id_type,
            &call.first_name,
            &call.last_name,
            phone,
            &local.strftime("%m/%d/%Y").to_string(),
            &local.strftime("%H:%M:%S").to_string(),
            record.display_name.as_deref().unwrap_or(&call.result_text),
            &call.agent,
            &call.call_id.0,
            call.result.as_str(),
            record.csv_reason.map_or("", |r| r.as_str()),
        ])
        .expect("write to memory");
    }
    out.into_inner().expect("flush to memory")
}
