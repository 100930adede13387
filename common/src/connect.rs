//! Builds a candidate's VAN and LiveVox clients from its secrets and the environment's
//! base-URL overrides (the local fakes); shared by the API and the sync functions. Only a
//! checked [`Candidate`] can be connected: its secret names lie under its own prefix and
//! its LiveVox host is LiveVox's, so a document cannot send a login anywhere else.

use crate::candidate::{Candidate, is_own_secret, secret_prefix};
use crate::egress::{self, Egress};
use crate::livevox::{LiveVoxClient, LiveVoxCredentials, LiveVoxError, LiveVoxOptions};
use crate::ports::{SecretStore, StoreError};
use crate::retry::Retryable;
use crate::van::{ClientOptions, DatabaseMode, VanClient, VanCredentials, VanError};

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("VAN: {0}")]
    Van(#[from] VanError),
    #[error("LiveVox: {0}")]
    LiveVox(#[from] LiveVoxError),
    /// The candidate names no such connection, or one it may not use.
    #[error("{0}")]
    Config(String),
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
            Self::Config(_) => false,
        }
    }
}

/// Builds VAN and LiveVox clients for a candidate from its secrets.
#[derive(Debug, Clone, Default)]
pub struct Connectors {
    pub van_base_url: Option<String>,
    pub livevox_base_url: Option<String>,
    /// Action Network's API entry point, when not its own (a local fake).
    pub action_network_base_url: Option<String>,
    pub van_options: ClientOptions,
    pub livevox_options: LiveVoxOptions,
    /// Which endpoints documents may name (see [`Egress`]).
    pub egress: Egress,
    /// Extensions enabled for every candidate without its own list (`CALLSYNC_EXTENSIONS`).
    pub default_extensions: Vec<String>,
}

impl Connectors {
    /// Limits for the sync functions: every VAN exchange ends within the time a batch
    /// is given (see [`crate::services::Settings::post_deadline`]).
    pub fn for_sync(mut self) -> Self {
        self.van_options.request_timeout = std::time::Duration::from_secs(10);
        self.van_options.retry.deadline = std::time::Duration::from_secs(25);
        self
    }

    /// The client for `candidate`'s key to database `mode` (`None`: its main database).
    pub async fn van(
        &self,
        secrets: &dyn SecretStore,
        candidate: &Candidate,
        mode: Option<DatabaseMode>,
    ) -> Result<VanClient, ConnectError> {
        let (creds, mode) = self.van_credentials(secrets, candidate, mode).await?;
        let base = self
            .van_base_url
            .as_deref()
            .unwrap_or(VanClient::DEFAULT_BASE_URL);
        VanClient::new(base, creds, mode, self.van_options.clone()).map_err(ConnectError::Van)
    }

    /// VAN refused the key `refused` used for `candidate`'s database `mode`: forget what
    /// `secrets` keeps of it and read it afresh. True when the key read now is another —
    /// it was replaced, and a request refused with the old one may go again with it (VAN
    /// refuses a replaced key at once, while a warm function keeps the one it read).
    pub async fn van_key_replaced(
        &self,
        secrets: &dyn SecretStore,
        candidate: &Candidate,
        mode: DatabaseMode,
        refused: &VanClient,
    ) -> bool {
        let Ok((name, _)) = van_secret(candidate, Some(mode)) else {
            return false;
        };
        secrets.forget(name).await;
        match secrets
            .get(name)
            .await
            .map(|s| s.json::<VanCredentials>(name))
        {
            Ok(Ok(creds)) => creds.rate_key() != refused.rate_key(),
            _ => false,
        }
    }

    /// `request` sent with the client for `candidate`'s main database; sent once more with
    /// a fresh client when VAN refuses the key and it was replaced since it was read (see
    /// [`Connectors::van_key_replaced`]): a user who has just replaced a key and asks
    /// again is answered with the new one. The client last used, and VAN's answer.
    pub async fn with_van<T, F, Fut>(
        &self,
        secrets: &dyn SecretStore,
        candidate: &Candidate,
        request: F,
    ) -> Result<(VanClient, Result<T, VanError>), ConnectError>
    where
        F: Fn(VanClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, VanError>>,
    {
        let client = self.van(secrets, candidate, None).await?;
        match request(client.clone()).await {
            Err(refused) if refused.status() == Some(401) => {
                let mode = client.mode();
                if !self
                    .van_key_replaced(secrets, candidate, mode, &client)
                    .await
                {
                    return Ok((client, Err(refused)));
                }
                let fresh = self.van(secrets, candidate, None).await?;
                let answer = request(fresh.clone()).await;
                Ok((fresh, answer))
            }
            answer => Ok((client, answer)),
        }
    }

    /// `candidate`'s key to database `mode` (`None`: its main database), read from its own
    /// secret, and the mode.
    pub async fn van_credentials(
        &self,
        secrets: &dyn SecretStore,
        candidate: &Candidate,
        mode: Option<DatabaseMode>,
    ) -> Result<(VanCredentials, DatabaseMode), ConnectError> {
        let (name, mode) = van_secret(candidate, mode)?;
        let creds: VanCredentials = secrets.get(name).await?.json(name)?;
        Ok((creds, mode))
    }

    pub async fn livevox(
        &self,
        secrets: &dyn SecretStore,
        candidate: &Candidate,
    ) -> Result<LiveVoxClient, ConnectError> {
        let lv = candidate.doc().source.livevox.as_ref().ok_or_else(|| {
            ConnectError::Config(format!(
                "candidate {} has no LiveVox source: add `source.livevox` to its document",
                candidate.slug
            ))
        })?;
        let name = own_secret(candidate, &lv.secret_name)?;
        let base = match (&self.livevox_base_url, &lv.base_url) {
            // The deployment's override (a local stack's fake) wins over any document.
            (Some(local), _) => local.clone(),
            (None, Some(url)) => egress::livevox_base_url(url)
                .map_err(|e| ConnectError::Config(format!("source.livevox.base_url {url:?} {e}")))?
                .to_string(),
            (None, None) => LiveVoxClient::DEFAULT_BASE_URL.to_owned(),
        };
        let creds: LiveVoxCredentials = secrets.get(name).await?.json(name)?;
        LiveVoxClient::new(&base, creds, self.livevox_options.clone())
            .map_err(ConnectError::LiveVox)
    }
}

/// The name of `candidate`'s secret holding its key to database `mode` (`None`: its main
/// database), and the mode.
fn van_secret(
    candidate: &Candidate,
    mode: Option<DatabaseMode>,
) -> Result<(&str, DatabaseMode), ConnectError> {
    let van = candidate.van().ok_or_else(|| {
        ConnectError::Config(format!(
            "candidate {} has no VAN settings: add `van` to its document",
            candidate.slug
        ))
    })?;
    let mode = mode.unwrap_or(van.database_mode);
    let secret = van.secret_for(mode).ok_or_else(|| {
        ConnectError::Config(format!(
            "candidate {} has no VAN key for database mode {mode:?}: add it under van.other_databases",
            candidate.slug
        ))
    })?;
    Ok((own_secret(candidate, secret)?, mode))
}

/// `name`, if it is one of `candidate`'s own secrets (checked again here, where the secret
/// is read, so no path around the document check can read another's).
fn own_secret<'a>(candidate: &Candidate, name: &'a str) -> Result<&'a str, ConnectError> {
    if is_own_secret(&candidate.slug, name) {
        Ok(name)
    } else {
        Err(ConnectError::Config(format!(
            "secret {name:?} is not one of candidate {}'s secrets (they are named {}…)",
            candidate.slug,
            secret_prefix(&candidate.slug)
        )))
    }
}
