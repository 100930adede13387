//! Typed values parsed once at the edge: slugs, VAN ids, phone numbers, result keys.
//!
//! Past these constructors nothing re-checks: a `VanId` is a positive number, a
//! `PhoneNumber` is ten NANP digits, a `ResultKey` is already normalised.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a raw string is not a valid value; `Display` says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "{0:?} is not a valid candidate slug: use 1-64 lower-case letters, digits and '-', starting with a letter or digit"
    )]
    Slug(String),
    #[error("{0:?} is not a VAN id: expected a positive whole number such as 18372073")]
    VanId(String),
    #[error(
        "{masked} is not a US phone number: expected 10 digits, or 11 starting with 1 (punctuation is ignored)"
    )]
    Phone { masked: String },
    #[error("result text is empty")]
    EmptyResult,
}

/// A candidate's slug: the key of its document and the prefix of its files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CandidateSlug(String);

impl CandidateSlug {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && raw
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::Slug(raw.to_owned()))
        }
    }

    /// The original app's rule for turning a reference name into a slug:
    /// lower-case, spaces become '-'.
    pub fn from_reference_name(name: &str) -> Result<Self, ValueError> {
        Self::parse(&name.trim().to_lowercase().replace(' ', "-"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CandidateSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` without surrounding whitespace (Unicode's: a spreadsheet's no-break space too),
/// without looking further when it starts and ends with a visible ASCII character, as
/// nearly every field of a night's rows does.
pub fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// A person's id in VAN (`vanId`): always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct VanId(u64);

impl VanId {
    pub fn new(id: u64) -> Result<Self, ValueError> {
        if id == 0 {
            Err(ValueError::VanId("0".into()))
        } else {
            Ok(Self(id))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for VanId {
    type Error = ValueError;
    fn try_from(id: u64) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl From<VanId> for u64 {
    fn from(id: VanId) -> u64 {
        id.0
    }
}

impl FromStr for VanId {
    type Err = ValueError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        // Digits only (no sign, unlike `u64`'s parser), read in one pass: every row of a
        // night has one.
        let digits = trim(raw).as_bytes();
        let id = match digits {
            [] => None,
            _ => digits.iter().try_fold(0u64, |n, &b| {
                if !b.is_ascii_digit() {
                    return None;
                }
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            }),
        };
        id.and_then(|n| Self::new(n).ok())
            .ok_or_else(|| ValueError::VanId(raw.to_owned()))
    }
}

impl fmt::Display for VanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A dialed US phone number, held as its ten national digits.
///
/// `Display` masks all but the last four digits so a number can be logged; use
/// [`PhoneNumber::digits`] where the full number is needed (VAN requests, CSV exports).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber([u8; 10]);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        // Read into a fixed buffer: every row of a night has a number, and none needs a
        // string of its own.
        let mut digits = [0u8; 11];
        let mut len = 0usize;
        for b in raw.bytes().filter(u8::is_ascii_digit) {
            if len < digits.len() {
                digits[len] = b;
            }
            len += 1;
        }
        let national = match len {
            10 => &digits[..10],
            11 if digits[0] == b'1' => &digits[1..],
            _ => {
                let all: String = raw.chars().filter(char::is_ascii_digit).collect();
                return Err(ValueError::Phone { masked: mask(&all) });
            }
        };
        let mut number = [0u8; 10];
        number.copy_from_slice(national);
        Ok(Self(number))
    }

    /// The ten national digits, e.g. `2125550143`.
    pub fn digits(&self) -> &str {
        // ASCII digits only, by construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The country dialing prefix VAN expects beside the number.
    pub fn dialing_prefix(&self) -> &'static str {
        "1"
    }
}

fn mask(digits: &str) -> String {
    let keep = digits.len().min(4);
    let (hidden, shown) = digits.split_at(digits.len() - keep);
    format!("{}{}", "*".repeat(hidden.len()), shown)
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "***-***-{}", &self.digits()[6..])
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({self})")
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.digits())
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A dialer result, normalised the way the result mapping is keyed, so that every spelling
/// one export or another gives a disposition finds the same row.
///
/// The rule, in order:
/// 1. A trailing `(…)` is dropped when it is a disposition code: it holds no letters
///    (`Agent Cust 12 (345)`, `Busy (#7)`), or the result is an agent disposition (its
///    first word is `agent`), as the original app did (`Agent Cust 1 (SS)`). A trailing
///    `(…)` with words in it is part of a system result and is kept:
///    `Answering Machine (Hung Up)` and `Answering Machine (Left Message)` stay different.
/// 2. Lower case (Unicode: `RÉPONSE` → `réponse`).
/// 3. Apostrophes (`'`, `’`) are dropped (`Don't Call` = `Dont Call`); every other
///    character that is not a letter, a digit or a combining accent separates words, so
///    `-`, `.`, `,`, `/`, `#`, `&`, `_` and brackets never matter.
/// 4. Words are joined by single spaces.
///
/// So `AGENT - CUST 12`, `Agent Cust 12 (345)` and `agent.cust.12` are all `agent cust 12`;
/// `Answering Machine (Hung Up)` is `answering machine hung up`. `#` is punctuation, not
/// the word "number": `Wrong #` (`wrong`) and `Wrong Number` are different results.
/// Accented letters are kept as they are (`Réponse` ≠ `Reponse`). The rule is idempotent:
/// a key normalises to itself.
// Shared, not copied: every call of a night holds the key of its result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultKey(std::sync::Arc<str>);

impl ResultKey {
    pub fn normalise(raw: &str) -> Result<Self, ValueError> {
        let text = drop_code(raw.trim());
        let mut key = String::with_capacity(text.len());
        let mut gap = false;
        for c in text.chars().flat_map(char::to_lowercase) {
            if c == '\'' || c == '\u{2019}' {
                continue;
            }
            if c.is_alphanumeric() || is_combining_mark(c) {
                if gap && !key.is_empty() {
                    key.push(' ');
                }
                gap = false;
                key.push(c);
            } else {
                gap = true;
            }
        }
        if key.is_empty() {
            Err(ValueError::EmptyResult)
        } else {
            Ok(Self(key.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` without a trailing `(…)` that is a disposition code (see [`ResultKey`]); text
/// that would be left without a word keeps it.
fn drop_code(text: &str) -> &str {
    let Some(inner) = text.strip_suffix(')') else {
        return text;
    };
    let Some(open) = inner.rfind('(') else {
        return text;
    };
    let (head, code) = (inner[..open].trim_end(), &inner[open + 1..]);
    let agent = head
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .is_some_and(|w| w.eq_ignore_ascii_case("agent"));
    let is_code = agent || !code.chars().any(char::is_alphabetic);
    if is_code && head.chars().any(char::is_alphanumeric) {
        head
    } else {
        text
    }
}

/// Combining accents (`e` + U+0301 is how some systems write `é`) belong to the letter
/// before them; they are not punctuation.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

impl fmt::Display for ResultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_serde {
    ($ty:ty, $parse:path) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(CandidateSlug, CandidateSlug::parse);
string_serde!(ResultKey, ResultKey::normalise);

/// SHA-256 of `bytes`, as lowercase hex: the fingerprints receipts and file ids carry.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The VAN database a call and a key belong to; it becomes the `|0` / `|1` suffix of the Basic password.
/// A key normally works in one mode only, and the wrong one answers 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseMode {
    /// "My Voters".
    VoterFile,
    /// MyCampaign, also EveryAction and MyMembers.
    MyCampaign,
}

impl DatabaseMode {
    pub fn as_password_suffix(self) -> u8 {
        match self {
            Self::VoterFile => 0,
            Self::MyCampaign => 1,
        }
    }

    /// The name the candidate document uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VoterFile => "voter_file",
            Self::MyCampaign => "my_campaign",
        }
    }
}

impl std::fmt::Display for DatabaseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_result_is_one_key() {
        for (raw, want) in [
            // One agent disposition as different exports write it.
            ("AGENT - CUST 12", "agent cust 12"),
            ("Agent Cust 12 (345)", "agent cust 12"),
            ("agent cust 12", "agent cust 12"),
            ("  Agent   Cust\t12  ( 345 ) ", "agent cust 12"),
            ("Agent_Cust_12", "agent cust 12"),
            ("agent.cust.12", "agent cust 12"),
            ("Agent Cust 1 (167)", "agent cust 1"),
            ("Agent Cust 1 (SS)", "agent cust 1"),
            ("AGENT - CUST RPC 3", "agent cust rpc 3"),
            ("Agent Cust RPC 3 (12)", "agent cust rpc 3"),
            // A trailing code on a system result goes too.
            ("Busy (#7)", "busy"),
            ("No Answer (12)", "no answer"),
            // Words in the parenthesis are part of a system result.
            ("Answering Machine (Hung Up)", "answering machine hung up"),
            ("ANSWERING MACHINE - HUNG UP", "answering machine hung up"),
            (
                "Answering Machine (Left Message)",
                "answering machine left message",
            ),
            ("Busy (Not Made)", "busy not made"),
            ("No Answer", "no answer"),
            ("No-Answer", "no answer"),
            ("Don't Call", "dont call"),
            ("Don\u{2019}t call", "dont call"),
            // Accents survive, composed or combining, in any case.
            ("Réponse", "réponse"),
            ("RÉPONSE (12)", "réponse"),
            ("Re\u{301}ponse", "re\u{301}ponse"),
            ("Número equivocado", "número equivocado"),
            // `#` is punctuation, not the word "number".
            ("Wrong #", "wrong"),
            ("Wrong Number", "wrong number"),
            ("Wrong # (20)", "wrong"),
            // A code alone is the result, not something to drop.
            ("(167)", "167"),
            ("Fax", "fax"),
        ] {
            let key = ResultKey::normalise(raw).unwrap();
            assert_eq!(key.as_str(), want, "{raw:?}");
            assert_eq!(
                ResultKey::normalise(key.as_str()).unwrap(),
                key,
                "a key normalises to itself: {raw:?}"
            );
        }
        for (a, b) in [
            (
                "Answering Machine (Hung Up)",
                "Answering Machine (Left Message)",
            ),
            ("Answering Machine (Hung Up)", "Answering Machine"),
            ("Wrong #", "Wrong Number"),
            ("Agent Cust 1", "Agent Cust 12"),
            ("Réponse", "Reponse"),
        ] {
            assert_ne!(
                ResultKey::normalise(a).unwrap(),
                ResultKey::normalise(b).unwrap(),
                "{a:?} vs {b:?}"
            );
        }
        for empty in ["", "   ", "()", " - ", "''"] {
            assert_eq!(
                ResultKey::normalise(empty),
                Err(ValueError::EmptyResult),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn phone_numbers_keep_ten_digits_and_log_masked() {
        let p = PhoneNumber::parse("+1 (212) 555-0143").unwrap();
        assert_eq!(p.digits(), "2125550143");
        assert_eq!(p.to_string(), "***-***-0143");
        assert_eq!(format!("{p:?}"), "PhoneNumber(***-***-0143)");
        assert_eq!(PhoneNumber::parse("212.555.0143").unwrap(), p);
        let err = PhoneNumber::parse("55501").unwrap_err().to_string();
        assert!(err.contains("*5501"), "{err}");
        assert!(
            !err.contains("55501"),
            "the error must not echo the number: {err}"
        );
        assert!(PhoneNumber::parse("22125550143").is_err());
    }

    #[test]
    fn van_ids_are_positive_integers() {
        assert_eq!("18372073".parse::<VanId>().unwrap().get(), 18372073);
        assert!("0".parse::<VanId>().is_err());
        assert!("12a".parse::<VanId>().is_err());
        assert!("-5".parse::<VanId>().is_err());
        assert!(
            "+5".parse::<VanId>().is_err(),
            "no sign, which u64's parser takes"
        );
        assert!("".parse::<VanId>().is_err());
        assert!("18446744073709551616".parse::<VanId>().is_err(), "past u64");
        assert_eq!(
            "\u{a0}42 ".parse::<VanId>().unwrap().get(),
            42,
            "a spreadsheet's no-break space around it"
        );
        assert_eq!(
            "18446744073709551615".parse::<VanId>().unwrap().get(),
            u64::MAX
        );
        assert!(serde_json::from_str::<VanId>("0").is_err());
    }

    #[test]
    fn slugs() {
        assert_eq!(
            CandidateSlug::from_reference_name("NY14 Smith")
                .unwrap()
                .as_str(),
            "ny14-smith"
        );
        assert!(CandidateSlug::parse("Bad Slug").is_err());
        assert!(CandidateSlug::parse("-x").is_err());
        assert!(CandidateSlug::parse("").is_err());
    }
}
