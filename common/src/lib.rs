//! callsync's core, in the order a call flows through it: what a call is
//! ([`values`], [`call`]), what a candidate asks for ([`candidate`], [`mapping`]), how a
//! call is planned ([`planning`]), where things are stored ([`ports`], [`adapters`]), and
//! who it is sent to ([`van`], [`livevox`]). [`entrypoints`] turns Lambda events into calls
//! on that core; nothing else here knows about Lambda.

pub mod adapters;
pub mod call;
pub mod candidate;
pub mod catalogue;
pub mod connect;
#[cfg(test)]
mod decode_fuzz;
pub mod deliver;
pub mod destinations;
pub mod egress;
pub mod entrypoints;
pub mod extensions;
pub mod fanout;
pub mod governor;
pub mod ingest;
pub mod ledger;
pub mod livevox;
pub mod mapping;
pub mod metrics;
pub mod nightly;
pub mod planning;
pub mod ports;
pub mod report;
pub mod retry;
pub mod services;
pub mod telemetry;
pub mod validation;
pub mod values;
pub mod van;
