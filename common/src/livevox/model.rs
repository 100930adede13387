//! The JSON shapes the LiveVox API sends and accepts, and the reading of its epoch
//! millisecond timestamps (numbers or strings of digits).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::normalise::{FieldNames, RawCall, RawTime, RowOrigin, mask_digits};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCenter {
    pub call_center_id: u64,
    #[serde(default)]
    pub name: String,
}

/// A calling program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_id: u64,
    #[serde(default)]
    pub name: String,
}

/// An agent disposition defined on a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TermCode {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    /// The service it belongs to; filled in from the request when LiveVox leaves it out.
    #[serde(default)]
    pub service_id: u64,
    #[serde(default)]
    pub term_category_id: Option<u64>,
    #[serde(default)]
    pub lv_result_id: Option<u64>,
    #[serde(default)]
    pub report_order: Option<i64>,
}

/// One call from the reporting API. **[guess]**: LiveVox does not publish a per-call
/// history method; these field names are the reconstruction the client's
/// `CallDetailSource` impl relies on. Every field is optional here so a row missing one
/// becomes that row's error in [`normalise`](super::normalise()), not a failed page.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallDetail {
    #[serde(with = "lenient_text")]
    pub call_id: Option<String>,
    #[serde(with = "lenient_text")]
    pub account: Option<String>,
    #[serde(with = "lenient_text")]
    pub first_name: Option<String>,
    #[serde(with = "lenient_text")]
    pub last_name: Option<String>,
    #[serde(with = "lenient_text")]
    pub phone_dialed: Option<String>,
    #[serde(with = "epoch_millis::option")]
    pub start: Option<Timestamp>,
    #[serde(with = "epoch_millis::option")]
    pub end: Option<Timestamp>,
    #[serde(with = "lenient_text")]
    pub agent_login: Option<String>,
    #[serde(with = "lenient_text")]
    pub term_code_id: Option<String>,
    #[serde(with = "lenient_text")]
    pub result: Option<String>,
    #[serde(with = "lenient_text")]
    pub service_id: Option<String>,
    #[serde(with = "lenient_text")]
    pub campaign_id: Option<String>,
}

/// Where API rows say they came from in row errors.
pub const CALL_DETAIL_SOURCE: &str = "LiveVox API POST /reporting/callDetail";

static CALL_DETAIL_FIELDS: LazyLock<FieldNames> = LazyLock::new(|| FieldNames {
    call_id: "callId".into(),
    account: "account".into(),
    phone: "phoneDialed".into(),
    start: "start".into(),
    result: "result".into(),
});

impl CallDetail {
    /// The row as raw input to [`normalise`](super::normalise()); `index` is its 0-based
    /// position in the list, reported as "line" `index + 1`.
    pub fn to_raw(&self, index: u64) -> RawCall<'_> {
        fn text(v: &Option<String>) -> Cow<'_, str> {
            Cow::Borrowed(v.as_deref().unwrap_or_default())
        }
        RawCall {
            origin: RowOrigin {
                file: CALL_DETAIL_SOURCE.into(),
                line: index + 1,
            },
            position: None,
            fields: &CALL_DETAIL_FIELDS,
            call_id: text(&self.call_id),
            account: text(&self.account),
            first_name: text(&self.first_name),
            last_name: text(&self.last_name),
            phone: text(&self.phone_dialed),
            start: self.start.map(RawTime::Instant),
            end: self.end.map(RawTime::Instant),
            agent: text(&self.agent_login),
            result: text(&self.result),
            service: self.service_id.as_deref().map(Into::into),
            campaign: self.campaign_id.as_deref().map(Into::into),
        }
    }
}

impl fmt::Debug for CallDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallDetail")
            .field("call_id", &self.call_id)
            .field("account", &self.account)
            .field("first_name", &"<redacted>")
            .field("last_name", &"<redacted>")
            .field(
                "phone_dialed",
                &self.phone_dialed.as_deref().map(mask_digits),
            )
            .field("start", &self.start)
            .field("end", &self.end)
            .field("agent_login", &self.agent_login)
            .field("term_code_id", &self.term_code_id)
            .field("result", &self.result)
            .field("service_id", &self.service_id)
            .field("campaign_id", &self.campaign_id)
            .finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginRequest<'a> {
    pub client_name: &'a str,
    pub user_name: &'a str,
    pub password: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginResponse {
    pub session_id: String,
    #[serde(default)]
    pub days_until_password_expires: Option<i64>,
}

/// LiveVox's error envelope.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Epoch milliseconds (GMT), written by LiveVox as a JSON number or a string of digits.
pub mod epoch_millis {
    use jiff::Timestamp;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(ts.as_millisecond())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        d.deserialize_any(Millis)?
            .ok_or_else(|| de::Error::custom("expected epoch milliseconds, found nothing"))
    }

    /// The same, for a field that may be absent, `null` or `""`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.serialize_i64(ts.as_millisecond()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            d.deserialize_any(Millis)
        }
    }

    struct Millis;

    fn from_ms<E: de::Error>(ms: i64) -> Result<Option<Timestamp>, E> {
        Timestamp::from_millisecond(ms)
            .map(Some)
            .map_err(|e| E::custom(format!("{ms} is not a usable epoch millisecond time: {e}")))
    }

    impl<'de> Visitor<'de> for Millis {
        type Value = Option<Timestamp>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("epoch milliseconds as a number or a string of digits")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            from_ms(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            from_ms(
                i64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is too large for epoch milliseconds")))?,
            )
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                from_ms(v as i64)
            } else {
                Err(E::custom(format!(
                    "{v} is not a whole number of milliseconds"
                )))
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!(
                    "{v:?} is not epoch milliseconds (digits only)"
                )));
            }
            let ms = v
                .parse::<i64>()
                .map_err(|_| E::custom(format!("{v:?} is too large for epoch milliseconds")))?;
            from_ms(ms)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
}

/// Text that LiveVox may send as a string, a number or `null` (ids especially).
mod lenient_text {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Text)
    }

    struct Text;

    impl<'de> Visitor<'de> for Text {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, a number or null")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jiff::tz::TimeZone;

    use super::*;
    use crate::call::AccountPattern;
    use crate::livevox::{RowOutcome, normalise};

    #[derive(Deserialize)]
    struct At {
        #[serde(with = "epoch_millis")]
        at: Timestamp,
    }

    #[test]
    fn epoch_millis_read_as_numbers_or_strings_of_digits() {
        let want = Timestamp::from_millisecond(1_763_766_245_000).unwrap();
        for json in [
            r#"{"at":1763766245000}"#,
            r#"{"at":"1763766245000"}"#,
            r#"{"at":" 1763766245000 "}"#,
        ] {
            assert_eq!(serde_json::from_str::<At>(json).unwrap().at, want, "{json}");
        }
        for json in [
            r#"{"at":"2025-11-21T23:04:05Z"}"#,
            r#"{"at":"-5"}"#,
            r#"{"at":1.5}"#,
            r#"{"at":null}"#,
            r#"{"at":true}"#,
        ] {
            assert!(
                serde_json::from_str::<At>(json).is_err(),
                "{json} should be refused"
            );
        }
    }

    #[test]
    fn optional_epoch_millis_may_be_absent_null_or_blank() {
        let d: CallDetail =
            serde_json::from_str(r#"{"start":"1763766245000","end":null}"#).unwrap();
        assert_eq!(d.start.unwrap().as_millisecond(), 1_763_766_245_000);
        assert_eq!(d.end, None);
        let d: CallDetail = serde_json::from_str(r#"{"start":1763766245000,"end":""}"#).unwrap();
        assert_eq!(d.start.unwrap().as_millisecond(), 1_763_766_245_000);
        assert_eq!(d.end, None);
        assert_eq!(
            serde_json::from_str::<CallDetail>("{}").unwrap().start,
            None
        );
    }

    #[test]
    fn call_detail_ids_may_be_numbers_or_text() {
        let d: CallDetail = serde_json::from_str(
            r#"{"callId":101312525040,"serviceId":"7","campaignId":88,"agentLogin":null}"#,
        )
        .unwrap();
        assert_eq!(d.call_id.as_deref(), Some("101312525040"));
        assert_eq!(d.service_id.as_deref(), Some("7"));
        assert_eq!(d.campaign_id.as_deref(), Some("88"));
        assert_eq!(d.agent_login, None);
        let raw = d.to_raw(4);
        assert_eq!(
            (raw.origin.line, raw.fields.call_id.as_str()),
            (5, "callId")
        );
    }

    #[test]
    fn an_api_row_without_a_start_is_a_bad_row_naming_the_json_field() {
        let d: CallDetail =
            serde_json::from_str(r#"{"callId":1,"account":"ny14-van-5","result":"Busy"}"#).unwrap();
        let outcome = normalise(d.to_raw(0), &AccountPattern::default(), &TimeZone::UTC);
        let RowOutcome::Bad(err) = outcome else {
            panic!("expected a bad row, got {outcome:?}")
        };
        assert_eq!((err.file.as_str(), err.line), (CALL_DETAIL_SOURCE, 1));
        assert_eq!(err.column, "start");
    }

    #[test]
    fn call_detail_debug_hides_names_and_phone() {
        let d = CallDetail {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            phone_dialed: Some("2125550143".into()),
            ..CallDetail::default()
        };
        let text = format!("{d:?}");
        assert!(
            !text.contains("Ada") && !text.contains("Lovelace") && !text.contains("555"),
            "{text}"
        );
    }
}
