//! Given/when/then for any [`Aggregate`]: given the events so far, when a command, then the
//! events it decides or the error it refuses with. Every slice's domain tests read so.
//!
//! ```
//! # use clinicflow_platform::domain::testing::given;
//! # fn demo<A: clinicflow_platform::domain::Aggregate>(history: Vec<A::Event>, command: A::Command) {
//! given::<A>("id", history).when(command).then_nothing();
//! # }
//! ```

use super::{Aggregate, DomainError};

/// An aggregate rebuilt from the events that happened to it.
#[derive(Debug, Clone)]
pub struct Given<A: Aggregate> {
    id: String,
    state: Option<A>,
}

/// Folds `events` into aggregate `id`, as the store would hold it after them.
pub fn given<A: Aggregate>(id: &str, events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let state = events.into_iter().fold(None, |state, e| A::apply(state, id, &e));
    Given { id: id.to_owned(), state }
}

/// A command decided on a [`Given`] state.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    id: String,
    state: Option<A>,
    decided: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Given<A> {
    /// The state so far.
    pub fn state(&self) -> Option<&A> {
        self.state.as_ref()
    }

    /// Decides `command` on the state so far.
    pub fn when(self, command: A::Command) -> When<A> {
        let decided = A::decide(self.state.as_ref(), command);
        When {
            id: self.id,
            state: self.state,
            decided,
        }
    }
}

impl<A: Aggregate> When<A> {
    /// The command decided exactly `expected`; returns the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> Option<A> {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.decided {
            Ok(events) => {
                assert_eq!(events, expected, "the command decided other events");
                events.iter().fold(self.state, |state, e| A::apply(state, &self.id, e))
            }
            Err(e) => panic!("expected events {expected:?}, the command was refused: {e:?}"),
        }
    }

    /// The command decided nothing: its effect already holds.
    #[track_caller]
    pub fn then_nothing(self) {
        self.then([]);
    }

    /// The command was refused with an error that `matches`.
    #[track_caller]
    pub fn then_refused(self, matches: impl FnOnce(&DomainError) -> bool) {
        match self.decided {
            Ok(events) => panic!("expected a refusal, the command decided {events:?}"),
            Err(e) => {
                let e: DomainError = e.into();
                assert!(matches(&e), "refused with another error: {e:?}");
            }
        }
    }

    /// The events decided, for a test that looks at them itself.
    pub fn decided(self) -> Result<Vec<A::Event>, A::Error> {
        self.decided
    }
}
