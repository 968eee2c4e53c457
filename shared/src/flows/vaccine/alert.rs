//! A citizen's subscription to new-slot notices (seed 003): for a hospital, a vaccine, both
//! or neither (every slot). Each subscription is its own case, whose contact the SMS
//! notifier keeps, so that a slot's fan-out names subscriptions and never phone numbers.

use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, Contact, DomainError};

/// The bounded context's name: its table and event source (`clinicflow.vaccinealert`).
pub const CONTEXT: &str = "vaccinealert";

/// The view queue a subscription matching `hospital` and `vaccine` waits in (`*` for
/// either left open), which a new slot's fan-out reads.
pub fn match_key(hospital: Option<&str>, vaccine: Option<&str>) -> String {
    format!("{}#{}", hospital.unwrap_or("*"), vaccine.unwrap_or("*"))
}

/// The subscription aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// The citizen.
    pub patient_sub: String,
    /// Only this hospital's slots.
    pub hospital: Option<String>,
    /// Only this vaccine's slots.
    pub vaccine: Option<String>,
    /// Still active.
    pub active: bool,
}

/// The commands on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Subscribe.
    Subscribe {
        /// The citizen.
        patient_sub: String,
        /// Hospital filter.
        hospital: Option<String>,
        /// Vaccine filter.
        vaccine: Option<String>,
        /// Whom to text.
        contact: Contact,
    },
    /// Unsubscribe.
    Unsubscribe,
}

/// What happened to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A citizen subscribed to new-slot notices.
    AlertSubscribed {
        /// The citizen (`sub`); the owner.
        #[schemars(length(min = 1))]
        patient_sub: String,
        /// Only this hospital's slots; every hospital when absent.
        hospital: Option<String>,
        /// Only this vaccine's slots; every vaccine when absent.
        vaccine: Option<String>,
        /// Whom to text; kept by the SMS notifier.
        contact: Contact,
    },
    /// The citizen unsubscribed: no further notice.
    AlertUnsubscribed {},
}

impl Aggregate for Subscription {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (
                None,
                Command::Subscribe {
                    patient_sub,
                    hospital,
                    vaccine,
                    contact,
                },
            ) => Ok(vec![Event::AlertSubscribed {
                patient_sub,
                hospital,
                vaccine,
                contact,
            }]),
            (Some(_), Command::Subscribe { .. }) => Err(DomainError::IllegalTransition("the subscription already exists".into())),
            (None, Command::Unsubscribe) => Err(DomainError::NotFound),
            (Some(s), Command::Unsubscribe) => Ok(if s.active { vec![Event::AlertUnsubscribed {}] } else { vec![] }),
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::AlertSubscribed {
                    patient_sub,
                    hospital,
                    vaccine,
                    ..
                },
            ) => Some(Subscription {
                id: id.to_owned(),
                patient_sub: patient_sub.clone(),
                hospital: hospital.clone(),
                vaccine: vaccine.clone(),
                active: true,
            }),
            (Some(mut s), Event::AlertUnsubscribed {}) => {
                s.active = false;
                Some(s)
            }
            (state, _) => state,
        }
    }
}
