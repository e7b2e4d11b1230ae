//! Prometheus metrics, served as text at `/metrics`: requests, tokens and
//! cost, latency histograms (TTFT, TPOT, total, and the time spent in
//! Switchboard itself), cache hits, limiter refusals, provider errors,
//! queue depths and Redis fallbacks, labelled by alias, provider, prompt
//! and version.
//! Counters live in one map behind a mutex: a request touches it once,
//! which costs far less than the request's own work. The recorder's
//! latencies (a click's acknowledgement, a spool sync) are counted on its
//! own hot path in lock-free [`Timings`] and copied in when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::{InferenceRecord, Status};

/// Latency bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket bounds for the recorder's own latencies (a click's
/// acknowledgement, a spool sync), in seconds: finer below a millisecond,
/// where a healthy disk is.
const FAST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

type Labels = Vec<(&'static str, String)>;

struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; values above the last bound are only in
    /// `count`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            bounds: BUCKETS,
            counts: vec![0; BUCKETS.len()],
            sum: 0.0,
            count: 0,
        }
    }
}

/// A latency histogram kept without a lock, for a hot path off the
/// request path (the recorder's spooler thread, a click waiting for its
/// acknowledgement); [`Metrics::set_timings`] copies it into the
/// exposition at scrape time.
pub struct Timings {
    counts: [AtomicU64; FAST_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Timings {
    /// Counts one duration.
    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = FAST_BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Durations counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct State {
    /// The series every request touches, by alias, provider and prompt.
    series: Vec<Series>,
    /// `switchboard_limited_total`, by alias.
    limited: BTreeMap<String, f64>,
    /// The rarer counters (provider errors), by name and labels.
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
}

/// The histograms of one [`Series`], in this order.
const SERIES_HISTOGRAMS: [&str; 4] = [
    "switchboard_ttft_seconds",
    "switchboard_tpot_seconds",
    "switchboard_request_duration_seconds",
    "switchboard_overhead_seconds",
];

/// What the requests of one alias, provider and prompt version have
/// counted. A field is `None` until first counted, so that a series that
/// never happened is not shown.
struct Series {
    alias: String,
    provider: String,
    prompt: Option<(String, i64)>,
    /// `switchboard_requests_total`, by status.
    requests: Vec<(&'static str, f64)>,
    cache_hits: Option<f64>,
    /// Input, then output tokens.
    tokens: [Option<f64>; 2],
    cost: Option<f64>,
    /// Answers without a TTFT, then without a TPOT figure.
    unknown: [Option<f64>; 2],
    /// In [`SERIES_HISTOGRAMS`] order.
    histograms: [Option<Histogram>; 4],
}

impl Series {
    /// The shared labels, as exposed.
    fn labels(&self) -> Labels {
        let (prompt, version) = self
            .prompt
            .as_ref()
            .map_or((String::new(), String::new()), |(p, v)| {
                (p.clone(), v.to_string())
            });
        vec![
            ("alias", self.alias.clone()),
            ("provider", self.provider.clone()),
            ("prompt", prompt),
            ("version", version),
        ]
    }
}

impl State {
    /// The series of `r`'s alias, provider and prompt version, made on
    /// first use.
    fn series_of(&mut self, r: &InferenceRecord) -> &mut Series {
        let provider = r.provider.as_deref().unwrap_or("");
        let found = self.series.iter().position(|x| {
            x.alias == r.alias
                && x.provider == provider
                && x.prompt.as_ref().map(|(p, v)| (p.as_str(), *v))
                    == r.prompt.as_ref().map(|(p, v)| (p.as_str(), *v))
        });
        let i = found.unwrap_or_else(|| {
            self.series.push(Series {
                alias: r.alias.clone(),
                provider: provider.to_string(),
                prompt: r.prompt.clone(),
                requests: Vec::new(),
                cache_hits: None,
                tokens: [None; 2],
                cost: None,
                unknown: [None; 2],
                histograms: Default::default(),
            });
            self.series.len() - 1
        });
        &mut self.series[i]
    }

    /// Every counter and gauge, and every histogram, by name and labels:
    /// the exposition's order.
    #[allow(clippy::type_complexity)]
    fn exposed(
        &self,
    ) -> (
        BTreeMap<(&'static str, Labels), f64>,
        BTreeMap<(&'static str, Labels), &Histogram>,
    ) {
        let mut values = self.counters.clone();
        values.extend(self.gauges.iter().map(|(k, v)| (k.clone(), *v)));
        for (alias, n) in &self.limited {
            values.insert(
                ("switchboard_limited_total", vec![("alias", alias.clone())]),
                *n,
            );
        }
        let mut histograms: BTreeMap<_, &Histogram> = self
            .histograms
            .iter()
            .map(|(k, h)| (k.clone(), h))
            .collect();
        for series in &self.series {
            let base = series.labels();
            let with = |name: &'static str, value: &str| {
                let mut l = base.clone();
                l.push((name, value.to_string()));
                l
            };
            for (status, n) in &series.requests {
                values.insert(("switchboard_requests_total", with("status", status)), *n);
            }
            if let Some(n) = series.cache_hits {
                values.insert(("switchboard_cache_hits_total", base.clone()), n);
            }
            if let Some(c) = series.cost {
                values.insert(("switchboard_cost_usd_total", base.clone()), c);
            }
            let split = [
                (
                    "switchboard_tokens_total",
                    "direction",
                    ["input", "output"],
                    series.tokens,
                ),
                (
                    "switchboard_figures_unknown_total",
                    "figure",
                    ["ttft", "tpot"],
                    series.unknown,
                ),
            ];
            for (name, label, kinds, counts) in split {
                for (kind, n) in kinds.into_iter().zip(counts) {
                    if let Some(n) = n {
                        values.insert((name, with(label, kind)), n);
                    }
                }
            }
            for (name, h) in SERIES_HISTOGRAMS.into_iter().zip(&series.histograms) {
                if let Some(h) = h {
                    histograms.insert((name, base.clone()), h);
                }
            }
        }
        (values, histograms)
    }
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

/// (name, help, kind) of every series, for `# HELP` and `# TYPE`.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "switchboard_requests_total",
        "Answered, failed and refused requests.",
        "counter",
    ),
    (
        "switchboard_tokens_total",
        "Tokens, by direction (input, output).",
        "counter",
    ),
    (
        "switchboard_cost_usd_total",
        "Cost of priced models, in US dollars.",
        "counter",
    ),
    (
        "switchboard_cache_hits_total",
        "Requests answered from the response cache.",
        "counter",
    ),
    (
        "switchboard_limited_total",
        "Requests refused by a rate limit or budget.",
        "counter",
    ),
    (
        "switchboard_provider_errors_total",
        "Failed tries of a provider target.",
        "counter",
    ),
    (
        "switchboard_tool_calls_total",
        "Tool calls run for answers, by tool and outcome (`ok`, or why there was no result: `timeout`, `unavailable`, `arguments`, `unknown_tool`, `failed`, `not_approved`).",
        "counter",
    ),
    (
        "switchboard_tool_call_seconds",
        "How long each tool call took, by tool.",
        "histogram",
    ),
    (
        "switchboard_in_flight_requests",
        "Answers being generated right now.",
        "gauge",
    ),
    (
        "switchboard_figures_unknown_total",
        "Answers recorded without a TTFT or TPOT figure (`figure`), left out of those histograms rather than counted as 0.",
        "counter",
    ),
    (
        "switchboard_queue_depth",
        "Work waiting in a queue: `recorder` (rows not yet written to the database), \
         `recorder_memory` (of those, rows held in memory) \
         or `provider` (requests admitted to an embedded model, running or waiting for a slot).",
        "gauge",
    ),
    (
        "switchboard_circuit_state",
        "Each target's circuit breaker in this replica: 0 closed, 1 open (skipped), 2 half-open (one probe).",
        "gauge",
    ),
    (
        "switchboard_redis_fallbacks_total",
        "Times Redis failed and in-process state was used.",
        "counter",
    ),
    (
        "switchboard_feedback_ack_seconds",
        "From a feedback row reaching the recorder to its acknowledgement \
         (fsync'd in the spool, or handed on in memory without one).",
        "histogram",
    ),
    (
        "switchboard_spool_sync_seconds",
        "Appending one batch of rows to the spool and syncing it to disk.",
        "histogram",
    ),
    (
        "switchboard_ttft_seconds",
        "Time to first token.",
        "histogram",
    ),
    (
        "switchboard_tpot_seconds",
        "Time per output token after the first.",
        "histogram",
    ),
    (
        "switchboard_request_duration_seconds",
        "Whole request duration.",
        "histogram",
    ),
    (
        "switchboard_overhead_seconds",
        "Time spent in Switchboard rather than waiting on providers.",
        "histogram",
    ),
];

impl Metrics {
    /// Counts one recorded inference. Once its series exist this allocates
    /// nothing: they are found by their labels among the few there are.
    pub fn observe(&self, r: &InferenceRecord) {
        let Ok(mut s) = self.state.lock() else { return };
        let s = &mut *s;
        if r.status == Status::Limited {
            *s.limited.entry(r.alias.clone()).or_default() += 1.0;
        }
        for attempt in r.attempts.iter().filter(|a| a.error.is_some()) {
            let failed = attempt
                .target
                .split_once('/')
                .map_or(attempt.target.as_str(), |(p, _)| p);
            add(
                s,
                "switchboard_provider_errors_total",
                vec![
                    ("alias", r.alias.clone()),
                    ("provider", failed.to_string()),
                    ("target", attempt.target.clone()),
                ],
                1.0,
            );
        }
        let series = s.series_of(r);
        let status = r.status.as_str();
        match series.requests.iter_mut().find(|(st, _)| *st == status) {
            Some((_, n)) => *n += 1.0,
            None => series.requests.push((status, 1.0)),
        }
        if r.cache_hit {
            *series.cache_hits.get_or_insert(0.0) += 1.0;
        }
        for (slot, n) in series
            .tokens
            .iter_mut()
            .zip([r.input_tokens, r.output_tokens])
        {
            if let Some(n) = n {
                *slot.get_or_insert(0.0) += n as f64;
            }
        }
        if let Some(c) = r.cost_usd {
            *series.cost.get_or_insert(0.0) += c;
        }
        if r.status == Status::Limited {
            return;
        }
        let figures = [
            r.ttft_ms,
            r.tpot_ms,
            Some(r.total_ms),
            Some((r.total_ms - r.provider_ms).max(0.0)),
        ];
        for (i, ms) in figures.into_iter().enumerate() {
            if let Some(ms) = ms {
                series.histograms[i]
                    .get_or_insert_with(Histogram::default)
                    .observe(ms / 1000.0);
            } else if r.status == Status::Ok && i < 2 {
                // An answer without the figure is left out of the histogram
                // and counted, so that a reader knows how many.
                *series.unknown[i].get_or_insert(0.0) += 1.0;
            }
        }
    }

    /// Counts one tool call Switchboard ran: `outcome` is `ok` or the
    /// error's kind; its duration goes to the tool's histogram.
    pub fn tool_call(&self, tool: &str, outcome: &str, seconds: f64) {
        let Ok(mut s) = self.state.lock() else { return };
        add(
            &mut s,
            "switchboard_tool_calls_total",
            vec![("tool", tool.to_string()), ("outcome", outcome.to_string())],
            1.0,
        );
        s.histograms
            .entry((
                "switchboard_tool_call_seconds",
                vec![("tool", tool.to_string())],
            ))
            .or_insert_with(Histogram::default)
            .observe(seconds);
    }

    /// Sets a gauge (`switchboard_in_flight_requests`,
    /// `switchboard_queue_depth`) to its current value.
    pub fn set_gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let Ok(mut s) = self.state.lock() else { return };
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        s.gauges.insert((name, labels), value);
    }

    /// Moves a gauge by `by` (negative to lower it).
    pub fn add_gauge(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        let Ok(mut s) = self.state.lock() else { return };
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        *s.gauges.entry((name, labels)).or_default() += by;
    }

    /// Sets the histogram `name` to what `timings` has counted.
    pub fn set_timings(&self, name: &'static str, timings: &Timings) {
        let Ok(mut s) = self.state.lock() else { return };
        s.histograms.insert(
            (name, Vec::new()),
            Histogram {
                bounds: FAST_BUCKETS,
                counts: timings
                    .counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect(),
                sum: timings.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
                count: timings.count(),
            },
        );
    }

    /// The metrics in Prometheus's text format; `redis_fallbacks` is read
    /// from the Redis link at scrape time.
    pub fn render(&self, redis_fallbacks: Option<u64>) -> String {
        let mut out = String::new();
        let Ok(s) = self.state.lock() else {
            return out;
        };
        let (values, histograms) = s.exposed();
        for (family, help, kind) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            if *family == "switchboard_redis_fallbacks_total" {
                let _ = writeln!(out, "{family} {}", redis_fallbacks.unwrap_or(0));
                continue;
            }
            for ((name, labels), value) in values.iter().filter(|((n, _), _)| n == family) {
                let _ = writeln!(out, "{name}{} {value}", labels_text(labels, None));
            }
            for ((name, labels), h) in histograms.iter().filter(|((n, _), _)| n == family) {
                let mut cumulative = 0;
                for (bound, count) in h.bounds.iter().zip(&h.counts) {
                    cumulative += count;
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels_text(labels, Some(&bound.to_string()))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    labels_text(labels, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{} {}", labels_text(labels, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", labels_text(labels, None), h.count);
            }
        }
        out
    }
}

fn add(s: &mut State, name: &'static str, labels: Labels, by: f64) {
    *s.counters.entry((name, labels)).or_default() += by;
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

fn labels_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(alias: &str, ttft_ms: Option<f64>, status: Status) -> InferenceRecord {
        InferenceRecord {
            prompt: Some(("support".into(), 3)),
            alias: alias.into(),
            provider: Some("openai".into()),
            model: Some("gpt-4o-mini".into()),
            input_tokens: Some(10),
            output_tokens: Some(5),
            ttft_ms,
            tpot_ms: Some(2.0),
            total_ms: 40.0,
            provider_ms: 39.0,
            cost_usd: Some(0.5),
            status,
            ..InferenceRecord::sample()
        }
    }

    /// Requests of one series add up in it; another alias is a series of
    /// its own; an unknown TTFT is counted apart, not as 0.
    #[test]
    fn requests_add_up_by_series_and_unknown_figures_are_counted_apart() {
        let metrics = Metrics::default();
        metrics.observe(&answer("fast", Some(12.0), Status::Ok));
        metrics.observe(&answer("fast", None, Status::Ok));
        metrics.observe(&answer("fast", Some(30.0), Status::Error));
        metrics.observe(&answer("slow", Some(900.0), Status::Limited));
        let text = metrics.render(None);
        let base = r#"alias="fast",provider="openai",prompt="support",version="3""#;
        for line in [
            format!(r#"switchboard_requests_total{{{base},status="ok"}} 2"#),
            format!(r#"switchboard_requests_total{{{base},status="error"}} 1"#),
            format!(r#"switchboard_tokens_total{{{base},direction="output"}} 15"#),
            format!(r#"switchboard_cost_usd_total{{{base}}} 1.5"#),
            format!(r#"switchboard_figures_unknown_total{{{base},figure="ttft"}} 1"#),
            format!(r#"switchboard_ttft_seconds_count{{{base}}} 2"#),
            format!(r#"switchboard_ttft_seconds_bucket{{{base},le="0.025"}} 1"#),
            format!(r#"switchboard_tpot_seconds_count{{{base}}} 3"#),
            r#"switchboard_limited_total{alias="slow"} 1"#.to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(
            !text.contains(r#"switchboard_ttft_seconds_count{alias="slow""#),
            "a refused request has no latency: {text}"
        );
    }
}
