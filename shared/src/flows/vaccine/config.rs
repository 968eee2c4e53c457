//! The vaccine flow's own settings, read only by its functions: the hospitals and vaccines
//! slots may name, how long an offered dose is held, how many reservations one instance
//! takes at once before it sheds load, and how far ahead a slot may be registered.

use crate::config::{ConfigError, Lookup, SliceConfig, SliceConfigs, number};
use crate::domain::FieldError;

/// A hospital slots may be registered at: an id and its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hospital {
    /// The id (`seoul-central`): lowercase letters, digits and `-`.
    pub id: String,
    /// The display name (`서울중앙병원`).
    pub name: String,
}

/// The vaccine flow's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaccineConfig {
    /// `VACCINE_HOSPITALS`: `id:name` pairs, comma-separated.
    pub hospitals: Vec<Hospital>,
    /// `VACCINE_TYPES`: vaccine ids, comma-separated.
    pub vaccines: Vec<String>,
    /// `VACCINE_OFFER_HOLD_S` (default 1800): how long a dose offered to the first in line
    /// is held for them.
    pub offer_hold_s: u64,
    /// `VACCINE_MAX_IN_FLIGHT` (default 64): reservations one instance works on at once;
    /// one more is shed with a 503 and `Retry-After`.
    pub max_in_flight: usize,
    /// `VACCINE_DEFAULT_SHARDS` (default 1): the counters a slot's doses are split across
    /// when its registration names none.
    pub default_shards: u8,
    /// `VACCINE_HORIZON_DAYS` (default 365): how far ahead a slot may be.
    pub horizon_days: i64,
}

impl Default for VaccineConfig {
    fn default() -> Self {
        Self {
            hospitals: parse_hospitals(DEFAULT_HOSPITALS).unwrap_or_default(),
            vaccines: DEFAULT_VACCINES.split(',').map(str::to_owned).collect(),
            offer_hold_s: 1800,
            max_in_flight: 64,
            default_shards: 1,
            horizon_days: 365,
        }
    }
}

impl SliceConfig for VaccineConfig {}

const DEFAULT_HOSPITALS: &str = "seoul-central:서울중앙병원,busan-city:부산시립병원";
const DEFAULT_VACCINES: &str = "pfizer,moderna,novavax";

/// The most shards a slot may have.
pub const MAX_SHARDS: u8 = 32;

/// The variables the flow reads.
pub const VARIABLES: &[&str] = &[
    "VACCINE_HOSPITALS",
    "VACCINE_TYPES",
    "VACCINE_OFFER_HOLD_S",
    "VACCINE_MAX_IN_FLIGHT",
    "VACCINE_DEFAULT_SHARDS",
    "VACCINE_HORIZON_DAYS",
];

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn parse_hospitals(raw: &str) -> Result<Vec<Hospital>, String> {
    let mut out: Vec<Hospital> = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, name) = pair.split_once(':').ok_or_else(|| format!("{pair:?} is not id:name"))?;
        let (id, name) = (id.trim(), name.trim());
        if !is_id(id) {
            return Err(format!("hospital id {id:?} must be lowercase letters, digits and -"));
        }
        if name.is_empty() || name.chars().count() > 60 {
            return Err(format!("hospital {id} needs a name of 1 to 60 characters"));
        }
        if out.iter().any(|h| h.id == id) {
            return Err(format!("hospital {id} is listed twice"));
        }
        out.push(Hospital {
            id: id.to_owned(),
            name: name.to_owned(),
        });
    }
    if out.is_empty() {
        return Err("at least one hospital is needed".into());
    }
    Ok(out)
}

fn parse_vaccines(raw: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for v in raw.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        if !is_id(v) {
            return Err(format!("vaccine {v:?} must be lowercase letters, digits and -"));
        }
        if !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    if out.is_empty() {
        return Err("at least one vaccine is needed".into());
    }
    Ok(out)
}

impl VaccineConfig {
    /// The hospital `raw` names, or a 422 for `field` listing the known ones.
    pub fn hospital(&self, field: &str, raw: &str) -> Result<&Hospital, FieldError> {
        self.hospitals.iter().find(|h| h.id == raw).ok_or_else(|| {
            let known: Vec<&str> = self.hospitals.iter().map(|h| h.id.as_str()).collect();
            FieldError::new(field, format!("must be one of: {}", known.join(", ")))
        })
    }

    /// The vaccine `raw` names, or a 422 for `field` listing the known ones.
    pub fn vaccine(&self, field: &str, raw: &str) -> Result<String, FieldError> {
        if self.vaccines.iter().any(|v| v == raw) {
            Ok(raw.to_owned())
        } else {
            Err(FieldError::new(field, format!("must be one of: {}", self.vaccines.join(", "))))
        }
    }

    /// The display name of hospital `id` (the id itself if it left the configuration).
    pub fn hospital_name(&self, id: &str) -> String {
        self.hospitals
            .iter()
            .find(|h| h.id == id)
            .map_or_else(|| id.to_owned(), |h| h.name.clone())
    }
}

/// Reads [`VARIABLES`] into `configs`.
pub fn load(lookup: &Lookup<'_>, configs: &mut SliceConfigs) -> Result<(), ConfigError> {
    let d = VaccineConfig::default();
    let num = |name: &str, default: u64, min: u64, max: u64| number(lookup, name, default, min, max);
    let list = |name: &str, default: &str, parse: fn(&str) -> Result<_, String>| {
        let raw = lookup(name).unwrap_or_else(|| default.to_owned());
        parse(&raw).map_err(|reason| ConfigError {
            name: name.into(),
            value: raw.clone(),
            reason,
        })
    };
    configs.set(VaccineConfig {
        hospitals: list("VACCINE_HOSPITALS", DEFAULT_HOSPITALS, parse_hospitals)?,
        vaccines: lookup("VACCINE_TYPES").map_or_else(
            || Ok(d.vaccines.clone()),
            |raw| {
                parse_vaccines(&raw).map_err(|reason| ConfigError {
                    name: "VACCINE_TYPES".into(),
                    value: raw.clone(),
                    reason,
                })
            },
        )?,
        offer_hold_s: num("VACCINE_OFFER_HOLD_S", d.offer_hold_s, 1, 7 * 86_400)?,
        max_in_flight: num("VACCINE_MAX_IN_FLIGHT", d.max_in_flight as u64, 1, 100_000)? as usize,
        default_shards: num("VACCINE_DEFAULT_SHARDS", d.default_shards.into(), 1, MAX_SHARDS.into())? as u8,
        horizon_days: num("VACCINE_HORIZON_DAYS", d.horizon_days as u64, 1, 3650)? as i64,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(vars: &[(&str, &str)]) -> Result<VaccineConfig, ConfigError> {
        let mut configs = SliceConfigs::default();
        let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned());
        load(&lookup, &mut configs)?;
        Ok(configs.get())
    }

    #[test]
    fn the_defaults_name_two_hospitals_and_three_vaccines() {
        let c = loaded(&[]).expect("defaults");
        assert_eq!(c, VaccineConfig::default());
        assert_eq!(c.hospital_name("busan-city"), "부산시립병원");
        assert_eq!(c.vaccines, ["pfizer", "moderna", "novavax"]);
        assert_eq!(c.offer_hold_s, 1800);
    }

    #[test]
    fn hospitals_and_vaccines_come_from_the_environment_and_bad_lists_are_refused() {
        let c = loaded(&[("VACCINE_HOSPITALS", "a:A, b:B"), ("VACCINE_TYPES", "x,y")]).expect("valid");
        assert_eq!(c.hospitals.len(), 2);
        assert_eq!(c.vaccine("vaccine", "y"), Ok("y".to_owned()));
        let unknown = c.vaccine("vaccine", "z").expect_err("unknown");
        assert!(unknown.detail.contains("x, y"));
        for (name, bad) in [
            ("VACCINE_HOSPITALS", "nocolon"),
            ("VACCINE_HOSPITALS", "A:x"),
            ("VACCINE_TYPES", " , "),
        ] {
            assert_eq!(loaded(&[(name, bad)]).expect_err("refused").name, name);
        }
    }
}
