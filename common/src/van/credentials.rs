//! Who we are to VAN: the application name, the API key, and which database the key opens.

use std::fmt;

use serde::Deserialize;

use crate::values::DatabaseMode;

/// The secret as stored in Secrets Manager: `{"application_name": …, "api_key": …}`.
/// `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct VanCredentials {
    pub application_name: String,
    pub api_key: String,
}

impl fmt::Debug for VanCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VanCredentials")
            .field("application_name", &self.application_name)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl VanCredentials {
    /// The key of VAN's rate limit these credentials' requests count against: VAN limits
    /// per API key, whichever candidate or database mode uses it. A digest, so the key
    /// itself is never stored or logged.
    pub fn rate_key(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(self.application_name.as_bytes())
            .chain_update(b"\n")
            .chain_update(self.api_key.as_bytes())
            .finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("van/{hex}")
    }

    /// The Basic-auth password VAN expects: `{apiKey}|{dbMode}`.
    pub(crate) fn password(&self, mode: DatabaseMode) -> String {
        format!("{}|{}", self.api_key, mode.as_password_suffix())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credentials_read_from_the_secret_and_debug_hides_the_key() {
        let creds: VanCredentials = serde_json::from_str(
            r#"{"application_name":"callsync-demo","api_key":"5f1e-secret-key"}"#,
        )
        .unwrap();
        assert_eq!(creds.application_name, "callsync-demo");
        let debug = format!("{creds:?}");
        assert!(!debug.contains("5f1e-secret-key"), "{debug}");
        assert!(debug.contains("callsync-demo"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(
            creds.password(DatabaseMode::MyCampaign),
            "5f1e-secret-key|1"
        );
    }

    #[test]
    fn database_modes_use_snake_case_names_and_vans_digits() {
        assert_eq!(
            serde_json::to_string(&DatabaseMode::VoterFile).unwrap(),
            r#""voter_file""#
        );
        assert_eq!(
            serde_json::from_str::<DatabaseMode>(r#""my_campaign""#).unwrap(),
            DatabaseMode::MyCampaign
        );
        assert_eq!(DatabaseMode::VoterFile.as_password_suffix(), 0);
        assert_eq!(DatabaseMode::MyCampaign.as_password_suffix(), 1);
    }
}
