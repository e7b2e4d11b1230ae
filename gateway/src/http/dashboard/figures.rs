//! The figures the dashboard shows, computed from plain inference rows:
//! one definition of each, used by the overview, its breakdowns and the
//! per-version table on a prompt's page, so the numbers always agree.
//!
//! - requests: every live request, refused ones included;
//! - 👍 rate: current 👍 votes over current 👍 + 👎 votes, with the Wilson
//!   95% interval;
//! - TTFT and TPOT p50 / p95: nearest-rank percentiles of the requests that
//!   report them;
//! - cost per request: total cost over answered (`ok`) requests;
//! - cache hit rate: cache hits over answered requests;
//! - errors: `error` and `partial`; refusals: `limited`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::TrafficRow;

/// The figures of a set of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Every request.
    pub requests: usize,
    /// Answered in full.
    pub answered: usize,
    /// Failed or broken off.
    pub errors: usize,
    /// Refused by a rate limit or budget.
    pub limited: usize,
    /// Current 👍 votes.
    pub thumbs_up: i64,
    /// Current 👎 votes.
    pub thumbs_down: i64,
    /// 👍 over all votes.
    pub thumbs_rate: Option<f64>,
    /// Wilson 95% interval of the 👍 rate.
    pub thumbs_ci: Option<(f64, f64)>,
    /// TTFT median, ms.
    pub ttft_p50: Option<f64>,
    /// TTFT 95th percentile, ms.
    pub ttft_p95: Option<f64>,
    /// TPOT median, ms.
    pub tpot_p50: Option<f64>,
    /// TPOT 95th percentile, ms.
    pub tpot_p95: Option<f64>,
    /// Answered requests without a TTFT figure (left out of the
    /// percentiles, never counted as 0).
    pub ttft_unknown: usize,
    /// Answered requests without a TPOT figure (one-token answers, or a
    /// provider that reported no usage).
    pub tpot_unknown: usize,
    /// Total cost, USD.
    pub cost: f64,
    /// Cost per answered request, USD.
    pub cost_per_request: Option<f64>,
    /// Cache hits.
    pub cache_hits: usize,
    /// Cache hits over answered requests.
    pub cache_hit_rate: Option<f64>,
}

/// The nearest-rank percentile (`p` in 0–100) of unsorted values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The figures of these rows.
pub fn compute<'a>(rows: impl IntoIterator<Item = &'a TrafficRow>) -> Figures {
    let mut f = Figures::default();
    let (mut ttft, mut tpot) = (Vec::new(), Vec::new());
    for r in rows {
        f.requests += 1;
        match r.status.as_str() {
            "ok" => f.answered += 1,
            "error" | "partial" => f.errors += 1,
            "limited" => f.limited += 1,
            _ => {}
        }
        f.thumbs_up += r.thumbs_up;
        f.thumbs_down += r.thumbs_down;
        ttft.extend(r.ttft_ms);
        tpot.extend(r.tpot_ms);
        if r.status == "ok" {
            f.ttft_unknown += usize::from(r.ttft_ms.is_none());
            f.tpot_unknown += usize::from(r.tpot_ms.is_none());
        }
        f.cost += r.cost_usd.unwrap_or(0.0);
        if r.cache_hit && r.status == "ok" {
            f.cache_hits += 1;
        }
    }
    let votes = f.thumbs_up + f.thumbs_down;
    if votes > 0 {
        let p = f.thumbs_up as f64 / votes as f64;
        f.thumbs_rate = Some(p);
        f.thumbs_ci = Some(crate::promptops::eval::wilson(p, votes as usize));
    }
    f.ttft_p50 = percentile(&ttft, 50.0);
    f.ttft_p95 = percentile(&ttft, 95.0);
    f.tpot_p50 = percentile(&tpot, 50.0);
    f.tpot_p95 = percentile(&tpot, 95.0);
    if f.answered > 0 {
        f.cost_per_request = Some(f.cost / f.answered as f64);
        f.cache_hit_rate = Some(f.cache_hits as f64 / f.answered as f64);
    }
    f
}

/// The figures of each group of rows, by the key `key` gives (rows without
/// one are grouped as `(none)`), largest group first.
/// The figures of each knowledge source: an answer counts for every source
/// its prompt was given chunks of; answers that retrieved nothing are left
/// out.
pub fn by_source(rows: &[TrafficRow]) -> Vec<(String, Figures)> {
    let mut groups: BTreeMap<String, Vec<&TrafficRow>> = BTreeMap::new();
    for r in rows {
        for s in &r.knowledge_sources {
            groups.entry(s.clone()).or_default().push(r);
        }
    }
    let mut out: Vec<(String, Figures)> = groups
        .into_iter()
        .map(|(k, rows)| (k, compute(rows)))
        .collect();
    out.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
    out
}

pub fn by<'a, K: Fn(&TrafficRow) -> Option<String>>(
    rows: &'a [TrafficRow],
    key: K,
) -> Vec<(String, Figures)> {
    let mut groups: BTreeMap<String, Vec<&'a TrafficRow>> = BTreeMap::new();
    for r in rows {
        groups
            .entry(key(r).unwrap_or_else(|| "(none)".into()))
            .or_default()
            .push(r);
    }
    let mut out: Vec<(String, Figures)> = groups
        .into_iter()
        .map(|(k, rows)| (k, compute(rows)))
        .collect();
    out.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
    out
}

/// The figures of each UTC day from `first_day_ms` for `days` days (days
/// without requests included, as empty figures).
pub fn by_day(rows: &[TrafficRow], first_day_ms: i64, days: i64) -> Vec<(String, Figures)> {
    const DAY: i64 = 86_400_000;
    (0..days)
        .map(|d| {
            let start = first_day_ms + d * DAY;
            let day_rows = rows
                .iter()
                .filter(|r| r.created_at_ms >= start && r.created_at_ms < start + DAY);
            (crate::domain::Utc::from_ms(start).date(), compute(day_rows))
        })
        .collect()
}

/// `83.3%`.
pub fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `120 ms`.
pub fn ms(x: f64) -> String {
    format!("{x:.0} ms")
}

/// `$0.0123`.
pub fn usd(x: f64) -> String {
    format!("${x:.4}")
}

/// The figures as display strings, for templates (`–` where there is no value).
pub fn display(f: &Figures) -> BTreeMap<&'static str, String> {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    BTreeMap::from([
        ("requests", f.requests.to_string()),
        ("answered", f.answered.to_string()),
        ("errors", f.errors.to_string()),
        ("limited", f.limited.to_string()),
        ("votes", (f.thumbs_up + f.thumbs_down).to_string()),
        ("thumbs_rate", or_dash(f.thumbs_rate.map(percent))),
        (
            "thumbs_ci",
            or_dash(
                f.thumbs_ci
                    .map(|(lo, hi)| format!("{} – {}", percent(lo), percent(hi))),
            ),
        ),
        ("ttft_p50", or_dash(f.ttft_p50.map(ms))),
        ("ttft_p95", or_dash(f.ttft_p95.map(ms))),
        ("tpot_p50", or_dash(f.tpot_p50.map(ms))),
        ("tpot_p95", or_dash(f.tpot_p95.map(ms))),
        ("ttft_unknown", unknown(f.ttft_unknown)),
        ("tpot_unknown", unknown(f.tpot_unknown)),
        ("cost", usd(f.cost)),
        ("cost_per_request", or_dash(f.cost_per_request.map(usd))),
        ("cache_hit_rate", or_dash(f.cache_hit_rate.map(percent))),
    ])
}

/// How many answers had no figure, said when there are any.
fn unknown(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "1 answer without this figure".into(),
        n => format!("{n} answers without this figure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, ttft: Option<f64>, up: i64, down: i64) -> TrafficRow {
        TrafficRow {
            created_at_ms: 0,
            platform: "slack".into(),
            channel: None,
            model: None,
            prompt: None,
            version: None,
            ttft_ms: ttft,
            tpot_ms: None,
            cost_usd: Some(0.5),
            cache_hit: false,
            status: status.into(),
            thumbs_up: up,
            thumbs_down: down,
            knowledge_sources: Vec::new(),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn figures_count_statuses_votes_and_costs() {
        let rows = [
            row("ok", Some(100.0), 1, 0),
            row("ok", Some(300.0), 0, 1),
            row("error", None, 0, 0),
            row("limited", None, 0, 0),
        ];
        let f = compute(&rows);
        assert_eq!((f.requests, f.answered, f.errors, f.limited), (4, 2, 1, 1));
        assert_eq!(f.thumbs_rate, Some(0.5));
        assert_eq!(f.cost_per_request, Some(1.0));
        assert_eq!(f.ttft_p50, Some(100.0));
        assert_eq!(display(&f)["thumbs_rate"], "50.0%");
        // Unknown figures are left out and counted, never taken as 0.
        let rows = [row("ok", Some(100.0), 0, 0), row("ok", None, 0, 0)];
        let f = compute(&rows);
        assert_eq!(f.ttft_p50, Some(100.0));
        assert_eq!((f.ttft_unknown, f.tpot_unknown), (1, 2));
        assert_eq!(f.tpot_p50, None);
        assert_eq!(display(&f)["tpot_p50"], "–");
        assert_eq!(display(&f)["tpot_unknown"], "2 answers without this figure");
    }

    #[test]
    fn an_answer_counts_for_each_source_it_was_given_and_others_for_none() {
        let mut a = row("ok", None, 1, 0);
        a.knowledge_sources = vec!["handbook".into(), "wiki".into()];
        let mut b = row("ok", None, 0, 1);
        b.knowledge_sources = vec!["handbook".into()];
        let c = row("ok", None, 1, 0);
        let groups = by_source(&[a, b, c]);
        let keys: Vec<(&str, usize)> = groups
            .iter()
            .map(|(k, f)| (k.as_str(), f.requests))
            .collect();
        assert_eq!(keys, [("handbook", 2), ("wiki", 1)]);
        assert_eq!(groups[0].1.thumbs_rate, Some(0.5));
    }
}
