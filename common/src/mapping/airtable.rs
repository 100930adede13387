//! Import of the original app's Airtable result table, exported as CSV, into mapping rows.
//!
//! Columns by header name: `Full On Screen Result`, `Display Name`, `Success`,
//! `Canvass Result Code`, `Tags` (comma-separated activist code ids), `Sync to System`,
//! `Include in CSV`, optional `Priority`; every other column holds `questionId,responseId`
//! pairs (blank cells are skipped). A bad cell is reported with its line and column and the
//! rest of the table is still read, so one upload shows every problem.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::{ResultRowDoc, SurveyAnswer, duplicate_message};
use crate::values::ResultKey;

const RESULT: &str = "Full On Screen Result";
const DISPLAY: &str = "Display Name";
const SUCCESS: &str = "Success";
const RESULT_CODE: &str = "Canvass Result Code";
const TAGS: &str = "Tags";
const SYNC: &str = "Sync to System";
const CSV: &str = "Include in CSV";
const PRIORITY: &str = "Priority";
/// Bookkeeping columns the original ignored too.
const IGNORED: &[&str] = &["Used?"];
const REQUIRED: &[&str] = &[RESULT, DISPLAY];

/// One bad cell (or line) of the upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellError {
    pub line: u64,
    pub column: String,
    pub value: String,
    pub message: String,
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {:?} = {:?}: {}",
            self.line, self.column, self.value, self.message
        )
    }
}

/// Read the export (UTF-8, with or without a byte-order mark). `Ok` holds every row when no
/// cell was bad; `Err` holds every bad cell. A table with no result rows is refused: storing
/// it would wipe the mapping.
pub fn import_results(csv_bytes: impl AsRef<[u8]>) -> Result<Vec<ResultRowDoc>, Vec<CellError>> {
    let bytes = csv_bytes.as_ref();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // The csv crate numbers the line after a CRLF one too low; read line breaks as LF.
    let lf: Vec<u8>;
    let bytes = if bytes.contains(&b'\r') {
        lf = lf_lines(bytes);
        &lf[..]
    } else {
        bytes
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![line_error(
                1,
                format!("the header line is unreadable: {e}"),
            )]);
        }
    };
    let mut names = Vec::with_capacity(headers.len());
    for (i, raw) in headers.iter().enumerate() {
        match std::str::from_utf8(raw) {
            Ok(name) => names.push(name.trim().to_owned()),
            Err(_) => {
                return Err(vec![CellError {
                    line: 1,
                    column: format!("column {}", i + 1),
                    value: String::new(),
                    message: NOT_UTF8.into(),
                }]);
            }
        }
    }
    let headers = csv::StringRecord::from(names);
    if let Some(error) = duplicate_header(&headers) {
        return Err(vec![error]);
    }
    let index = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let missing: Vec<_> = REQUIRED.iter().filter(|c| index(c).is_none()).collect();
    if !missing.is_empty() {
        let found = headers.iter().collect::<Vec<_>>().join(", ");
        return Err(vec![line_error(
            1,
            format!(
                "missing column(s) {}; the header has: {found}",
                missing
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]);
    }

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    // Each result's first row, by key: (line, spelling).
    let mut seen: HashMap<ResultKey, (u64, String)> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(unreadable(&e, &headers));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let mut cells = Cells {
            line,
            errors: &mut errors,
        };
        let mut row = ResultRowDoc {
            result: String::new(),
            display_name: String::new(),
            success: false,
            result_code_id: None,
            survey_responses: Vec::new(),
            activist_codes: Vec::new(),
            sync: false,
            csv: false,
            priority: 0,
            destinations: Vec::new(),
        };
        for (header, value) in headers.iter().zip(record.iter()) {
            let is = |name: &str| header.eq_ignore_ascii_case(name);
            if is(RESULT) {
                if value.is_empty() {
                    cells.bad(
                        header,
                        value,
                        "is empty: every row needs the dialer's result text",
                    );
                }
                row.result = value.to_owned();
            } else if is(DISPLAY) {
                row.display_name = value.to_owned();
            } else if is(SUCCESS) {
                row.success = cells.flag(header, value);
            } else if is(SYNC) {
                row.sync = cells.flag(header, value);
            } else if is(CSV) {
                row.csv = cells.flag(header, value);
            } else if is(RESULT_CODE) {
                row.result_code_id = (!value.is_empty())
                    .then(|| cells.id(header, value, "a VAN result code id such as 18"))
                    .flatten();
            } else if is(TAGS) {
                row.activist_codes = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .filter_map(|t| {
                        cells.id(
                            header,
                            t,
                            "comma-separated VAN activist code ids such as 4411, 4412",
                        )
                    })
                    .collect();
            } else if is(PRIORITY) {
                if !value.is_empty() {
                    match value.parse() {
                        Ok(p) => row.priority = p,
                        Err(_) => cells.bad(
                            header,
                            value,
                            "must be a whole number (higher goes to VAN first)",
                        ),
                    }
                }
            } else if IGNORED.iter().any(|c| is(c)) || value.is_empty() {
            } else if let Some(answer) = cells.answer(header, value) {
                row.survey_responses.push(answer);
            }
        }
        if let Ok(key) = ResultKey::normalise(&row.result) {
            if let Some((first, spelling)) = seen.get(&key) {
                cells.bad(
                    RESULT,
                    &row.result,
                    &duplicate_message(&row.result, &format!("line {first}"), spelling, &key),
                );
            } else {
                seen.insert(key, (line, row.result.clone()));
            }
        }
        rows.push(row);
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push(line_error(
            2,
            "the table has no result rows, only a header: storing it would delete every row of the mapping, so nothing was stored — export the table with its rows".into(),
        ));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

const NOT_UTF8: &str = "is not UTF-8 text: the file was probably saved by Excel as \"CSV (Comma delimited)\", which writes Windows-1252 — save it again with File › Save As › \"CSV UTF-8 (Comma delimited)\" (or export it from Airtable directly) and upload that";

/// CRLF and a lone CR as LF, the way the CDR reader reads them.
fn lf_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut after_cr = false;
    for &b in bytes {
        match b {
            b'\r' => out.push(b'\n'),
            b'\n' if after_cr => {}
            _ => out.push(b),
        }
        after_cr = b == b'\r';
    }
    out
}

/// A header named twice (ignoring case) makes every row ambiguous.
fn duplicate_header(headers: &csv::StringRecord) -> Option<CellError> {
    headers.iter().enumerate().find_map(|(i, name)| {
        let first = headers
            .iter()
            .take(i)
            .position(|h| !name.is_empty() && h.eq_ignore_ascii_case(name))?;
        Some(CellError {
            line: 1,
            column: name.to_owned(),
            value: name.to_owned(),
            message: format!(
                "the header names this column twice (columns {} and {}): rename or remove one",
                first + 1,
                i + 1
            ),
        })
    })
}

/// A line the CSV parser refused. Bad text is located, never quoted.
fn unreadable(e: &csv::Error, headers: &csv::StringRecord) -> CellError {
    match e.kind() {
        csv::ErrorKind::Utf8 { pos, err } => CellError {
            line: pos.as_ref().map_or(0, csv::Position::line),
            column: headers
                .get(err.field())
                .map_or_else(|| format!("column {}", err.field() + 1), str::to_owned),
            value: String::new(),
            message: NOT_UTF8.into(),
        },
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => line_error(
            pos.as_ref().map_or(0, csv::Position::line),
            format!(
                "has {len} cells but the header has {expected_len}: look for an unquoted comma or a stray quote on this line"
            ),
        ),
        _ => line_error(
            e.position().map_or(0, csv::Position::line),
            format!("unreadable CSV line: {e}"),
        ),
    }
}

fn line_error(line: u64, message: String) -> CellError {
    CellError {
        line,
        column: String::new(),
        value: String::new(),
        message,
    }
}

struct Cells<'a> {
    line: u64,
    errors: &'a mut Vec<CellError>,
}

impl Cells<'_> {
    fn bad(&mut self, column: &str, value: &str, message: &str) {
        self.errors.push(CellError {
            line: self.line,
            column: column.to_owned(),
            value: value.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Airtable exports a ticked checkbox as `checked`; people typing tables use the rest.
    fn flag(&mut self, column: &str, value: &str) -> bool {
        match value.to_ascii_lowercase().as_str() {
            "checked" | "true" | "yes" | "y" | "1" | "x" | "✓" | "✔" => true,
            "" | "unchecked" | "false" | "no" | "n" | "0" => false,
            _ => {
                self.bad(
                    column,
                    value,
                    "must be a checkbox: checked/true/yes/1, or empty/false/no/0",
                );
                false
            }
        }
    }

    fn id(&mut self, column: &str, value: &str, what: &str) -> Option<u32> {
        match value.parse::<u32>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                self.bad(column, value, &format!("must be {what}"));
                None
            }
        }
    }

    fn answer(&mut self, column: &str, value: &str) -> Option<SurveyAnswer> {
        let parsed = value.split_once(',').and_then(|(q, r)| {
            Some(SurveyAnswer {
                question_id: q.trim().parse().ok().filter(|&q| q > 0)?,
                response_id: r.trim().parse().ok().filter(|&r| r > 0)?,
            })
        });
        if parsed.is_none() {
            self.bad(
                column,
                value,
                "must be a survey answer `questionId,responseId`, e.g. 2301,9120 (or leave it blank)",
            );
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = "\u{feff}Full On Screen Result,Display Name,Success,Canvass Result Code,Tags,Sync to System,Include in CSV,Question 1,Question 2,Used?\n\
Agent Cust 1,Strong support,checked,,\"4411, 4412\",checked,,\"2301,9120\",,checked\n\
agent cust 2,Wrong number,,20,,checked,,,,\n\
No Answer,No answer,,17,,,checked,,,\n\
Answering Machine (Hung Up),Machine,,,,,,,,\n\
,,,,,,,,,\n";

    #[test]
    fn a_good_export_becomes_mapping_rows() {
        let rows = import_results(GOOD).unwrap();
        assert_eq!(rows.len(), 4, "the blank line is skipped");
        assert_eq!(
            rows[0],
            ResultRowDoc {
                result: "Agent Cust 1".into(),
                display_name: "Strong support".into(),
                success: true,
                result_code_id: None,
                survey_responses: vec![SurveyAnswer {
                    question_id: 2301,
                    response_id: 9120
                }],
                activist_codes: vec![4411, 4412],
                sync: true,
                csv: false,
                priority: 0,
                destinations: Vec::new(),
            }
        );
        assert_eq!(rows[1].result_code_id, Some(20));
        assert!(rows[1].sync && !rows[1].success);
        assert!(rows[2].csv && !rows[2].sync);
        assert!(!rows[3].sync && !rows[3].csv);
        let mapping = crate::mapping::ResultMapping::from_docs(&rows).unwrap();
        assert_eq!(mapping.rows().len(), 4);
    }

    #[test]
    fn every_bad_cell_is_reported_with_line_and_column() {
        let text = "Full On Screen Result,Display Name,Success,Canvass Result Code,Tags,Sync to System,Include in CSV,Q1\n\
Agent Cust 1,Strong support,maybe,,44x1,checked,,\"2301,9120\"\n\
Busy,Busy,,eighteen,,checked,,\n\
Agent Cust 3,Undecided,checked,,,checked,,2301\n\
,Nameless,,,,,,\n";
        let errors = import_results(text).unwrap_err();
        let found: Vec<_> = errors
            .iter()
            .map(|e| (e.line, e.column.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (2, "Success", "maybe"),
                (2, "Tags", "44x1"),
                (3, "Canvass Result Code", "eighteen"),
                (4, "Q1", "2301"),
                (5, "Full On Screen Result", ""),
            ]
        );
        assert!(
            errors[3].to_string().contains("questionId,responseId"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn a_missing_required_column_names_what_was_found() {
        let errors = import_results("Result,Display Name\nBusy,Busy\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("Full On Screen Result"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0]
                .message
                .contains("the header has: Result, Display Name")
        );
    }

    #[test]
    fn a_header_only_export_is_refused_instead_of_wiping_the_mapping() {
        for text in [
            "Full On Screen Result,Display Name,Success\n",
            "Full On Screen Result,Display Name,Success",
            "\u{feff}Full On Screen Result,Display Name,Success\r\n,,\r\n\r\n",
        ] {
            let errors = import_results(text).unwrap_err();
            assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
            assert!(
                errors[0].message.contains("has no result rows"),
                "{}",
                errors[0]
            );
        }
    }

    #[test]
    fn a_header_named_twice_is_refused_naming_it() {
        let text = "Full On Screen Result,Display Name,Success,display name\nBusy,Busy,,Busy\n";
        let errors = import_results(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].line, errors[0].column.as_str()),
            (1, "display name")
        );
        assert!(
            errors[0].message.contains("columns 2 and 4"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn two_rows_for_one_result_name_both_lines_and_spellings() {
        let text = "Full On Screen Result,Display Name,Success,Canvass Result Code,Sync to System\n\
AGENT - CUST 12,Strong support,checked,14,checked\n\
Busy,Busy,,18,checked\n\
Agent Cust 12 (345),Strong support,checked,14,checked\n";
        let errors = import_results(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(
            (e.line, e.column.as_str(), e.value.as_str()),
            (4, RESULT, "Agent Cust 12 (345)")
        );
        assert!(e.message.contains(r#"line 2 "AGENT - CUST 12""#), "{e}");
        assert!(e.message.contains(r#""agent cust 12""#), "{e}");
    }

    #[test]
    fn an_excel_windows_1252_export_is_told_to_resave_as_csv_utf8_with_its_line() {
        // "Réponse" and "Número" as Excel's "CSV (Comma delimited)" writes them.
        let mut bytes =
            b"Full On Screen Result,Display Name,Success,Canvass Result Code,Sync to System\r\n\
Busy,Busy,,18,checked\r\n"
                .to_vec();
        bytes.extend_from_slice(b"R\xe9ponse,N\xfamero equivocado,,20,checked\r\n");
        let errors = import_results(&bytes).unwrap_err();
        let found: Vec<_> = errors.iter().map(|e| (e.line, e.column.as_str())).collect();
        assert_eq!(found, [(3, RESULT)], "{errors:?}");
        let text = errors[0].to_string();
        assert!(text.contains("\"CSV UTF-8 (Comma delimited)\""), "{text}");
        assert!(!text.contains("byte"), "{text}");
        // Saved as UTF-8, the same table loads, accents and all.
        let utf8 = String::from_utf8_lossy(&bytes)
            .replace('\u{fffd}', "é")
            .replacen("Né", "Nú", 1);
        let rows = import_results(utf8.as_bytes()).unwrap();
        assert_eq!(rows[1].result, "Réponse");
    }

    #[test]
    fn bad_cells_in_a_crlf_export_point_at_their_line() {
        let text = "Full On Screen Result,Display Name,Success\r\n\
Agent Cust 1,\"Strong\r\nsupport\",checked\r\n\
Busy,Busy,maybe\r\n";
        let errors = import_results(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column.as_str()), (4, SUCCESS));
    }

    #[test]
    fn a_ragged_line_is_an_error_and_the_rest_is_read() {
        let text = "Full On Screen Result,Display Name,Success\nBusy,Busy\nNo Answer,No answer,\n";
        let errors = import_results(text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
    }
}
