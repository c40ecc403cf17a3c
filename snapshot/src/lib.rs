#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

mod config;
mod error;
mod format;
mod index;
mod model;
mod store;
mod topic;

pub use config::SnapshotConfig;
pub use error::SnapshotError;
pub use model::{SelectedSnapshot, SnapshotMetadata, SnapshotSelectionCriteria};
pub use store::SnapshotStore;
