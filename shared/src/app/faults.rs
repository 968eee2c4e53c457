//! Named failure points that tests and the local runtime switch on to prove recovery:
//! a crash between write and publish, a failing consumer, a failing projector. Nothing is
//! switched on in production, where each check is one uncontended read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// The crash point between a command's commit and its publish.
pub const AFTER_COMMIT: &str = "after-commit";
/// The projector fails.
pub const PROJECTOR: &str = "status-projector";

/// The failure points currently switched on, and how often each has fired.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    on: Arc<RwLock<HashSet<String>>>,
    fired: Arc<Mutex<HashMap<String, u64>>>,
}

impl Faults {
    /// None switched on.
    pub fn none() -> Self {
        Self::default()
    }

    /// Switches `point` on or off. Consumer names are points too.
    pub fn set(&self, point: &str, on: bool) {
        let mut set = self.on.write().unwrap_or_else(PoisonError::into_inner);
        if on {
            set.insert(point.to_owned());
        } else {
            set.remove(point);
        }
    }

    /// Is `point` switched on? A yes counts as the point firing.
    pub fn is_on(&self, point: &str) -> bool {
        let on = self.on.read().unwrap_or_else(PoisonError::into_inner).contains(point);
        if on {
            *self
                .fired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(point.to_owned())
                .or_default() += 1;
        }
        on
    }

    /// How many times `point` has fired.
    pub fn fired(&self, point: &str) -> u64 {
        self.fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(point)
            .copied()
            .unwrap_or(0)
    }
}
