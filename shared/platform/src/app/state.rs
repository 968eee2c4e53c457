//! State a slice keeps on one platform instance across requests: a gate on the work in
//! flight, a cache. One value per type and platform, made on first use, shared by the
//! platform's clones (a warm Lambda's invocations, the local runtime's routes) and never
//! by two platforms, as a process-wide `static` would be (two local stacks in one test
//! process, each with its own configuration).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The per-instance state of every slice, by type.
#[derive(Clone, Default)]
pub struct SliceState(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl std::fmt::Debug for SliceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceState").finish_non_exhaustive()
    }
}

impl SliceState {
    /// The platform's value of type `T`, made by `init` the first time it is asked for.
    /// Slices name their own types (a newtype per use), so that two never share one.
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut values = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = values.get(&TypeId::of::<T>()).cloned()
            && let Ok(value) = value.downcast::<T>()
        {
            return value;
        }
        let value = Arc::new(init());
        values.insert(TypeId::of::<T>(), value.clone());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Gate(usize);
    #[derive(Debug, PartialEq)]
    struct Other(usize);

    #[test]
    fn one_value_per_type_made_once_and_shared_by_clones_not_by_other_instances() {
        let state = SliceState::default();
        assert_eq!(*state.get_or_init(|| Gate(1)), Gate(1));
        assert_eq!(*state.clone().get_or_init(|| Gate(2)), Gate(1), "made once, shared by clones");
        assert_eq!(*state.get_or_init(|| Other(3)), Other(3), "another type, another value");
        assert_eq!(*SliceState::default().get_or_init(|| Gate(4)), Gate(4), "another instance, its own");
    }
}
