//! What a call is once read from the dialer: the normalised record every later step uses,
//! and the account-number pattern that carries the voter's VAN id.

use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;
use jiff::Timestamp;
use jiff::civil::Date;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::values::DatabaseMode;
use crate::values::{PhoneNumber, ResultKey, ValueError, VanId};

/// The dialer's id for one call (LiveVox `id` / `callId`), kept as text: inline when it is
/// at most 24 bytes long (a dialer's ids are a dozen digits), so a call read costs no
/// allocation for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub CompactString);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One call, normalised. Built only by the call sources (CDR reader, LiveVox API).
///
/// A night holds a batch of these at a time and makes one per row, so what is the call's
/// own text (its account, the contact's names, the agent) shares one buffer ([`CallText`])
/// and what rows repeat (the result, service and campaign) is shared between calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "StoredCall")]
pub struct Call {
    pub call_id: CallId,
    /// The account number, the contact's names and the agent: see the accessors.
    pub text: CallText,
    /// The person's VAN id from the account; `None` when the account carries none (an
    /// empty account number: a list loaded without VAN ids — see the `person_match`
    /// extension).
    pub van_id: Option<VanId>,
    /// The VAN database the account's `system` names (`van` → VoterFile, `myc` →
    /// MyCampaign); `None` when the account names none: the candidate's own mode.
    pub database_mode: Option<DatabaseMode>,
    /// The number dialed; `None` when the source had none or it was not a US number.
    pub phone: Option<PhoneNumber>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub result: ResultKey,
    /// The result exactly as the dialer wrote it, for reports.
    pub result_text: Arc<str>,
    pub service: Option<Arc<str>>,
    pub campaign: Option<Arc<str>>,
    /// The calendar day of `started_at` in the candidate's time zone: the day it belongs to.
    pub local_date: Date,
    /// Where a CDR file holds the call, so a problem found later (a result the mapping
    /// lacks) can point at it. `None` for calls from the LiveVox API, which their call id
    /// and service find, and in records stored without it (not written then).
    pub origin: Option<CdrPosition>,
}

impl Call {
    /// The dialer account number as read, e.g. `ny14-van-18372073`.
    pub fn account(&self) -> &str {
        self.text.account()
    }

    pub fn first_name(&self) -> &str {
        self.text.first_name()
    }

    pub fn last_name(&self) -> &str {
        self.text.last_name()
    }

    /// The agent's login; empty for calls no agent handled.
    pub fn agent(&self) -> &str {
        self.text.agent()
    }
}

/// A call's own text — account number, first name, last name, agent — in one buffer: one
/// allocation a call instead of four. Names are kept out of `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CallText {
    text: Box<str>,
    /// Where the account, the first name and the last name end; the agent is the rest.
    ends: [usize; 3],
}

impl CallText {
    pub fn new(account: &str, first_name: &str, last_name: &str, agent: &str) -> Self {
        let mut text =
            String::with_capacity(account.len() + first_name.len() + last_name.len() + agent.len());
        let mut ends = [0; 3];
        for (end, part) in ends.iter_mut().zip([account, first_name, last_name]) {
            text.push_str(part);
            *end = text.len();
        }
        text.push_str(agent);
        Self {
            text: text.into_boxed_str(),
            ends,
        }
    }

    pub fn account(&self) -> &str {
        &self.text[..self.ends[0]]
    }

    pub fn first_name(&self) -> &str {
        &self.text[self.ends[0]..self.ends[1]]
    }

    pub fn last_name(&self) -> &str {
        &self.text[self.ends[1]..self.ends[2]]
    }

    pub fn agent(&self) -> &str {
        &self.text[self.ends[2]..]
    }
}

impl fmt::Debug for CallText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallText")
            .field("account", &self.account())
            .field("first_name", &"<redacted>")
            .field("last_name", &"<redacted>")
            .field("agent", &self.agent())
            .finish()
    }
}

/// A call as the ledger stores it: every field by name.
#[derive(Serialize)]
struct StoredCallRef<'a> {
    call_id: &'a CallId,
    account: &'a str,
    van_id: Option<VanId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_mode: Option<DatabaseMode>,
    phone: Option<&'a PhoneNumber>,
    first_name: &'a str,
    last_name: &'a str,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    agent: &'a str,
    result: &'a ResultKey,
    result_text: &'a str,
    service: Option<&'a str>,
    campaign: Option<&'a str>,
    local_date: Date,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a CdrPosition>,
}

#[derive(Deserialize)]
struct StoredCall {
    call_id: CallId,
    account: String,
    van_id: Option<VanId>,
    #[serde(default)]
    database_mode: Option<DatabaseMode>,
    phone: Option<PhoneNumber>,
    first_name: String,
    last_name: String,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    agent: String,
    result: ResultKey,
    result_text: String,
    service: Option<String>,
    campaign: Option<String>,
    local_date: Date,
    #[serde(default)]
    origin: Option<CdrPosition>,
}

impl Serialize for Call {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredCallRef {
            call_id: &self.call_id,
            account: self.account(),
            van_id: self.van_id,
            database_mode: self.database_mode,
            phone: self.phone.as_ref(),
            first_name: self.first_name(),
            last_name: self.last_name(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            agent: self.agent(),
            result: &self.result,
            result_text: &self.result_text,
            service: self.service.as_deref(),
            campaign: self.campaign.as_deref(),
            local_date: self.local_date,
            origin: self.origin.as_ref(),
        }
        .serialize(s)
    }
}

impl From<StoredCall> for Call {
    fn from(c: StoredCall) -> Self {
        Self {
            call_id: c.call_id,
            text: CallText::new(&c.account, &c.first_name, &c.last_name, &c.agent),
            van_id: c.van_id,
            database_mode: c.database_mode,
            phone: c.phone,
            started_at: c.started_at,
            ended_at: c.ended_at,
            result: c.result,
            result_text: c.result_text.into(),
            service: c.service.map(Into::into),
            campaign: c.campaign.map(Into::into),
            local_date: c.local_date,
            origin: c.origin,
        }
    }
}

/// A call's place in a CDR file: the file and its physical line. The file's part is shared
/// by every call read from it, so the position costs a call 16 bytes in memory; in the
/// ledger it is stored as `{file, line, result_column}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredPosition", into = "StoredPosition")]
pub struct CdrPosition {
    pub file: Arc<CdrFile>,
    pub line: u64,
}

/// What every call of one CDR file shares: the file's key and the header of its result
/// column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrFile {
    pub key: String,
    pub result_column: String,
}

#[derive(Serialize, Deserialize)]
struct StoredPosition {
    file: String,
    line: u64,
    result_column: String,
}

impl From<StoredPosition> for CdrPosition {
    fn from(p: StoredPosition) -> Self {
        Self {
            file: Arc::new(CdrFile {
                key: p.file,
                result_column: p.result_column,
            }),
            line: p.line,
        }
    }
}

impl From<CdrPosition> for StoredPosition {
    fn from(p: CdrPosition) -> Self {
        Self {
            file: p.file.key.clone(),
            line: p.line,
            result_column: p.file.result_column.clone(),
        }
    }
}

/// How to find the VAN id inside an account number: a regular expression with a named
/// group `van_id`, plus an optional pattern for test accounts that are skipped silently.
/// Two more named groups decide where the call goes: `system` picks the VAN database
/// (`van`, `myv`, `vf`, `voterfile` → VoterFile; `myc`, `mycampaign`, `ea` → MyCampaign),
/// and `district`, when the candidate names its district, must be that district.
#[derive(Debug, Clone)]
pub struct AccountPattern {
    pattern: Regex,
    test_accounts: Option<Regex>,
    district: Option<String>,
    /// The indices of the groups `van_id`, `district` and `system`, found once: by name
    /// they would be looked up again for every account.
    groups: Groups,
    /// Whether the patterns are the defaults, read without the regex engines for ASCII
    /// accounts ([`default_parts`]): a night's every row is matched, and the engines' work
    /// per row was most of a night's reading.
    default_pattern: bool,
    default_test: bool,
}

/// An ASCII account read as [`AccountPattern::DEFAULT`] reads it — `(district, system,
/// van_id)` — or `None` when it does not match; the regex's choices where two readings fit
/// (a first part that could be a district or the system) are the same.
fn default_parts(account: &str) -> Option<(Option<&str>, Option<&str>, &str)> {
    let is_system = |s: &str| {
        s.eq_ignore_ascii_case("van")
            || s.eq_ignore_ascii_case("myv")
            || s.eq_ignore_ascii_case("myc")
    };
    let district = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let state = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // At most four parts, found in one pass over the bytes and held on the stack: this
    // runs for every row of a night. A fifth part matches no form.
    let mut parts = [""; 4];
    let mut n = 0;
    let mut start = 0;
    for (i, b) in account.bytes().enumerate() {
        if b == b'-' {
            if n == 3 {
                return None;
            }
            parts[n] = &account[start..i];
            n += 1;
            start = i + 1;
        }
    }
    parts[n] = &account[start..];
    n += 1;
    match &parts[..n] {
        [id] if digits(id) => Some((None, None, id)),
        [sys, id] if is_system(sys) && digits(id) => Some((None, Some(sys), id)),
        [d, sys, id] if district(d) && is_system(sys) && digits(id) => {
            Some((Some(d), Some(sys), id))
        }
        [sys, st, id] if is_system(sys) && state(st) && digits(id) => Some((None, Some(sys), id)),
        [d, sys, st, id] if district(d) && is_system(sys) && state(st) && digits(id) => {
            Some((Some(d), Some(sys), id))
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
struct Groups {
    van_id: usize,
    district: Option<usize>,
    system: Option<usize>,
}

/// What an account number turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// A voter: the VAN id and, when the account names it, the database it belongs to.
    Voter(VanId, Option<DatabaseMode>),
    /// A test row (matched the test-account pattern): skip it, it is not an error.
    Test,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("account {account:?} does not match the account pattern {pattern}")]
    NoMatch { account: String, pattern: String },
    #[error("account {account:?}: {source}")]
    BadVanId { account: String, source: ValueError },
    #[error(
        "account {account:?} names system {system:?}, which is not a VAN database (van or myc)"
    )]
    UnknownSystem { account: String, system: String },
    #[error(
        "account {account:?} belongs to district {district:?}, not this candidate's {expected:?}"
    )]
    OtherDistrict {
        account: String,
        district: String,
        expected: String,
    },
}

/// The VAN database an account's `system` names.
pub fn system_mode(system: &str) -> Option<DatabaseMode> {
    // Compared without case rather than lowered into a new string: every row names one.
    let system = system.trim();
    let any = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(system));
    if any(&["van", "myv", "vf", "voterfile", "voter_file"]) {
        Some(DatabaseMode::VoterFile)
    } else if any(&["myc", "mycampaign", "my_campaign", "ea"]) {
        Some(DatabaseMode::MyCampaign)
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("is not a valid regular expression: {0}")]
    Syntax(String),
    #[error("needs a named group `van_id`, e.g. ^[a-z]{{2}}\\d{{2}}-(?:van|myc)-(?P<van_id>\\d+)$")]
    NoVanIdGroup,
}

impl AccountPattern {
    /// The conventions campaigns use: `ny14-van-18372073` (district, system, id),
    /// `MYC-NY-18372073` (system, state, id), or a bare id.
    pub const DEFAULT: &'static str = r"^(?:(?:(?P<district>[A-Za-z0-9]+)-)?(?P<system>(?i:van|myv|myc))-(?:[A-Za-z]{2}-)?)?(?P<van_id>\d+)$";
    /// The default before the system decided the database: read as [`Self::DEFAULT`]
    /// (it took `MYC-NY-…`'s state for the system).
    pub const LEGACY_DEFAULT: &'static str =
        r"^(?:(?P<district>[A-Za-z0-9]+)-(?P<system>[A-Za-z]+)-)?(?P<van_id>\d+)$";
    pub const DEFAULT_TEST: &'static str = r"^(?i:test)";

    pub fn new(pattern: &str, test_accounts: Option<&str>) -> Result<Self, PatternError> {
        let pattern = if pattern == Self::LEGACY_DEFAULT {
            Self::DEFAULT
        } else {
            pattern
        };
        let pattern = Regex::new(pattern).map_err(|e| PatternError::Syntax(e.to_string()))?;
        let group = |name: &str| pattern.capture_names().position(|n| n == Some(name));
        let groups = Groups {
            van_id: group("van_id").ok_or(PatternError::NoVanIdGroup)?,
            district: group("district"),
            system: group("system"),
        };
        let test_accounts = test_accounts
            .map(Regex::new)
            .transpose()
            .map_err(|e| PatternError::Syntax(e.to_string()))?;
        Ok(Self {
            default_pattern: pattern.as_str() == Self::DEFAULT,
            default_test: test_accounts
                .as_ref()
                .is_some_and(|t| t.as_str() == Self::DEFAULT_TEST),
            pattern,
            test_accounts,
            district: None,
            groups,
        })
    }

    /// Accounts that name a district must name this one (compared without case).
    pub fn with_district(mut self, district: Option<&str>) -> Self {
        self.district = district.map(|d| d.trim().to_ascii_lowercase());
        self
    }

    pub fn parse(&self, account: &str) -> Result<Account, AccountError> {
        let account = crate::values::trim(account);
        // Unicode case folding and digits are the engines' to judge: the shortcuts read
        // ASCII only.
        let ascii = account.is_ascii();
        let test = if self.default_test && ascii {
            account
                .as_bytes()
                .get(..4)
                .is_some_and(|b| b.eq_ignore_ascii_case(b"test"))
        } else {
            self.test_accounts
                .as_ref()
                .is_some_and(|t| t.is_match(account))
        };
        if test {
            return Ok(Account::Test);
        }
        let no_match = || AccountError::NoMatch {
            account: account.to_owned(),
            pattern: self.pattern.as_str().to_owned(),
        };
        let (district, system, raw) = if self.default_pattern && ascii {
            default_parts(account).ok_or_else(no_match)?
        } else {
            let caps = self.pattern.captures(account).ok_or_else(no_match)?;
            let group = |i: Option<usize>| i.and_then(|i| caps.get(i)).map(|m| m.as_str());
            (
                group(self.groups.district),
                group(self.groups.system),
                group(Some(self.groups.van_id)).unwrap_or(""),
            )
        };
        self.voter(account, district, system, raw)
    }

    /// The account's VAN id and database from the parts the pattern found.
    fn voter(
        &self,
        account: &str,
        district: Option<&str>,
        system: Option<&str>,
        raw: &str,
    ) -> Result<Account, AccountError> {
        let van_id = raw
            .parse::<VanId>()
            .map_err(|source| AccountError::BadVanId {
                account: account.to_owned(),
                source,
            })?;
        if let (Some(expected), Some(district)) = (&self.district, district)
            && !district.eq_ignore_ascii_case(expected)
        {
            return Err(AccountError::OtherDistrict {
                account: account.to_owned(),
                district: district.to_owned(),
                expected: expected.clone(),
            });
        }
        let mode = match system {
            None => None,
            Some(system) => {
                Some(
                    system_mode(system).ok_or_else(|| AccountError::UnknownSystem {
                        account: account.to_owned(),
                        system: system.to_owned(),
                    })?,
                )
            }
        };
        Ok(Account::Voter(van_id, mode))
    }
}

impl Default for AccountPattern {
    fn default() -> Self {
        Self::new(Self::DEFAULT, Some(Self::DEFAULT_TEST)).expect("the default pattern is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's text shares one buffer, and the ledger still stores (and reads back)
    /// every field by its own name: records written before read as they always did.
    #[test]
    fn a_call_is_stored_field_by_field_and_read_back_whole() {
        #![allow(clippy::unwrap_used)]
        let stored = serde_json::json!({
            "call_id": "101312525040",
            "account": "ny14-van-18372073",
            "van_id": 18372073,
            "phone": "2125550143",
            "first_name": "José, \"Pepe\"",
            "last_name": "",
            "started_at": "2026-11-21T23:04:11Z",
            "ended_at": null,
            "agent": "jdoe",
            "result": "agent cust 1",
            "result_text": "Agent Cust 1 (167)",
            "service": null,
            "campaign": "88",
            "local_date": "2026-11-21"
        });
        let call: Call = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(call.account(), "ny14-van-18372073");
        assert_eq!(call.first_name(), "José, \"Pepe\"");
        assert_eq!(call.last_name(), "");
        assert_eq!(call.agent(), "jdoe");
        assert_eq!(call.campaign.as_deref(), Some("88"));
        assert_eq!(serde_json::to_value(&call).unwrap(), stored);
        let debug = format!("{call:?}");
        assert!(
            !debug.contains("José") && !debug.contains("2125550143"),
            "{debug}"
        );
    }

    /// The shortcut and the regex engines read every ASCII account alike: accounts made of
    /// the pieces campaigns write, shuffled (a seeded run of 200,000).
    #[test]
    fn the_default_patterns_shortcut_reads_every_account_as_the_regex_does() {
        let fast = AccountPattern::default().with_district(Some("ny14"));
        let mut slow = AccountPattern::default().with_district(Some("ny14"));
        slow.default_pattern = false;
        slow.default_test = false;
        let pieces = [
            "ny14",
            "NY14",
            "ny15",
            "van",
            "VAN",
            "Van",
            "myv",
            "myc",
            "MYC",
            "vf",
            "ea",
            "ny",
            "NY",
            "n",
            "nyc",
            "18372073",
            "0",
            "00",
            "123",
            "99999999999999999999",
            "test",
            "TEST",
            "Tes",
            "",
            " ",
            "x1",
            "1x",
            "-",
            "--",
            "é",
            "٣",
        ];
        let mut rng = fastrand::Rng::with_seed(20261207);
        let mut seen = [0u32; 4];
        for _ in 0..200_000 {
            let pick = |rng: &mut fastrand::Rng| pieces[rng.usize(..pieces.len())];
            let account = if rng.bool() {
                // Shaped as campaigns write them: [district-]system-[state-]id, any piece
                // in any place.
                let mut parts = Vec::new();
                if rng.bool() {
                    parts.push(pick(&mut rng));
                }
                parts.push(["van", "MYC", "myv", "vf", pick(&mut rng)][rng.usize(..5)]);
                if rng.bool() {
                    parts.push(["NY", "ny", "n", pick(&mut rng)][rng.usize(..4)]);
                }
                parts.push(["18372073", "0", pick(&mut rng)][rng.usize(..3)]);
                parts.join("-")
            } else {
                let n = rng.usize(1..=5);
                let account: Vec<&str> = (0..n).map(|_| pick(&mut rng)).collect();
                account.join(["-", "", " "][rng.usize(..3)])
            };
            let read = fast.parse(&account);
            assert_eq!(read, slow.parse(&account), "{account:?}");
            seen[match read {
                Ok(Account::Voter(_, Some(_))) => 0,
                Ok(Account::Voter(_, None)) | Ok(Account::Test) => 1,
                Err(AccountError::NoMatch { .. }) => 2,
                Err(_) => 3,
            }] += 1;
        }
        // Every way an account reads came up, many times over.
        assert!(seen.iter().all(|n| *n > 1_000), "{seen:?}");
    }

    #[test]
    fn default_pattern_reads_the_usual_conventions() {
        let p = AccountPattern::default();
        let voter = |n, mode| Ok(Account::Voter(VanId::new(n).unwrap(), mode));
        let vf = Some(DatabaseMode::VoterFile);
        assert_eq!(p.parse("ny14-van-18372073"), voter(18372073, vf));
        assert_eq!(p.parse("MYV-NY-18372073"), voter(18372073, vf));
        assert_eq!(p.parse(" 18372073 "), voter(18372073, None));
        assert_eq!(p.parse("TEST123456"), Ok(Account::Test));
        assert!(matches!(
            p.parse("ny14-van-"),
            Err(AccountError::NoMatch { .. })
        ));
        assert!(matches!(
            p.parse("ny14-van-0"),
            Err(AccountError::BadVanId { .. })
        ));
    }

    #[test]
    fn the_accounts_system_picks_the_database_and_its_district_must_be_ours() {
        let p = AccountPattern::default().with_district(Some("NY14"));
        let voter = |n, mode| Ok(Account::Voter(VanId::new(n).unwrap(), Some(mode)));
        assert_eq!(
            p.parse("ny14-myc-18372073"),
            voter(18372073, DatabaseMode::MyCampaign)
        );
        assert_eq!(
            p.parse("NY14-VAN-18372073"),
            voter(18372073, DatabaseMode::VoterFile)
        );
        assert_eq!(
            p.parse("MYC-NY-18372073"),
            voter(18372073, DatabaseMode::MyCampaign),
            "system-state-id names no district"
        );
        assert!(matches!(
            p.parse("ca12-van-18372073"),
            Err(AccountError::OtherDistrict { .. })
        ));
        assert!(matches!(
            p.parse("ny14-xyz-18372073"),
            Err(AccountError::NoMatch { .. })
        ));
        // A custom pattern may name any system; one that is not a database is refused.
        let custom = AccountPattern::new(r"^(?P<system>[a-z]+):(?P<van_id>\d+)$", None).unwrap();
        assert!(matches!(
            custom.parse("csv:12"),
            Err(AccountError::UnknownSystem { .. })
        ));
        // Without a district of its own, a candidate takes every district.
        assert!(AccountPattern::default().parse("ca12-van-1").is_ok());
        // Documents stored with the old default read `MYC-NY-…` by the new one.
        let legacy = AccountPattern::new(AccountPattern::LEGACY_DEFAULT, None).unwrap();
        assert_eq!(
            legacy.parse("MYC-NY-18372073"),
            voter(18372073, DatabaseMode::MyCampaign)
        );
    }

    #[test]
    fn a_pattern_without_van_id_is_refused() {
        assert_eq!(
            AccountPattern::new(r"^(\d+)$", None).unwrap_err(),
            PatternError::NoVanIdGroup
        );
        assert!(matches!(
            AccountPattern::new(r"^(?P<van_id>\d+", None),
            Err(PatternError::Syntax(_))
        ));
    }
}
