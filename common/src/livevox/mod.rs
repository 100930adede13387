//! LiveVox, the dialer calls come from: its Call Detail Report files ([`cdr`]), its API
//! ([`client`], [`model`]), and the one normalisation both go through ([`normalise`]).

pub mod cdr;
pub mod client;
pub mod model;
pub mod normalise;

pub use cdr::{CdrColumns, CdrError, CdrReader};
pub use client::{
    CallDetailCursor, CallDetailPosition, CallDetailSource, LiveVoxClient, LiveVoxCredentials,
    LiveVoxError, LiveVoxOptions, PageCursor,
};
pub use model::{CallCenter, CallDetail, Service, TermCode};
pub use normalise::{
    FieldNames, Memo, RawCall, RawTime, RowError, RowOrigin, RowOutcome, normalise, normalise_in,
};
