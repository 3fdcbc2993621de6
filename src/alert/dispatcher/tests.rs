//! Dispatcher behaviour with an in-memory channel and paused time: the
//! retry schedule, timeouts, overflow and shutdown are checked exactly.
//! The same behaviours against real HTTP and SMTP receivers are covered by
//! `tests/alert_channels.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::alert::delivery::{Channel, RetryPolicy};
use crate::alert::notification::empty_firing as notification;

/// What the channel does on one attempt.
#[derive(Debug, Clone, Copy)]
enum Step {
    Status(u16),
    Hang,
}

/// A channel that follows a script, then succeeds, recording when each
/// attempt started.
struct Scripted {
    name: String,
    script: Mutex<VecDeque<Step>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl Scripted {
    fn new(name: &str, script: &[Step]) -> (Self, Arc<Mutex<Vec<Instant>>>) {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let channel = Scripted {
            name: name.to_owned(),
            script: Mutex::new(script.iter().copied().collect()),
            attempts: Arc::clone(&attempts),
        };
        (channel, attempts)
    }
}

impl Channel for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> &str {
        "mem://scripted"
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn deliver(&self, _notification: &Notification) -> Result<(), DeliveryError> {
        self.attempts.lock().unwrap().push(Instant::now());
        let step = self.script.lock().unwrap().pop_front();
        match step {
            None => Ok(()),
            Some(Step::Hang) => std::future::pending().await,
            Some(Step::Status(status)) => Err(DeliveryError::Status {
                channel: self.name.clone(),
                endpoint: "mem://scripted".into(),
                status,
                retry_after: None,
                body: String::new(),
            }),
        }
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        multiplier: 2.0,
        jitter: 0.0,
    }
}

fn gaps_ms(attempts: &Mutex<Vec<Instant>>) -> Vec<u128> {
    let times = attempts.lock().unwrap();
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_until_delivered() {
    let (channel, attempts) = Scripted::new("hook", &[Step::Status(503); 3]);
    let dispatcher = Dispatcher::builder()
        .retry(policy())
        .channel(channel)
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(1));
    let outcome = outcomes.recv().await.unwrap();

    assert!(outcome.result.is_ok());
    assert_eq!(outcome.attempts, 4);
    assert_eq!(gaps_ms(&attempts), [100, 200, 400]);
    let stats = dispatcher.stats().channel("hook").unwrap();
    assert_eq!((stats.delivered, stats.attempts, stats.retried), (1, 4, 3));
}

#[tokio::test(start_paused = true)]
async fn a_client_error_is_not_retried() {
    let (channel, attempts) = Scripted::new("hook", &[Step::Status(400)]);
    let dispatcher = Dispatcher::builder()
        .retry(policy())
        .channel(channel)
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(1));
    let outcome = outcomes.recv().await.unwrap();

    assert_eq!(outcome.result.unwrap_err().status(), Some(400));
    assert_eq!(attempts.lock().unwrap().len(), 1);
    assert_eq!(dispatcher.stats().channel("hook").unwrap().failed, 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_time_out_and_the_last_failure_is_final() {
    let (channel, attempts) = Scripted::new("hook", &[Step::Hang; 4]);
    let dispatcher = Dispatcher::builder()
        .retry(policy())
        .channel(channel)
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(1));
    let outcome = outcomes.recv().await.unwrap();

    let error = outcome.result.unwrap_err();
    assert!(matches!(*error, DeliveryError::Timeout { .. }), "{error}");
    assert_eq!(outcome.attempts, 4);
    // Each gap is the 1s timeout plus the back-off.
    assert_eq!(gaps_ms(&attempts), [1100, 1200, 1400]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_for_that_channel_only() {
    let (blocked, _) = Scripted::new("blocked", &[Step::Hang]);
    let (healthy, _) = Scripted::new("healthy", &[]);
    let dispatcher = Dispatcher::builder()
        .queue_capacity(2)
        .channel(blocked)
        .channel(healthy)
        .build()
        .unwrap();

    // The pauses let the healthy channel keep up; the blocked one hangs
    // on the first notification.
    let mut results = Vec::new();
    for i in 0..6 {
        results.push(dispatcher.dispatch(notification(i)));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    assert_eq!(
        results[0],
        Dispatched {
            queued: 2,
            dropped: 0
        }
    );
    assert_eq!(
        results[5],
        Dispatched {
            queued: 1,
            dropped: 1
        }
    );
    let blocked = dispatcher.stats().channel("blocked").unwrap();
    assert_eq!((blocked.dropped_queue_full, blocked.queued), (3, 2));
    let healthy = dispatcher.stats().channel("healthy").unwrap();
    assert_eq!((healthy.dropped_queue_full, healthy.delivered), (0, 6));
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_the_queue_before_the_deadline() {
    let (channel, attempts) = Scripted::new("hook", &[Step::Status(503)]);
    let dispatcher = Dispatcher::builder()
        .retry(policy())
        .channel(channel)
        .build()
        .unwrap();
    for i in 0..3 {
        dispatcher.dispatch(notification(i));
    }

    let left = dispatcher
        .shutdown(Instant::now() + Duration::from_secs(5))
        .await;

    assert!(left.is_empty());
    assert_eq!(attempts.lock().unwrap().len(), 4);
    assert_eq!(dispatcher.stats().channel("hook").unwrap().delivered, 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_what_the_deadline_cut_off() {
    let (channel, _) = Scripted::new("hook", &[Step::Hang]);
    let dispatcher = Dispatcher::builder().channel(channel).build().unwrap();
    for i in 0..3 {
        dispatcher.dispatch(notification(i));
    }

    let started = Instant::now();
    let left = dispatcher
        .shutdown(started + Duration::from_millis(300))
        .await;

    assert_eq!(Instant::now() - started, Duration::from_millis(300));
    let sequences: Vec<u64> = left.iter().map(|u| u.notification.sequence).collect();
    assert_eq!(sequences, [0, 1, 2]);
    let stats = dispatcher.stats().channel("hook").unwrap();
    assert_eq!((stats.abandoned, stats.queued), (3, 0));

    let after = dispatcher.dispatch(notification(9));
    assert_eq!(
        after,
        Dispatched {
            queued: 0,
            dropped: 1
        }
    );
    assert_eq!(
        dispatcher.stats().channel("hook").unwrap().dropped_closed,
        1
    );
}

#[tokio::test]
async fn the_builder_rejects_bad_settings() {
    let (a, _) = Scripted::new("same", &[]);
    let (b, _) = Scripted::new("same", &[]);
    let bad_retry = RetryPolicy {
        max_attempts: 0,
        ..RetryPolicy::default()
    };

    let Err(problems) = Dispatcher::builder()
        .queue_capacity(0)
        .retry(bad_retry)
        .channel(a)
        .channel(b)
        .build()
    else {
        panic!("a zero capacity must be rejected");
    };

    let keys: Vec<&str> = problems.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["queue_capacity", "retry.max_attempts", "name"]);
}
