//! The delivering side: the queue runner and local Maildir delivery.

pub mod local;
pub mod runner;
