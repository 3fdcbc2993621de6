//! What survives a restart: the checkpoint (monitor state and the Kafka
//! offsets it reflects) and the outbox (deliveries not yet acknowledged).
//! Both live in the `[checkpoint] dir` directory.
//!
//! | module | owns |
//! |---|---|
//! | [`checkpoint`] | the checkpoint file: format, checksum, atomic replacement |
//! | [`outbox`] | the append-only outbox of notifications and retraining triggers |
//!
//! The service decides when to write them (`service::checkpointer`); this
//! module only knows files.

pub mod checkpoint;
pub mod outbox;

pub use checkpoint::{Checkpoint, LoadError, PartitionOffset};
pub use outbox::{Entry, Item, Outbox, Settlement};
