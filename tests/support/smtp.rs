//! A real SMTP server for the email-channel tests: the `mailin` crate's
//! SMTP state machine (the engine of `mailin-embedded`) behind a Tokio
//! listener on 127.0.0.1, keeping every message it accepts.
//!
//! Include it from a test target:
//!
//! ```ignore
//! #[path = "support/smtp.rs"]
//! mod smtp;
//! ```
//!
//! Plain connections only (no STARTTLS offered). `mailin-embedded` itself
//! is not used because its server cannot be stopped; this one stops with
//! [`SmtpServer::stop`].

#![allow(dead_code)] // Each test target uses a different part.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the server accepts.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Require `AUTH PLAIN` with this user and password (offered over the
    /// plain connection, as a local relay would).
    pub login: Option<(String, String)>,
    /// Answer 550 to `RCPT TO` for this address.
    pub reject_recipient: Option<String>,
    /// Answer 452 (insufficient storage, a transient 4xx) to the first
    /// this many `RCPT TO` commands, then accept.
    pub transient_failures: usize,
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed.
    pub data: Vec<u8>,
    /// The login the client authenticated with, if any.
    pub login: Option<(String, String)>,
}

struct Shared {
    options: SmtpOptions,
    /// `RCPT TO` commands answered so far.
    recipients_seen: std::sync::atomic::AtomicUsize,
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
}

/// A running SMTP server.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    server: JoinHandle<()>,
}

impl SmtpServer {
    /// Starts a server on 127.0.0.1 with a free port.
    pub async fn start(options: SmtpOptions) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            options,
            recipients_seen: std::sync::atomic::AtomicUsize::new(0),
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let stop = CancellationToken::new();
        let server = tokio::spawn(accept(listener, Arc::clone(&shared), stop.clone()));
        SmtpServer {
            addr,
            shared,
            stop,
            server,
        }
    }

    /// The port it listens on (the host is 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits until `n` messages have arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let mails = self.shared.mails.lock().unwrap().clone();
            if mails.len() >= n {
                return mails;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {n} messages within {within:?}, got {}",
                    mails.len()
                );
            }
        }
    }

    /// Closes the listener and every open session.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("SMTP server stops")
            .unwrap();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        if let Ok((stream, peer)) = accepted {
            sessions.spawn(session(
                stream,
                peer.ip(),
                Arc::clone(&shared),
                stop.clone(),
            ));
        }
    }
    sessions.shutdown().await;
}

/// One SMTP conversation: lines in, the state machine's replies out.
async fn session(stream: TcpStream, peer: IpAddr, shared: Arc<Shared>, stop: CancellationToken) {
    let mut builder = SessionBuilder::new("smtp.test");
    if shared.options.login.is_some() {
        builder
            .enable_auth(AuthMechanism::Plain)
            .insecure_enable_plaintext_auth();
    }
    let mut session = builder.build(peer, Collector::new(shared));
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if reply(&mut write, &session.greeting()).await.is_err() {
        return;
    }

    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = reader.read_until(b'\n', &mut line) => read,
        };
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply => {
                if reply(&mut write, &response).await.is_err() {
                    return;
                }
            }
            Action::Close | Action::UpgradeTls => {
                let _ = reply(&mut write, &response).await;
                return;
            }
        }
    }
}

async fn reply(write: &mut tokio::net::tcp::OwnedWriteHalf, response: &Response) -> io::Result<()> {
    write.write_all(&response.buffer()?).await?;
    write.flush().await
}

/// Decides on each command and keeps accepted messages.
struct Collector {
    shared: Arc<Shared>,
    login: Option<(String, String)>,
    current: Option<ReceivedMail>,
}

impl Collector {
    fn new(shared: Arc<Shared>) -> Self {
        Collector {
            shared,
            login: None,
            current: None,
        }
    }
}

impl Handler for Collector {
    fn rcpt(&mut self, to: &str) -> Response {
        let seen = self
            .shared
            .recipients_seen
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if seen < self.shared.options.transient_failures {
            return response::OUT_OF_SPACE;
        }
        match &self.shared.options.reject_recipient {
            Some(rejected) if rejected == to => response::NO_MAILBOX,
            _ => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(ReceivedMail {
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
            login: self.login.clone(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(mail) = &mut self.current {
            mail.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(mail) = self.current.take() {
            self.shared.mails.lock().unwrap().push(mail);
            self.shared.arrived.notify_waiters();
        }
        response::OK
    }

    fn auth_plain(&mut self, _authorization_id: &str, user: &str, password: &str) -> Response {
        let expected = self.shared.options.login.as_ref();
        if expected.is_some_and(|(u, p)| u == user && p == password) {
            self.login = Some((user.to_owned(), password.to_owned()));
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}
