//! OTLP export over HTTP (protobuf or JSON) of metrics and spans.
//!
//! The SDK's periodic metric reader and batch span processor export from
//! their own threads and wait on the export future there. The HTTP client
//! below runs each request on the service's tokio runtime and hands the
//! result back, so the exporters share the service's `reqwest` client
//! stack (rustls included) instead of bringing a second one.

use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

use crate::config::{OtlpProtocol, TelemetryConfig};

/// Timeout of one export request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body read from the receiver; OTLP responses are tiny.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// An [`HttpClient`] that runs requests on a tokio runtime.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeClient {
    /// A client whose requests run on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> RuntimeClient {
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        RuntimeClient { client, runtime }
    }
}

#[async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = response.bytes().await?;
            body.truncate(MAX_RESPONSE_BYTES);
            let mut out = Response::builder().status(status).body(body)?;
            *out.headers_mut() = headers;
            Ok::<_, HttpError>(out)
        });
        task.await.map_err(|e| Box::new(e) as HttpError)?
    }
}

fn protocol(p: OtlpProtocol) -> Protocol {
    match p {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    }
}

/// `base` + `/v1/<signal>`, the OTLP/HTTP path of a signal.
pub fn signal_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

/// The periodic reader that pushes metrics to the configured endpoint.
pub fn metric_reader(
    config: &TelemetryConfig,
    endpoint: &str,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<PeriodicReader<opentelemetry_otlp::MetricExporter>> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient::new(runtime))
        .with_protocol(protocol(config.otlp_protocol))
        .with_endpoint(signal_url(endpoint, "metrics"))
        .with_timeout(EXPORT_TIMEOUT)
        .with_temporality(Temporality::Cumulative)
        .build()?;
    Ok(PeriodicReader::builder(exporter)
        .with_interval(config.export_interval)
        .build())
}

/// A tracer provider exporting spans in batches to the configured endpoint.
pub fn tracer_provider(
    config: &TelemetryConfig,
    endpoint: &str,
    runtime: tokio::runtime::Handle,
    resource: opentelemetry_sdk::Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient::new(runtime))
        .with_protocol(protocol(config.otlp_protocol))
        .with_endpoint(signal_url(endpoint, "traces"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    // Spans leave on the metrics' interval rather than the SDK's 5 s
    // default, so one setting says how fresh exported telemetry is.
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(config.export_interval)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}
