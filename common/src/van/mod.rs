//! The VAN (NGP VAN / EveryAction) API v4 client: credentials, wire types, errors, and
//! the HTTP client that posts call results and reads the lists a mapping refers to.

pub(crate) mod client;
mod credentials;
mod error;
pub(crate) mod model;

pub use crate::values::DatabaseMode;
pub use client::{ClientOptions, MAX_PAGE_SIZE, MeterError, PostReceipt, RequestMeter, VanClient};
pub use credentials::VanCredentials;
pub use error::{
    MAX_KEPT_BODY, MAX_WAIT_HINT, TransportKind, VanError, VanErrorItem, parse_wait_hint,
};
pub use model::{
    ActivistAction, ActivistCode, CanvassContext, CanvassOutcome, CanvassResponse, ContactType,
    FindPerson, InputType, Person, PersonPhone, ResponseItem, ResultCode, SurveyQuestion,
    SurveyResponse,
};
