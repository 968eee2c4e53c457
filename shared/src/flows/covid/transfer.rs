//! A transfer to isolation at the transfer centre (seed 002): opened when the health
//! centre asks for one after a positive result (`requested`), dispatched by the transfer
//! centre's staff to an isolation centre with a free bed (`dispatched`), and closed when the
//! isolation centre releases the citizen (`closed`), which frees the bed.
//!
//! **Beds are the transfer centre's ledger.** Each isolation centre's beds are a bounded
//! counter ([`beds_key`]) whose limit is the centre's capacity: a dispatch takes a bed in
//! the transaction that records it, so that concurrent dispatches racing for the last beds
//! never put a centre over capacity; the release, heard from the isolation centre, gives the
//! bed back in the transaction that closes the transfer, so that a redelivered release
//! frees it once. Every transition moves the counter by [`beds_delta`].

use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError, FieldError, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.transfer`).
pub const CONTEXT: &str = "transfer";

/// The beds taken at isolation centre `centre`.
pub fn beds_key(centre: &str) -> String {
    format!("{CONTEXT}#beds#{centre}")
}

/// Where a transfer stands.
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
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum TransferStatus {
    /// Asked for; waiting for a dispatch.
    Requested,
    /// Dispatched to an isolation centre: a bed is taken there.
    Dispatched,
    /// The citizen was released: the bed is free again.
    Closed,
}

impl TransferStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }
}

/// The transfer aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The application's id.
    pub id: String,
    /// The test site that found the result.
    pub site: String,
    /// Where it stands.
    pub status: TransferStatus,
    /// The isolation centre it was dispatched to.
    pub centre: Option<String>,
}

impl Transfer {
    /// The isolation centre whose bed this transfer holds, if it holds one.
    pub fn bed(&self) -> Option<&str> {
        match self.status {
            TransferStatus::Dispatched => self.centre.as_deref(),
            _ => None,
        }
    }
}

/// How a transition moves the beds: `(centre, +1)` taking one, `(centre, -1)` giving it back.
pub fn beds_delta(before: Option<&Transfer>, after: Option<&Transfer>) -> Option<(String, i64)> {
    match (before.and_then(Transfer::bed), after.and_then(Transfer::bed)) {
        (None, Some(centre)) => Some((centre.to_owned(), 1)),
        (Some(centre), None) => Some((centre.to_owned(), -1)),
        _ => None,
    }
}

/// The commands on a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The health centre asked for a transfer.
    Open {
        /// The test site.
        site: String,
    },
    /// Staff dispatch the citizen to an isolation centre.
    Dispatch {
        /// The isolation centre.
        centre: String,
        /// Who (`sub`).
        by: String,
    },
    /// The isolation centre released the citizen.
    Close,
}

/// What happened at the transfer centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A transfer was asked for.
    TransferOpened {
        /// The test site.
        site: String,
    },
    /// The citizen is dispatched to an isolation centre, where a bed is now theirs.
    TransferDispatched {
        /// The isolation centre.
        centre: String,
        /// Who dispatched (`sub`).
        by: String,
    },
    /// The citizen was released: the bed is free again.
    TransferClosed {
        /// The isolation centre.
        centre: String,
    },
}

impl Aggregate for Transfer {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use TransferStatus::*;
        match (state, command) {
            (None, Command::Open { site }) => Ok(vec![Event::TransferOpened { site }]),
            (Some(_), Command::Open { .. }) => Ok(vec![]),
            (None, _) => Err(DomainError::NotFound),
            (Some(t), Command::Dispatch { centre, by }) => match (t.status, t.centre.as_deref()) {
                (Requested, _) => Ok(vec![Event::TransferDispatched { centre, by }]),
                (Dispatched, Some(c)) if c == centre => Ok(vec![]),
                (Dispatched, _) => Err(DomainError::IllegalTransition(
                    "the citizen is already dispatched to another isolation centre".into(),
                )),
                (Closed, _) => Err(DomainError::IllegalTransition(
                    "the citizen has been released; the transfer is closed".into(),
                )),
            },
            (Some(t), Command::Close) => Ok(match (t.status, &t.centre) {
                (Dispatched, Some(centre)) => vec![Event::TransferClosed { centre: centre.clone() }],
                _ => vec![],
            }),
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (None, Event::TransferOpened { site }) => Some(Transfer {
                id: id.to_owned(),
                site: site.clone(),
                status: TransferStatus::Requested,
                centre: None,
            }),
            (None, _) => None,
            (Some(mut t), e) => {
                match e {
                    Event::TransferOpened { .. } => {}
                    Event::TransferDispatched { centre, .. } => {
                        t.status = TransferStatus::Dispatched;
                        t.centre = Some(centre.clone());
                    }
                    Event::TransferClosed { .. } => t.status = TransferStatus::Closed,
                }
                Some(t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Step = (Option<Transfer>, Option<(String, i64)>);

    fn step(state: Option<Transfer>, command: Command) -> Result<Step, DomainError> {
        let events = Transfer::decide(state.as_ref(), command)?;
        let after = events.iter().fold(state.clone(), |s, e| Transfer::apply(s, "a1", e));
        let delta = beds_delta(state.as_ref(), after.as_ref());
        Ok((after, delta))
    }

    fn dispatch(centre: &str) -> Command {
        Command::Dispatch {
            centre: centre.into(),
            by: "t1".into(),
        }
    }

    #[test]
    fn a_dispatch_takes_one_bed_and_the_release_gives_it_back_once() {
        let (open, none) = step(None, Command::Open { site: "mapo".into() }).expect("opened");
        assert_eq!(none, None);
        assert_eq!(step(open.clone(), Command::Open { site: "mapo".into() }).expect("again").1, None);
        let (sent, took) = step(open.clone(), dispatch("incheon")).expect("dispatched");
        assert_eq!(took, Some(("incheon".into(), 1)));
        let (again, none) = step(sent.clone(), dispatch("incheon")).expect("the same dispatch");
        assert_eq!((again, none), (sent.clone(), None));
        assert!(step(sent.clone(), dispatch("suwon")).is_err(), "another centre: a conflict");
        let (closed, gave) = step(sent, Command::Close).expect("closed");
        assert_eq!(gave, Some(("incheon".into(), -1)));
        assert_eq!(step(closed.clone(), Command::Close).expect("redelivered").1, None, "freed once");
        assert!(step(closed, dispatch("incheon")).is_err());
        assert_eq!(step(open, Command::Close).expect("nothing to close").1, None);
    }

    #[test]
    fn a_dispatch_needs_the_request() {
        assert_eq!(Transfer::decide(None, dispatch("incheon")), Err(DomainError::NotFound));
    }
}
