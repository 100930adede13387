//! The environment a function runs in: every variable callsync reads, by name, and the
//! AWS SDK configuration (which honours `AWS_ENDPOINT_URL` for local emulators).

/// DynamoDB table of candidate documents.
pub const CONFIG_TABLE: &str = "CALLSYNC_CONFIG_TABLE";
/// DynamoDB table of the call ledger.
pub const CALLS_TABLE: &str = "CALLSYNC_CALLS_TABLE";
/// DynamoDB table of day records and VAN request counts.
pub const DAYS_TABLE: &str = "CALLSYNC_DAYS_TABLE";
/// S3 bucket of CDR inboxes and CSV exports.
pub const BUCKET: &str = "CALLSYNC_BUCKET";
/// URL of the SQS queue of VAN's messages, which `sync-call` reads.
pub const SYNC_QUEUE_URL: &str = "CALLSYNC_SYNC_QUEUE_URL";
/// URL of the SQS queue of every other destination's messages, which `sync-call` reads too:
/// a lane of their own, so that no partner's pace holds VAN's back.
pub const DELIVERY_QUEUE_URL: &str = "CALLSYNC_DELIVERY_QUEUE_URL";
/// Name of the `nightly` function, which `POST /runs` invokes; only the status function
/// has it.
pub const NIGHTLY_FUNCTION: &str = "CALLSYNC_NIGHTLY_FUNCTION";
/// Secrets Manager secret holding the API's bearer token.
pub const API_TOKEN_SECRET: &str = "CALLSYNC_API_TOKEN_SECRET";
/// Overrides VAN's base URL (local fake servers); unset in production.
pub const VAN_BASE_URL: &str = "CALLSYNC_VAN_BASE_URL";
/// Overrides every candidate's LiveVox base URL (local fake servers); unset in production.
pub const LIVEVOX_BASE_URL: &str = "CALLSYNC_LIVEVOX_BASE_URL";
/// Overrides Action Network's API entry point (a local fake); unset in production.
pub const ACTION_NETWORK_BASE_URL: &str = "CALLSYNC_ACTION_NETWORK_BASE_URL";

/// `loopback` lets documents name loopback endpoints (over http too): the receivers of a
/// local stack. Unset in production, where only public https endpoints are reached.
pub const LOCAL_ENDPOINTS: &str = "CALLSYNC_LOCAL_ENDPOINTS";
/// Extensions every candidate without its own `extensions` list runs: a comma list, no
/// spaces (`phone_ids,example`). Unset: none.
pub const EXTENSIONS: &str = "CALLSYNC_EXTENSIONS";
/// How many ledger requests a run makes at once (default 16): a night's time is its
/// ledger's requests (`make bench`), so a big night on a table with the capacity for it
/// is faster with more.
pub const LEDGER_CONCURRENCY: &str = "CALLSYNC_LEDGER_CONCURRENCY";

/// Every variable callsync's code reads, for checks against the deploy template.
pub const ALL: &[&str] = &[
    CONFIG_TABLE,
    CALLS_TABLE,
    DAYS_TABLE,
    BUCKET,
    SYNC_QUEUE_URL,
    DELIVERY_QUEUE_URL,
    NIGHTLY_FUNCTION,
    API_TOKEN_SECRET,
    VAN_BASE_URL,
    LIVEVOX_BASE_URL,
    LOCAL_ENDPOINTS,
    EXTENSIONS,
    LEDGER_CONCURRENCY,
];

/// The egress rules the environment asks for: loopback receivers only where
/// [`LOCAL_ENDPOINTS`] is `loopback` (a local stack), public https endpoints otherwise.
pub fn egress(vars: &Vars) -> crate::egress::Egress {
    match vars.optional(LOCAL_ENDPOINTS).as_deref() {
        Some("loopback") => crate::egress::Egress::LOCAL,
        _ => crate::egress::Egress::STRICT,
    }
}

/// The extensions `CALLSYNC_EXTENSIONS` enables by default: a comma list without spaces
/// (each name is checked with the candidate's document).
pub fn extensions(vars: &Vars) -> Vec<String> {
    vars.optional(EXTENSIONS)
        .map(|list| {
            list.split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The VAN and LiveVox connectors the environment configures: the local fakes' base URLs
/// where set, and its egress rules.
pub fn connectors(vars: &Vars) -> crate::connect::Connectors {
    crate::connect::Connectors {
        van_base_url: vars.optional(VAN_BASE_URL),
        livevox_base_url: vars.optional(LIVEVOX_BASE_URL),
        action_network_base_url: vars.optional(ACTION_NETWORK_BASE_URL),
        egress: egress(vars),
        default_extensions: extensions(vars),
        ..crate::connect::Connectors::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MissingVar {
    #[error(
        "environment variable {0} is not set: the deploy template sets it; locally, `make dev-up` writes it to .env.local"
    )]
    Unset(&'static str),
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Where variables are read from: the process environment, or a given map (tests run
/// many local stacks in one process, so they cannot share the process environment).
#[derive(Debug, Clone, Default)]
pub struct Vars(Option<std::collections::HashMap<String, String>>);

impl Vars {
    pub fn process() -> Self {
        Self(None)
    }

    pub fn from_map(map: std::collections::HashMap<String, String>) -> Self {
        Self(Some(map))
    }

    /// A variable; empty counts as unset.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        match &self.0 {
            None => std::env::var(name).ok(),
            Some(map) => map.get(name).cloned(),
        }
        .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, MissingVar> {
        self.optional(name).ok_or(MissingVar::Unset(name))
    }
}

/// The SDK configuration from the standard chain (role credentials in Lambda; static
/// credentials and `AWS_ENDPOINT_URL` against local emulators).
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Egress;

    #[test]
    fn loopback_receivers_are_allowed_only_when_the_environment_says_so() {
        let vars = |v: &str| Vars::from_map([(LOCAL_ENDPOINTS.to_owned(), v.to_owned())].into());
        assert_eq!(egress(&vars("loopback")), Egress::LOCAL);
        assert_eq!(egress(&vars("yes")), Egress::STRICT);
        assert_eq!(egress(&Vars::from_map(Default::default())), Egress::STRICT);
    }
}
