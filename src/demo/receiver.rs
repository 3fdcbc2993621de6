//! The demo's webhook receiver: a local HTTP server that prints each
//! Alertmanager-style notification it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;

/// A running receiver.
pub struct Receiver {
    url: String,
    count: Arc<AtomicUsize>,
}

impl Receiver {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// Starts a receiver on a free loopback port.
pub async fn start() -> anyhow::Result<Receiver> {
    let count = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/alerts", post(receive))
        .with_state(Arc::clone(&count));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/alerts", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Receiver { url, count })
}

async fn receive(
    State(count): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
    body: String,
) -> &'static str {
    count.fetch_add(1, Ordering::Relaxed);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let status = parsed["status"].as_str().unwrap_or("?");
    let features: Vec<&str> = parsed["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["labels"]["feature"].as_str())
                .collect()
        })
        .unwrap_or_default();
    println!(
        "[demo] webhook receiver got a {status} notification for {} (idempotency key {key})",
        features.join(", ")
    );
    "ok"
}
