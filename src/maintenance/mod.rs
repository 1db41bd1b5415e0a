//! Planned maintenance (SPEC section 4).
pub mod calendar;
