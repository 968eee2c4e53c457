//! An application on a test site's waiting list (seed 002's test site): it joins the list
//! when the site hears of it (`waiting`), and leaves it when the sample is taken, when the
//! citizen withdraws before the test, or when the site marks a no-show at the end of the
//! day. The result follows the sample.
//!
//! **The waiting count is the saga's invariant.** Each site keeps a bounded counter of
//! applications waiting there ([`waiting_key`]); every transition of an entry moves it by
//! [`waiting_delta`] in the transaction that records the transition, so that the count
//! always equals the entries in `waiting`, drops only when a citizen leaves the list, and
//! never goes negative. Events from the health centre may arrive late, twice or in any
//! order: a withdrawal heard before the application leaves a tombstone, so that the late
//! application never joins the list.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError, FieldError, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.testsite`).
pub const CONTEXT: &str = "testsite";

/// A site's waiting count: the applications in `waiting` there.
pub fn waiting_key(site: &str) -> String {
    format!("{CONTEXT}#waiting#{site}")
}

/// The counter's bound: far above any day's applications, so that joining the list is
/// never refused by it; the count's floor (0) is what it guards.
pub const WAITING_LIMIT: i64 = 10_000_000;

/// A test's result.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum TestResult {
    /// Not infected: the health centre issues a certificate.
    Negative,
    /// Infected: the health centre asks the transfer centre for a transfer to isolation.
    Positive,
}

impl TestResult {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }
}

/// Where an entry stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum EntryStatus {
    /// On the waiting list: counted.
    Waiting,
    /// The sample was taken; the result is pending.
    Sampled,
    /// The result is recorded.
    Resulted,
    /// Withdrawn by the citizen before the test (or heard withdrawn before it was queued).
    Withdrawn,
    /// Marked a no-show at the end of the day.
    Noshow,
}

impl EntryStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }
}

/// An application at a test site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteEntry {
    /// The application's id.
    pub id: String,
    /// The test site.
    pub site: String,
    /// The date the citizen asked for (absent for a tombstone).
    pub date: Option<NaiveDate>,
    /// Where it stands.
    pub status: EntryStatus,
    /// When the sample was taken.
    pub sampled_at: Option<DateTime<Utc>>,
    /// The result, once recorded.
    pub result: Option<TestResult>,
}

impl SiteEntry {
    /// Is it counted in the site's waiting count?
    pub fn is_waiting(&self) -> bool {
        self.status == EntryStatus::Waiting
    }
}

/// How far a transition moves the site's waiting count: `+1` joining the list, `-1`
/// leaving it, `0` otherwise. The one rule every command and consumer applies.
pub fn waiting_delta(before: Option<&SiteEntry>, after: Option<&SiteEntry>) -> i64 {
    let counted = |e: Option<&SiteEntry>| i64::from(e.is_some_and(SiteEntry::is_waiting));
    counted(after) - counted(before)
}

/// The commands on an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The health centre's application reached the site.
    Queue {
        /// The site.
        site: String,
        /// The date asked for.
        date: NaiveDate,
    },
    /// The citizen withdrew the application (heard from the health centre).
    Withdraw {
        /// The site.
        site: String,
    },
    /// Site staff took the sample.
    Sample {
        /// When.
        at: DateTime<Utc>,
        /// Who (`sub`).
        by: String,
    },
    /// Site staff recorded the result.
    Record {
        /// The result.
        result: TestResult,
        /// Who (`sub`).
        by: String,
    },
    /// Site staff marked a no-show.
    Noshow {
        /// Who (`sub`).
        by: String,
    },
}

/// What happened at the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The application joined the site's waiting list.
    SiteEntryQueued {
        /// The site.
        site: String,
        /// The date asked for.
        date: NaiveDate,
    },
    /// The application left the list, withdrawn by the citizen before the test (or was
    /// withdrawn before it reached the site, and never joins).
    SiteEntryWithdrawn {
        /// The site.
        site: String,
    },
    /// A withdrawal came too late: the sample was taken, or the site marked a no-show.
    WithdrawalRefused {
        /// The site.
        site: String,
        /// Where the entry stood.
        status: EntryStatus,
    },
    /// The sample was taken: the citizen leaves the waiting list.
    SampleTaken {
        /// The site.
        site: String,
        /// When.
        sampled_at: DateTime<Utc>,
        /// Who took it (`sub`).
        by: String,
    },
    /// The result was recorded.
    ResultRecorded {
        /// The site.
        site: String,
        /// The result (never texted, never logged).
        result: TestResult,
        /// When the sample was taken.
        sampled_at: DateTime<Utc>,
        /// Who recorded it (`sub`).
        by: String,
    },
    /// The citizen did not come: they leave the waiting list.
    NoShowMarked {
        /// The site.
        site: String,
        /// Who marked it (`sub`).
        by: String,
    },
}

fn illegal(status: EntryStatus, what: &str) -> DomainError {
    DomainError::IllegalTransition(format!("an application {} at the site cannot {what}", status.as_str()))
}

impl Aggregate for SiteEntry {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use EntryStatus::*;
        match (state, command) {
            (None, Command::Queue { site, date }) => Ok(vec![Event::SiteEntryQueued { site, date }]),
            // A duplicate, or an application whose withdrawal came first (a tombstone).
            (Some(_), Command::Queue { .. }) => Ok(vec![]),
            (None, Command::Withdraw { site }) => Ok(vec![Event::SiteEntryWithdrawn { site }]),
            (Some(e), Command::Withdraw { .. }) => Ok(match e.status {
                Waiting => vec![Event::SiteEntryWithdrawn { site: e.site.clone() }],
                Withdrawn => vec![],
                status => vec![Event::WithdrawalRefused {
                    site: e.site.clone(),
                    status,
                }],
            }),
            (None, _) => Err(DomainError::NotFound),
            (Some(e), Command::Sample { at, by }) => match e.status {
                Waiting => Ok(vec![Event::SampleTaken {
                    site: e.site.clone(),
                    sampled_at: at,
                    by,
                }]),
                Sampled | Resulted => Ok(vec![]),
                status => Err(illegal(status, "give a sample")),
            },
            (Some(e), Command::Record { result, by }) => match (e.status, e.result, e.sampled_at) {
                (Sampled, _, Some(sampled_at)) => Ok(vec![Event::ResultRecorded {
                    site: e.site.clone(),
                    result,
                    sampled_at,
                    by,
                }]),
                (Resulted, Some(recorded), _) if recorded == result => Ok(vec![]),
                (Resulted, _, _) => Err(DomainError::IllegalTransition(
                    "another result is already recorded for this application".into(),
                )),
                (Waiting, _, _) => Err(DomainError::IllegalTransition(
                    "no sample has been taken yet: record the sample first".into(),
                )),
                (status, _, _) => Err(illegal(status, "have a result")),
            },
            (Some(e), Command::Noshow { by }) => match e.status {
                Waiting => Ok(vec![Event::NoShowMarked { site: e.site.clone(), by }]),
                Noshow => Ok(vec![]),
                status => Err(illegal(status, "be marked a no-show")),
            },
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        let fresh = |site: &str, date: Option<NaiveDate>, status| SiteEntry {
            id: id.to_owned(),
            site: site.to_owned(),
            date,
            status,
            sampled_at: None,
            result: None,
        };
        match (state, event) {
            (None, Event::SiteEntryQueued { site, date }) => Some(fresh(site, Some(*date), EntryStatus::Waiting)),
            (None, Event::SiteEntryWithdrawn { site }) => Some(fresh(site, None, EntryStatus::Withdrawn)),
            (None, _) => None,
            (Some(mut e), event) => {
                match event {
                    Event::SiteEntryQueued { .. } | Event::WithdrawalRefused { .. } => {}
                    Event::SiteEntryWithdrawn { .. } => e.status = EntryStatus::Withdrawn,
                    Event::SampleTaken { sampled_at, .. } => {
                        e.status = EntryStatus::Sampled;
                        e.sampled_at = Some(*sampled_at);
                    }
                    Event::ResultRecorded { result, .. } => {
                        e.status = EntryStatus::Resulted;
                        e.result = Some(*result);
                    }
                    Event::NoShowMarked { .. } => e.status = EntryStatus::Noshow,
                }
                Some(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, 2).expect("date")
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_803_000_000, 0).expect("time")
    }

    /// Decides and folds, returning the new state and the count's move.
    fn step(state: Option<SiteEntry>, command: Command) -> Result<(Option<SiteEntry>, i64), DomainError> {
        let events = SiteEntry::decide(state.as_ref(), command)?;
        let after = events.iter().fold(state.clone(), |s, e| SiteEntry::apply(s, "a1", e));
        Ok((after.clone(), waiting_delta(state.as_ref(), after.as_ref())))
    }

    fn queue() -> Command {
        Command::Queue {
            site: "mapo".into(),
            date: date(),
        }
    }

    #[test]
    fn the_count_rises_on_joining_and_falls_only_on_sample_withdrawal_or_noshow() {
        let (waiting, up) = step(None, queue()).expect("queued");
        assert_eq!(up, 1);
        let (again, same) = step(waiting.clone(), queue()).expect("duplicate");
        assert_eq!((again, same), (waiting.clone(), 0), "a duplicate joins nothing");
        let (sampled, down) = step(waiting.clone(), Command::Sample { at: at(), by: "s1".into() }).expect("sampled");
        assert_eq!(down, -1);
        let (resulted, none) = step(
            sampled.clone(),
            Command::Record {
                result: TestResult::Negative,
                by: "s1".into(),
            },
        )
        .expect("resulted");
        assert_eq!(none, 0);
        assert_eq!(resulted.as_ref().and_then(|e| e.result), Some(TestResult::Negative));
        let (_, down) = step(waiting.clone(), Command::Withdraw { site: "mapo".into() }).expect("withdrawn");
        assert_eq!(down, -1);
        let (_, down) = step(waiting, Command::Noshow { by: "s1".into() }).expect("noshow");
        assert_eq!(down, -1);
    }

    #[test]
    fn a_withdrawal_heard_first_leaves_a_tombstone_the_late_application_never_passes() {
        let (tomb, zero) = step(None, Command::Withdraw { site: "mapo".into() }).expect("tombstone");
        assert_eq!(zero, 0);
        assert_eq!(tomb.as_ref().map(|e| e.status), Some(EntryStatus::Withdrawn));
        let (still, zero) = step(tomb.clone(), queue()).expect("late application");
        assert_eq!((still, zero), (tomb, 0));
    }

    #[test]
    fn a_result_needs_the_sample_and_a_late_withdrawal_is_refused_not_applied() {
        let (waiting, _) = step(None, queue()).expect("queued");
        let early = SiteEntry::decide(
            waiting.as_ref(),
            Command::Record {
                result: TestResult::Positive,
                by: "s1".into(),
            },
        );
        assert!(matches!(early, Err(DomainError::IllegalTransition(m)) if m.contains("no sample")));
        let (sampled, _) = step(waiting, Command::Sample { at: at(), by: "s1".into() }).expect("sampled");
        let events = SiteEntry::decide(sampled.as_ref(), Command::Withdraw { site: "mapo".into() }).expect("refusal");
        assert!(matches!(
            events.as_slice(),
            [Event::WithdrawalRefused {
                status: EntryStatus::Sampled,
                ..
            }]
        ));
        let (after, zero) = step(sampled.clone(), Command::Withdraw { site: "mapo".into() }).expect("refusal");
        assert_eq!((after, zero), (sampled.clone(), 0), "a refused withdrawal changes nothing");
        let (resulted, _) = step(
            sampled,
            Command::Record {
                result: TestResult::Positive,
                by: "s1".into(),
            },
        )
        .expect("resulted");
        assert!(
            SiteEntry::decide(
                resulted.as_ref(),
                Command::Record {
                    result: TestResult::Positive,
                    by: "s2".into()
                }
            )
            .expect("the same result again")
            .is_empty()
        );
        assert!(
            SiteEntry::decide(
                resulted.as_ref(),
                Command::Record {
                    result: TestResult::Negative,
                    by: "s2".into()
                }
            )
            .is_err(),
            "another result is a conflict"
        );
        assert_eq!(
            SiteEntry::decide(None, Command::Sample { at: at(), by: "s1".into() }),
            Err(DomainError::NotFound)
        );
    }

    #[test]
    fn any_order_of_the_events_keeps_the_count_equal_to_the_entries_waiting() {
        // Every order of queue / withdraw / sample / noshow on one application: the sum of
        // the moves is the entry's own count (1 if it ends waiting, else 0), never below 0.
        let commands = [
            queue(),
            Command::Withdraw { site: "mapo".into() },
            Command::Sample { at: at(), by: "s1".into() },
            Command::Noshow { by: "s1".into() },
        ];
        let orders = permutations(commands.len());
        for order in orders {
            let (mut state, mut count) = (None, 0);
            for &i in &order {
                if let Ok((after, delta)) = step(state.clone(), commands[i].clone()) {
                    count += delta;
                    assert!(count >= 0, "order {order:?}: the count went below zero");
                    state = after;
                }
            }
            let waiting = i64::from(state.as_ref().is_some_and(SiteEntry::is_waiting));
            assert_eq!(count, waiting, "order {order:?}: ended {state:?}");
        }
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = vec![];
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }
}
