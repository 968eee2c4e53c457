//! Named failure points at every saga boundary, which tests and the local runtime arm to
//! prove recovery: a crash between a command's commit and its publish, a consumer failing
//! before or after its write, the projector, the SMS channel, the payment provider.
//!
//! The points exist only with the `failpoints` feature (tests, the reliability harness,
//! `clinicflow-local`). Without it nothing can arm a point and every check is an inlined
//! no-op, so the Lambda functions, built without the feature, carry none of this.
//!
//! A call reaches a point with [`Faults::check`]; an armed point answers with its
//! [`Effect`]: fail there with a retryable error, abandon the work there as a crash would
//! (whatever was committed stays), or wait before going on.

use std::time::Duration;

/// Any command, between its commit and its publish (the first check of each command).
pub const AFTER_COMMIT: &str = "after-commit";

/// `sms-notifier`, the SMS claimed, before it is handed to the channel. Failing here is a
/// channel refusing for a while (the claim is released, the delivery retried); crashing
/// here leaves the claim in doubt: the delivery is dead-lettered and the SMS not sent.
pub const SMS_BEFORE_SEND: &str = "sms-notifier/before-send";
/// `sms-notifier`, the SMS handed to the channel, before the outcome is recorded: the SMS
/// went out but the consumer did not record it.
pub const SMS_AFTER_SEND: &str = "sms-notifier/after-send";

/// The status-view projector, before its view write.
pub const PROJECTOR: &str = "status-projector";
/// The status-view projector, its view written, before the record is acknowledged.
pub const PROJECTOR_AFTER_WRITE: &str = "status-projector/after-write";

/// The payment provider's charge. Failing is the provider down; crashing is the charge
/// taken and its answer lost (a timeout); a delay longer than the payment timeout is the
/// provider slow.
pub const PAYMENT_CHARGE: &str = "payment-gateway/charge";
/// The payment provider's refund, with the same effects as [`PAYMENT_CHARGE`].
pub const PAYMENT_REFUND_CALL: &str = "payment-gateway/refund";

/// The points that belong to no one command or consumer, in saga order; the catalog adds
/// each command's [`after_commit`] point and each consumer's [`consumer_points`]
/// (`Catalog::failure_points`).
pub const PLATFORM_POINTS: &[&str] = &[
    PAYMENT_CHARGE,
    AFTER_COMMIT,
    PAYMENT_REFUND_CALL,
    SMS_BEFORE_SEND,
    SMS_AFTER_SEND,
    PROJECTOR,
    PROJECTOR_AFTER_WRITE,
];

/// The point of command `function` between its commit and its publish.
pub fn after_commit(function: &str) -> String {
    format!("{function}/after-commit")
}

/// The points of consumer `function`: on entry, before its write, after its write.
pub fn consumer_points(function: &str) -> [String; 3] {
    [
        function.to_owned(),
        format!("{function}/before-write"),
        format!("{function}/after-write"),
    ]
}

/// The point of consumer `function` before its write.
pub fn before_write(function: &str) -> String {
    format!("{function}/before-write")
}

/// The point of consumer `function` after its write, before it acknowledges.
pub fn after_write(function: &str) -> String {
    format!("{function}/after-write")
}

/// What an armed point does to the call that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The call fails there with a retryable error (a dependency down, a throttled write).
    Fail,
    /// The work is abandoned there as if the process died: what was committed stays, the
    /// caller sees an internal error, a consumer's delivery is retried.
    Crash,
    /// The call waits this long there, then goes on (a slow provider).
    Delay(Duration),
}

/// A failure injected at a point, as the call that reached it sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected {} at {point}", if *.crash { "crash" } else { "failure" })]
pub struct Injected {
    /// The point.
    pub point: String,
    /// A crash ([`Effect::Crash`]) rather than a failure ([`Effect::Fail`]).
    pub crash: bool,
}

#[cfg(feature = "failpoints")]
pub use armed::Faults;

#[cfg(not(feature = "failpoints"))]
pub use disarmed::Faults;

#[cfg(not(feature = "failpoints"))]
mod disarmed {
    use super::Injected;

    /// The failure points, compiled out: none can be armed and every check passes.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Faults;

    impl Faults {
        /// None armed.
        pub fn none() -> Self {
            Self
        }

        /// Never: points cannot be armed without the `failpoints` feature.
        #[inline(always)]
        pub fn is_on(&self, _point: &str) -> bool {
            false
        }

        /// Passes.
        #[inline(always)]
        pub async fn check(&self, _point: &str) -> Result<(), Injected> {
            Ok(())
        }

        /// Zero.
        pub fn fired(&self, _point: &str) -> u64 {
            0
        }
    }
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::{Effect, Injected};

    #[derive(Debug, Clone, Copy)]
    struct Arming {
        effect: Effect,
        /// Firings left; `None` until disarmed.
        left: Option<u64>,
    }

    #[derive(Debug, Default)]
    struct State {
        armed: HashMap<String, Arming>,
        fired: HashMap<String, u64>,
        reached: HashMap<String, u64>,
    }

    /// The failure points armed in one process, and how often each was reached and fired.
    /// Clones share the switches.
    #[derive(Debug, Clone, Default)]
    pub struct Faults {
        state: Arc<Mutex<State>>,
    }

    impl Faults {
        /// None armed.
        pub fn none() -> Self {
            Self::default()
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Arms `point` with `effect` for its next `times` firings (`None`: until disarmed).
        pub fn arm(&self, point: &str, effect: Effect, times: Option<u64>) {
            if times == Some(0) {
                self.disarm(point);
                return;
            }
            self.state().armed.insert(point.to_owned(), Arming { effect, left: times });
        }

        /// Disarms `point`.
        pub fn disarm(&self, point: &str) {
            self.state().armed.remove(point);
        }

        /// Disarms every point.
        pub fn disarm_all(&self) {
            self.state().armed.clear();
        }

        /// Switches `point` on (every call reaching it crashes there, until switched off)
        /// or off.
        pub fn set(&self, point: &str, on: bool) {
            if on {
                self.arm(point, Effect::Crash, None);
            } else {
                self.disarm(point);
            }
        }

        /// Takes one firing of `point`, if armed, counting the reach and the firing.
        fn take(&self, point: &str) -> Option<Effect> {
            let mut state = self.state();
            *state.reached.entry(point.to_owned()).or_default() += 1;
            let arming = state.armed.get_mut(point)?;
            let effect = arming.effect;
            match &mut arming.left {
                Some(1) => {
                    state.armed.remove(point);
                }
                Some(n) => *n -= 1,
                None => {}
            }
            *state.fired.entry(point.to_owned()).or_default() += 1;
            Some(effect)
        }

        /// Is `point` armed to fail or crash? A yes counts as the point firing.
        pub fn is_on(&self, point: &str) -> bool {
            let armed = self
                .state()
                .armed
                .get(point)
                .is_some_and(|a| matches!(a.effect, Effect::Fail | Effect::Crash));
            armed && self.take(point).is_some()
        }

        /// The call reaches `point`: passes, waits (a delay), or fails or crashes there.
        pub async fn check(&self, point: &str) -> Result<(), Injected> {
            match self.take(point) {
                None => Ok(()),
                Some(Effect::Delay(d)) => {
                    tracing::warn!(point, ms = d.as_millis() as u64, "injected delay");
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Some(effect) => {
                    let crash = effect == Effect::Crash;
                    tracing::warn!(point, crash, "injected failure");
                    Err(Injected {
                        point: point.to_owned(),
                        crash,
                    })
                }
            }
        }

        /// How many times `point` fired.
        pub fn fired(&self, point: &str) -> u64 {
            self.state().fired.get(point).copied().unwrap_or(0)
        }

        /// How many times a call reached `point`, armed or not.
        pub fn reached(&self, point: &str) -> u64 {
            self.state().reached.get(point).copied().unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unarmed_point_passes() {
        let faults = Faults::none();
        assert!(faults.check(AFTER_COMMIT).await.is_ok());
        assert!(!faults.is_on(AFTER_COMMIT));
        assert_eq!(faults.fired(AFTER_COMMIT), 0);
    }

    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn an_armed_point_fires_as_often_as_asked_then_passes() {
        let faults = Faults::none();
        faults.arm(PROJECTOR, Effect::Fail, Some(2));
        for _ in 0..2 {
            assert_eq!(
                faults.check(PROJECTOR).await,
                Err(Injected {
                    point: PROJECTOR.to_owned(),
                    crash: false
                })
            );
        }
        assert!(faults.check(PROJECTOR).await.is_ok());
        assert_eq!((faults.fired(PROJECTOR), faults.reached(PROJECTOR)), (2, 3));
        faults.set(AFTER_COMMIT, true);
        assert!(faults.check(AFTER_COMMIT).await.is_err_and(|i| i.crash));
        assert!(faults.is_on(AFTER_COMMIT));
        faults.set(AFTER_COMMIT, false);
        assert!(!faults.is_on(AFTER_COMMIT));
    }
}
