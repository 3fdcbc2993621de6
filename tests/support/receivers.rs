//! A real HTTP receiver for the alert-channel tests: an axum server on
//! 127.0.0.1 (a free port) that records every request (headers and body)
//! and answers as its [`Behaviour`] says.
//!
//! Include it from a test target:
//!
//! ```ignore
//! #[path = "support/receivers.rs"]
//! mod receivers;
//! ```
//!
//! [`Receiver::stop`] shuts the server down gracefully; requests held by a
//! hanging or slow behaviour are released first.

#![allow(dead_code)] // Each test target uses a different part.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 200 to everything.
    Ok,
    /// `status` to the first `failures` requests, then 200.
    FailFirst { failures: usize, status: u16 },
    /// `status` to everything.
    Always(u16),
    /// Waits this long before answering 200 (the stop releases it).
    Slow(Duration),
    /// Never answers until the receiver stops.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived.
    pub at: Instant,
    /// Path and query.
    pub uri: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

impl Recorded {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

struct Shared {
    behaviour: Behaviour,
    requests: Mutex<Vec<Recorded>>,
    arrived: Notify,
    stop: CancellationToken,
}

/// A running receiver.
pub struct Receiver {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 with a free port.
    pub async fn start(behaviour: Behaviour) -> Receiver {
        Receiver::start_at(0, behaviour).await
    }

    /// Starts a receiver on 127.0.0.1:`port` (0: a free one), e.g. to
    /// bring back a receiver that was down at a known address.
    pub async fn start_at(port: u16, behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            behaviour,
            requests: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            stop: CancellationToken::new(),
        });
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(Arc::clone(&shared));
        let stop = shared.stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        Receiver {
            addr,
            shared,
            server,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            // Created before the check: `notify_waiters` reaches it even
            // if the request lands between the check and the await.
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {n} requests within {within:?}, got {}",
                    requests.len()
                );
            }
        }
    }

    /// Releases held requests and shuts the server down.
    pub async fn stop(self) {
        self.shared.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("receiver stops")
            .unwrap();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let index = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(Recorded {
            at: Instant::now(),
            uri: uri.to_string(),
            headers,
            body,
        });
        requests.len() - 1
    };
    shared.arrived.notify_waiters();

    match shared.behaviour {
        Behaviour::Ok => StatusCode::OK,
        Behaviour::FailFirst { failures, status } if index < failures => code(status),
        Behaviour::FailFirst { .. } => StatusCode::OK,
        Behaviour::Always(status) => code(status),
        Behaviour::Slow(delay) => {
            tokio::select! {
                () = shared.stop.cancelled() => StatusCode::SERVICE_UNAVAILABLE,
                () = tokio::time::sleep(delay) => StatusCode::OK,
            }
        }
        Behaviour::Hang => {
            shared.stop.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

fn code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap()
}
