//! The service shell: assembles the monitor, Kafka clients, delivery and
//! the HTTP API from a validated configuration, runs them, and shuts them
//! down in order.
//!
//! | module | owns |
//! |---|---|
//! | [`kafka`] | consumer and producer construction, readiness and lag from the client context |
//! | [`ingest`] | the loop: consume, decode, apply, hand decisions on, store offsets |
//! | [`setup`] | turning configuration into monitor settings, baselines and channels |
//! | [`baselines`] | baseline files per model version: load, reload on change, install from the API |
//! | [`checkpointer`] | when checkpoints are taken, what a start restores, the group offset commit |
//! | [`deliveries`] | the durable outbox in front of the dispatcher and the retrain producer |
//!
//! Start: load baselines, restore the checkpoint (monitor state and the
//! partition positions it reflects), open the outbox and resend what it
//! holds, then consume from the restored positions.
//!
//! Shutdown order (SIGTERM or Ctrl-C): stop fetching, finish the message in
//! hand, write a last checkpoint and commit its offsets, flush deliveries
//! until the deadline (what is left stays in the outbox for the next
//! start), stop HTTP. A second signal exits at once.

pub mod baselines;
pub mod checkpointer;
pub mod deliveries;
pub mod ingest;
pub mod kafka;
pub mod setup;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::alert::Notification;
use crate::alert::dispatcher::Dispatcher;
use crate::config::Config;
use crate::monitor::Monitor;
use crate::telemetry::{Episodes, Metrics};

pub use kafka::Readiness;

/// What the service tells observers (the demo's timeline, tests).
#[derive(Debug, Clone)]
pub enum ServiceEvent {
    /// Events applied so far (sent every 10,000 and at the end).
    Progress {
        /// Events applied.
        events: u64,
    },
    /// The monitor decided a notification.
    Notified(Notification),
    /// A retraining trigger was acknowledged by the broker.
    RetrainPublished {
        /// Model.
        model: String,
        /// Its idempotency key.
        idempotency_key: String,
        /// Partition written.
        partition: i32,
        /// Offset written.
        offset: i64,
    },
    /// The HTTP API is listening.
    Listening(SocketAddr),
}

/// State shared by the ingestion loop and the HTTP API.
#[derive(Clone)]
pub struct Shared {
    /// The monitor. A std mutex: it is held only for the synchronous
    /// apply of one message or one status read, never across an await.
    pub monitor: Arc<Mutex<Monitor>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness flags.
    pub readiness: Arc<Readiness>,
    /// Delivery, for its counters.
    pub dispatcher: Arc<Dispatcher>,
    /// Baseline files per slot: reloads, uploads and captures.
    pub baselines: Arc<baselines::BaselineFiles>,
    /// Drift episode starts announced for detection-delay timing.
    pub episodes: Arc<Episodes>,
}

/// Handles for running the service from a test or the demo.
pub struct Handles {
    /// Cancel to shut down.
    pub shutdown: CancellationToken,
    /// Observe what happens.
    pub events: broadcast::Sender<ServiceEvent>,
    /// Announce drift episode starts (the demo knows them).
    pub episodes: Arc<Episodes>,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            shutdown: CancellationToken::new(),
            events: broadcast::channel(4096).0,
            episodes: Arc::default(),
        }
    }
}

/// Runs the service until `handles.shutdown` is cancelled.
pub async fn run(config: Config, handles: Handles) -> anyhow::Result<()> {
    let metrics =
        Arc::new(Metrics::with_export(&config.telemetry).context("setting up OTLP export")?);
    let readiness = Arc::new(Readiness::default());
    let (mut monitor, baseline_files) =
        setup::build_monitor(&config).context("loading baselines")?;
    let positions = Arc::new(checkpointer::restore(&config.checkpoint, &mut monitor)?);
    let (outbox, pending) = crate::state::Outbox::open(&config.checkpoint.dir)?;
    let outbox = Arc::new(outbox);
    let baseline_files = Arc::new(baseline_files);
    readiness.baselines_loaded.store(true, Ordering::Relaxed);
    let dispatcher = Arc::new(setup::build_dispatcher(&config).context("building alert channels")?);
    let shared = Shared {
        monitor: Arc::new(Mutex::new(monitor)),
        metrics: Arc::clone(&metrics),
        readiness: Arc::clone(&readiness),
        dispatcher: Arc::clone(&dispatcher),
        baselines: Arc::clone(&baseline_files),
        episodes: Arc::clone(&handles.episodes),
    };
    let reloader_stop = CancellationToken::new();
    let reloader = config.baselines.reload_interval.map(|every| {
        baselines::spawn_reloader(
            Arc::clone(&baseline_files),
            Arc::clone(&shared.monitor),
            Arc::clone(&metrics),
            every,
            reloader_stop.clone(),
        )
    });
    metrics.observe_monitor(Arc::clone(&shared.monitor));
    metrics.observe_delivery(dispatcher.stats());
    let latency = record_delivery_latency(&dispatcher, Arc::clone(&metrics));

    let context = kafka::MonitorContext {
        readiness: Arc::clone(&readiness),
        metrics: Arc::clone(&metrics),
        positions: Arc::clone(&positions),
    };
    let consumer =
        kafka::consumer(&config.kafka, context).context("creating the Kafka consumer")?;
    let topics: Vec<&str> = config
        .kafka
        .prediction_topics
        .iter()
        .map(|t| t.as_str())
        .collect();
    consumer
        .subscribe(&topics)
        .context("subscribing to prediction topics")?;
    let producer = kafka::producer(&config.kafka).context("creating the Kafka producer")?;

    let listener = tokio::net::TcpListener::bind(config.service.http_listen)
        .await
        .with_context(|| format!("binding {}", config.service.http_listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "HTTP API listening");
    let _ = handles.events.send(ServiceEvent::Listening(address));
    let http_stop = CancellationToken::new();
    let history = crate::api::history::spawn_history(
        shared.clone(),
        crate::api::history::DEFAULT_EVERY,
        crate::api::history::DEFAULT_KEEP,
    );
    history.follow_notifications(handles.events.subscribe());
    let app = crate::api::router(shared.clone(), config.service.api_token.clone(), history);
    let http = tokio::spawn({
        let stop = http_stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    let settings = setup::ingest_settings(&config);
    let deliveries = deliveries::Deliveries {
        dispatcher: Arc::clone(&dispatcher),
        outbox: Arc::clone(&outbox),
        producer: producer.clone(),
        retrain_topic: settings.retrain_topic.clone(),
        metrics: Arc::clone(&metrics),
        events: handles.events.clone(),
    };
    let settler_stop = CancellationToken::new();
    let settler = deliveries.spawn_settler(settler_stop.clone());
    metrics.observe_outbox(Arc::clone(&outbox));
    deliveries.resend(pending);

    let ingest = ingest::Ingest {
        consumer,
        producer: producer.clone(),
        shared: shared.clone(),
        deliveries,
        positions,
        events: handles.events.clone(),
        settings,
    };
    let checkpoints = checkpointer::Checkpointer::new(&config.checkpoint, Arc::clone(&outbox));
    ingest.run(checkpoints, handles.shutdown.clone()).await;
    reloader_stop.cancel();
    if let Some(reloader) = reloader {
        let _ = reloader.await;
    }

    shut_down(&config, &dispatcher, &producer, http_stop, http).await;
    settler_stop.cancel();
    let _ = settler.await;
    if let Err(error) = outbox.compact() {
        tracing::warn!(%error, "outbox compaction at shutdown failed");
    }
    latency.abort();
    metrics.shutdown().await;
    Ok(())
}

/// Feeds each delivered notification's latency (queueing to delivery) to
/// the metrics, per channel.
fn record_delivery_latency(
    dispatcher: &Dispatcher,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let mut outcomes = dispatcher.subscribe();
    tokio::spawn(async move {
        loop {
            match outcomes.recv().await {
                Ok(outcome) if outcome.result.is_ok() => {
                    metrics.delivery(&outcome.channel, outcome.elapsed);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "delivery latencies missed");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// The ordered drain after ingestion stopped (checkpoint written, offsets
/// committed).
async fn shut_down(
    config: &Config,
    dispatcher: &Dispatcher,
    producer: &rdkafka::producer::FutureProducer,
    http_stop: CancellationToken,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let deadline = tokio::time::Instant::now() + config.service.shutdown_deadline;
    let undelivered = dispatcher.shutdown(deadline).await;
    if !undelivered.is_empty() {
        tracing::error!(
            count = undelivered.len(),
            "notifications not delivered before the shutdown deadline"
        );
    }
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    if let Err(error) =
        rdkafka::producer::Producer::flush(producer, remaining.max(Duration::from_millis(100)))
    {
        tracing::warn!(%error, "producer flush incomplete at shutdown");
    }
    http_stop.cancel();
    let _ = http.await;
    tracing::info!("shut down");
}

/// Cancels `token` on SIGTERM or Ctrl-C; a second signal exits at once.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining (a second signal exits at once)");
        token.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
