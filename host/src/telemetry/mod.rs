//! Where the gateway's `tracing` output goes: log lines on stderr, as text or JSON, and,
//! in a binary built with the `otlp` cargo feature and configured with
//! `[telemetry] otlp_endpoint`, spans exported to an OpenTelemetry collector.
//!
//! The two outputs filter independently: `-v` and `RUST_LOG` choose the log lines,
//! while export always takes the gateway's own spans at info level (the request, the
//! policy call, each upstream attempt), so a quiet log does not mean an empty trace.

pub(crate) mod gen_ai;
#[cfg(feature = "otlp")]
mod otlp;

use crate::config::TelemetrySection;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, with the span fields (request id, tenant…).
    Json,
}

/// What the command line asked of the logs.
#[derive(Debug, Clone, Copy)]
pub struct Logging {
    /// `-v` count: 0 warn, 1 info, 2 debug, more trace.
    pub verbose: u8,
    /// Text or JSON lines.
    pub format: LogFormat,
}

/// Setting up span export failed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built for the configured endpoint.
    #[cfg(feature = "otlp")]
    #[error("telemetry.otlp_endpoint: cannot export spans to {url}: {message}")]
    Exporter {
        /// Where spans would have been posted.
        url: String,
        /// What the exporter said.
        message: String,
    },
    /// Another `tracing` subscriber was installed first, so no span would be exported.
    #[error("telemetry: a tracing subscriber is already installed; spans cannot be exported")]
    SubscriberTaken,
}

/// The installed outputs; [`Telemetry::shutdown`] sends the spans still buffered.
#[derive(Debug)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    export: Option<otlp::Export>,
}

impl Telemetry {
    /// Whether spans are being exported.
    #[cfg(feature = "otlp")]
    pub fn exporting(&self) -> bool {
        self.export.is_some()
    }

    /// Whether spans are being exported: never, without the `otlp` feature.
    #[cfg(not(feature = "otlp"))]
    pub fn exporting(&self) -> bool {
        false
    }

    /// Exports the spans still buffered and stops the exporter. Spans ending after
    /// this are dropped, so call it once requests have drained.
    pub async fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(export) = self.export {
            export.shutdown().await;
        }
    }
}

/// Installs the global subscriber: the log lines `logging` asks for and, when
/// `telemetry` names an endpoint (only possible with the `otlp` feature: the config
/// refuses it otherwise), span export. Export is set up on the current tokio runtime,
/// which must keep running until [`Telemetry::shutdown`].
///
/// Installing twice keeps the first subscriber: an error only when export was asked
/// for, since it would silently not happen.
pub fn init(
    logging: Logging,
    telemetry: Option<&TelemetrySection>,
) -> Result<Telemetry, TelemetryError> {
    let telemetry_asked = telemetry.is_some();
    #[cfg(feature = "otlp")]
    let (export, export_layer) = match telemetry.and_then(|t| t.traces_url().map(|url| (t, url))) {
        Some((section, url)) => {
            let (export, layer) = otlp::Export::start(section, &url)?;
            (Some(export), Some(layer))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let export_layer: Option<Box<dyn Layer<Registry> + Send + Sync>> = None;
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = std::iter::once(log_lines(logging))
        .chain(export_layer)
        .collect();

    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    let telemetry = Telemetry {
        #[cfg(feature = "otlp")]
        export,
    };
    if !installed && telemetry.exporting() {
        return Err(TelemetryError::SubscriberTaken);
    }
    if telemetry_asked {
        warn_about_ignored_endpoint();
    }
    Ok(telemetry)
}

/// The stderr layer, filtered by `RUST_LOG` or else the `-v` level.
fn log_lines(logging: Logging) -> Box<dyn Layer<Registry> + Send + Sync> {
    use std::io::IsTerminal;
    let level = match logging.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match logging.format {
        LogFormat::Text => lines
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    }
}

/// For `serve` only (the other commands handle no request). The config ignores
/// `OTEL_EXPORTER_OTLP_ENDPOINT` in a binary that cannot export (it
/// may be meant for other programs); say so, since someone may expect spans.
fn warn_about_ignored_endpoint() {
    if crate::config::OTLP_BUILT_IN {
        return;
    }
    let var = crate::config::OTLP_ENDPOINT_ENV;
    if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
        tracing::warn!(
            "{var} is set, but this signalbox was built without the `otlp` feature: no span is exported"
        );
    }
}
