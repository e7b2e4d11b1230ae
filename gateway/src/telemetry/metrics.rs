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
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
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
    /// Counts one recorded inference.
    pub fn observe(&self, r: &InferenceRecord) {
        let Ok(mut s) = self.state.lock() else { return };
        let alias = r.alias.clone();
        let provider = r.provider.clone().unwrap_or_default();
        let (prompt, version) = r
            .prompt
            .as_ref()
            .map_or((String::new(), String::new()), |(p, v)| {
                (p.clone(), v.to_string())
            });
        let status = r.status.as_str().to_string();
        add(
            &mut s,
            "switchboard_requests_total",
            vec![
                ("alias", alias.clone()),
                ("provider", provider.clone()),
                ("prompt", prompt.clone()),
                ("version", version.clone()),
                ("status", status),
            ],
            1.0,
        );
        if r.status == Status::Limited {
            add(
                &mut s,
                "switchboard_limited_total",
                vec![("alias", alias.clone())],
                1.0,
            );
        }
        let base = || {
            vec![
                ("alias", alias.clone()),
                ("provider", provider.clone()),
                ("prompt", prompt.clone()),
                ("version", version.clone()),
            ]
        };
        if r.cache_hit {
            add(&mut s, "switchboard_cache_hits_total", base(), 1.0);
        }
        for (direction, n) in [("input", r.input_tokens), ("output", r.output_tokens)] {
            if let Some(n) = n {
                let mut l = base();
                l.push(("direction", direction.to_string()));
                add(&mut s, "switchboard_tokens_total", l, n as f64);
            }
        }
        if let Some(c) = r.cost_usd {
            add(&mut s, "switchboard_cost_usd_total", base(), c);
        }
        for attempt in r.attempts.iter().filter(|a| a.error.is_some()) {
            let failed = attempt
                .target
                .split_once('/')
                .map_or(attempt.target.as_str(), |(p, _)| p);
            add(
                &mut s,
                "switchboard_provider_errors_total",
                vec![
                    ("alias", alias.clone()),
                    ("provider", failed.to_string()),
                    ("target", attempt.target.clone()),
                ],
                1.0,
            );
        }
        if r.status == Status::Limited {
            return;
        }
        for (name, ms) in [
            ("switchboard_ttft_seconds", r.ttft_ms),
            ("switchboard_tpot_seconds", r.tpot_ms),
            ("switchboard_request_duration_seconds", Some(r.total_ms)),
            (
                "switchboard_overhead_seconds",
                Some((r.total_ms - r.provider_ms).max(0.0)),
            ),
        ] {
            if let Some(ms) = ms {
                observe(&mut s, name, base(), ms / 1000.0);
            } else if r.status == Status::Ok {
                // An answer without the figure is left out of the histogram
                // and counted here, so that a reader knows how many.
                let figure = if name == "switchboard_ttft_seconds" {
                    "ttft"
                } else {
                    "tpot"
                };
                let mut l = base();
                l.push(("figure", figure.to_string()));
                add(&mut s, "switchboard_figures_unknown_total", l, 1.0);
            }
        }
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
        for (family, help, kind) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            if *family == "switchboard_redis_fallbacks_total" {
                let _ = writeln!(out, "{family} {}", redis_fallbacks.unwrap_or(0));
                continue;
            }
            for ((name, labels), value) in s
                .counters
                .iter()
                .chain(s.gauges.iter())
                .filter(|((n, _), _)| n == family)
            {
                let _ = writeln!(out, "{name}{} {value}", labels_text(labels, None));
            }
            for ((name, labels), h) in s.histograms.iter().filter(|((n, _), _)| n == family) {
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

fn observe(s: &mut State, name: &'static str, labels: Labels, value: f64) {
    let h = s.histograms.entry((name, labels)).or_default();
    if let Some(i) = h.bounds.iter().position(|b| value <= *b) {
        h.counts[i] += 1;
    }
    h.sum += value;
    h.count += 1;
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
