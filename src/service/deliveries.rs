//! The durable outbox in front of delivery: every notification (once per
//! channel of its route) and every retraining trigger is recorded in the
//! outbox before it is handed to the dispatcher or the producer, and
//! settled when the outcome is known. At start, what the outbox still holds
//! is sent again, with the same idempotency keys.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::alert::Notification;
use crate::alert::dispatcher::{DeliveryOutcome, Dispatcher};
use crate::monitor::RetrainTrigger;
use crate::state::outbox::RETRAIN_CHANNEL;
use crate::state::{Entry, Item, Outbox, Settlement};
use crate::telemetry::Metrics;

use super::ServiceEvent;

/// Hands decisions to delivery through the outbox.
#[derive(Clone)]
pub struct Deliveries {
    /// Notification channels.
    pub dispatcher: Arc<Dispatcher>,
    /// The durable record.
    pub outbox: Arc<Outbox>,
    /// Retraining triggers go out with it.
    pub producer: FutureProducer,
    /// Where retraining triggers go, if enabled.
    pub retrain_topic: Option<String>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Observers.
    pub events: broadcast::Sender<ServiceEvent>,
}

impl Deliveries {
    /// Records `notification` for each of `channels` and queues it on
    /// those not already holding it (a repeat decided while re-reading
    /// after a crash is not sent twice).
    pub fn notify(&self, notification: Notification, channels: &[&str]) {
        let key = notification.idempotency_key();
        let entries: Vec<Entry> = channels
            .iter()
            .map(|channel| Entry {
                channel: (*channel).to_string(),
                key: key.clone(),
                item: Item::Notification(notification.clone()),
            })
            .collect();
        let (admitted, written) = self.outbox.admit(entries);
        if let Err(error) = written {
            tracing::error!(%error, "outbox write failed; delivering anyway, but a crash now \
                would not resend this notification");
        }
        for (channel, new) in channels.iter().zip(admitted) {
            if new {
                self.queue(notification.clone(), channel, &key);
            } else {
                tracing::debug!(
                    channel,
                    key,
                    "notification already in the outbox; not queued again"
                );
            }
        }
    }

    /// Queues `notification` (whose idempotency key is `key`) on `channel`;
    /// one the full queue refuses is settled as dropped.
    fn queue(&self, notification: Notification, channel: &str, key: &str) {
        let dispatched = self.dispatcher.dispatch_to(notification, &[channel]);
        if dispatched.dropped > 0
            && let Err(error) = self.outbox.settle(channel, key, Settlement::Dropped)
        {
            tracing::warn!(%error, "outbox write failed");
        }
    }

    /// Records `trigger` and publishes it (unless already recorded).
    pub fn retrain(&self, trigger: RetrainTrigger) {
        if self.retrain_topic.is_none() {
            return;
        }
        let entry = Entry {
            channel: RETRAIN_CHANNEL.to_string(),
            key: trigger.idempotency_key.clone(),
            item: Item::Retrain(trigger.clone()),
        };
        let (admitted, written) = self.outbox.admit(vec![entry]);
        if let Err(error) = written {
            tracing::error!(%error, "outbox write failed; publishing anyway");
        }
        if admitted.first().copied().unwrap_or(true) {
            self.publish(trigger);
        }
    }

    /// Sends again what the outbox held at start, oldest first.
    pub fn resend(&self, pending: Vec<Entry>) {
        if pending.is_empty() {
            return;
        }
        tracing::info!(
            count = pending.len(),
            "resending deliveries left in the outbox"
        );
        for entry in pending {
            match entry.item {
                Item::Notification(notification) => {
                    self.queue(notification, &entry.channel, &entry.key)
                }
                Item::Retrain(trigger) => self.publish(trigger),
            }
        }
    }

    /// Settles notifications as their outcomes arrive, until `stop` is
    /// cancelled and no outcome is waiting. Call before the first delivery
    /// so no outcome is missed.
    pub fn spawn_settler(&self, stop: tokio_util::sync::CancellationToken) -> JoinHandle<()> {
        let mut outcomes = self.dispatcher.subscribe();
        let outbox = Arc::clone(&self.outbox);
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    biased;
                    received = outcomes.recv() => received,
                    _ = stop.cancelled() => break,
                };
                match received {
                    Ok(outcome) => settle(&outbox, &outcome),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // Those stay pending and are sent again at the next
                        // start, with the same key.
                        tracing::warn!(missed, "outbox missed delivery outcomes");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    fn publish(&self, trigger: RetrainTrigger) {
        let Some(topic) = self.retrain_topic.clone() else {
            return;
        };
        let producer = self.producer.clone();
        let metrics = Arc::clone(&self.metrics);
        let events = self.events.clone();
        let outbox = Arc::clone(&self.outbox);
        // Publishing waits for the broker's acknowledgement; it runs on its
        // own task so a slow broker never holds up ingestion.
        tokio::spawn(async move {
            let payload = match serde_json::to_vec(&trigger) {
                Ok(p) => p,
                Err(error) => return tracing::error!(%error, "cannot serialise retraining trigger"),
            };
            let headers = OwnedHeaders::new().insert(Header {
                key: "idempotency-key",
                value: Some(trigger.idempotency_key.as_str()),
            });
            let record = FutureRecord::to(&topic)
                .key(&trigger.model)
                .payload(&payload)
                .headers(headers);
            match producer.send(record, Duration::from_secs(30)).await {
                Ok(delivery) => {
                    metrics.retrain(&trigger.model, "published");
                    if let Err(error) = outbox.settle(
                        RETRAIN_CHANNEL,
                        &trigger.idempotency_key,
                        Settlement::Delivered,
                    ) {
                        tracing::warn!(%error, "outbox write failed");
                    }
                    tracing::info!(model = %trigger.model, key = %trigger.idempotency_key, "retraining trigger published");
                    let _ = events.send(ServiceEvent::RetrainPublished {
                        model: trigger.model.clone(),
                        idempotency_key: trigger.idempotency_key.clone(),
                        partition: delivery.partition,
                        offset: delivery.offset,
                    });
                }
                Err((error, _)) => {
                    // Left pending in the outbox: published at the next start.
                    metrics.retrain(&trigger.model, "failed");
                    tracing::error!(%error, model = %trigger.model,
                        "retraining trigger not published; it stays in the outbox");
                }
            }
        });
    }
}

fn settle(outbox: &Outbox, outcome: &DeliveryOutcome) {
    let settlement = match outcome.result {
        Ok(()) => Settlement::Delivered,
        Err(_) => Settlement::Failed,
    };
    if let Err(error) = outbox.settle(&outcome.channel, &outcome.idempotency_key, settlement) {
        tracing::warn!(%error, "outbox write failed");
    }
}
