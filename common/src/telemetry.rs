//! Structured logs: one JSON object per line on stdout, which CloudWatch Logs indexes.
//! The level comes from `RUST_LOG` (default `info`).
//!
//! Other crates log at most at `debug`, whatever `RUST_LOG` says: at `trace` the AWS SDK
//! logs response bodies (DynamoDB items hold voters' names and phones) and the HTTP stack
//! logs what it sends. callsync's own logs never carry them at any level.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Install the JSON subscriber once per process; later calls are no-ops.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false),
        )
        .with(filter)
        .with(caps())
        .try_init();
}

/// The most each crate may log: everything for callsync's own crates, `debug` for the rest.
fn caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::DEBUG)
        .with_target("callsync", LevelFilter::TRACE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn no_other_crate_logs_below_debug() {
        let caps = caps();
        for target in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime_api::http::body",
            "aws_sdk_dynamodb::operation",
            "hyper_util::client",
            "reqwest::connect",
            "rustls::conn",
        ] {
            assert!(caps.would_enable(target, &Level::DEBUG), "{target}");
            assert!(!caps.would_enable(target, &Level::TRACE), "{target}");
        }
        assert!(caps.would_enable("callsync::deliver", &Level::TRACE));
    }
}
