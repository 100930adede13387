//! Implementations of the ports: AWS services for Lambda, in-memory twins for unit tests,
//! and the environment that says which is which.

pub mod dynamo_config;
pub mod dynamo_ledger;
pub mod env;
pub mod lambda_launcher;
pub mod memory;
pub mod s3;
pub mod secrets_manager;
pub mod sqs;
pub mod webhook;
