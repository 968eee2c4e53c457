//! Configuration from the environment, read once at init. A bad value is a clear init
//! error naming the variable, never a panic. The platform's own settings are here; each
//! slice declares its own ([`SliceConfig`]), read only by that slice's functions, so that a
//! bad value of one flow's variable never stops another flow's function.

use std::any::Any;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::app::resilience::BreakerConfig;
use crate::topology::Catalog;

/// A variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {name} = {value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// Variable name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// Reads a variable: the environment, or a map in tests.
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Reads a whole number from `name`, `default` when unset, refused outside `min..=max`.
pub fn number(lookup: &Lookup<'_>, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(ConfigError {
                name: name.into(),
                value: raw,
                reason: format!("must be a whole number from {min} to {max}"),
            }),
        },
    }
}

/// Reads `name` (`default` when unset) with `parse`; a refusal is an error naming the
/// variable, its value and `parse`'s reason.
pub fn parsed<T>(lookup: &Lookup<'_>, name: &str, default: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
    let raw = lookup(name).unwrap_or_else(|| default.to_owned());
    parse(&raw).map_err(|reason| ConfigError {
        name: name.into(),
        value: raw.clone(),
        reason,
    })
}

/// Is `s` an id of a configured list: 1 to 40 lowercase letters, digits and `-`?
pub fn is_list_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A comma-separated list of `id` or `id:label` entries (`internal:내과`, `incheon:50`): a
/// slice's departments, sites or centres. The label, 1 to 40 characters, is the id when
/// not given; ids are [`is_list_id`] and unique, and the list is not empty. `what` names an
/// entry in the reasons (`department`).
pub fn labelled_ids(raw: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, label) = entry.split_once(':').map_or((entry, entry), |(i, l)| (i.trim(), l.trim()));
        if !is_list_id(id) {
            return Err(format!("{what} id {id:?} must be lowercase letters, digits and -"));
        }
        if label.is_empty() || label.chars().count() > 40 {
            return Err(format!("{what} {id} needs a name of 1 to 40 characters"));
        }
        if out.iter().any(|(i, _)| i == id) {
            return Err(format!("{what} {id} is listed twice"));
        }
        out.push((id.to_owned(), label.to_owned()));
    }
    if out.is_empty() {
        return Err(format!("at least one {what} is needed"));
    }
    Ok(out)
}

/// A slice's own settings: read by its loader from its own variables (`CHECKUP_*`), and
/// found by its handlers with [`Config::slice`]. Unloaded, a slice's settings are its
/// defaults.
pub trait SliceConfig: Any + Send + Sync + std::fmt::Debug + Clone + PartialEq + Default {}

/// A slice's loader: reads its variables into `configs`.
pub type LoadFn = fn(&Lookup<'_>, &mut SliceConfigs) -> Result<(), ConfigError>;

trait Erased: Any + Send + Sync + std::fmt::Debug {
    fn clone_box(&self) -> Box<dyn Erased>;
    fn same(&self, other: &dyn Erased) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: SliceConfig> Erased for T {
    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }

    fn same(&self, other: &dyn Erased) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The slices' settings, one value per type.
#[derive(Debug, Default)]
pub struct SliceConfigs(BTreeMap<&'static str, Box<dyn Erased>>);

impl Clone for SliceConfigs {
    fn clone(&self) -> Self {
        Self(self.0.iter().map(|(k, v)| (*k, v.clone_box())).collect())
    }
}

impl PartialEq for SliceConfigs {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().all(|(k, v)| other.0.get(k).is_some_and(|o| v.same(o.as_ref())))
    }
}

impl Eq for SliceConfigs {}

impl SliceConfigs {
    /// The settings of type `T`: as loaded, or its defaults.
    pub fn get<T: SliceConfig>(&self) -> T {
        self.0
            .get(std::any::type_name::<T>())
            .and_then(|v| v.as_any().downcast_ref::<T>())
            .cloned()
            .unwrap_or_default()
    }

    /// The settings of type `T` to change (its defaults first if none were loaded).
    pub fn get_mut<T: SliceConfig>(&mut self) -> &mut T {
        let entry = self.0.entry(std::any::type_name::<T>()).or_insert_with(|| Box::new(T::default()));
        if entry.as_any().downcast_ref::<T>().is_none() {
            *entry = Box::new(T::default());
        }
        match entry.as_any_mut().downcast_mut::<T>() {
            Some(v) => v,
            None => unreachable!("the entry of {} holds a {0}", std::any::type_name::<T>()),
        }
    }

    /// Sets the settings of type `T`.
    pub fn set<T: SliceConfig>(&mut self, value: T) {
        self.0.insert(std::any::type_name::<T>(), Box::new(value));
    }
}

/// Everything the use cases read from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Payment provider timeout and breaker (`PAYMENT_TIMEOUT_MS` default 2000,
    /// `PAYMENT_BREAKER_FAILURES` default 3, `PAYMENT_BREAKER_COOLDOWN_MS` default 30000).
    pub payment: BreakerConfig,
    /// Sandbox provider's delay for `tok_slow` (`PAYMENT_SANDBOX_SLOW_MS`, default 30000).
    pub sandbox_slow: Duration,
    /// Age after which the sweeper republishes an unpublished outbox event
    /// (`OUTBOX_GRACE_MS`, default 60000).
    pub outbox_grace: Duration,
    /// How many SMS one notifier invocation sends per second at most when an event notifies
    /// many people (`SMS_SEND_RATE`, default 10): the account's SMS rate (SNS limits SMS
    /// publishes per second per account) divided by the notifier's concurrency.
    pub sms_send_rate: u32,
    /// The slices' own settings.
    pub slices: SliceConfigs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            payment: BreakerConfig::default(),
            sandbox_slow: Duration::from_secs(30),
            outbox_grace: Duration::from_secs(60),
            sms_send_rate: 10,
            slices: SliceConfigs::default(),
        }
    }
}

impl Config {
    /// The platform's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The platform's settings through `lookup` (the environment, or a map in tests); the
    /// slices' settings stay at their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &str, default: u64, min: u64, max: u64| number(&lookup, name, default, min, max);
        Ok(Self {
            payment: BreakerConfig {
                timeout: Duration::from_millis(num("PAYMENT_TIMEOUT_MS", d.payment.timeout.as_millis() as u64, 1, 60_000)?),
                failure_threshold: num("PAYMENT_BREAKER_FAILURES", d.payment.failure_threshold.into(), 1, 1000)? as u32,
                cool_down: Duration::from_millis(num(
                    "PAYMENT_BREAKER_COOLDOWN_MS",
                    d.payment.cool_down.as_millis() as u64,
                    1,
                    3_600_000,
                )?),
            },
            sandbox_slow: Duration::from_millis(num("PAYMENT_SANDBOX_SLOW_MS", d.sandbox_slow.as_millis() as u64, 0, 600_000)?),
            outbox_grace: Duration::from_millis(num("OUTBOX_GRACE_MS", d.outbox_grace.as_millis() as u64, 0, 86_400_000)?),
            sms_send_rate: num("SMS_SEND_RATE", d.sms_send_rate.into(), 1, 100_000)? as u32,
            slices: SliceConfigs::default(),
        })
    }

    /// The settings of Lambda function `function`: the platform's and its own slice's, and
    /// no other slice's.
    pub fn for_function(catalog: &Catalog, function: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::from_lookup(&lookup)?;
        if let Some(slice) = catalog.slice_of(function) {
            (slice.config)(&lookup, &mut config.slices)?;
        }
        Ok(config)
    }

    /// The settings of a process that runs every function (the local runtime).
    pub fn for_catalog(catalog: &Catalog, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::from_lookup(&lookup)?;
        for slice in &catalog.slices {
            (slice.config)(&lookup, &mut config.slices)?;
        }
        Ok(config)
    }

    /// A slice's settings, as loaded or its defaults.
    pub fn slice<T: SliceConfig>(&self) -> T {
        self.slices.get()
    }

    /// A slice's settings to change (tests, the local runtime's options).
    pub fn slice_mut<T: SliceConfig>(&mut self) -> &mut T {
        self.slices.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        assert_eq!(Config::from_lookup(|_| None), Ok(Config::default()));
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = Config::from_lookup(|k| (k == "PAYMENT_TIMEOUT_MS").then(|| "soon".to_owned())).expect_err("invalid");
        assert_eq!(err.name, "PAYMENT_TIMEOUT_MS");
        assert!(err.to_string().contains("PAYMENT_TIMEOUT_MS"));
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    struct Knob(u64);
    impl SliceConfig for Knob {}

    #[test]
    fn a_slices_settings_are_its_defaults_until_set_and_compare_by_value() {
        let mut a = Config::default();
        assert_eq!(a.slice::<Knob>(), Knob(0));
        a.slice_mut::<Knob>().0 = 7;
        assert_eq!(a.slice::<Knob>(), Knob(7));
        let mut b = a.clone();
        assert_eq!(a, b);
        b.slices.set(Knob(8));
        assert_ne!(a, b);
    }
}
