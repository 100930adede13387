//! Metrics in CloudWatch embedded-metric format (EMF): one JSON line on stdout per
//! emission, which CloudWatch Logs turns into metrics in namespace `callsync` — once
//! without dimensions (what the template's alarms watch) and once per `Candidate`.
//! No API call, no cost per put, nothing to fail.

use serde_json::{Map, Value, json};

use crate::values::CandidateSlug;

pub const NAMESPACE: &str = "callsync";

/// The metrics callsync emits; the deploy template's alarms refer to these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Calls VAN refused (`attempted_error`).
    CallsAttemptedError,
    /// Calls that could not be made into a request (`unattempted_error`).
    CallsUnattemptedError,
    /// Calls finished, in VAN or in a CSV.
    CallsFinished,
    /// Calls handed to the queue.
    CallsQueued,
    VanRequests,
    /// VAN answers of 429.
    VanRateLimited,
    /// Time of one canvass post, retries included, in milliseconds.
    VanLatency,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::CallsAttemptedError => "CallsAttemptedError",
            Self::CallsUnattemptedError => "CallsUnattemptedError",
            Self::CallsFinished => "CallsFinished",
            Self::CallsQueued => "CallsQueued",
            Self::VanRequests => "VanRequests",
            Self::VanRateLimited => "VanRateLimited",
            Self::VanLatency => "VanLatency",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::VanLatency => "Milliseconds",
            _ => "Count",
        }
    }
}

/// One EMF line. A metric may carry several values (EMF keeps up to 100 per line);
/// metrics without values are left out, and `None` means there is nothing to emit.
pub fn emf_line(
    candidate: &CandidateSlug,
    at: jiff::Timestamp,
    values: &[(Metric, Vec<f64>)],
) -> Option<String> {
    let present: Vec<&(Metric, Vec<f64>)> = values.iter().filter(|(_, v)| !v.is_empty()).collect();
    if present.is_empty() {
        return None;
    }
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.as_millisecond(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[], ["Candidate"]],
                "Metrics": present
                    .iter()
                    .map(|(m, _)| json!({"Name": m.name(), "Unit": m.unit()}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    line.insert("Candidate".into(), Value::String(candidate.to_string()));
    for (metric, v) in present {
        let value = match v.as_slice() {
            [one] => json!(one),
            many => json!(many.iter().take(100).collect::<Vec<_>>()),
        };
        line.insert(metric.name().into(), value);
    }
    Some(Value::Object(line).to_string())
}

/// Emit one line on stdout, where Lambda's log agent reads EMF. Outside Lambda (tests,
/// the demo) nobody reads it, so nothing is printed.
pub fn emit(candidate: &CandidateSlug, at: jiff::Timestamp, values: &[(Metric, Vec<f64>)]) {
    static IN_LAMBDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*IN_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()) {
        return;
    }
    if let Some(line) = emf_line(candidate, at, values) {
        println!("{line}");
    }
}

/// A count as a metric value; zero counts are left out.
pub fn count(n: u64) -> Vec<f64> {
    if n == 0 { Vec::new() } else { vec![n as f64] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_an_emf_document_with_both_dimension_sets() {
        let slug = CandidateSlug::parse("ny14-smith").unwrap();
        let at: jiff::Timestamp = "2026-11-22T08:00:00Z".parse().unwrap();
        let line = emf_line(
            &slug,
            at,
            &[
                (Metric::CallsAttemptedError, count(2)),
                (Metric::CallsFinished, count(0)),
                (Metric::VanLatency, vec![120.0, 80.0]),
            ],
        )
        .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let spec = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "callsync");
        assert_eq!(spec["Dimensions"], json!([[], ["Candidate"]]));
        assert_eq!(
            spec["Metrics"],
            json!([
                {"Name": "CallsAttemptedError", "Unit": "Count"},
                {"Name": "VanLatency", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(v["_aws"]["Timestamp"], at.as_millisecond());
        assert_eq!(v["Candidate"], "ny14-smith");
        assert_eq!(v["CallsAttemptedError"], 2.0);
        assert_eq!(v["VanLatency"], json!([120.0, 80.0]));
        assert!(v.get("CallsFinished").is_none(), "zero counts are left out");
    }

    #[test]
    fn nothing_to_say_is_no_line() {
        let slug = CandidateSlug::parse("a").unwrap();
        assert_eq!(
            emf_line(
                &slug,
                jiff::Timestamp::UNIX_EPOCH,
                &[(Metric::VanRequests, count(0))]
            ),
            None
        );
    }
}
