//! The COVID testing flow's own settings, read only by its functions: the test sites, the
//! isolation centres with their beds, and what a certificate says of its issuer and how long
//! it holds.

use crate::config::{ConfigError, Lookup, SliceConfig, SliceConfigs, labelled_ids, parsed};
use crate::domain::FieldError;

/// A test site: an id (the staff's `custom:site`) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSite {
    /// The id (`mapo`): lowercase letters, digits and `-`.
    pub id: String,
    /// The display name (`마포구 선별진료소`); the id when the configuration gives none.
    pub name: String,
}

/// An isolation centre: an id (the staff's `custom:site`) and its beds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationCentre {
    /// The id (`incheon`).
    pub id: String,
    /// Its beds: never more citizens dispatched there at once.
    pub beds: u32,
}

/// The COVID flow's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CovidConfig {
    /// `COVID_TEST_SITES`: `id` or `id:name`, comma-separated.
    pub sites: Vec<TestSite>,
    /// `COVID_ISOLATION_CENTRES`: `id:beds`, comma-separated.
    pub centres: Vec<IsolationCentre>,
    /// `COVID_CERT_ISSUER`: the certificate's issuer (`iss`).
    pub issuer: String,
    /// `COVID_CERT_VALID_HOURS`: how long a certificate holds after the sample, 1 to 720.
    pub valid_hours: u32,
    /// `COVID_TEST_TYPE`: the test a certificate names.
    pub test_type: String,
}

const DEFAULT_SITES: &str = "gangnam:강남구 선별진료소,mapo:마포구 선별진료소";
const DEFAULT_CENTRES: &str = "incheon:50,suwon:50";
const DEFAULT_ISSUER: &str = "clinicflow health centre";
const DEFAULT_VALID_HOURS: &str = "48";
const DEFAULT_TEST_TYPE: &str = "RT-PCR";

impl Default for CovidConfig {
    fn default() -> Self {
        Self {
            sites: parse_sites(DEFAULT_SITES).unwrap_or_default(),
            centres: parse_centres(DEFAULT_CENTRES).unwrap_or_default(),
            issuer: DEFAULT_ISSUER.to_owned(),
            valid_hours: 48,
            test_type: DEFAULT_TEST_TYPE.to_owned(),
        }
    }
}

impl SliceConfig for CovidConfig {}

/// The variables the flow reads.
pub const VARIABLES: &[&str] = &[
    "COVID_TEST_SITES",
    "COVID_ISOLATION_CENTRES",
    "COVID_CERT_ISSUER",
    "COVID_CERT_VALID_HOURS",
    "COVID_TEST_TYPE",
];

fn parse_sites(raw: &str) -> Result<Vec<TestSite>, String> {
    Ok(labelled_ids(raw, "test site")?
        .into_iter()
        .map(|(id, name)| TestSite { id, name })
        .collect())
}

fn parse_centres(raw: &str) -> Result<Vec<IsolationCentre>, String> {
    labelled_ids(raw, "isolation centre")?
        .into_iter()
        .map(|(id, beds)| match beds.parse::<u32>() {
            Ok(beds) if (1..=100_000).contains(&beds) => Ok(IsolationCentre { id, beds }),
            _ => Err(format!("isolation centre {id} needs 1 to 100000 beds (id:beds)")),
        })
        .collect()
}

fn parse_issuer(raw: &str) -> Result<String, String> {
    let issuer = raw.trim();
    if issuer.is_empty() || issuer.chars().count() > 80 || issuer.chars().any(char::is_control) {
        return Err("the issuer must be 1 to 80 characters".into());
    }
    Ok(issuer.to_owned())
}

fn parse_hours(raw: &str) -> Result<u32, String> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|h| (1..=720).contains(h))
        .ok_or_else(|| "must be 1 to 720 hours".into())
}

fn known<'a>(field: &str, ids: impl Iterator<Item = &'a str>) -> FieldError {
    FieldError::new(field, format!("must be one of: {}", ids.collect::<Vec<_>>().join(", ")))
}

impl CovidConfig {
    /// The test site `raw` names, or a 422 for `field` listing the known ones.
    pub fn site(&self, field: &str, raw: &str) -> Result<&TestSite, FieldError> {
        self.sites
            .iter()
            .find(|s| s.id == raw)
            .ok_or_else(|| known(field, self.sites.iter().map(|s| s.id.as_str())))
    }

    /// The isolation centre `raw` names, or a 422 for `field` listing the known ones.
    pub fn centre(&self, field: &str, raw: &str) -> Result<&IsolationCentre, FieldError> {
        self.centres
            .iter()
            .find(|c| c.id == raw)
            .ok_or_else(|| known(field, self.centres.iter().map(|c| c.id.as_str())))
    }

    /// The display name of test site `id` (the id itself if it left the configuration).
    pub fn site_name(&self, id: &str) -> String {
        self.sites
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| id.to_owned(), |s| s.name.clone())
    }
}

/// Reads [`VARIABLES`] into `configs`.
pub fn load(lookup: &Lookup<'_>, configs: &mut SliceConfigs) -> Result<(), ConfigError> {
    configs.set(CovidConfig {
        sites: parsed(lookup, "COVID_TEST_SITES", DEFAULT_SITES, parse_sites)?,
        centres: parsed(lookup, "COVID_ISOLATION_CENTRES", DEFAULT_CENTRES, parse_centres)?,
        issuer: parsed(lookup, "COVID_CERT_ISSUER", DEFAULT_ISSUER, parse_issuer)?,
        valid_hours: parsed(lookup, "COVID_CERT_VALID_HOURS", DEFAULT_VALID_HOURS, parse_hours)?,
        test_type: parsed(lookup, "COVID_TEST_TYPE", DEFAULT_TEST_TYPE, parse_issuer)?,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(vars: &[(&str, &str)]) -> Result<CovidConfig, ConfigError> {
        let mut configs = SliceConfigs::default();
        let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned());
        load(&lookup, &mut configs)?;
        Ok(configs.get())
    }

    #[test]
    fn the_defaults_are_two_sites_and_two_centres_of_fifty_beds() {
        let c = loaded(&[]).expect("defaults");
        assert_eq!(c, CovidConfig::default());
        assert_eq!(c.site_name("mapo"), "마포구 선별진료소");
        assert_eq!(c.centre("isolation_centre", "suwon").map(|c| c.beds), Ok(50));
        assert_eq!((c.valid_hours, c.test_type.as_str()), (48, "RT-PCR"));
        let unknown = c.site("site", "jongno").expect_err("unknown");
        assert_eq!(
            (unknown.field.as_str(), unknown.detail.as_str()),
            ("site", "must be one of: gangnam, mapo")
        );
        assert_eq!(
            c.centre("isolation_centre", "busan").expect_err("unknown").detail,
            "must be one of: incheon, suwon"
        );
    }

    #[test]
    fn settings_come_from_the_environment_and_bad_ones_are_refused() {
        let c = loaded(&[
            ("COVID_TEST_SITES", "jongno"),
            ("COVID_ISOLATION_CENTRES", "busan:3"),
            ("COVID_CERT_VALID_HOURS", "24"),
        ])
        .expect("valid");
        assert_eq!(c.site_name("jongno"), "jongno");
        assert_eq!(
            c.centres,
            vec![IsolationCentre {
                id: "busan".into(),
                beds: 3
            }]
        );
        assert_eq!(c.valid_hours, 24);
        for (name, bad) in [
            ("COVID_TEST_SITES", "Mapo"),
            ("COVID_TEST_SITES", "a,a"),
            ("COVID_ISOLATION_CENTRES", "incheon"),
            ("COVID_ISOLATION_CENTRES", "incheon:0"),
            ("COVID_ISOLATION_CENTRES", "a:1,a:2"),
            ("COVID_CERT_VALID_HOURS", "0"),
            ("COVID_CERT_ISSUER", " "),
        ] {
            assert_eq!(loaded(&[(name, bad)]).expect_err("refused").name, name);
        }
    }
}
