//! `[telemetry]`: the log format, the OpenTelemetry collector traces go to, and whether
//! message text may appear on spans.

use serde::Deserialize;

use super::{ConfigError, redact_url};

/// `[telemetry]`: how Switchboard logs and where it sends traces.
/// Prometheus metrics are always served at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OpenTelemetry collector's OTLP/HTTP base URL
    /// (`http://otel-collector:4318`); spans go to `{otlp_endpoint}/v1/traces`
    /// as protobuf. Unset: no traces are exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// `text` (for people) or `json` (one object per line, for log
    /// collectors). The `--log-format` flag wins over this key.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Put message text (the rendered prompt and the answer) on spans as
    /// `gen_ai.input.messages` and `gen_ai.output.messages`. Off by
    /// default: traces often reach more people than the conversation did.
    #[serde(default)]
    pub capture_content: bool,
}

fn default_service_name() -> String {
    "switchboard".to_string()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            log_format: LogFormat::default(),
            capture_content: false,
        }
    }
}

impl TelemetryConfig {
    /// The URL spans are posted to, when export is on.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref()?.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        })
    }
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}`: use `text` or `json`"
            )),
        }
    }
}

impl TelemetryConfig {
    /// Rules of `[telemetry]`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let ok = reqwest::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::key(
                    "telemetry.otlp_endpoint",
                    Some(format!("{:?}", redact_url(endpoint))),
                    "must be the collector's OTLP/HTTP URL, e.g. http://otel-collector:4318",
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::key(
                "telemetry.service_name",
                None,
                "must not be empty (default: switchboard)",
            ));
        }
        Ok(())
    }
}
