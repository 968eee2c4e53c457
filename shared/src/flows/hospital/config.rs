//! The hospital flow's own settings, read only by its functions: the departments a visit
//! may be registered at and the exams a doctor may prescribe.

use crate::config::{ConfigError, Lookup, SliceConfig, SliceConfigs, is_list_id, labelled_ids, parsed};
use crate::domain::FieldError;

/// A department: an id and its display name (in the SMS and the views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// The id (`internal`): lowercase letters, digits and `-`.
    pub id: String,
    /// The display name (`내과`); the id when the configuration gives none.
    pub name: String,
}

/// The hospital flow's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HospitalConfig {
    /// `VISIT_DEPARTMENTS`: `id` or `id:name`, comma-separated.
    pub departments: Vec<Department>,
    /// `VISIT_EXAMS`: exam ids, comma-separated.
    pub exams: Vec<String>,
}

const DEFAULT_DEPARTMENTS: &str = "internal:내과,surgery:외과,paediatrics:소아청소년과,dermatology:피부과";
const DEFAULT_EXAMS: &str = "blood,urine,xray,ecg,ultrasound,ct";

impl Default for HospitalConfig {
    fn default() -> Self {
        Self {
            departments: parse_departments(DEFAULT_DEPARTMENTS).unwrap_or_default(),
            exams: parse_exams(DEFAULT_EXAMS).unwrap_or_default(),
        }
    }
}

impl SliceConfig for HospitalConfig {}

/// The variables the flow reads.
pub const VARIABLES: &[&str] = &["VISIT_DEPARTMENTS", "VISIT_EXAMS"];

fn parse_departments(raw: &str) -> Result<Vec<Department>, String> {
    Ok(labelled_ids(raw, "department")?
        .into_iter()
        .map(|(id, name)| Department { id, name })
        .collect())
}

fn parse_exams(raw: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for e in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if !is_list_id(e) {
            return Err(format!("exam {e:?} must be lowercase letters, digits and -"));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    if out.is_empty() {
        return Err("at least one exam is needed".into());
    }
    Ok(out)
}

impl HospitalConfig {
    /// The department `raw` names, or a 422 for `field` listing the known ones.
    pub fn department(&self, field: &str, raw: &str) -> Result<&Department, FieldError> {
        self.departments.iter().find(|d| d.id == raw).ok_or_else(|| {
            let known: Vec<&str> = self.departments.iter().map(|d| d.id.as_str()).collect();
            FieldError::new(field, format!("must be one of: {}", known.join(", ")))
        })
    }

    /// The exam `raw` names, or a 422 for `field` listing the known ones.
    pub fn exam(&self, field: &str, raw: &str) -> Result<String, FieldError> {
        if self.exams.iter().any(|e| e == raw) {
            Ok(raw.to_owned())
        } else {
            Err(FieldError::new(field, format!("must be one of: {}", self.exams.join(", "))))
        }
    }

    /// The display name of department `id` (the id itself if it left the configuration).
    pub fn department_name(&self, id: &str) -> String {
        self.departments
            .iter()
            .find(|d| d.id == id)
            .map_or_else(|| id.to_owned(), |d| d.name.clone())
    }
}

/// Reads [`VARIABLES`] into `configs`.
pub fn load(lookup: &Lookup<'_>, configs: &mut SliceConfigs) -> Result<(), ConfigError> {
    configs.set(HospitalConfig {
        departments: parsed(lookup, "VISIT_DEPARTMENTS", DEFAULT_DEPARTMENTS, parse_departments)?,
        exams: parsed(lookup, "VISIT_EXAMS", DEFAULT_EXAMS, parse_exams)?,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(vars: &[(&str, &str)]) -> Result<HospitalConfig, ConfigError> {
        let mut configs = SliceConfigs::default();
        let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned());
        load(&lookup, &mut configs)?;
        Ok(configs.get())
    }

    #[test]
    fn the_defaults_name_four_departments_and_six_exams() {
        let c = loaded(&[]).expect("defaults");
        assert_eq!(c, HospitalConfig::default());
        let ids: Vec<&str> = c.departments.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["internal", "surgery", "paediatrics", "dermatology"]);
        assert_eq!(c.department_name("internal"), "내과");
        assert_eq!(c.exams, ["blood", "urine", "xray", "ecg", "ultrasound", "ct"]);
    }

    #[test]
    fn lists_come_from_the_environment_and_bad_ones_are_refused() {
        let c = loaded(&[("VISIT_DEPARTMENTS", "ent, eye:안과"), ("VISIT_EXAMS", "mri,blood")]).expect("valid");
        assert_eq!(c.department_name("ent"), "ent");
        assert_eq!(c.department_name("eye"), "안과");
        assert_eq!(c.exam("exam", "mri"), Ok("mri".to_owned()));
        let unknown = c.department("department", "x").expect_err("unknown");
        assert_eq!(unknown.detail, "must be one of: ent, eye");
        assert!(c.exam("exam", "xray").expect_err("unknown").detail.contains("mri, blood"));
        for (name, bad) in [
            ("VISIT_DEPARTMENTS", "Internal"),
            ("VISIT_DEPARTMENTS", "a,a"),
            ("VISIT_DEPARTMENTS", " , "),
            ("VISIT_EXAMS", "X-Ray"),
        ] {
            assert_eq!(loaded(&[(name, bad)]).expect_err("refused").name, name);
        }
    }
}
