//! Alerts: what the monitor decided, turned into notifications people and
//! systems receive.
//!
//! | module | owns |
//! |---|---|
//! | [`notification`] | the alert and notification types every channel renders |
//! | [`webhook`] | Alertmanager-compatible JSON webhook (the payload in `webhook::alertmanager`) |
//! | [`slack`] | Slack incoming-webhook messages |
//! | [`email`] | SMTP email through lettre (the text and HTML parts in `email::body`) |
//! | [`delivery`] | the [`Channel`] trait, delivery errors (retryable or not), retry policy |
//! | [`dispatcher`] | a bounded queue and task per channel, retries, timeouts, overflow, shutdown |
//! | `worker` | the task that delivers one channel's queue (private) |
//! | [`stats`] | per-channel outcome counters and their snapshots for `/metrics` |
//! | [`channels`] | the delivery config section and `Dispatcher::from_config` |
//! | `http` | HTTP posting shared by webhook and Slack, without leaking URLs (private) |
//! | [`render`] | headlines, numbers, times and truncation shared by the channels |
//! | [`secret`] | `Secret<T>`: config values that print as `***` |
//!
//! The lifecycle (pending → firing → resolved, grouping, repeat interval) is
//! decided by the pure monitor core; this module only carries its decisions
//! out.

pub mod channels;
pub mod delivery;
pub mod dispatcher;
pub mod email;
mod http;
pub mod notification;
pub mod render;
pub mod secret;
pub mod slack;
pub mod stats;
pub mod webhook;
mod worker;

pub use channels::DeliveryConfig;
pub use delivery::{Channel, ConfigError, DeliveryError, RetryPolicy};
pub use dispatcher::{DeliveryOutcome, Dispatched, Dispatcher, DispatcherBuilder, Undelivered};
pub use http::IDEMPOTENCY_KEY_HEADER;
pub use notification::{Alert, AlertStatus, CheckKind, Evidence, Notification};
pub use secret::Secret;
pub use stats::{ChannelStats, DeliveryStats};
