//! Where logs and spans go. Logs are text or JSON lines on standard error;
//! when `[telemetry] otlp_endpoint` is set, the gateway's spans (see
//! `gateway::telemetry`) are also exported over OTLP/HTTP (protobuf) in
//! batches. This lives in the binary because it is process-wide set-up:
//! libraries only emit `tracing` spans and events.

use anyhow::Context;
use gateway::config::{LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// How long exporting the last spans may hold up exit.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The installed telemetry; call [`Telemetry::shutdown`] before exit so
/// that spans still in the batch are sent.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

/// Installs the process's logging (and, with an OTLP endpoint, span
/// export). `quiet` commands log warnings only unless `RUST_LOG` says
/// otherwise.
pub fn init(config: &TelemetryConfig, format: LogFormat, quiet: bool) -> anyhow::Result<Telemetry> {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);

    let traces = match config.traces_url() {
        Some(url) => Some(tracer_provider(config, &url)?),
        None => None,
    };
    // Only Switchboard's own spans are exported: the pipeline's, not every
    // HTTP or database library's.
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchboard"))
            .with_filter(
                Targets::new()
                    .with_target("gateway", Level::INFO)
                    .with_target("switchboard", Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .context("cannot install the logger: one is already installed")?;
    if let Some(url) = config.traces_url() {
        tracing::info!(endpoint = %gateway::config::redact_url(&url), "exporting spans over OTLP");
    }
    Ok(Telemetry { traces })
}

/// A tracer provider that batches spans to `url` (`…/v1/traces`).
fn tracer_provider(config: &TelemetryConfig, url: &str) -> anyhow::Result<SdkTracerProvider> {
    // The exporter's HTTP client uses the process's TLS provider (ring).
    gateway::install_crypto();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .with_context(|| {
            format!(
                "cannot set up the OTLP exporter for `{}` (telemetry.otlp_endpoint)",
                gateway::config::redact_url(url)
            )
        })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

impl Telemetry {
    /// Sends the spans still batched and stops the exporter. Blocking work
    /// runs off the async runtime's threads.
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else { return };
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: the last spans may not have been exported: {e}"),
            Err(e) => eprintln!("warning: the span exporter did not stop cleanly: {e}"),
        }
    }
}
