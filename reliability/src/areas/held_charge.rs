//! One `Idempotency-Key` reused for another request while the first request's charge is
//! still being answered: a race the `concurrency` area cannot time over HTTP, so it is
//! staged here on each slice's use cases themselves ([`Fixture::open_direct`]), with a
//! provider that captures at once but holds its answer for the first request (a slow
//! network after the capture, as real providers have).
//!
//! Request A (the opening's first variant) charges and is held after the capture; request B
//! (the other variant, the same key) arrives meanwhile, is answered by the provider with A's
//! charge (the same provider idempotency key), and commits first. Whatever happens, the
//! promises are: at most one case for the key, the stored case's recorded amount is what the
//! provider captured under its reference, and ending it (the owner's [`Fixture::ending`],
//! on the use cases) refunds that money once the events it published reach the consumers
//! that move money.
//!
//! A slice that takes no payment ([`Fixture::pays`]) is not staged.
//!
//! [`Fixture::open_direct`]: crate::slices::Fixture::open_direct
//! [`Fixture::pays`]: crate::slices::Fixture::pays
//! [`Fixture::ending`]: crate::slices::Fixture::ending

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::resilient::ResilientGateway;
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::Faults;
use clinicflow::app::consumers;
use clinicflow::config::Config;
use clinicflow::contexts::payment;
use clinicflow::domain::Won;
use clinicflow::ports::{ChargeRequest, PaymentError, PaymentGateway};
use clinicflow::topology::Trigger;
use clinicflow::wiring;

use crate::AreaReport;
use crate::slices::{self, Fixture};

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

/// The consumers that move money: event functions that write the payment context.
fn moves_money(target: &str) -> bool {
    clinicflow::catalog()
        .function(target)
        .is_some_and(|f| f.trigger == Trigger::Events && f.uses.writes.contains(&payment::CONTEXT))
}

/// Stages the race once per slice; one case each, a violation per broken promise.
pub async fn run(report: &mut AreaReport) -> anyhow::Result<()> {
    // A slice that takes no payment has no charge to hold.
    for f in slices::all().iter().filter(|f| f.pays()) {
        stage(*f, report).await?;
    }
    Ok(())
}

async fn stage(f: &'static dyn Fixture, report: &mut AreaReport) -> anyhow::Result<()> {
    let config = Config::default();
    let first_amount = f.price(&config, 0);
    let (mut p, parts) = wiring::embedded(clinicflow::catalog(), Embedded::in_memory()?, config, Faults::none());
    let held = HoldAfterCapture {
        inner: parts.sandbox.clone(),
        amount: first_amount,
        hold: Duration::from_millis(300),
    };
    p.payments = Arc::new(ResilientGateway::new(Arc::new(held), p.config.payment));

    let owner = "held-charge-patient";
    let day = 45;
    let key = format!("held-{}", fastrand::u64(..));
    let first = f.open_direct(&p, owner, day, 0, &key, "held-a");
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        f.open_direct(&p, owner, day, 1, &key, "held-b").await
    };
    let (a, b) = tokio::join!(first, second);
    let statuses = [a, b];

    let mut wrong = Vec::new();
    let opened = f.opened(&parts.db).await?;
    if opened.len() > 1 {
        wrong.push(format!("{} cases stored for one key", opened.len()));
    }
    for case in &opened {
        let (pay, _) =
            clinicflow::app::load::<payment::Payment>(&p, &clinicflow::ports::AggregateKey::new(payment::CONTEXT, &case.payment_id))
                .await?;
        let Some(pay) = pay else {
            wrong.push("the stored case's payment is missing".into());
            continue;
        };
        let captured = parts.sandbox.entries().into_iter().find(|e| e.provider_ref == pay.provider_ref);
        let captured_amount = captured.as_ref().map(|e| e.amount);
        if captured_amount != Some(pay.amount) {
            wrong.push(format!(
                "the stored {} case records a payment of {} but the provider captured {} under its reference",
                case.variant,
                pay.amount,
                captured_amount.map_or_else(|| "nothing".to_owned(), |w| w.to_string())
            ));
        }
        // End it and deliver what it published to the consumers that move money: the money
        // must come back.
        let seen = parts.db.changes_after(0, 100_000).await?.last().map_or(0, |(seq, _)| *seq);
        f.end_direct(&p, &case.owner, &case.id, "held-end").await?;
        for (_, e) in parts.db.changes_after(seen, 100_000).await? {
            for rule in clinicflow::catalog()
                .rules
                .iter()
                .filter(|r| r.matches(&e.source, &e.event_type) && moves_money(r.target))
            {
                if let Err(err) = consumers::dispatch(&p, rule.target, &e).await {
                    wrong.push(format!("{} failed on {} after the case ended: {err}", rule.target, e.event_type));
                }
            }
        }
        if parts.sandbox.kept().0 != 0 {
            wrong.push(format!("after the case ended the provider still keeps {}", parts.sandbox.kept()));
        }
    }
    let [v0, v1] = f.variants();
    report.case((!wrong.is_empty()).then(|| {
        format!(
            "{}: same Idempotency-Key, {v0} then {v1} while the {v0} charge's answer was held after capture \
             (answers {statuses:?}): {}",
            f.slice(),
            wrong.join("; ")
        )
    }));
    Ok(())
}
