//! A citizen's stay at an isolation centre (seed 002): assigned when the centre hears of
//! the dispatch (`assigned`), admitted by the centre's staff (`isolated`), released later
//! (`released`). The centre's staff act only on their own centre's stays; an admission the
//! centre has not heard of (no dispatch yet) is a conflict, not a stay.

use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError, FieldError, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.isolation`).
pub const CONTEXT: &str = "isolation";

/// Where a stay stands.
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
pub enum StayStatus {
    /// Dispatched here; not arrived yet.
    Assigned,
    /// Admitted: in isolation.
    Isolated,
    /// Released from isolation.
    Released,
}

impl StayStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }
}

/// The stay aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stay {
    /// The application's id.
    pub id: String,
    /// The isolation centre.
    pub centre: String,
    /// Where it stands.
    pub status: StayStatus,
}

/// The commands on a stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The transfer centre dispatched the citizen here.
    Assign {
        /// The isolation centre.
        centre: String,
    },
    /// Staff admit the citizen.
    Admit {
        /// Who (`sub`).
        by: String,
    },
    /// Staff release the citizen.
    Release {
        /// Who (`sub`).
        by: String,
    },
}

/// What happened at the isolation centre.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The citizen is expected here.
    StayAssigned {
        /// The isolation centre.
        centre: String,
    },
    /// The citizen was admitted: in isolation.
    StayAdmitted {
        /// The isolation centre.
        centre: String,
        /// Who admitted (`sub`).
        by: String,
    },
    /// The citizen was released from isolation, or their stay ended before they arrived.
    StayReleased {
        /// The isolation centre.
        centre: String,
        /// Who released (`sub`).
        by: String,
        /// Whether they had been admitted (false: dispatched here, never arrived).
        admitted: bool,
    },
}

/// Why an admission comes too early.
pub const NOT_DISPATCHED: &str = "this citizen has not been dispatched to this isolation centre (yet)";

impl Aggregate for Stay {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use StayStatus::*;
        match (state, command) {
            (None, Command::Assign { centre }) => Ok(vec![Event::StayAssigned { centre }]),
            (Some(_), Command::Assign { .. }) => Ok(vec![]),
            (None, _) => Err(DomainError::IllegalTransition(NOT_DISPATCHED.into())),
            (Some(s), Command::Admit { by }) => match s.status {
                Assigned => Ok(vec![Event::StayAdmitted {
                    centre: s.centre.clone(),
                    by,
                }]),
                Isolated => Ok(vec![]),
                Released => Err(DomainError::IllegalTransition("the citizen has been released".into())),
            },
            // A citizen dispatched here who never arrives is released too, so that the bed
            // is not held forever.
            (Some(s), Command::Release { by }) => match s.status {
                Isolated | Assigned => Ok(vec![Event::StayReleased {
                    centre: s.centre.clone(),
                    by,
                    admitted: s.status == Isolated,
                }]),
                Released => Ok(vec![]),
            },
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (None, Event::StayAssigned { centre }) => Some(Stay {
                id: id.to_owned(),
                centre: centre.clone(),
                status: StayStatus::Assigned,
            }),
            (None, _) => None,
            (Some(mut s), e) => {
                s.status = match e {
                    Event::StayAssigned { .. } => s.status,
                    Event::StayAdmitted { .. } => StayStatus::Isolated,
                    Event::StayReleased { .. } => StayStatus::Released,
                };
                Some(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(s: Option<&Stay>, command: Command) -> Result<(Option<Stay>, usize), DomainError> {
        let events = Stay::decide(s, command)?;
        let next = events.iter().fold(s.cloned(), |st, e| Stay::apply(st, "a1", e));
        Ok((next, events.len()))
    }

    #[test]
    fn a_stay_is_assigned_admitted_and_released_once_each() {
        let admit = || Command::Admit { by: "i1".into() };
        let release = || Command::Release { by: "i1".into() };
        assert!(matches!(Stay::decide(None, admit()), Err(DomainError::IllegalTransition(m)) if m == NOT_DISPATCHED));
        let (assigned, _) = after(None, Command::Assign { centre: "incheon".into() }).expect("assigned");
        let (ended, _) = after(assigned.as_ref(), release()).expect("never arrived: released all the same");
        assert_eq!(ended.map(|s| s.status), Some(StayStatus::Released));
        let (isolated, n) = after(assigned.as_ref(), admit()).expect("admitted");
        assert_eq!((isolated.as_ref().map(|s| s.status), n), (Some(StayStatus::Isolated), 1));
        assert_eq!(after(isolated.as_ref(), admit()).expect("again").1, 0);
        let (released, n) = after(isolated.as_ref(), release()).expect("released");
        assert_eq!((released.as_ref().map(|s| s.status), n), (Some(StayStatus::Released), 1));
        assert_eq!(after(released.as_ref(), release()).expect("again").1, 0);
        assert!(after(released.as_ref(), admit()).is_err());
    }
}
