//! The check-up flow's own settings, read only by its functions: places per date and
//! package, package prices, and how far ahead a date may be booked.

use super::domain::PriceList;
use crate::config::{ConfigError, Lookup, SliceConfig, SliceConfigs, number};
use crate::domain::Won;

/// The check-up flow's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckupConfig {
    /// Places per date and package (`CHECKUP_DAILY_CAPACITY`, default 20).
    pub daily_capacity: i64,
    /// Package prices in KRW (`CHECKUP_PRICE_BASIC`, `_STANDARD`, `_PREMIUM`).
    pub prices: PriceList,
    /// How far ahead a check-up can be booked (`CHECKUP_BOOKING_HORIZON_DAYS`, default 365).
    pub booking_horizon_days: i64,
}

impl Default for CheckupConfig {
    fn default() -> Self {
        Self {
            daily_capacity: 20,
            prices: PriceList::default(),
            booking_horizon_days: 365,
        }
    }
}

impl SliceConfig for CheckupConfig {}

/// The variables the flow reads.
pub const VARIABLES: &[&str] = &[
    "CHECKUP_DAILY_CAPACITY",
    "CHECKUP_PRICE_BASIC",
    "CHECKUP_PRICE_STANDARD",
    "CHECKUP_PRICE_PREMIUM",
    "CHECKUP_BOOKING_HORIZON_DAYS",
];

/// Reads [`VARIABLES`] into `configs`.
pub fn load(lookup: &Lookup<'_>, configs: &mut SliceConfigs) -> Result<(), ConfigError> {
    let d = CheckupConfig::default();
    let num = |name: &str, default: u64, min: u64, max: u64| number(lookup, name, default, min, max);
    configs.set(CheckupConfig {
        daily_capacity: num("CHECKUP_DAILY_CAPACITY", d.daily_capacity as u64, 0, 100_000)? as i64,
        prices: PriceList {
            basic: Won(num("CHECKUP_PRICE_BASIC", d.prices.basic.0, 0, 100_000_000)?),
            standard: Won(num("CHECKUP_PRICE_STANDARD", d.prices.standard.0, 0, 100_000_000)?),
            premium: Won(num("CHECKUP_PRICE_PREMIUM", d.prices.premium.0, 0, 100_000_000)?),
        },
        booking_horizon_days: num("CHECKUP_BOOKING_HORIZON_DAYS", d.booking_horizon_days as u64, 1, 3650)? as i64,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn capacity_and_prices_come_from_the_environment() {
        let c = Config::for_catalog(crate::catalog(), |k| match k {
            "CHECKUP_DAILY_CAPACITY" => Some("7".into()),
            "CHECKUP_PRICE_PREMIUM" => Some("990000".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(c.slice::<CheckupConfig>().daily_capacity, 7);
        assert_eq!(c.slice::<CheckupConfig>().prices.premium, Won(990_000));
    }

    #[test]
    fn a_bad_value_stops_the_flows_own_functions_and_no_other() {
        let lookup = |k: &str| (k == "CHECKUP_DAILY_CAPACITY").then(|| "lots".to_owned());
        let err = Config::for_function(crate::catalog(), "checkup-book", lookup).expect_err("invalid");
        assert_eq!(err.name, "CHECKUP_DAILY_CAPACITY");
        for platform_function in ["outbox-sweeper", "status-projector", "sms-notifier"] {
            let config = Config::for_function(crate::catalog(), platform_function, lookup).expect("not its variable");
            assert_eq!(config.slice::<CheckupConfig>(), CheckupConfig::default());
        }
    }
}
