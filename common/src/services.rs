//! Everything the sync needs, wired once per Lambda instance: the stores, the queue, the
//! bucket, the report webhook, the run launcher, the clock, the client builders, and the
//! knobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::adapters::dynamo_config::DynamoConfigStore;
use crate::adapters::dynamo_ledger::{DynamoDayStore, DynamoLedger};
use crate::adapters::env;
use crate::adapters::lambda_launcher::{LambdaLauncher, NoLauncher};
use crate::adapters::s3::S3Objects;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::adapters::sqs::SqsQueue;
use crate::adapters::webhook::WebhookNotifier;
use crate::candidate::CandidateDoc;
use crate::connect::Connectors;
use crate::destinations::Compiled;
use crate::ports::{
    CallQueue, Clock, ConfigStore, DayStore, Ledger, Notifier, ObjectStore, RateStore, RunLauncher,
    SecretStore, StoreError, SystemClock,
};
use crate::values::CandidateSlug;

/// The knobs of a run; the defaults are the production values.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a `sync-call` worker holds a call. Longer than the function's timeout, so
    /// a lease only expires when its worker is gone.
    pub lease: Duration,
    /// An `unsynced` call never handed to the queue is re-queued after this long (a run
    /// died between the ledger and the queue).
    pub requeue_unsent_after: Duration,
    /// An `unsynced` call handed to the queue this long ago without finishing is handed
    /// again (its message went to the dead-letter queue, or was lost).
    pub requeue_stale_after: Duration,
    /// How long a run holds its day against other runs of the same day.
    pub run_lock: Duration,
    /// A `nightly` run stops reading this long before its function's end: time for the
    /// batch in hand, the note of how far it got, the files read set aside, and the start
    /// of its next part.
    pub wrap_up: Duration,
    /// Concurrent ledger writes of one run.
    pub ledger_concurrency: usize,
    /// Concurrent VAN deliveries of one `sync-call` batch, each waiting for its own slot
    /// of the key's schedule (the governor keeps VAN's rate, not this number); a fast key
    /// raises it (`Governor::in_flight`).
    pub van_concurrency: usize,
    /// No `sync-call` post starts later than this into a batch. With the VAN client's
    /// request timeout (10 s) and retry deadline (25 s) a batch ends within 15 + 25 + 10
    /// = 50 s, inside the function's 60 s timeout, without ever cutting off a post.
    pub post_deadline: Duration,
    /// How long CSV links in status answers and reports stay valid.
    pub link_ttl: Duration,
    /// Ticks that try to deliver a day's report before it is given up (and recorded).
    pub report_attempts: u32,
    /// Ticks look back this many days for days with work left.
    pub lookback_days: i32,
    /// Concurrent sends toward one configured destination in one `sync-call` batch.
    pub destination_concurrency: usize,
    /// Tries of one delivery to a configured destination before it is `attempted_error`.
    pub delivery_attempts: u32,
    /// The wait after a delivery's first failed try; it doubles with each further one…
    pub delivery_backoff: Duration,
    /// …up to this.
    pub delivery_backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15 * 60),
            requeue_unsent_after: Duration::from_secs(5 * 60),
            requeue_stale_after: Duration::from_secs(6 * 3600),
            run_lock: Duration::from_secs(15 * 60),
            wrap_up: Duration::from_secs(120),
            ledger_concurrency: 16,
            van_concurrency: 4,
            post_deadline: Duration::from_secs(15),
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            report_attempts: 3,
            lookback_days: 14,
            destination_concurrency: 4,
            delivery_attempts: 10,
            // 30 s, 1, 2, 4, 8, 16, 32, 64 min, then 2 h: ten tries span about five hours,
            // so a receiver down for half a night still receives every call.
            delivery_backoff: Duration::from_secs(30),
            delivery_backoff_max: Duration::from_secs(2 * 3600),
        }
    }
}

#[derive(Clone)]
pub struct Services {
    pub config: Arc<dyn ConfigStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub ledger: Arc<dyn Ledger>,
    pub days: Arc<dyn DayStore>,
    /// The rate governors' shared schedules.
    pub rates: Arc<dyn RateStore>,
    pub queue: Arc<dyn CallQueue>,
    pub objects: Arc<dyn ObjectStore>,
    pub notifier: Arc<dyn Notifier>,
    /// Starts runs in the `nightly` function (`POST /runs`).
    pub launcher: Arc<dyn RunLauncher>,
    pub clock: Arc<dyn Clock>,
    pub connectors: Connectors,
    pub settings: Settings,
    /// Candidates compiled from their stored documents, reused while a document is unchanged.
    pub compiled: CandidateCache,
}

/// One compiled candidate per slug, with the document it was compiled from: a load that
/// reads the same document again reuses it (templates, patterns and the mapping cost far
/// more to compile than a document costs to compare), a changed one is compiled afresh. A
/// document that does not compile is remembered too, with its problems.
#[derive(Debug, Default, Clone)]
pub struct CandidateCache {
    entries: Arc<Mutex<HashMap<CandidateSlug, Cached>>>,
}

type Cached = (CandidateDoc, Result<Compiled, String>);

impl CandidateCache {
    /// `doc` compiled, from the cache when it holds this very document.
    fn compile(&self, doc: CandidateDoc, connectors: &Connectors) -> Result<Compiled, String> {
        let slug = CandidateSlug::parse(&doc.slug).ok();
        if let Some(slug) = &slug
            && let Some((cached, compiled)) = self.lock().get(slug)
            && *cached == doc
        {
            return compiled.clone();
        }
        let compiled = Compiled::for_deployment(doc.clone(), connectors).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        if let Some(slug) = slug {
            self.lock().insert(slug, (doc, compiled.clone()));
        }
        compiled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CandidateSlug, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("bucket", &self.objects.bucket())
            .field("connectors", &self.connectors)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a candidate cannot be used right now.
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    #[error("candidate {0} does not exist (PUT /candidates/{0} stores it)")]
    Unknown(CandidateSlug),
    #[error(
        "candidate {slug}'s stored document is invalid: {problems} (fix it with PUT /candidates/{slug})"
    )]
    Invalid {
        slug: CandidateSlug,
        problems: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Services {
    /// What a destination of `candidate` may use when a run asks it something: the
    /// secrets, the deployment's connections, the run's clock; nothing metered.
    pub fn destination_context<'a>(
        &'a self,
        candidate: &'a crate::candidate::Candidate,
    ) -> crate::destinations::DeliverContext<'a> {
        crate::destinations::DeliverContext::unmetered(
            self.secrets.as_ref(),
            &self.connectors,
            candidate,
            self.clock.as_ref(),
        )
    }

    /// The production wiring, named by the environment.
    pub async fn from_env() -> Result<Self, env::MissingVar> {
        Self::build(&env::aws().await, &env::Vars::process())
    }

    pub fn build(aws: &aws_config::SdkConfig, vars: &env::Vars) -> Result<Self, env::MissingVar> {
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let connectors = env::connectors(vars).for_sync();
        let days = Arc::new(DynamoDayStore::new(
            dynamo.clone(),
            vars.required(env::DAYS_TABLE)?,
        ));
        Ok(Self {
            config: Arc::new(DynamoConfigStore::new(
                dynamo.clone(),
                vars.required(env::CONFIG_TABLE)?,
            )),
            secrets: Arc::new(SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(aws),
                SecretsManagerStore::DEFAULT_TTL,
            )),
            ledger: Arc::new(DynamoLedger::new(
                dynamo.clone(),
                vars.required(env::CALLS_TABLE)?,
            )),
            days: Arc::clone(&days) as Arc<dyn DayStore>,
            rates: days,
            queue: Arc::new(SqsQueue::new(
                aws_sdk_sqs::Client::new(aws),
                vars.required(env::SYNC_QUEUE_URL)?,
                vars.required(env::DELIVERY_QUEUE_URL)?,
            )),
            objects: Arc::new(S3Objects::from_conf(aws, vars.required(env::BUCKET)?)),
            notifier: Arc::new(WebhookNotifier::with_egress(connectors.egress)),
            // Only the status function starts runs; the others have no function to name.
            launcher: match vars.optional(env::NIGHTLY_FUNCTION) {
                Some(function) => Arc::new(LambdaLauncher::new(
                    aws_sdk_lambda::Client::new(aws),
                    function,
                )),
                None => Arc::new(NoLauncher),
            },
            clock: Arc::new(SystemClock),
            connectors,
            settings: settings(vars)?,
            compiled: CandidateCache::default(),
        })
    }

    /// A stored candidate, checked.
    pub async fn candidate(&self, slug: &CandidateSlug) -> Result<Compiled, CandidateError> {
        let doc = self
            .config
            .get(slug)
            .await?
            .ok_or_else(|| CandidateError::Unknown(slug.clone()))?;
        self.compiled
            .compile(doc, &self.connectors)
            .map_err(|problems| CandidateError::Invalid {
                slug: slug.clone(),
                problems,
            })
    }
}

/// The run's settings the environment changes ([`env::LEDGER_CONCURRENCY`]); the rest are
/// the defaults.
pub fn settings(vars: &env::Vars) -> Result<Settings, env::MissingVar> {
    let mut settings = Settings::default();
    if let Some(value) = vars.optional(env::LEDGER_CONCURRENCY) {
        settings.ledger_concurrency = value
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or(env::MissingVar::Invalid {
                name: env::LEDGER_CONCURRENCY,
                value,
                expected: "a whole number from 1 to 256 (the template's LedgerConcurrency)",
            })?;
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_concurrency_is_read_from_the_environment_or_refused_naming_it() {
        let vars = |v: &str| {
            env::Vars::from_map([(env::LEDGER_CONCURRENCY.to_owned(), v.to_owned())].into())
        };
        let read = |v: &env::Vars| settings(v).map(|s| s.ledger_concurrency).ok();
        assert_eq!(read(&env::Vars::from_map(Default::default())), Some(16));
        assert_eq!(read(&vars("64")), Some(64));
        for bad in ["0", "257", "sixteen", "-4"] {
            let err = settings(&vars(bad)).unwrap_err().to_string();
            assert!(
                err.contains(env::LEDGER_CONCURRENCY) && err.contains("1 to 256"),
                "{err}"
            );
        }
    }
}
