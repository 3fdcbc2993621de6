//! HTTP plumbing shared by the webhook and Slack channels: URL and header
//! validation, posting a JSON body, and turning reqwest's errors and
//! non-2xx answers into [`DeliveryError`]s that never contain the URL
//! (webhook URLs carry tokens).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use super::delivery::{ConfigError, DeliveryError, error_chain};
use super::render::truncate_chars;
use super::secret::Secret;

/// Header carrying [`Notification::idempotency_key`](super::Notification::idempotency_key).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// How much of an error response body is kept for the error message.
const BODY_PREFIX_CHARS: usize = 200;

/// Longest body read from an error response; a receiver answering with
/// megabytes must not make us buffer them.
const BODY_READ_LIMIT: usize = 4096;

/// Parses a secret URL; the error never repeats the URL.
pub(crate) fn parse_url(key: &str, url: &Secret<String>) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url.expose())
        .map_err(|e| ConfigError::new(key, format!("not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::new(
            key,
            "must be an http or https URL with a host",
        ));
    }
    Ok(parsed)
}

/// The part of a URL that is safe to log: scheme, host and port.
pub(crate) fn redacted(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Parses configured headers; values are secrets and never echoed.
pub(crate) fn parse_headers(
    headers: &BTreeMap<String, Secret<String>>,
) -> Result<HeaderMap, Vec<ConfigError>> {
    let mut map = HeaderMap::new();
    let mut problems = Vec::new();
    for (name, value) in headers {
        let key = format!("headers.{name}");
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(ConfigError::new(key, "not a valid header name"));
            continue;
        };
        let Ok(mut value) = HeaderValue::from_str(value.expose()) else {
            problems.push(ConfigError::new(key, "header value has invalid characters"));
            continue;
        };
        value.set_sensitive(true);
        map.insert(header, value);
    }
    if problems.is_empty() {
        Ok(map)
    } else {
        Err(problems)
    }
}

/// Checks a per-attempt timeout.
pub(crate) fn check_timeout(timeout: Duration) -> Option<ConfigError> {
    timeout
        .is_zero()
        .then(|| ConfigError::new("timeout", "must be greater than zero"))
}

/// One HTTP endpoint that receives JSON posts.
pub(crate) struct HttpTarget {
    channel: String,
    client: reqwest::Client,
    url: Url,
    endpoint: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the URL carries the receiver's token.
        f.debug_struct("HttpTarget")
            .field("channel", &self.channel)
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpTarget {
    /// A target for `url` with fixed extra headers.
    pub(crate) fn new(
        channel: &str,
        url: Url,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("driftwarden/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| ConfigError::new("url", format!("cannot build HTTP client: {e}")))?;
        Ok(HttpTarget {
            channel: channel.to_owned(),
            client,
            endpoint: redacted(&url),
            url,
            headers,
            timeout,
        })
    }

    /// Scheme, host and port of the URL; safe to log.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Posts a JSON body; 2xx is success, anything else an error.
    pub(crate) async fn post_json(
        &self,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<(), DeliveryError> {
        let headers = self.request_headers(idempotency_key)?;
        let response = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        self.check_status(response).await
    }

    /// Configured headers, then ours, which win over configured ones with
    /// the same name.
    fn request_headers(&self, idempotency_key: Option<&str>) -> Result<HeaderMap, DeliveryError> {
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|_| DeliveryError::Render {
                channel: self.channel.clone(),
                reason: "idempotency key is not a valid header value".to_owned(),
            })?;
            headers.insert(IDEMPOTENCY_KEY_HEADER, value);
        }
        // W3C trace context of the delivery span (`traceparent`), so the
        // receiver's spans join the trace; nothing when spans are not
        // exported.
        for (name, value) in crate::telemetry::trace_headers() {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
        Ok(headers)
    }

    fn request_error(&self, error: reqwest::Error) -> DeliveryError {
        // `without_url`: reqwest puts the full URL, token included, in its
        // messages.
        let error = error.without_url();
        if error.is_timeout() {
            DeliveryError::Timeout {
                channel: self.channel.clone(),
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            }
        } else if error.is_builder() {
            DeliveryError::Render {
                channel: self.channel.clone(),
                reason: error_chain(&error),
            }
        } else {
            DeliveryError::Connection {
                channel: self.channel.clone(),
                endpoint: self.endpoint.clone(),
                source: error_chain(&error).into(),
            }
        }
    }

    async fn check_status(&self, response: reqwest::Response) -> Result<(), DeliveryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers());
        let body = body_prefix(response).await;
        Err(DeliveryError::Status {
            channel: self.channel.clone(),
            endpoint: self.endpoint.clone(),
            status: status.as_u16(),
            retry_after,
            body,
        })
    }
}

/// `Retry-After` in seconds. Limitation: the HTTP-date form is ignored
/// (the back-off applies instead); receivers we know of send seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The first characters of a response body, read with a size limit.
async fn body_prefix(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_READ_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    truncate_chars(text.trim(), BODY_PREFIX_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_errors_do_not_repeat_the_url() {
        let secret = Secret::from("hooks.example.com/T0/B0/token-abc");

        let error = parse_url("url", &secret).unwrap_err();

        assert!(!error.to_string().contains("token-abc"), "{error}");
        let ftp = parse_url("url", &Secret::from("ftp://example.com/x")).unwrap_err();
        assert!(ftp.reason.contains("http"));
    }

    #[test]
    fn the_endpoint_keeps_only_scheme_host_and_port() {
        let url = Url::parse("https://hooks.slack.com/services/T0/B0/secret?x=1").unwrap();

        assert_eq!(redacted(&url), "https://hooks.slack.com");
        let local = Url::parse("http://127.0.0.1:8080/hook/token").unwrap();
        assert_eq!(redacted(&local), "http://127.0.0.1:8080");
    }

    #[test]
    fn debug_output_hides_the_url_and_header_values() {
        let url = Url::parse("https://hooks.example/T0/B0/token-abc").unwrap();
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_owned(), Secret::from("Bearer xyz"));
        let headers = parse_headers(&headers).unwrap();

        let target = HttpTarget::new("hook", url, headers, Duration::from_secs(1)).unwrap();

        let shown = format!("{target:?}");
        assert!(shown.contains("https://hooks.example"), "{shown}");
        assert!(
            !shown.contains("token-abc") && !shown.contains("xyz"),
            "{shown}"
        );
    }

    #[test]
    fn bad_headers_are_reported_by_key() {
        let mut headers = BTreeMap::new();
        headers.insert("bad name".to_owned(), Secret::from("v"));
        headers.insert("X-Ok".to_owned(), Secret::from("bad\nvalue"));

        let keys: Vec<String> = parse_headers(&headers)
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect();

        assert_eq!(keys, ["headers.X-Ok", "headers.bad name"]);
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
