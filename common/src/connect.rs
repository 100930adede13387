//! Builds a candidate's VAN and LiveVox clients from its secrets and the environment's
//! base-URL overrides (the local fakes); shared by the API and the sync functions.

use crate::adapters::env;
use crate::candidate::{LiveVoxSource, VanSettings};
use crate::livevox::{LiveVoxClient, LiveVoxCredentials, LiveVoxError, LiveVoxOptions};
use crate::ports::{SecretStore, StoreError};
use crate::retry::Retryable;
use crate::van::{ClientOptions, VanClient, VanCredentials, VanError};

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("VAN: {0}")]
    Van(#[from] VanError),
    #[error("LiveVox: {0}")]
    LiveVox(#[from] LiveVoxError),
}

impl ConnectError {
    /// Worth trying again later (a service was unavailable), as opposed to a
    /// configuration someone must fix.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(StoreError::Unavailable(..)) => true,
            Self::Store(_) => false,
            Self::Van(e) => e.is_retryable(),
            Self::LiveVox(e) => e.retry_advice() != crate::retry::RetryAdvice::Never,
        }
    }
}

/// Builds VAN and LiveVox clients for a candidate from its secrets.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    pub van_base_url: Option<String>,
    pub livevox_base_url: Option<String>,
    pub van_options: ClientOptions,
    pub livevox_options: LiveVoxOptions,
}

impl Connectors {
    pub fn from_vars(vars: &env::Vars) -> Self {
        Self {
            van_base_url: vars.optional(env::VAN_BASE_URL),
            livevox_base_url: vars.optional(env::LIVEVOX_BASE_URL),
            ..Self::default()
        }
    }

    /// Limits for the sync functions: every VAN exchange ends within the time a batch
    /// is given (see [`crate::services::Settings::post_deadline`]).
    pub fn for_sync(mut self) -> Self {
        self.van_options.request_timeout = std::time::Duration::from_secs(10);
        self.van_options.retry.deadline = std::time::Duration::from_secs(25);
        self
    }

    pub async fn van(
        &self,
        secrets: &dyn SecretStore,
        van: &VanSettings,
    ) -> Result<VanClient, ConnectError> {
        let creds: VanCredentials = secrets
            .get(&van.secret_name)
            .await?
            .json(&van.secret_name)?;
        let base = self
            .van_base_url
            .as_deref()
            .unwrap_or(VanClient::DEFAULT_BASE_URL);
        VanClient::new(base, creds, van.database_mode, self.van_options.clone())
            .map_err(ConnectError::Van)
    }

    pub async fn livevox(
        &self,
        secrets: &dyn SecretStore,
        lv: &LiveVoxSource,
    ) -> Result<LiveVoxClient, ConnectError> {
        let creds: LiveVoxCredentials =
            secrets.get(&lv.secret_name).await?.json(&lv.secret_name)?;
        let base = self
            .livevox_base_url
            .as_deref()
            .or(lv.base_url.as_deref())
            .unwrap_or(LiveVoxClient::DEFAULT_BASE_URL);
        LiveVoxClient::new(base, creds, self.livevox_options.clone()).map_err(ConnectError::LiveVox)
    }
}
