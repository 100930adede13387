//! Fakes and harness: fake VAN and LiveVox servers with demo data, for callsync's tests.

pub mod api;
pub mod bench;
pub mod demo_data;
pub mod fake_action_network;
pub mod fake_livevox;
pub mod fake_receiver;
pub mod fake_tls;
pub mod fake_van;
pub mod faults;
pub mod harness;
pub mod held;
pub mod night;
pub mod observed;
