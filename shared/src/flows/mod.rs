//! The flows, one slice each. This module and [`crate::catalog`] are the only places that
//! name them all: the platform consumes them as [`crate::topology::Slice`]s.

/// A slice's route, its handler bound to the route's own method:
/// `route!(Post "/visits", faults::REGISTER, DESK, register)`.
macro_rules! route {
    ($method:ident $path:literal, $function:expr, $roles:expr, $handler:ident) => {
        $crate::topology::Route {
            method: $crate::topology::Method::$method,
            path: $path,
            function: $function,
            roles: $roles,
            handler: |m| ::axum::routing::on(m, $handler),
        }
    };
}

pub mod checkup;
pub mod covid;
pub mod hospital;
pub mod vaccine;
