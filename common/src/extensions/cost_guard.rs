//! `cost_guard`: a hard cap on the VAN requests a candidate makes in a day, for strategies
//! that otherwise post every synced call (`full`, `hybrid`). Every VAN request of the day
//! counts — posts, the type lookups, `phone_ids`' lookups — on the same counter the budget
//! strategy reads, and the cap is checked in the same conditional write that counts a
//! request, so workers sharing a day never pass it together. A post that would pass it is
//! not sent: its call goes to the day's CSV with the reason `cost_guard`.
//!
//! ```json
//! "extensions": ["cost_guard"],
//! "extension_settings": {"cost_guard": {"daily_van_requests": 1000}}
//! ```

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::{Extension, Hook, Metadata};
use crate::candidate::{CandidateDoc, Strategy};
use crate::mapping::FieldError;

pub const METADATA: Metadata = Metadata {
    name: "cost_guard",
    display_name: "Cost guard",
    description: "caps the VAN requests a candidate makes in a day; calls past the cap go to the CSV (reason cost_guard)",
    spends_money: false,
    money_spending_hooks: &[],
    needs_settings: true,
    hooks: &[Hook::RequestCap],
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Requests a day, every VAN request counted.
    daily_van_requests: u64,
}

#[derive(Debug, Default)]
pub struct CostGuard;

#[async_trait]
impl Extension for CostGuard {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    fn check_settings(
        &self,
        settings: &Value,
        doc: &CandidateDoc,
        at: &str,
        errors: &mut Vec<FieldError>,
    ) {
        match serde_json::from_value::<Settings>(settings.clone()) {
            Err(e) => errors.push(FieldError::new(
                at,
                format!("{e}: cost_guard takes {{\"daily_van_requests\": <requests a day>}}"),
            )),
            Ok(s) if s.daily_van_requests == 0 => errors.push(FieldError::new(
                format!("{at}.daily_van_requests"),
                "is 0, so nothing would ever be posted: use the all_csv strategy for that",
            )),
            Ok(_) => {}
        }
        if matches!(doc.strategy, Strategy::Budget { .. }) {
            errors.push(FieldError::new(
                at,
                "the budget strategy already caps the day's VAN requests (daily_free_requests): use one or the other",
            ));
        }
    }

    fn daily_request_cap(&self, settings: &Value) -> Option<u64> {
        serde_json::from_value::<Settings>(settings.clone())
            .ok()
            .map(|s| s.daily_van_requests)
    }
}
