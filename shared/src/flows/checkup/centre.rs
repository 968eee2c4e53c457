//! The check-up centre's side: each booking reaches the centre's work list
//! asynchronously, where staff confirm or reject it; a cancelled booking is withdrawn.

use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError};

/// The bounded context's name.
pub const CONTEXT: &str = "centre";

/// Where a booking stands on the centre's work list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReservationStatus {
    /// On the work list, waiting for staff.
    Received,
    /// Confirmed by staff.
    Confirmed,
    /// Rejected by staff.
    Rejected,
    /// Taken off the work list because the patient cancelled.
    Withdrawn,
}

impl ReservationStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The centre reservation aggregate, keyed by booking id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The booking id.
    pub booking_id: String,
    /// Status on the work list.
    pub status: ReservationStatus,
    /// Rejection reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Commands on a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Put a booking on the work list.
    Receive,
    /// Staff confirm.
    Confirm,
    /// Staff reject.
    Reject {
        /// Why.
        reason: String,
    },
    /// The patient cancelled: take it off the work list.
    Withdraw,
}

/// Reservation events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The booking is on the work list.
    ReservationReceived {},
    /// Staff confirmed it.
    ReservationConfirmed {},
    /// Staff rejected it.
    ReservationRejected {
        /// Why, as the centre gave it.
        #[schemars(length(min = 1, max = 500))]
        reason: String,
    },
    /// It was taken off the work list.
    ReservationWithdrawn {},
}

impl Aggregate for Reservation {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    /// Decides a reservation command. A withdrawal may arrive before the booking itself (events
    /// are delivered in any order): it leaves a tombstone so that the late booking is not put
    /// on the list. Receiving something already known decides nothing.
    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use ReservationStatus::*;
        match (state.map(|r| r.status), command) {
            (None, Command::Receive) => Ok(vec![Event::ReservationReceived {}]),
            (Some(_), Command::Receive) => Ok(vec![]),
            (None, Command::Withdraw) => Ok(vec![Event::ReservationWithdrawn {}]),
            (Some(Received | Confirmed), Command::Withdraw) => Ok(vec![Event::ReservationWithdrawn {}]),
            (Some(Rejected | Withdrawn), Command::Withdraw) => Ok(vec![]),
            (None, Command::Confirm | Command::Reject { .. }) => Err(DomainError::IllegalTransition(
                "the booking has not reached the centre's work list yet".into(),
            )),
            (Some(Received), Command::Confirm) => Ok(vec![Event::ReservationConfirmed {}]),
            (Some(Confirmed), Command::Confirm) => Ok(vec![]),
            (Some(Received), Command::Reject { reason }) => Ok(vec![Event::ReservationRejected { reason }]),
            (Some(Rejected), Command::Reject { .. }) => Ok(vec![]),
            (Some(s), Command::Confirm) => Err(DomainError::IllegalTransition(format!(
                "a {} reservation cannot be confirmed",
                s.as_str()
            ))),
            (Some(s), Command::Reject { .. }) => Err(DomainError::IllegalTransition(format!(
                "a {} reservation cannot be rejected",
                s.as_str()
            ))),
        }
    }

    /// Applies a reservation event.
    fn apply(state: Option<Self>, booking_id: &str, event: &Event) -> Option<Self> {
        let mut r = state.unwrap_or(Reservation {
            booking_id: booking_id.to_owned(),
            status: ReservationStatus::Received,
            reason: None,
        });
        match event {
            Event::ReservationReceived {} => r.status = ReservationStatus::Received,
            Event::ReservationConfirmed {} => r.status = ReservationStatus::Confirmed,
            Event::ReservationRejected { reason } => {
                r.status = ReservationStatus::Rejected;
                r.reason = Some(reason.clone());
            }
            Event::ReservationWithdrawn {} => r.status = ReservationStatus::Withdrawn,
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: Option<Reservation>, cmd: Command) -> Result<Option<Reservation>, DomainError> {
        let events = Reservation::decide(state.as_ref(), cmd)?;
        Ok(events.iter().fold(state, |s, e| Reservation::apply(s, "b", e)))
    }

    #[test]
    fn a_received_booking_can_be_confirmed() {
        let r = run(None, Command::Receive).expect("recv");
        assert_eq!(
            run(r, Command::Confirm).expect("ok").map(|r| r.status),
            Some(ReservationStatus::Confirmed)
        );
    }

    #[test]
    fn a_withdrawal_before_the_booking_arrives_keeps_the_booking_off_the_list() {
        let r = run(None, Command::Withdraw).expect("withdraw");
        assert_eq!(Reservation::decide(r.as_ref(), Command::Receive).expect("noop"), vec![]);
        assert_eq!(r.map(|r| r.status), Some(ReservationStatus::Withdrawn));
    }

    #[test]
    fn a_booking_not_yet_on_the_list_cannot_be_confirmed() {
        assert!(matches!(
            Reservation::decide(None, Command::Confirm),
            Err(DomainError::IllegalTransition(_))
        ));
    }

    #[test]
    fn a_withdrawn_booking_cannot_be_confirmed() {
        let r = run(run(None, Command::Receive).expect("r"), Command::Withdraw).expect("w");
        assert!(Reservation::decide(r.as_ref(), Command::Confirm).is_err());
    }
}
