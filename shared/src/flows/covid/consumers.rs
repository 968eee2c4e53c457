//! How the centres hear each other, all asynchronously: the test site puts the health
//! centre's applications on its waiting list (and takes off those withdrawn); the health
//! centre follows the site, sealing a certificate for a negative result and asking the
//! transfer centre for a transfer after a positive one; the transfer centre opens the
//! transfer, and frees the bed when the isolation centre releases the citizen; the isolation
//! centre expects the citizens dispatched to it. Each is idempotent on the event id: its
//! effect, its counter move and its dedup mark are one transaction, and a centre that was
//! down catches up once. The health centre seals a negative result's certificate apart
//! from hearing the result.

use super::application::{self, Application, IssuedCertificate, SiteNews};
use super::certificate::{self, Certificate, Content};
use super::config::CovidConfig;
use super::faults;
use super::site::{self, SiteEntry, TestResult, WAITING_LIMIT, waiting_delta, waiting_key};
use super::stay::{self, Stay};
use super::transfer::{self, Transfer, beds_delta, beds_key};
use crate::app::Platform;
use crate::app::command::{self, Work};
use crate::app::consumers::{ConsumerError, ConsumerFuture, Handled, commit_once, mark};
use crate::app::faults::{after_write, before_write};
use crate::domain::{Aggregate, DomainError};
use crate::events::EventEnvelope;
use crate::ports::CounterMove;
use crate::sealing::SignError;

/// `covid-site-queue`'s handler.
pub fn site_queue<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(queue_at_site(p, event))
}

/// `covid-centre-follow`'s handler.
pub fn centre_follow<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(follow_site(p, event))
}

/// `covid-certify`'s handler.
pub fn certify_negative<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(certify(p, event))
}

/// `covid-transfer-follow`'s handler.
pub fn transfer_follow<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(follow_transfer(p, event))
}

/// `covid-isolation-assign`'s handler.
pub fn isolation_assign<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(assign_stay(p, event))
}

fn domain(e: impl Into<DomainError>) -> ConsumerError {
    ConsumerError::from(e.into())
}

/// Commits `work` with consumer `name`'s mark for `event`, once.
async fn commit(p: &Platform, name: &str, event: &EventEnvelope, work: Work<'_>) -> Result<Handled, ConsumerError> {
    let mut tx = work.into_transaction();
    tx.processed = mark(name, event);
    p.faults.check(&before_write(name)).await?;
    commit_once(p, &after_write(name), tx).await
}

/// The health centre took an application: it joins the site's waiting list (the count
/// rises); the citizen asked to withdraw: it leaves the list (the count drops), or the site
/// refuses, the sample being taken.
async fn queue_at_site(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let command = match event.decode::<application::Event>()? {
        application::Event::ApplicationSubmitted { site, date, .. } => site::Command::Queue { site, date },
        application::Event::WithdrawalRequested { site } => site::Command::Withdraw { site },
        _ => return Ok(Handled::Skipped),
    };
    if p.store.is_processed(faults::SITE_QUEUE, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let loaded = command::load::<SiteEntry>(p, &event.aggregate_id).await?;
    let before = loaded.state.clone();
    let events = SiteEntry::decide(before.as_ref(), command).map_err(domain)?;
    let mut work = Work::new(p, event.caused());
    let after = work.stage(loaded, &events)?;
    let delta = waiting_delta(before.as_ref(), after.as_ref());
    if let (Some(entry), true) = (after.as_ref(), delta != 0) {
        work.counter(CounterMove {
            key: waiting_key(&entry.site),
            delta,
            limit: WAITING_LIMIT,
        });
    }
    commit(p, faults::SITE_QUEUE, event, work).await
}

/// The site reported: the application follows.
async fn follow_site(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let news = match event.decode::<site::Event>()? {
        site::Event::SiteEntryWithdrawn { .. } => SiteNews::Withdrawn,
        site::Event::WithdrawalRefused { .. } => SiteNews::WithdrawalRefused,
        site::Event::SampleTaken { sampled_at, .. } => SiteNews::Sampled { at: sampled_at },
        site::Event::NoShowMarked { .. } => SiteNews::Noshow,
        site::Event::ResultRecorded { result, sampled_at, .. } => SiteNews::Result { result, sampled_at },
        site::Event::SiteEntryQueued { .. } => return Ok(Handled::Skipped),
    };
    if p.store.is_processed(faults::CENTRE_FOLLOW, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let loaded = command::load::<Application>(p, &event.aggregate_id).await?;
    let mut work = Work::new(p, event.caused());
    work.decide(loaded, application::Command::Hear(news))?;
    commit(p, faults::CENTRE_FOLLOW, event, work).await
}

/// The health centre heard a negative result: it seals the certificate and records it
/// with the application, once. Apart from hearing the result, so that a signing key that
/// fails holds back the certificate, never the result: a passing failure is retried, an
/// unusable key dead-letters the delivery (redriven once the key is fixed).
async fn certify(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let Ok(application::Event::ResultHeard {
        result: TestResult::Negative,
        sampled_at,
    }) = event.decode::<application::Event>()
    else {
        return Ok(Handled::Skipped);
    };
    if p.store.is_processed(faults::CERTIFY, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let loaded = command::load::<Application>(p, &event.aggregate_id).await?;
    let Some(application) = loaded.state.clone() else {
        return Err(domain(DomainError::NotFound));
    };
    let mut work = Work::new(p, event.caused());
    if application.certificate.is_none() {
        let issued = seal_certificate(p, &mut work, &application, sampled_at).await?;
        work.decide(loaded, application::Command::Certify(issued))?;
    }
    commit(p, faults::CERTIFY, event, work).await
}

/// Seals the certificate of `application`'s negative result and stages it.
async fn seal_certificate(
    p: &Platform,
    work: &mut Work<'_>,
    application: &Application,
    sampled_at: chrono::DateTime<chrono::Utc>,
) -> Result<IssuedCertificate, ConsumerError> {
    let cfg = p.config.slice::<CovidConfig>();
    let issued_at = p.clock.now();
    let content = Content {
        holder: application.holder.clone(),
        test_type: cfg.test_type.clone(),
        sampled_at,
        result: TestResult::Negative,
        site_name: cfg.site_name(&application.site),
        issuer: cfg.issuer.clone(),
        issued_at,
        expires_at: sampled_at + chrono::Duration::hours(i64::from(cfg.valid_hours)),
    };
    let id = p.ids.new_id();
    let signer = p.signer().map_err(ConsumerError::from)?;
    let payload = certificate::seal(signer, &id, &content).await.map_err(|e| match e {
        SignError::Transient(why) => ConsumerError::Retryable(format!("signing: {why}")),
        SignError::Key(why) => ConsumerError::Permanent(format!("the signing key cannot sign: {why}")),
    })?;
    work.decide(
        command::Loaded::<Certificate>::absent(&id),
        certificate::Command::Seal {
            application_id: application.id.clone(),
            citizen_sub: application.citizen_sub.clone(),
            content: content.clone(),
            payload,
        },
    )?;
    Ok(IssuedCertificate {
        id,
        issued_at,
        expires_at: content.expires_at,
    })
}

/// The health centre asked for a transfer: the transfer centre opens it. The isolation
/// centre released the citizen: the transfer closes and the bed is free, once.
async fn follow_transfer(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let command = if let Ok(application::Event::TransferRequested { site }) = event.decode::<application::Event>() {
        transfer::Command::Open { site }
    } else if let Ok(stay::Event::StayReleased { .. }) = event.decode::<stay::Event>() {
        transfer::Command::Close
    } else {
        return Ok(Handled::Skipped);
    };
    if p.store.is_processed(faults::TRANSFER_FOLLOW, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let loaded = command::load::<Transfer>(p, &event.aggregate_id).await?;
    let before = loaded.state.clone();
    let events = Transfer::decide(before.as_ref(), command).map_err(domain)?;
    let mut work = Work::new(p, event.caused());
    let after = work.stage(loaded, &events)?;
    if let Some((centre, delta)) = beds_delta(before.as_ref(), after.as_ref()) {
        let beds = p
            .config
            .slice::<CovidConfig>()
            .centres
            .iter()
            .find(|c| c.id == centre)
            .map_or(i64::MAX, |c| i64::from(c.beds));
        work.counter(CounterMove {
            key: beds_key(&centre),
            delta,
            limit: beds,
        });
    }
    commit(p, faults::TRANSFER_FOLLOW, event, work).await
}

/// The transfer centre dispatched a citizen here: the isolation centre expects them.
async fn assign_stay(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let Ok(transfer::Event::TransferDispatched { centre, .. }) = event.decode::<transfer::Event>() else {
        return Ok(Handled::Skipped);
    };
    if p.store.is_processed(faults::ISOLATION_ASSIGN, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let mut work = Work::new(p, event.caused());
    let loaded = command::load::<Stay>(p, &event.aggregate_id).await?;
    work.decide(loaded, stay::Command::Assign { centre })?;
    commit(p, faults::ISOLATION_ASSIGN, event, work).await
}
