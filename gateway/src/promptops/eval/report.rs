//! What an evaluation concludes: the win rate with its Wilson interval,
//! rubric score and check deltas, latency and cost deltas, one row per
//! example; rendered as JSON, Markdown and HTML, stored for the dashboard,
//! and held against a [`Gate`] so that a promote can be gated in CI.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::judge::Verdict;
use super::{EvalConfig, EvalRow, Outcome};
use crate::domain::{Utc, now_ms};
use crate::store::{Store, StoreError};

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Its id (UUIDv7).
    pub id: String,
    /// When (Unix ms).
    pub created_at_ms: i64,
    /// The prompt.
    pub prompt: String,
    /// The candidate, as asked (`VERSION` or `VERSION on ALIAS`).
    pub candidate: String,
    /// The baseline, as asked.
    pub baseline: String,
    /// The judge alias.
    pub judge: Option<String>,
    /// The rubric the judge scored against.
    pub rubric: Option<String>,
    /// Examples.
    pub examples: usize,
    /// Judged wins, losses and ties of the candidate.
    pub wins: usize,
    /// Losses.
    pub losses: usize,
    /// Ties.
    pub ties: usize,
    /// (wins + ties / 2) / judged, when judged.
    pub win_rate: Option<f64>,
    /// Wilson 95% interval of the win rate.
    pub win_rate_ci: Option<(f64, f64)>,
    /// Mean rubric score of the candidate's answers (1–5).
    pub score_candidate: Option<f64>,
    /// Mean rubric score of the baseline's answers.
    pub score_baseline: Option<f64>,
    /// Mean of the per-example score differences, candidate minus baseline,
    /// over the examples where both answers were scored.
    pub score_delta: Option<f64>,
    /// The share of the candidate's claims its documents support (the
    /// groundedness check), mean over the answers that were checked.
    pub grounded_candidate: Option<f64>,
    /// The same for the baseline.
    pub grounded_baseline: Option<f64>,
    /// Per check: (check, candidate pass rate, baseline pass rate).
    pub checks: Vec<(String, f64, f64)>,
    /// Mean TTFT, candidate minus baseline (ms).
    pub ttft_delta_ms: Option<f64>,
    /// Mean time per output token, candidate minus baseline (ms).
    pub tpot_delta_ms: Option<f64>,
    /// Mean cost, candidate minus baseline (USD).
    pub cost_delta_usd: Option<f64>,
    /// Examples where a replay failed.
    pub errors: usize,
    /// The summary table, as shown: (measure, candidate, baseline).
    pub measures: Vec<(String, String, String)>,
    /// Every example.
    pub rows: Vec<EvalRow>,
}

/// What the candidate must reach for the evaluation to pass.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// The lowest acceptable judged win rate (ties count half).
    pub min_win_rate: f64,
    /// How far the candidate's mean rubric score may fall below the
    /// baseline's (0 asks for at least the same score).
    pub max_score_drop: f64,
}

/// Wilson score interval for a proportion `p` of `n` at 95%.
pub fn wilson(p: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let z = 1.959_963_984_540_054_f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Sums the rows up into a report.
pub(super) fn summarize(config: &EvalConfig, rows: Vec<EvalRow>) -> Report {
    let judged: Vec<Verdict> = rows.iter().filter_map(|r| r.verdict).collect();
    let count = |v: Verdict| judged.iter().filter(|x| **x == v).count();
    let (wins, losses, ties) = (
        count(Verdict::Candidate),
        count(Verdict::Baseline),
        count(Verdict::Tie),
    );
    let win_rate =
        (!judged.is_empty()).then(|| (wins as f64 + ties as f64 / 2.0) / judged.len() as f64);
    let checks = config
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let n = rows.len().max(1) as f64;
            let cand = rows.iter().filter(|r| r.checks[i].0).count() as f64 / n;
            let base = rows.iter().filter(|r| r.checks[i].1).count() as f64 / n;
            (c.to_string(), cand, base)
        })
        .collect();
    let mean_delta = |f: &dyn Fn(&Outcome) -> Option<f64>| {
        mean(
            rows.iter()
                .filter_map(|r| Some(f(&r.candidate)? - f(&r.baseline)?)),
        )
    };
    let score = |o: &Outcome| o.score.as_ref()?.score.map(f64::from);
    let mut report = Report {
        id: uuid::Uuid::now_v7().to_string(),
        created_at_ms: now_ms(),
        prompt: config.prompt.clone(),
        candidate: config.candidate.to_string(),
        baseline: config.baseline.to_string(),
        judge: config.judge.clone(),
        rubric: config.rubric.clone(),
        examples: rows.len(),
        wins,
        losses,
        ties,
        win_rate,
        win_rate_ci: win_rate.map(|p| wilson(p, judged.len())),
        score_candidate: mean(rows.iter().filter_map(|r| score(&r.candidate))),
        score_baseline: mean(rows.iter().filter_map(|r| score(&r.baseline))),
        score_delta: mean_delta(&score),
        grounded_candidate: mean(
            rows.iter()
                .filter_map(|r| r.candidate.grounded.as_ref()?.rate()),
        ),
        grounded_baseline: mean(
            rows.iter()
                .filter_map(|r| r.baseline.grounded.as_ref()?.rate()),
        ),
        checks,
        ttft_delta_ms: mean_delta(&|o| o.ttft_ms),
        tpot_delta_ms: mean_delta(&|o| o.tpot_ms),
        cost_delta_usd: mean_delta(&|o| o.cost_usd),
        errors: rows
            .iter()
            .filter(|r| r.candidate.error.is_some() || r.baseline.error.is_some())
            .count(),
        measures: Vec::new(),
        rows,
    };
    report.measures = report.measure_rows();
    report
}

impl Report {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| json!({"error": e.to_string()}))
    }

    /// Why the candidate falls short of `gate`; empty when it passes.
    /// With neither a judge nor a rubric, every check must pass at least
    /// as often as the baseline's. A run where every replay failed falls
    /// short whatever the gate.
    pub fn shortfalls(&self, gate: &Gate) -> Vec<String> {
        let mut out = Vec::new();
        if self.examples > 0 && self.errors == self.examples {
            out.push(
                "no example was replayed on both sides (the report lists each error)".to_string(),
            );
        }
        if let Some(w) = self.win_rate.filter(|w| *w < gate.min_win_rate) {
            out.push(format!(
                "win rate {:.0}% is below the required {:.0}%",
                w * 100.0,
                gate.min_win_rate * 100.0
            ));
        }
        if let Some(d) = self.score_delta.filter(|d| *d < -gate.max_score_drop) {
            out.push(format!(
                "the rubric score fell by {:.2} (allowed: {:.2})",
                -d, gate.max_score_drop
            ));
        }
        if self.win_rate.is_none() && self.score_delta.is_none() {
            for (check, c, b) in &self.checks {
                if c < b {
                    out.push(format!(
                        "check `{check}` passes {:.0}% against the baseline's {:.0}%",
                        c * 100.0,
                        b * 100.0
                    ));
                }
            }
        }
        out
    }

    /// A one-paragraph verdict.
    pub fn headline(&self) -> String {
        let judged = self.wins + self.losses + self.ties;
        let mut s = format!(
            "{} {} vs {} on {} examples",
            self.prompt, self.candidate, self.baseline, self.examples
        );
        if let (Some(w), Some((lo, hi))) = (self.win_rate, self.win_rate_ci) {
            s.push_str(&format!(
                ": candidate win rate {:.0}% (95% CI {:.0}–{:.0}%; {} wins, {} losses, {} ties of {judged} judged)",
                w * 100.0,
                lo * 100.0,
                hi * 100.0,
                self.wins,
                self.losses,
                self.ties
            ));
        }
        if let Some(d) = self.score_delta {
            s.push_str(&format!("; rubric score {d:+.2}"));
        }
        if self.errors > 0 {
            s.push_str(&format!("; {} examples failed to replay", self.errors));
        }
        s
    }

    fn measure_rows(&self) -> Vec<(String, String, String)> {
        let mut rows = Vec::new();
        let fmt_score = |s: Option<f64>| s.map_or("–".to_string(), |v| format!("{v:.2}"));
        if self.rubric.is_some() {
            rows.push((
                "rubric score (1–5), mean".to_string(),
                fmt_score(self.score_candidate),
                fmt_score(self.score_baseline),
            ));
        }
        if self.grounded_candidate.is_some() || self.grounded_baseline.is_some() {
            let checked = |f: &dyn Fn(&EvalRow) -> &Outcome| {
                self.rows
                    .iter()
                    .filter(|r| f(r).grounded.as_ref().is_some_and(|g| g.rate().is_some()))
                    .count()
            };
            let pct = |v: Option<f64>, n: usize| {
                v.map_or("–".to_string(), |v| {
                    format!("{:.0}% ({n} answers)", v * 100.0)
                })
            };
            rows.push((
                "claims supported by their documents (judge)".to_string(),
                pct(self.grounded_candidate, checked(&|r| &r.candidate)),
                pct(self.grounded_baseline, checked(&|r| &r.baseline)),
            ));
        }
        for (check, c, b) in &self.checks {
            rows.push((
                format!("check `{check}`"),
                format!("{:.0}%", c * 100.0),
                format!("{:.0}%", b * 100.0),
            ));
        }
        // An example whose answer has no figure on either side is left out
        // of that mean, and the table says how many were.
        let left_out = |f: &dyn Fn(&Outcome) -> Option<f64>| {
            self.rows
                .iter()
                .filter(|r| f(&r.candidate).is_none() || f(&r.baseline).is_none())
                .count()
        };
        for (name, delta, unit, skipped) in [
            (
                "TTFT, mean difference",
                self.ttft_delta_ms,
                " ms",
                left_out(&|o| o.ttft_ms),
            ),
            (
                "time per output token, mean difference",
                self.tpot_delta_ms,
                " ms",
                left_out(&|o| o.tpot_ms),
            ),
        ] {
            let name = match skipped {
                0 => name.to_string(),
                n => format!(
                    "{name} ({n} of {} examples without the figure left out)",
                    self.rows.len()
                ),
            };
            match delta {
                Some(d) => rows.push((name, format!("{d:+.1}{unit}"), String::new())),
                None if skipped > 0 => rows.push((name, "–".to_string(), String::new())),
                None => {}
            }
        }
        if let Some(d) = self.cost_delta_usd {
            rows.push((
                "cost, mean difference".to_string(),
                format!("{d:+.6} USD"),
                String::new(),
            ));
        }
        rows
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = format!(
            "# Evaluation of `{}`: {} vs {}\n\n{}\n\nRun {} at {}; judge: {}.\n\n",
            self.prompt,
            self.candidate,
            self.baseline,
            self.headline(),
            self.id,
            Utc::from_ms(self.created_at_ms),
            self.judge.as_deref().unwrap_or("none")
        );
        if let Some(rubric) = &self.rubric {
            md.push_str(&format!("Rubric: {}\n\n", rubric.replace('\n', " ")));
        }
        md.push_str("| measure | candidate | baseline |\n|---|---|---|\n");
        for (m, c, b) in &self.measures {
            md.push_str(&format!("| {m} | {c} | {b} |\n"));
        }
        md.push_str(
            "\n## Examples\n\n| example | question | verdict | candidate | score | retrieved | baseline | score | retrieved |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.id,
                cell(&r.question),
                verdict_text(r),
                cell(&answer_text(&r.candidate)),
                cell(&score_text(&r.candidate)),
                cell(&retrieved_text(&r.candidate)),
                cell(&answer_text(&r.baseline)),
                cell(&score_text(&r.baseline)),
                cell(&retrieved_text(&r.baseline)),
            ));
        }
        md
    }

    /// The report as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        let e = html_escape;
        let mut rows = String::new();
        for r in &self.rows {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&r.id),
                e(&r.question),
                verdict_text(r),
                e(&answer_text(&r.candidate)),
                e(&score_text(&r.candidate)),
                e(&retrieved_text(&r.candidate)).replace('\n', "<br>"),
                e(&answer_text(&r.baseline)),
                e(&score_text(&r.baseline)),
                e(&retrieved_text(&r.baseline)).replace('\n', "<br>"),
            ));
        }
        let mut measures = String::new();
        for (m, c, b) in &self.measures {
            measures.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(m),
                e(c),
                e(b)
            ));
        }
        let rubric = self
            .rubric
            .as_deref()
            .map_or(String::new(), |r| format!("<p>Rubric: {}</p>", e(r)));
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Evaluation of {prompt}</title><style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}\
             table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}}</style></head>\
             <body><h1>Evaluation of <code>{prompt}</code>: {cand} vs {base}</h1><p>{headline}</p>{rubric}\
             <table><tr><th>measure</th><th>candidate</th><th>baseline</th></tr>{measures}</table>\
             <h2>Examples</h2><table><tr><th>example</th><th>question</th><th>verdict</th><th>candidate</th><th>score</th><th>retrieved</th><th>baseline</th><th>score</th><th>retrieved</th></tr>{rows}</table></body></html>\n",
            prompt = e(&self.prompt),
            cand = e(&self.candidate),
            base = e(&self.baseline),
            headline = e(&self.headline()),
        )
    }

    /// Stores the report for the dashboard.
    pub async fn save(&self, store: &Store) -> Result<(), StoreError> {
        let summary: BTreeMap<&str, Value> = [
            ("win_rate", json!(self.win_rate)),
            ("win_rate_ci", json!(self.win_rate_ci)),
            ("score_delta", json!(self.score_delta)),
            ("examples", json!(self.examples)),
            ("errors", json!(self.errors)),
            ("checks", json!(self.checks)),
        ]
        .into_iter()
        .collect();
        store
            .insert_eval_run(
                &self.id,
                self.created_at_ms,
                &self.prompt,
                &self.candidate,
                &self.baseline,
                &json!(summary).to_string(),
                &self.to_json().to_string(),
            )
            .await
    }
}

fn verdict_text(r: &EvalRow) -> String {
    r.verdict
        .map_or("-".into(), |v| format!("{v:?}").to_lowercase())
}

fn answer_text(o: &Outcome) -> String {
    match &o.error {
        Some(e) => format!("(error: {e})"),
        None => o.text.clone(),
    }
}

/// What an answer was given to read: `[n] title › heading (score)`, a
/// `*` on those it cited, one per line, then the groundedness check.
fn retrieved_text(o: &Outcome) -> String {
    let Some(r) = &o.retrieval else {
        return "-".to_string();
    };
    let mut lines: Vec<String> = r
        .chunks
        .iter()
        .map(|c| {
            let place = if c.heading.is_empty() {
                c.title.clone()
            } else {
                format!("{} › {}", c.title, c.heading)
            };
            format!(
                "[{}]{} {place} ({:.4})",
                c.number,
                if c.cited { "*" } else { "" },
                c.score
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("(nothing retrieved)".to_string());
    }
    if let Some(w) = &r.warning {
        lines.push(format!("warning: {w}"));
    }
    if let Some(g) = &o.grounded {
        lines.push(match g.rate() {
            Some(rate) => format!(
                "grounded: {:.0}% of claims supported by the {} documents{}",
                rate * 100.0,
                g.against,
                if g.unsupported.is_empty() {
                    String::new()
                } else {
                    format!("; unsupported: {}", g.unsupported.join(" / "))
                }
            ),
            None => "grounded: no claims".to_string(),
        });
    }
    lines.join("\n")
}

fn score_text(o: &Outcome) -> String {
    match &o.score {
        Some(s) => format!(
            "{}: {}",
            s.score.map_or("?".to_string(), |v| v.to_string()),
            s.reason
        ),
        None => "-".to_string(),
    }
}

/// Escapes text for HTML (and SVG) content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Selector;
    use crate::promptops::eval::Arm;

    /// v2 against production, with no judge and no checks.
    fn config() -> EvalConfig {
        let arm = |v: &str| Arm {
            version: Selector::parse(v),
            model: None,
        };
        EvalConfig {
            prompt: "assistant".into(),
            candidate: arm("2"),
            baseline: arm("production"),
            judge: None,
            rubric: None,
            checks: Vec::new(),
            concurrency: 1,
            replay_tools: false,
        }
    }

    #[test]
    fn examples_without_a_figure_are_left_out_of_its_mean_and_counted() {
        let config = config();
        let outcome = |ttft: f64, tpot: Option<f64>| Outcome {
            text: "a".into(),
            ttft_ms: Some(ttft),
            tpot_ms: tpot,
            ..Outcome::default()
        };
        let row = |c: Outcome, b: Outcome| EvalRow {
            id: "d.jsonl:1".into(),
            question: "q".into(),
            candidate: c,
            baseline: b,
            verdict: None,
            readings: None,
            checks: Vec::new(),
        };
        let report = summarize(
            &config,
            vec![
                row(outcome(100.0, Some(10.0)), outcome(200.0, Some(20.0))),
                row(outcome(100.0, None), outcome(300.0, Some(20.0))),
            ],
        );
        // TPOT: only the first example counts, never a 0 for the second.
        assert_eq!(report.tpot_delta_ms, Some(-10.0));
        assert_eq!(report.ttft_delta_ms, Some(-150.0));
        let tpot = report
            .measures
            .iter()
            .find(|m| m.0.starts_with("time per output token"))
            .expect("a TPOT line");
        assert_eq!(
            tpot.0,
            "time per output token, mean difference (1 of 2 examples without the figure left out)"
        );
        assert!(
            report
                .measures
                .iter()
                .any(|m| m.0 == "TTFT, mean difference"),
            "nothing left out of TTFT: {:?}",
            report.measures
        );
    }

    #[test]
    fn a_run_where_every_replay_failed_falls_short() {
        let config = config();
        let failed = Outcome {
            error: Some("provider down".into()),
            ..Outcome::default()
        };
        let row = EvalRow {
            id: "d.jsonl:1".into(),
            question: "q".into(),
            candidate: failed.clone(),
            baseline: failed,
            verdict: None,
            readings: None,
            checks: Vec::new(),
        };
        let gate = Gate {
            min_win_rate: 0.5,
            max_score_drop: 0.0,
        };
        let report = summarize(&config, vec![row.clone()]);
        let short = report.shortfalls(&gate);
        assert_eq!(short.len(), 1, "{short:?}");
        assert!(short[0].contains("no example was replayed"), "{short:?}");

        let mut replayed = row;
        replayed.candidate.error = None;
        replayed.baseline.error = None;
        assert!(
            summarize(&config, vec![replayed])
                .shortfalls(&gate)
                .is_empty()
        );
    }

    #[test]
    fn wilson_interval_matches_known_values() {
        let (lo, hi) = wilson(0.5, 100);
        assert!(
            (lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(1.0, 10);
        assert!(
            (lo - 0.7225).abs() < 1e-3 && (hi - 1.0).abs() < 1e-9,
            "{lo} {hi}"
        );
    }
}
