//! Configuration from the environment, read once at init. A bad value is a clear init
//! error naming the variable, never a panic.

use std::time::Duration;

use crate::adapters::resilient::BreakerConfig;
use crate::domain::Won;
use crate::flows::checkup::domain::PriceList;

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

/// Everything the use cases read from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Places per date and package (`CHECKUP_DAILY_CAPACITY`, default 20).
    pub daily_capacity: i64,
    /// Package prices in KRW (`CHECKUP_PRICE_BASIC`, `_STANDARD`, `_PREMIUM`).
    pub prices: PriceList,
    /// How far ahead a check-up can be booked (`CHECKUP_BOOKING_HORIZON_DAYS`, default 365).
    pub booking_horizon_days: i64,
    /// Payment provider timeout and breaker (`PAYMENT_TIMEOUT_MS` default 2000,
    /// `PAYMENT_BREAKER_FAILURES` default 3, `PAYMENT_BREAKER_COOLDOWN_MS` default 30000).
    pub payment: BreakerConfig,
    /// Sandbox provider's delay for `tok_slow` (`PAYMENT_SANDBOX_SLOW_MS`, default 30000).
    pub sandbox_slow: Duration,
    /// Age after which the sweeper republishes an unpublished outbox event
    /// (`OUTBOX_GRACE_MS`, default 60000).
    pub outbox_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            daily_capacity: 20,
            prices: PriceList::default(),
            booking_horizon_days: 365,
            payment: BreakerConfig::default(),
            sandbox_slow: Duration::from_secs(30),
            outbox_grace: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
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
        };
        Ok(Self {
            daily_capacity: num("CHECKUP_DAILY_CAPACITY", d.daily_capacity as u64, 0, 100_000)? as i64,
            prices: PriceList {
                basic: Won(num("CHECKUP_PRICE_BASIC", d.prices.basic.0, 0, 100_000_000)?),
                standard: Won(num("CHECKUP_PRICE_STANDARD", d.prices.standard.0, 0, 100_000_000)?),
                premium: Won(num("CHECKUP_PRICE_PREMIUM", d.prices.premium.0, 0, 100_000_000)?),
            },
            booking_horizon_days: num("CHECKUP_BOOKING_HORIZON_DAYS", d.booking_horizon_days as u64, 1, 3650)? as i64,
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
        })
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
        let err = Config::from_lookup(|k| (k == "CHECKUP_DAILY_CAPACITY").then(|| "lots".to_owned())).expect_err("invalid");
        assert_eq!(err.name, "CHECKUP_DAILY_CAPACITY");
        assert!(err.to_string().contains("CHECKUP_DAILY_CAPACITY"));
    }

    #[test]
    fn capacity_and_prices_come_from_the_environment() {
        let c = Config::from_lookup(|k| match k {
            "CHECKUP_DAILY_CAPACITY" => Some("7".into()),
            "CHECKUP_PRICE_PREMIUM" => Some("990000".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(c.daily_capacity, 7);
        assert_eq!(c.prices.premium, Won(990_000));
    }
}
