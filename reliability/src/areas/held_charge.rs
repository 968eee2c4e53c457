//! One `Idempotency-Key` reused for another request while the first request's charge is
//! still being answered: a race the `concurrency` area cannot time over HTTP, so it is
//! staged here on the use cases themselves, with a provider that captures at once but holds
//! its answer for the first request (a slow network after the capture, as real providers
//! have).
//!
//! Request A (basic) charges and is held after the capture; request B (premium, the same
//! key) arrives meanwhile, is answered by the provider with A's charge (the same provider
//! idempotency key), and commits first. Whatever happens, the promises are: at most one
//! booking for the key, the stored booking's recorded amount is what the provider captured
//! under its reference, and cancelling it refunds that money.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::resilient::ResilientGateway;
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::Faults;
use clinicflow::app::command::IdempotencyKey;
use clinicflow::app::consumers;
use clinicflow::config::Config;
use clinicflow::contexts::payment;
use clinicflow::domain::{Actor, Won};
use clinicflow::flows::checkup::commands::{self as usecase, BookInput};
use clinicflow::flows::checkup::domain::{self as checkup, Booking};
use clinicflow::ports::{ChargeRequest, PaymentError, PaymentGateway};
use clinicflow::wiring;

use super::api::{CONTENDER, date_in};
use crate::AreaReport;
use crate::invariants::aggregates;

/// The sandbox, holding its answer to charges of `amount` for `hold` after capturing.
struct HoldAfterCapture {
    inner: SandboxGateway,
    amount: Won,
    hold: Duration,
}

#[async_trait]
impl PaymentGateway for HoldAfterCapture {
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError> {
        let answer = self.inner.charge(request).await;
        if request.amount == self.amount {
            tokio::time::sleep(self.hold).await;
        }
        answer
    }

    async fn void(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError> {
        self.inner.void(provider_ref, idempotency_key).await
    }

    async fn refund(&self, provider_ref: &str, amount: Won, idempotency_key: &str) -> Result<(), PaymentError> {
        self.inner.refund(provider_ref, amount, idempotency_key).await
    }
}

fn input(date: &str, package: &str) -> BookInput {
    BookInput {
        date: Some(date.to_owned()),
        package: Some(package.to_owned()),
        name: Some(CONTENDER.name.to_owned()),
        phone: Some(CONTENDER.phone.to_owned()),
        card_token: Some("tok_ok".to_owned()),
        locale: Some(CONTENDER.locale.to_owned()),
    }
}

/// Stages the race once; one case, a violation per broken promise.
pub async fn run(report: &mut AreaReport) -> anyhow::Result<()> {
    let config = Config::default();
    let basic = config.slice::<clinicflow::flows::checkup::config::CheckupConfig>().prices.basic;
    let (mut p, parts) = wiring::embedded(clinicflow::catalog(), Embedded::in_memory()?, config, Faults::none());
    let held = HoldAfterCapture {
        inner: parts.sandbox.clone(),
        amount: basic,
        hold: Duration::from_millis(300),
    };
    p.payments = Arc::new(ResilientGateway::new(Arc::new(held), p.config.payment));

    let actor = Actor {
        sub: "held-charge-patient".into(),
    };
    let date = date_in(45);
    let key = format!("held-{}", fastrand::u64(..));
    let key_for = |package: &str| IdempotencyKey::parse(&key, package.as_bytes());
    let (first_key, second_key) = (
        key_for("basic").map_err(|e| anyhow::anyhow!(e.detail))?,
        key_for("premium").map_err(|e| anyhow::anyhow!(e.detail))?,
    );
    let first = usecase::book(&p, &actor, input(&date, "basic"), Some(first_key), "held-a");
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        usecase::book(&p, &actor, input(&date, "premium"), Some(second_key), "held-b").await
    };
    let (a, b) = tokio::join!(first, second);
    let statuses = [&a, &b].map(|r| r.as_ref().map(|x| x.status).map_err(|e| e.to_string()));

    let mut wrong = Vec::new();
    let bookings: Vec<Booking> = aggregates(&parts.db, checkup::CONTEXT).await?.into_values().collect();
    if bookings.len() > 1 {
        wrong.push(format!("{} bookings stored for one key", bookings.len()));
    }
    for booking in &bookings {
        let (pay, _) =
            clinicflow::app::load::<payment::Payment>(&p, &clinicflow::ports::AggregateKey::new(payment::CONTEXT, &booking.payment_id))
                .await?;
        let Some(pay) = pay else {
            wrong.push("the stored booking's payment is missing".into());
            continue;
        };
        let captured = parts.sandbox.entries().into_iter().find(|e| e.provider_ref == pay.provider_ref);
        let captured_amount = captured.as_ref().map(|e| e.amount);
        if captured_amount != Some(pay.amount) {
            wrong.push(format!(
                "the stored {} booking records a payment of {} but the provider captured {} under its reference",
                booking.package.as_str(),
                pay.amount,
                captured_amount.map_or_else(|| "nothing".to_owned(), |w| w.to_string())
            ));
        }
        // Cancel it and deliver the refund: the money must come back.
        usecase::cancel(&p, &actor, &booking.id, "held-cancel").await?;
        let changes = parts.db.changes_after(0, 1000).await?;
        let cancelled = changes
            .iter()
            .find(|(_, e)| e.event_type == "CheckupCancelled" && e.aggregate_id == booking.id);
        if let Some((_, cancelled)) = cancelled
            && let Err(e) = consumers::dispatch(&p, "payment-refund", cancelled).await
        {
            wrong.push(format!("its refund after a cancel failed: {e}"));
        }
        if parts.sandbox.kept().0 != 0 {
            wrong.push(format!("after the cancel the provider still keeps {}", parts.sandbox.kept()));
        }
    }
    report.case((!wrong.is_empty()).then(|| {
        format!(
            "same Idempotency-Key, basic then premium while the basic charge's answer was held after capture \
             (answers {statuses:?}): {}",
            wrong.join("; ")
        )
    }));
    Ok(())
}
