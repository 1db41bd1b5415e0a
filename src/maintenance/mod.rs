//! Planned maintenance (SPEC section 4).
pub mod calendar;
pub mod upgrade;

pub use upgrade::upgrade_window_answer;
pub mod notice;
