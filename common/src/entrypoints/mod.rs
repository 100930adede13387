//! Lambda events turned into calls on the core, and answers turned back into responses.
//! Nothing outside this module knows about Lambda or API Gateway.

pub mod configure;
pub mod http;
pub mod nightly;
pub mod status;
pub mod sync_call;
pub mod validate;
