//! Named failure points that tests and the local runtime switch on to prove recovery:
//! a crash between write and publish, a failing consumer, a failing projector. Nothing is
//! switched on in production, where each check is one uncontended read.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The crash point between a command's commit and its publish.
pub const AFTER_COMMIT: &str = "after-commit";
/// The projector fails.
pub const PROJECTOR: &str = "status-projector";

/// The failure points currently switched on.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<RwLock<HashSet<String>>>);

impl Faults {
    /// None switched on.
    pub fn none() -> Self {
        Self::default()
    }

    /// Switches `point` on or off. Consumer names are points too.
    pub fn set(&self, point: &str, on: bool) {
        let mut set = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if on {
            set.insert(point.to_owned());
        } else {
            set.remove(point);
        }
    }

    /// Is `point` switched on?
    pub fn is_on(&self, point: &str) -> bool {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(point)
    }
}
