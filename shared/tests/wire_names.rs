//! Every enum's wire name is one name: what serde reads and writes, what `strum` derives for
//! `parse` and `as_str`, and what a refusal lists.

use clinicflow::contexts::payment::PaymentStatus;
use clinicflow::domain::Locale;
use clinicflow::flows::checkup::centre::ReservationStatus;
use clinicflow::flows::checkup::domain::{BookingStatus, Package};
use serde::Serialize;
use serde::de::DeserializeOwned;
use strum::VariantNames;

fn same_name<T: Serialize + DeserializeOwned + VariantNames + PartialEq + std::fmt::Debug>(as_str: impl Fn(&T) -> &'static str) {
    for name in T::VARIANTS {
        let read: T = serde_json::from_value(serde_json::json!(name)).unwrap_or_else(|e| panic!("serde reads {name}: {e}"));
        assert_eq!(serde_json::to_value(&read).expect("serde writes"), serde_json::json!(name));
        assert_eq!(as_str(&read), *name);
    }
}

#[test]
fn serde_and_strum_agree_on_every_wire_name() {
    same_name::<Package>(|p| p.as_str());
    same_name::<BookingStatus>(|s| s.as_str());
    same_name::<ReservationStatus>(|s| s.as_str());
    same_name::<PaymentStatus>(|s| s.as_str());
    same_name::<Locale>(|l| l.into());
}

#[test]
fn parsing_refuses_with_the_field_and_every_accepted_name() {
    assert_eq!(Package::parse("premium"), Ok(Package::Premium));
    let refused = Package::parse("gold").expect_err("not a package");
    assert_eq!(refused.field, "package");
    assert_eq!(refused.detail, r#"must be one of "basic", "standard", "premium""#);
    assert_eq!(BookingStatus::parse("booked"), Ok(BookingStatus::Booked));
    assert_eq!(BookingStatus::parse("Booked").expect_err("case matters").field, "status");
    assert_eq!(Locale::parse("en"), Ok(Locale::En));
    assert_eq!(Locale::parse("fr").expect_err("not offered").detail, r#"must be one of "ko", "en""#);
}
