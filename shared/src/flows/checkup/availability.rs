//! Availability: each date has a capacity per package. A booking takes its place in the
//! same transaction that stores it; cancel and reject give it back. The count itself lives
//! in the store as a bounded counter in the `checkup` table (the key's prefix names the
//! table), moved only by conditional updates.

use chrono::NaiveDate;

use super::domain::Package;

/// The counter key of a date and package: `checkup#2026-12-01#basic`.
pub fn slot_key(date: NaiveDate, package: Package) -> String {
    format!("checkup#{date}#{}", package.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_keyed_by_date_and_package() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        assert_eq!(slot_key(date, Package::Premium), "checkup#2026-12-01#premium");
    }
}
