//! `switchboard eval`: does a candidate prompt version answer logged
//! conversations better than the baseline? Each example's conversation is
//! replayed through both (recorded as tests, never as traffic), then:
//!
//! - an LLM judge (any alias) compares the two answers pairwise, twice,
//!   with the answers in both orders; a verdict counts only when both
//!   orders agree, otherwise it is a tie, which cancels position bias;
//! - deterministic checks (contains, does not contain, maximum length, no
//!   refusal, valid JSON) score each answer;
//! - TTFT and cost are compared.
//!
//! The report gives the win rate with a Wilson 95% interval, check pass
//! rates, latency and cost deltas and a per-example table, as JSON,
//! Markdown and HTML, and is stored in the database for the dashboard.

use std::collections::BTreeMap;
use std::str::FromStr;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::pipeline::{Input, Pipeline, PipelineError, Purpose, Request};
use crate::registry::Selector;
use crate::reply::ReplyEvent;
use crate::store::{Example, Store, StoreError, Utc, now_ms};
use crate::types::{ChatMessage, Origin, Params, Role};

/// A deterministic check of one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Check {
    /// The answer contains this text (case-insensitive).
    Contains(String),
    /// The answer does not contain this text (case-insensitive).
    NotContains(String),
    /// The answer is at most this many characters.
    MaxChars(usize),
    /// The answer is not a refusal ("I can't help with that").
    NoRefusal,
    /// The answer is valid JSON.
    Json,
}

impl FromStr for Check {
    type Err = String;

    fn from_str(s: &str) -> Result<Check, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        match name {
            "contains" if !arg.is_empty() => Ok(Check::Contains(arg.to_string())),
            "not-contains" if !arg.is_empty() => Ok(Check::NotContains(arg.to_string())),
            "max-chars" => arg
                .parse()
                .map(Check::MaxChars)
                .map_err(|_| format!("`{s}`: write max-chars:N with a whole number")),
            "no-refusal" => Ok(Check::NoRefusal),
            "json" => Ok(Check::Json),
            _ => Err(format!(
                "`{s}` is not a check; use contains:TEXT, not-contains:TEXT, max-chars:N, no-refusal or json"
            )),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Contains(t) => write!(f, "contains:{t}"),
            Check::NotContains(t) => write!(f, "not-contains:{t}"),
            Check::MaxChars(n) => write!(f, "max-chars:{n}"),
            Check::NoRefusal => f.write_str("no-refusal"),
            Check::Json => f.write_str("json"),
        }
    }
}

impl Check {
    /// Whether `answer` passes.
    pub fn passes(&self, answer: &str) -> bool {
        let lower = answer.to_lowercase();
        match self {
            Check::Contains(t) => lower.contains(&t.to_lowercase()),
            Check::NotContains(t) => !lower.contains(&t.to_lowercase()),
            Check::MaxChars(n) => answer.chars().count() <= *n,
            Check::NoRefusal => !is_refusal(&lower),
            Check::Json => serde_json::from_str::<Value>(answer.trim()).is_ok(),
        }
    }
}

/// A conservative refusal detector: the answer opens by declining.
fn is_refusal(lower: &str) -> bool {
    let start: String = lower.trim_start().chars().take(80).collect();
    [
        "i can't help",
        "i cannot help",
        "i can’t help",
        "i'm sorry, but i can",
        "i’m sorry, but i can",
        "i am unable to",
        "i'm unable to",
        "i won't be able to",
        "as an ai",
    ]
    .iter()
    .any(|p| start.contains(p))
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// The prompt.
    pub prompt: String,
    /// The version (or label) under test.
    pub candidate: Selector,
    /// The version (or label) it must beat.
    pub baseline: Selector,
    /// The alias that judges; `None` skips pairwise judging.
    pub judge: Option<String>,
    /// Deterministic checks.
    pub checks: Vec<Check>,
    /// Examples replayed at once.
    pub concurrency: usize,
}

/// One conversation to replay: the turns up to and including the user's
/// question (system messages are the prompt's business and are dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalExample {
    /// Where it came from (an inference id or `file:LINE`).
    pub id: String,
    /// The turns.
    pub messages: Vec<ChatMessage>,
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A dataset line is not usable (and the run stops on bad lines).
    #[error("dataset line {line}: {message}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No examples.
    #[error("the dataset is empty: widen the filters, or check the file")]
    Empty,
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Logged conversations as examples.
pub fn examples_from_log(examples: Vec<Example>) -> Vec<EvalExample> {
    examples
        .into_iter()
        .filter_map(|e| {
            let messages: Vec<ChatMessage> = e
                .input
                .into_iter()
                .filter_map(|(role, content)| match Role::parse(&role) {
                    Some(Role::System) | None => None,
                    Some(role) => Some(ChatMessage::new(role, content)),
                })
                .collect();
            messages
                .iter()
                .any(|m| m.role == Role::User)
                .then_some(EvalExample { id: e.id, messages })
        })
        .collect()
}

/// Examples from JSONL: lines of `switchboard export --format eval`
/// (`{"input": [...]}`) or of the fine-tuning format (`{"messages": [...]}`,
/// whose final answer is dropped). Bad lines are returned as warnings with
/// their line numbers, or stop the read when `stop_on_bad` is set.
pub fn examples_from_jsonl(
    source: &str,
    text: &str,
    stop_on_bad: bool,
) -> Result<(Vec<EvalExample>, Vec<String>), EvalError> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(messages) => out.push(EvalExample {
                id: format!("{source}:{number}"),
                messages,
            }),
            Err(message) if stop_on_bad => {
                return Err(EvalError::BadLine {
                    line: number,
                    message,
                });
            }
            Err(message) => warnings.push(format!("{source}:{number}: {message}; skipped")),
        }
    }
    Ok((out, warnings))
}

fn parse_line(line: &str) -> Result<Vec<ChatMessage>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let list = v
        .get("input")
        .or_else(|| v.get("messages"))
        .and_then(Value::as_array)
        .ok_or("needs an `input` or `messages` array")?;
    let mut messages = Vec::new();
    for m in list {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or("a message without `role`")?;
        let content = m
            .get("content")
            .and_then(Value::as_str)
            .ok_or("a message without text `content`")?;
        match Role::parse(role) {
            Some(Role::System) => {}
            Some(r) => messages.push(ChatMessage::new(r, content)),
            None => return Err(format!("unknown role `{role}`")),
        }
    }
    while messages.last().is_some_and(|m| m.role == Role::Assistant) {
        messages.pop();
    }
    if messages.is_empty() {
        return Err("no user message".into());
    }
    Ok(messages)
}

/// One answer as replayed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The text.
    pub text: String,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Cost.
    pub cost_usd: Option<f64>,
    /// The version that answered.
    pub version: Option<i64>,
    /// Why there is no answer.
    pub error: Option<String>,
}

/// The judge's decision on one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The candidate's answer is better.
    Candidate,
    /// The baseline's answer is better.
    Baseline,
    /// No preference, or the two orders disagreed.
    Tie,
}

/// Combines the judge's two readings: `first` with the candidate shown as
/// answer A, `second` with it shown as B. Only agreement counts.
pub fn combine(first: Option<char>, second: Option<char>) -> Verdict {
    match (first, second) {
        (Some('A'), Some('B')) => Verdict::Candidate,
        (Some('B'), Some('A')) => Verdict::Baseline,
        _ => Verdict::Tie,
    }
}

/// Reads `A`, `B` or a tie (`None`) from the judge's reply.
pub fn parse_choice(reply: &str) -> Option<char> {
    let t = reply
        .trim()
        .trim_start_matches(['*', '"', '\'', '('])
        .to_uppercase();
    if t.starts_with("TIE") {
        return None;
    }
    match t.chars().next() {
        Some(c @ ('A' | 'B')) if !t.chars().nth(1).is_some_and(char::is_alphanumeric) => Some(c),
        _ => None,
    }
}

/// One example's results.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    /// Where it came from.
    pub id: String,
    /// The user's question.
    pub question: String,
    /// The candidate's answer.
    pub candidate: Outcome,
    /// The baseline's answer.
    pub baseline: Outcome,
    /// The judge's verdict.
    pub verdict: Option<Verdict>,
    /// The judge's raw readings (candidate as A, candidate as B).
    pub readings: Option<(String, String)>,
    /// Each check's result for the candidate, then the baseline.
    pub checks: Vec<(bool, bool)>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Its id (UUIDv7).
    pub id: String,
    /// When (Unix ms).
    pub created_at_ms: i64,
    /// The prompt.
    pub prompt: String,
    /// The candidate, as asked.
    pub candidate: String,
    /// The baseline, as asked.
    pub baseline: String,
    /// The judge alias.
    pub judge: Option<String>,
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
    /// Per check: (check, candidate pass rate, baseline pass rate).
    pub checks: Vec<(String, f64, f64)>,
    /// Mean TTFT, candidate minus baseline (ms).
    pub ttft_delta_ms: Option<f64>,
    /// Mean cost, candidate minus baseline (USD).
    pub cost_delta_usd: Option<f64>,
    /// Examples where a replay failed.
    pub errors: usize,
    /// Every example.
    pub rows: Vec<EvalRow>,
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

/// Replays every example through the candidate and the baseline, judges
/// and checks them. `progress(done, total)` is called as examples finish.
pub async fn run(
    pipeline: &Pipeline,
    config: &EvalConfig,
    examples: Vec<EvalExample>,
    progress: impl Fn(usize, usize),
) -> Result<Report, EvalError> {
    if examples.is_empty() {
        return Err(EvalError::Empty);
    }
    let total = examples.len();
    let mut rows: Vec<(usize, EvalRow)> = Vec::with_capacity(total);
    let mut stream = futures_util::stream::iter(examples.into_iter().enumerate())
        .map(|(i, example)| async move { (i, evaluate(pipeline, config, example).await) })
        .buffer_unordered(config.concurrency.max(1));
    while let Some(row) = stream.next().await {
        rows.push(row);
        progress(rows.len(), total);
    }
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<EvalRow> = rows.into_iter().map(|(_, r)| r).collect();
    Ok(summarize(config, rows))
}

async fn evaluate(pipeline: &Pipeline, config: &EvalConfig, example: EvalExample) -> EvalRow {
    let question = example
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map_or(String::new(), |m| m.content.clone());
    let candidate = answer(
        pipeline,
        &config.prompt,
        &config.candidate,
        &example.messages,
    )
    .await;
    let baseline = answer(
        pipeline,
        &config.prompt,
        &config.baseline,
        &example.messages,
    )
    .await;
    let both = candidate.error.is_none() && baseline.error.is_none();
    let (verdict, readings) = match (&config.judge, both) {
        (Some(judge), true) => {
            let first =
                judge_once(pipeline, judge, &question, &candidate.text, &baseline.text).await;
            let second =
                judge_once(pipeline, judge, &question, &baseline.text, &candidate.text).await;
            (
                Some(combine(parse_choice(&first), parse_choice(&second))),
                Some((first, second)),
            )
        }
        _ => (None, None),
    };
    let checks = config
        .checks
        .iter()
        .map(|c| {
            (
                candidate.error.is_none() && c.passes(&candidate.text),
                baseline.error.is_none() && c.passes(&baseline.text),
            )
        })
        .collect();
    EvalRow {
        id: example.id,
        question,
        candidate,
        baseline,
        verdict,
        readings,
        checks,
    }
}

/// One replay through a prompt version, recorded as a test.
async fn answer(
    pipeline: &Pipeline,
    prompt: &str,
    selector: &Selector,
    messages: &[ChatMessage],
) -> Outcome {
    let mut request = Request::new(
        Origin {
            platform: "eval".into(),
            user: Some("eval".into()),
            ..Origin::default()
        },
        Input::Prompt {
            name: prompt.to_string(),
            selector: Some(selector.clone()),
            messages: messages.to_vec(),
        },
    );
    request.purpose = Purpose::Test;
    collect(pipeline, request).await
}

async fn collect(pipeline: &Pipeline, request: Request) -> Outcome {
    let mut reply = match pipeline.start(request).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                error: Some(match e {
                    PipelineError::Limited { source, .. } => source.to_string(),
                    other => other.to_string(),
                }),
                ..Outcome::default()
            };
        }
    };
    let mut out = Outcome::default();
    while let Some(event) = reply.next_event().await {
        match event {
            ReplyEvent::Token(t) => out.text.push_str(&t),
            ReplyEvent::Done(s) => {
                out.ttft_ms = s.ttft_ms;
                out.output_tokens = s.usage.map(|u| u.output_tokens);
                out.cost_usd = s.cost_usd;
                out.version = s.prompt.map(|p| p.1);
            }
            ReplyEvent::Failed { message, .. } => out.error = Some(message),
            ReplyEvent::Started { .. } => {}
        }
    }
    out
}

/// Asks the judge which answer is better; returns its raw reply.
async fn judge_once(pipeline: &Pipeline, judge: &str, question: &str, a: &str, b: &str) -> String {
    let system = "You are an impartial judge of answers in a team chat. Compare two answers to the \
                  user's question for correctness, helpfulness and concision. Ignore their order \
                  and length as such. Reply with exactly one word: A, B or TIE.";
    let user = format!(
        "Question:\n{question}\n\n[Answer A]\n{a}\n[End of answer A]\n\n[Answer B]\n{b}\n[End of answer B]\n\nWhich answer is better? Reply A, B or TIE."
    );
    let mut request = Request::new(
        Origin {
            platform: "eval".into(),
            user: Some("eval-judge".into()),
            ..Origin::default()
        },
        Input::Messages {
            alias: judge.to_string(),
            messages: vec![
                ChatMessage::new(Role::System, system),
                ChatMessage::new(Role::User, user),
            ],
        },
    );
    request.purpose = Purpose::Test;
    request.params = Params {
        temperature: Some(0.0),
        max_tokens: Some(8),
        ..Params::default()
    };
    let out = collect(pipeline, request).await;
    out.error
        .map_or(out.text, |e| format!("(judge failed: {e})"))
}

fn summarize(config: &EvalConfig, rows: Vec<EvalRow>) -> Report {
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
        let pairs: Vec<f64> = rows
            .iter()
            .filter_map(|r| Some(f(&r.candidate)? - f(&r.baseline)?))
            .collect();
        (!pairs.is_empty()).then(|| pairs.iter().sum::<f64>() / pairs.len() as f64)
    };
    Report {
        id: uuid::Uuid::now_v7().to_string(),
        created_at_ms: now_ms(),
        prompt: config.prompt.clone(),
        candidate: config.candidate.to_string(),
        baseline: config.baseline.to_string(),
        judge: config.judge.clone(),
        examples: rows.len(),
        wins,
        losses,
        ties,
        win_rate,
        win_rate_ci: win_rate.map(|p| wilson(p, judged.len())),
        checks,
        ttft_delta_ms: mean_delta(&|o| o.ttft_ms),
        cost_delta_usd: mean_delta(&|o| o.cost_usd),
        errors: rows
            .iter()
            .filter(|r| r.candidate.error.is_some() || r.baseline.error.is_some())
            .count(),
        rows,
    }
}

impl Report {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| json!({"error": e.to_string()}))
    }

    /// Whether the candidate is at least as good as `min_win_rate` asks
    /// (with no judge, every check must pass at least as often as the
    /// baseline's).
    pub fn passes(&self, min_win_rate: f64) -> bool {
        match self.win_rate {
            Some(w) => w >= min_win_rate,
            None => self.checks.iter().all(|(_, c, b)| c >= b),
        }
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
        if self.errors > 0 {
            s.push_str(&format!("; {} examples failed to replay", self.errors));
        }
        s
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
        md.push_str("| measure | candidate | baseline |\n|---|---|---|\n");
        for (check, c, b) in &self.checks {
            md.push_str(&format!(
                "| check `{check}` | {:.0}% | {:.0}% |\n",
                c * 100.0,
                b * 100.0
            ));
        }
        if let Some(d) = self.ttft_delta_ms {
            md.push_str(&format!("| TTFT, mean difference | {d:+.1} ms | |\n"));
        }
        if let Some(d) = self.cost_delta_usd {
            md.push_str(&format!("| cost, mean difference | {d:+.6} USD | |\n"));
        }
        md.push_str("\n## Examples\n\n| example | question | verdict | candidate | baseline |\n|---|---|---|---|---|\n");
        for r in &self.rows {
            let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
            let answer = |o: &Outcome| match &o.error {
                Some(e) => format!("(error: {})", cell(e)),
                None => cell(&o.text),
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.id,
                cell(&r.question),
                r.verdict
                    .map_or("-".into(), |v| format!("{v:?}").to_lowercase()),
                answer(&r.candidate),
                answer(&r.baseline)
            ));
        }
        md
    }

    /// The report as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        let e = html_escape;
        let mut rows = String::new();
        for r in &self.rows {
            let answer = |o: &Outcome| {
                o.error
                    .as_ref()
                    .map_or_else(|| e(&o.text), |x| format!("<em>error: {}</em>", e(x)))
            };
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&r.id),
                e(&r.question),
                r.verdict
                    .map_or("-".into(), |v| format!("{v:?}").to_lowercase()),
                answer(&r.candidate),
                answer(&r.baseline)
            ));
        }
        let mut checks = String::new();
        for (check, c, b) in &self.checks {
            checks.push_str(&format!(
                "<tr><td>check <code>{}</code></td><td>{:.0}%</td><td>{:.0}%</td></tr>\n",
                e(check),
                c * 100.0,
                b * 100.0
            ));
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Evaluation of {prompt}</title><style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}\
             table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}}</style></head>\
             <body><h1>Evaluation of <code>{prompt}</code>: {cand} vs {base}</h1><p>{headline}</p>\
             <table><tr><th>measure</th><th>candidate</th><th>baseline</th></tr>{checks}</table>\
             <h2>Examples</h2><table><tr><th>example</th><th>question</th><th>verdict</th><th>candidate</th><th>baseline</th></tr>{rows}</table></body></html>\n",
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

    #[test]
    fn only_agreeing_orders_decide_and_ties_absorb_position_bias() {
        // The candidate was A first, then B: it won both times.
        assert_eq!(combine(Some('A'), Some('B')), Verdict::Candidate);
        assert_eq!(combine(Some('B'), Some('A')), Verdict::Baseline);
        // A judge that always picks the first answer decides nothing.
        assert_eq!(combine(Some('A'), Some('A')), Verdict::Tie);
        assert_eq!(combine(Some('B'), Some('B')), Verdict::Tie);
        assert_eq!(combine(None, Some('B')), Verdict::Tie);
        assert_eq!(parse_choice(" **A**"), Some('A'));
        assert_eq!(parse_choice("B."), Some('B'));
        assert_eq!(parse_choice("TIE"), None);
        assert_eq!(parse_choice("Both are fine"), None);
    }

    #[test]
    fn checks_and_their_names_parse() {
        let c: Check = "contains:Paris".parse().unwrap();
        assert!(c.passes("It is paris.") && !c.passes("Lyon"));
        assert!(Check::MaxChars(5).passes("12345") && !Check::MaxChars(5).passes("123456"));
        assert!(!Check::NoRefusal.passes("I'm sorry, but I can't help with that."));
        assert!(Check::NoRefusal.passes("Sure: here it is."));
        assert!(Check::Json.passes(" {\"a\": 1} ") && !Check::Json.passes("{a:1}"));
        assert!(
            "max-chars:x"
                .parse::<Check>()
                .unwrap_err()
                .contains("whole number")
        );
        assert!("frob".parse::<Check>().is_err());
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

    #[test]
    fn jsonl_lines_are_read_and_bad_ones_named_by_number() {
        let text = "{\"input\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"q1\"}]}\n\
                    not json\n\
                    {\"messages\": [{\"role\": \"user\", \"content\": \"q2\"}, {\"role\": \"assistant\", \"content\": \"a2\"}]}\n";
        let (examples, warnings) = examples_from_jsonl("d.jsonl", text, false).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(
            examples[0].messages,
            vec![ChatMessage::new(Role::User, "q1")]
        );
        assert_eq!(
            examples[1].messages,
            vec![ChatMessage::new(Role::User, "q2")]
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("d.jsonl:2: not JSON"),
            "{warnings:?}"
        );
        let err = examples_from_jsonl("d.jsonl", text, true)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dataset line 2: not JSON"), "{err}");
    }
}
