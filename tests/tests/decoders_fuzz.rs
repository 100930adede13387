//! Seeded, bounded fuzzing of the decoders that read what people upload: the CDR reader
//! (default columns), the Airtable result-table import, and the candidate document
//! (JSON decode, then `Compiled::from_doc`, the candidate and its destinations). Realistic samples are mutated the ways
//! files get damaged — flipped bytes, truncation, CRLF and BOMs, Windows-1252 bytes, huge
//! numbers, formula cells, very long cells — and every input must come back as values or
//! error values, never a panic. The seeds are fixed, so a failure reproduces exactly.

use std::panic::{AssertUnwindSafe, catch_unwind};

use callsync::call::AccountPattern;
use callsync::candidate::CandidateDoc;
use callsync::livevox::{CdrColumns, CdrReader, RowOutcome};
use callsync::mapping::ResultMapping;
use callsync::mapping::airtable::import_results;
use fastrand::Rng;
use jiff::tz::TimeZone;

const ITERATIONS: u64 = 1_500;

const CDR: &str = "id,account number,first name,last name,phone dialed,connect time,start time,finish time,caller login,result,campaign id\n\
101312525040,ny14-van-18372073,Ada,Lovelace,(212) 555-0143,21-11-2026 18:04:00,21-11-2026 18:04:05,21-11-2026 18:05:00,jdoe,Agent Cust 1 (167),88\n\
101312525041,ny14-van-18372074,\"Núñez, Ana\",\"O\"\"Brien\",2125550144,,21-11-2026 18:10:00,,,Answering Machine (Hung Up),88\n\
101312525042,TEST123,T,T,2125550145,,21-11-2026 18:11:00,,jdoe,No Answer,88\n\
101312525043,MYV-NY-42,\"Marie\nCurie\",C,+1 212 555 0146,,21-11-2026 23:59:59,22-11-2026 00:01:00,asmith,AGENT - CUST 12,\n\
101312525044,ny14-van-,B,C,555,,31-11-2026 18:04:05,,,Busy,88\n";

const AIRTABLE: &str = "\u{feff}Full On Screen Result,Display Name,Success,Canvass Result Code,Tags,Sync to System,Include in CSV,Priority,Question 1,Used?\n\
Agent Cust 1,Strong support,checked,,\"4411, 4412\",checked,,10,\"2301,9120\",checked\n\
Wrong Number,Wrong number,,20,,checked,,,,\n\
No Answer,No answer,,17,,,checked,-3,,\n\
Answering Machine (Hung Up),Machine,,,,,,,,\n\
Réponse,\"Réponse, oui\",x,,,,,,,\n";

const CANDIDATE: &str = r#"{
  "slug": "ny14-smith", "display_name": "Smith for Congress", "time_zone": "America/New_York",
  "sync_hour": 2,
  "source": {"cdr": {"inbox_prefix": "inbox/ny14-smith/",
                     "columns": {"result": "Disposition", "time_format": "%Y-%m-%d %H:%M"}},
             "livevox": {"secret_name": "callsync/lv", "services": [1094]}},
  "account_pattern": "^(?:(?P<district>[a-z0-9]+)-van-)?(?P<van_id>\\d+)$",
  "van": {"secret_name": "callsync/ny14-smith/van", "database_mode": "voter_file"},
  "strategy": {"budget": {"daily_free_requests": 1000}},
  "results": [
    {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
     "survey_responses": [{"question_id": 2301, "response_id": 9120}], "activist_codes": [4411],
     "sync": true, "priority": 10},
    {"result": "Busy", "display_name": "Busy", "success": false, "result_code_id": 18, "csv": true}
  ],
  "extensions": ["phone_ids"],
  "notify": {"webhook_url": "https://hooks.example.org/x"}
}"#;

/// Text that breaks naive readers.
const NASTY: &[&str] = &[
    "99999999999999999999999999999",
    "-9223372036854775809",
    "1e308",
    "=HYPERLINK(\"http://evil.example\",\"x\")",
    "+1-212-555-0143",
    "@SUM(A1:A9)",
    "-2+3",
    "\"",
    "\"\"",
    ",",
    "\r",
    "\n",
    "\r\n",
    "\u{feff}",
    "\u{0}",
    "%",
    "%Q",
    "%-",
    "%99999999999d",
    "%.f",
    "%:::z",
    "(",
    ")",
    "()",
    "(167)",
    "Re\u{301}ponse",
    "\u{202e}",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "31-02-2026 25:61:61",
    "00-00-0000 00:00:00",
    "01-01-1999 00:00:00",
    "21-11-99999 18:04:05",
];

/// Bytes Excel's Windows-1252 "CSV" writes for common accented letters, and other
/// invalid UTF-8.
const WINDOWS_1252: &[&[u8]] = &[
    b"\xe9", b"\xfa", b"\xf1", b"\x93", b"\x80", b"\xff", b"\xc3",
];

fn mutate(rng: &mut Rng, sample: &[u8]) -> Vec<u8> {
    let mut bytes = sample.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=bytes.len());
        match rng.u8(0..12) {
            0 if !bytes.is_empty() => {
                let i = rng.usize(0..bytes.len());
                bytes[i] ^= 1 << rng.u8(0..8);
            }
            1 => bytes.truncate(at),
            2 => {
                let text = String::from_utf8_lossy(&bytes).replace('\n', "\r\n");
                bytes = text.into_bytes();
            }
            3 => bytes.splice(0..0, *b"\xEF\xBB\xBF").for_each(drop),
            4 => {
                let b = WINDOWS_1252[rng.usize(0..WINDOWS_1252.len())];
                bytes.splice(at..at, b.iter().copied()).for_each(drop);
            }
            5 | 6 => {
                let s = NASTY[rng.usize(0..NASTY.len())];
                bytes.splice(at..at, s.bytes()).for_each(drop);
            }
            7 => {
                let long = "x".repeat(rng.usize(1_000..6_000));
                bytes.splice(at..at, long.bytes()).for_each(drop);
            }
            8 if !bytes.is_empty() => {
                let end = rng.usize(at.min(bytes.len() - 1)..bytes.len());
                bytes.drain(at.min(end)..end);
            }
            9 => {
                // Repeat a line (a duplicated header or row).
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = text.split('\n').collect();
                let i = rng.usize(0..lines.len());
                let mut out = lines.clone();
                out.insert(i, lines[i]);
                bytes = out.join("\n").into_bytes();
            }
            10 if !bytes.is_empty() => {
                let i = rng.usize(0..bytes.len());
                bytes[i] = [b',', b'"', b'\n', b'\r', b'(', b')', b'%', b'-', b'0', b'9']
                    [rng.usize(0..10)];
            }
            _ => {
                let digits: String = (0..rng.usize(15..40)).map(|_| rng.digit(10)).collect();
                bytes.splice(at..at, digits.bytes()).for_each(drop);
            }
        }
    }
    bytes
}

/// Runs `check` on every mutation of `sample`; a panic fails with the seed and input.
fn fuzz(name: &str, seed: u64, sample: &str, check: impl Fn(&[u8])) {
    let mut rng = Rng::with_seed(seed);
    for i in 0..ITERATIONS {
        let input = mutate(&mut rng, sample.as_bytes());
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            let shown: String = String::from_utf8_lossy(&input)
                .chars()
                .take(2_000)
                .collect();
            panic!("{name}: seed {seed}, iteration {i} panicked on input:\n{shown:?}");
        }
    }
}

#[test]
fn the_cdr_reader_turns_any_damaged_file_into_calls_or_errors() {
    let reader = CdrReader::new(
        "inbox/ny14-smith/calls.csv",
        &CdrColumns::default(),
        AccountPattern::default(),
        TimeZone::get("America/New_York").expect("zone"),
    );
    fuzz("CDR", 0x0C0D_0001, CDR, |input| match reader.rows(input) {
        Ok(rows) => {
            for row in rows {
                if let RowOutcome::Bad(err) = row {
                    let text = err.to_string();
                    assert!(err.line >= 2, "{text}");
                    assert!(err.value.chars().count() <= 81, "{text}");
                }
            }
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    });
}

#[test]
fn the_airtable_import_turns_any_damaged_export_into_rows_or_cell_errors() {
    fuzz(
        "Airtable",
        0x0A17_0002,
        AIRTABLE,
        |input| match import_results(input) {
            Ok(rows) => {
                assert!(!rows.is_empty(), "a table with no rows is refused");
                let _ = ResultMapping::from_docs(&rows);
            }
            Err(errors) => {
                assert!(!errors.is_empty());
                for e in &errors {
                    assert!(!e.to_string().is_empty());
                }
            }
        },
    );
}

#[test]
fn the_candidate_document_decodes_or_is_refused_field_by_field() {
    let check = |input: &[u8]| {
        if let Ok(doc) = serde_json::from_slice::<CandidateDoc>(input) {
            match callsync::destinations::Compiled::from_doc(doc, callsync::egress::Egress::STRICT)
            {
                Ok(c) => assert!(!c.slug.as_str().is_empty()),
                Err(errors) => assert!(!errors.is_empty()),
            }
        }
    };
    fuzz("candidate bytes", 0x0CA7_0003, CANDIDATE, check);

    // Byte damage mostly breaks the JSON; also replace values inside a well-formed document.
    let base: serde_json::Value = serde_json::from_str(CANDIDATE).expect("sample is JSON");
    let mut rng = Rng::with_seed(0x0CA7_0004);
    for i in 0..ITERATIONS {
        let mut doc = base.clone();
        for _ in 0..rng.usize(1..=3) {
            let value = match rng.u8(0..6) {
                0 => serde_json::Value::from(NASTY[rng.usize(0..NASTY.len())]),
                1 => serde_json::json!(u64::MAX),
                2 => serde_json::json!(-1),
                3 => serde_json::Value::Null,
                4 => serde_json::Value::from("y".repeat(rng.usize(0..3_000))),
                _ => serde_json::json!([]),
            };
            replace_somewhere(&mut rng, &mut doc, value);
        }
        let text = serde_json::to_vec(&doc).expect("a value serialises");
        if catch_unwind(AssertUnwindSafe(|| check(&text))).is_err() {
            panic!("candidate values: iteration {i} panicked on {doc}");
        }
    }
}

/// Replaces one value somewhere in `doc` (walking down at random) with `new`.
fn replace_somewhere(rng: &mut Rng, doc: &mut serde_json::Value, new: serde_json::Value) {
    let deeper = rng.u8(0..4) > 0;
    match doc {
        serde_json::Value::Object(map) if deeper && !map.is_empty() => {
            let i = rng.usize(0..map.len());
            if let Some(child) = map.values_mut().nth(i) {
                replace_somewhere(rng, child, new);
            }
        }
        serde_json::Value::Array(list) if deeper && !list.is_empty() => {
            let i = rng.usize(0..list.len());
            replace_somewhere(rng, &mut list[i], new);
        }
        _ => *doc = new,
    }
}
