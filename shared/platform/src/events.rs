//! The one envelope every event travels in, in the outbox, on the bus and in the stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub mod schema;

/// An event with its identity, ordering and causality. `id` is every consumer's
/// idempotency key; `correlation_id` is the case; `version` orders one aggregate's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventEnvelope {
    /// The event's id (a ULID), unique per event; every consumer's idempotency key.
    #[schemars(regex(pattern = schema::ULID_PATTERN))]
    pub id: String,
    /// The event's name; the EventBridge `DetailType`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The bounded context, `clinicflow.<context>`; the EventBridge `Source`.
    pub source: String,
    /// The aggregate the event belongs to (a ULID).
    #[schemars(regex(pattern = schema::ULID_PATTERN))]
    pub aggregate_id: String,
    /// The aggregate's version after this event; orders one aggregate's events.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// The case this event belongs to (a ULID), carried through every step of its saga.
    #[schemars(regex(pattern = schema::ULID_PATTERN))]
    pub correlation_id: String,
    /// The API request id or the event id that caused this event.
    #[schemars(length(min = 1, max = 128))]
    pub causation_id: String,
    /// When it happened, RFC 3339 in UTC.
    pub occurred_at: DateTime<Utc>,
    /// The event's own fields.
    pub data: serde_json::Value,
}

/// The EventBridge `Source` of a bounded context.
pub fn source_of(context: &str) -> String {
    format!("clinicflow.{context}")
}

/// Where an event comes from and what caused it; shared by the events of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Causality {
    /// The case.
    pub correlation_id: String,
    /// The request id or event id that caused the new events.
    pub causation_id: String,
}

impl EventEnvelope {
    /// Wraps a domain event (an adjacently tagged enum, `{"type", "data"}`).
    pub fn wrap<E: Serialize>(
        id: String,
        context: &str,
        aggregate_id: &str,
        version: u64,
        causality: &Causality,
        occurred_at: DateTime<Utc>,
        event: &E,
    ) -> Result<Self, serde_json::Error> {
        let tagged = serde_json::to_value(event)?;
        let event_type = tagged.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
        let data = tagged.get("data").cloned().unwrap_or_else(|| serde_json::json!({}));
        Ok(Self {
            id,
            event_type,
            source: source_of(context),
            aggregate_id: aggregate_id.to_owned(),
            version,
            correlation_id: causality.correlation_id.clone(),
            causation_id: causality.causation_id.clone(),
            occurred_at,
            data,
        })
    }

    /// Reads the domain event back out of the envelope.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"type": self.event_type, "data": self.data}))
    }

    /// The causality for events this one causes.
    pub fn caused(&self) -> Causality {
        Causality {
            correlation_id: self.correlation_id.clone(),
            causation_id: self.id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adjacently tagged event enum, as every slice's.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Event {
        SampleRejected { reason: String },
    }

    #[test]
    fn a_domain_event_round_trips_through_the_envelope() {
        let causality = Causality {
            correlation_id: "c".into(),
            causation_id: "r".into(),
        };
        let env = EventEnvelope::wrap(
            "e1".into(),
            "sample",
            "b1",
            2,
            &causality,
            Utc::now(),
            &Event::SampleRejected { reason: "full".into() },
        )
        .expect("wrap");
        assert_eq!(env.event_type, "SampleRejected");
        assert_eq!(env.source, "clinicflow.sample");
        assert_eq!(
            env.decode::<Event>().expect("decode"),
            Event::SampleRejected { reason: "full".into() }
        );
        let json = serde_json::to_value(&env).expect("json");
        assert_eq!(json["type"], "SampleRejected");
        assert_eq!(json["data"]["reason"], "full");
    }
}
