//! The platform's pure domain: value types parsed once at the edge (phone, name, money,
//! dates), the [`Aggregate`] trait every slice's aggregates implement, and given/when/then
//! for their tests ([`testing`]). The aggregates themselves live in their slices
//! (`flows/<flow>/`) and shared contexts (`contexts/`). No I/O here.

pub mod testing;

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An aggregate of a bounded context: the state one command decides on, alone, under its
/// version. `decide` turns a command into events without changing anything; `apply` folds
/// one event into the state. Both are pure; `app::command` loads, stages and commits.
pub trait Aggregate: Serialize + DeserializeOwned + Clone + Send + Sync + Sized + 'static {
    /// The bounded context: its table and its events' source (`clinicflow.<context>`).
    const CONTEXT: &'static str;
    /// What may be asked of it.
    type Command;
    /// What happens to it: an adjacently tagged enum (`{"type", "data"}`).
    type Event: Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync;
    /// Why a command is refused.
    type Error: Into<DomainError> + fmt::Debug + PartialEq;

    /// Decides what `command` does to `state` (`None`: the aggregate does not exist yet).
    /// A command whose effect already holds decides nothing.
    fn decide(state: Option<&Self>, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state; `id` is the aggregate's id.
    fn apply(state: Option<Self>, id: &str, event: &Self::Event) -> Option<Self>;
}

/// Who to tell about a case, and in which language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    /// The person's name.
    pub name: PersonName,
    /// The person's phone, E.164.
    pub phone: PhoneNumber,
    /// SMS language.
    pub locale: Locale,
}

/// The short reference a person can quote on the phone: the last 8 characters of the id.
pub fn short_ref(id: &str) -> &str {
    let start = id.char_indices().rev().nth(7).map_or(0, |(i, _)| i);
    &id[start..]
}

/// A field of a command that failed validation, named as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    description = "One field at fault, named as the client sent it: a body field (an unknown one too, even the empty key \
                        `\"\"`), a query parameter, `Idempotency-Key`, or `body` for the body as a whole."
)]
pub struct FieldError {
    /// JSON name of the field (`phone`, `date`, …).
    pub field: String,
    /// Why the value was refused, in words a client developer can act on.
    #[schema(min_length = 1)]
    pub detail: String,
}

impl FieldError {
    /// A refusal of `field` for `detail`.
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// What a command can be refused for by the domain itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// One or more fields are invalid (HTTP 422).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The command does not apply to the aggregate's current state (HTTP 409).
    #[error("{0}")]
    IllegalTransition(String),
    /// The aggregate does not exist (HTTP 404).
    #[error("not found")]
    NotFound,
}

/// An amount in Korean won (KRW), a whole number: money is never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
#[derive(utoipa::ToSchema)]
pub struct Won(pub u64);

impl fmt::Display for Won {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        write!(f, "₩{out}")
    }
}

/// A mobile phone number, normalized to E.164 (`+821012345678`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// The wire form of a [`PhoneNumber`]: E.164.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{6,14}$";

impl schemars::JsonSchema for PhoneNumber {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PhoneNumber".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::events::schema::string_schema(
            Some(E164_PATTERN),
            None,
            None,
            "A mobile number, E.164 (`+821012345678`). Personal data: never logged unmasked.",
        )
    }
}

impl PhoneNumber {
    /// Parses a Korean mobile number (`010-1234-5678`, `+82 10 1234 5678`) into E.164, or
    /// takes a foreign E.164 number (`+` and 8 to 15 digits) as it is. Every number here
    /// receives SMS, so Korean landlines (`02-…`, `031-…`) are refused.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let refuse = || FieldError::new("phone", "must be a mobile number such as 010-1234-5678 or +821012345678");
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 32 {
            return Err(refuse());
        }
        let separator = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')');
        let (international, rest) = match raw.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if !rest.chars().all(|c| c.is_ascii_digit() || separator(c)) {
            return Err(refuse());
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        let national = match (international, digits.strip_prefix("82")) {
            (true, Some(korean)) => format!("0{}", korean.strip_prefix('0').unwrap_or(korean)),
            (true, None) => {
                return Self::try_from(format!("+{digits}")).map_err(|_| refuse());
            }
            (false, _) => digits,
        };
        // Korean mobile prefixes: 010 (8 digits after it), and the legacy 011, 016-019 (7 or 8).
        let mobile = match national.get(..3) {
            Some("010") => national.len() == 11,
            Some("011" | "016" | "017" | "018" | "019") => matches!(national.len(), 10 | 11),
            _ => false,
        };
        if !mobile || national[3..].starts_with('0') {
            return Err(refuse());
        }
        Ok(Self(format!("+82{}", &national[1..])))
    }

    /// The E.164 form, for the SMS provider only.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: country code and last two digits (`+82********78`).
    pub fn masked(&self) -> String {
        mask_digits(&self.0)
    }
}

fn mask_digits(s: &str) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < 3 || i + 2 >= n { c } else { '*' })
        .collect()
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Reading a number back (from an event, a table): it was parsed against the numbering plan
/// when it entered, so here it is only held to the E.164 shape (`+`, then 8 to 15 digits,
/// the first not 0). Only the booking function carries the numbering plan's metadata.
impl TryFrom<String> for PhoneNumber {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let digits = value.strip_prefix('+').unwrap_or_default();
        let e164 = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if e164 {
            Ok(Self(value))
        } else {
            Err("must be an E.164 phone number such as +821012345678".into())
        }
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

/// Parses the wire name of an enum (as `strum` derives it, the same as serde's), refusing
/// with `field` and every accepted name.
pub fn parse_wire<T: std::str::FromStr + strum::VariantNames>(field: &str, raw: &str) -> Result<T, FieldError> {
    raw.parse().map_err(|_| {
        let names: Vec<String> = T::VARIANTS.iter().map(|v| format!("\"{v}\"")).collect();
        FieldError::new(field, format!("must be one of {}", names.join(", ")))
    })
}

/// The language of the SMS a person receives.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
#[derive(utoipa::ToSchema)]
pub enum Locale {
    /// Korean, the default.
    #[default]
    Ko,
    /// English, on request.
    En,
}

impl Locale {
    /// Parses `ko` or `en`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_wire("locale", raw)
    }
}

/// A person's name as they gave it: 1 to 50 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonName(String);

impl schemars::JsonSchema for PersonName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PersonName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::events::schema::string_schema(
            None,
            Some(1),
            Some(50),
            "A person's name as given (trimmed, no control or invisible formatting characters). Personal data: never logged unmasked.",
        )
    }
}

impl PersonName {
    /// Trims and checks a name.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if len > 50 {
            return Err(FieldError::new("name", "must be at most 50 characters"));
        }
        if name.chars().any(|c| {
            c.is_control() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        }) {
            return Err(FieldError::new(
                "name",
                "must not contain control or invisible formatting characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: first character and a star per other character.
    pub fn masked(&self) -> String {
        self.0.chars().enumerate().map(|(i, c)| if i == 0 { c } else { '*' }).collect()
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({})", self.masked())
    }
}

impl TryFrom<String> for PersonName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).map_err(|e| e.detail)
    }
}

impl From<PersonName> for String {
    fn from(value: PersonName) -> Self {
        value.0
    }
}

/// Korea Standard Time, the clinics' calendar.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!("+09:00 is a valid offset"))
}

/// Today's date in Korea at `now`.
pub fn today_in_korea(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&kst()).date_naive()
}

/// Parses a calendar date (`YYYY-MM-DD`) that must be today or later in Korea and
/// at most `horizon_days` ahead.
pub fn parse_future_date(field: &str, raw: &str, now: DateTime<Utc>, horizon_days: i64) -> Result<NaiveDate, FieldError> {
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| FieldError::new(field, "must be a date in the form YYYY-MM-DD"))?;
    let today = today_in_korea(now);
    if date < today {
        return Err(FieldError::new(field, format!("must not be in the past (today is {today})")));
    }
    if (date - today).num_days() > horizon_days {
        return Err(FieldError::new(field, format!("must be at most {horizon_days} days ahead")));
    }
    Ok(date)
}

/// The actor a command comes from, as the authorizer established it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The identity provider's subject (`sub`).
    pub sub: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_korean_mobile_number_with_dashes_becomes_e164() {
        let phone = PhoneNumber::parse("010-1234-5678").expect("valid");
        assert_eq!(phone.e164(), "+821012345678");
    }

    #[test]
    fn an_e164_number_is_kept() {
        assert_eq!(PhoneNumber::parse("+821012345678").expect("valid").e164(), "+821012345678");
    }

    #[test]
    fn letters_are_not_a_phone_number() {
        assert_eq!(PhoneNumber::parse("call me").expect_err("invalid").field, "phone");
        assert!(PhoneNumber::parse("010-12").is_err());
        assert!(PhoneNumber::parse("010-1234-567a").is_err(), "no vanity letters");
        assert!(PhoneNumber::parse("010 1234 5678").is_ok());
        assert!(PhoneNumber::parse("").is_err());
        assert_eq!(PhoneNumber::parse("+82 10-1234-5678").expect("valid").e164(), "+821012345678");
        assert_eq!(PhoneNumber::parse("+82 010 1234 5678").expect("valid").e164(), "+821012345678");
        assert_eq!(PhoneNumber::parse("011-234-5678").expect("valid").e164(), "+82112345678");
        assert_eq!(PhoneNumber::parse("+1 415 555 0132").expect("valid").e164(), "+14155550132");
        assert!(PhoneNumber::parse("02-123-4567").is_err(), "a Seoul landline cannot receive SMS");
        assert!(PhoneNumber::parse("010-0234-5678").is_err());
        assert!(PhoneNumber::parse("010-1234-56789").is_err());
        assert!(PhoneNumber::parse("++821012345678").is_err());
    }

    #[test]
    fn a_number_read_back_must_be_e164() {
        assert!(PhoneNumber::try_from("+821012345678".to_owned()).is_ok());
        for bad in ["010-1234-5678", "+0101234", "+82", "+82101234567890123", "+8210abcd5678", ""] {
            assert!(PhoneNumber::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_masked_phone_shows_only_country_code_and_last_two_digits() {
        let phone = PhoneNumber::parse("010-1234-5678").expect("valid");
        assert_eq!(phone.masked(), "+82********78");
        assert!(!format!("{phone:?}").contains("1234"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  홍길동 ").expect("valid").as_str(), "홍길동");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"가".repeat(51)).is_err());
        assert!(PersonName::parse("a\u{0000}b").is_err());
        assert!(PersonName::parse("a\u{202E}b").is_err());
        assert_eq!(PersonName::parse("홍길동").expect("valid").masked(), "홍**");
    }

    #[test]
    fn won_prints_with_thousands_separators() {
        assert_eq!(Won(150_000).to_string(), "₩150,000");
        assert_eq!(Won(0).to_string(), "₩0");
    }

    #[test]
    fn a_past_date_is_refused_and_today_is_accepted() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T00:30:00Z")
            .expect("ts")
            .with_timezone(&Utc);
        assert!(parse_future_date("date", "2026-11-20", now, 365).is_err());
        assert!(parse_future_date("date", "2026-11-21", now, 365).is_ok());
        assert!(parse_future_date("date", "2026-13-01", now, 365).is_err());
        assert!(parse_future_date("date", "2028-01-01", now, 365).is_err());
    }
}
