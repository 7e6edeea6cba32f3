//! Span export over OTLP/HTTP (protobuf), compiled with the `otlp` feature only.
//!
//! Spans leave through a batch processor running as a task on the gateway's tokio
//! runtime and an async hyper client (HTTPS too, with the web PKI roots, as upstream
//! calls do), so no thread or HTTP stack beyond the gateway's own is added.

use super::TelemetryError;
use crate::config::TelemetrySection;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, span_processor_with_async_runtime};
use std::time::Duration;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::Registry;

/// One export request (with its retries) may take this long; a collector that is
/// down costs the exporter task this much per batch, never a request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running exporter.
#[derive(Debug)]
pub(super) struct Export {
    provider: SdkTracerProvider,
    url: String,
}

impl Export {
    /// Starts exporting to `url` and returns the layer that feeds it. Must run on a
    /// tokio runtime: the batch processor is a task on it.
    pub(super) fn start(
        section: &TelemetrySection,
        url: &str,
    ) -> Result<(Export, Box<dyn Layer<Registry> + Send + Sync>), TelemetryError> {
        let failed = |message: String| TelemetryError::Exporter {
            url: url.to_owned(),
            message,
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| failed(format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = opentelemetry_http::hyper::HyperClient::new(https, EXPORT_TIMEOUT, None);
        // An explicit endpoint: the exporter would otherwise read the `OTEL_EXPORTER_*`
        // endpoint variables itself, and the config has already settled which wins.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let batches = span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
        // Parent-based: every span of a request follows the decision taken for the
        // request span, so a sampled trace is always whole.
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(section.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_sampler(sampler)
            .with_resource(
                Resource::builder()
                    .with_service_name(section.service_name.clone())
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("signalbox"))
            // Requests hop between worker threads; a thread id says nothing.
            .with_threads(false)
            // The module path would take the `target` attribute, which on an attempt
            // span names the upstream target.
            .with_target(false)
            // The gateway's own spans and events only. A policy's log lines stay in the
            // rate-limited log: they are the policy author's text, which may quote the
            // prompt, and a collector keeps what it is sent.
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("signalbox", tracing::Level::INFO)
                    .with_target(
                        "signalbox::policy::guest",
                        tracing_subscriber::filter::LevelFilter::OFF,
                    ),
            )
            .boxed();
        Ok((
            Export {
                provider,
                url: url.to_owned(),
            },
            layer,
        ))
    }

    /// Flushes and stops. The SDK's shutdown blocks until the batch task has sent
    /// what it holds, so it runs off the async workers, which drive that task.
    pub(super) async fn shutdown(self) {
        let Export { provider, url } = self;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%url, error = %e, "span export: shutdown failed"),
            Err(e) => tracing::warn!(%url, error = %e, "span export: shutdown task failed"),
        }
    }
}
