//! `switchboard eval`: does a candidate prompt version (or model) answer
//! logged conversations better than the baseline? Each example's
//! conversation is replayed through both (recorded as tests, never as
//! traffic), then judged ([`judge`]: pairwise in both orders, and rubric
//! scores), checked ([`checks`]) and summed up ([`report`]).

mod checks;
mod judge;
mod report;
pub mod retrieval;

pub use checks::{Check, JsonSchema};
pub use judge::{Groundedness, Score, Verdict, combine, parse_choice, parse_grounded, parse_score};
pub(crate) use report::html_escape;
pub use report::{Gate, Report, wilson};

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::domain::ReplyEvent;
use crate::domain::{ChatMessage, Origin, Role};
use crate::domain::{Input, Purpose, Request, Selector};
use crate::pipeline::{Pipeline, PipelineError};
use crate::registry::RegistryError;
use crate::store::{Example, StoreError};

/// What to compare.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// The prompt.
    pub prompt: String,
    /// The version (or label, or model) under test.
    pub candidate: Arm,
    /// The one it must beat.
    pub baseline: Arm,
    /// The alias that judges; `None` skips pairwise judging and scoring.
    pub judge: Option<String>,
    /// What the judge scores each answer against (1–5), if anything.
    pub rubric: Option<String>,
    /// Deterministic checks.
    pub checks: Vec<Check>,
    /// Examples replayed at once.
    pub concurrency: usize,
    /// Answer the versions' tool calls with each logged answer's recorded
    /// results instead of running the tools (`--replay-tools`).
    pub replay_tools: bool,
}

/// One side of the comparison: a prompt version, answered by the
/// prompt's own model or by another alias.
#[derive(Debug, Clone)]
pub struct Arm {
    /// The version or label.
    pub version: Selector,
    /// An alias that answers instead of the prompt's model.
    pub model: Option<String>,
}

impl std::fmt::Display for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.model {
            Some(m) => write!(f, "{} on {m}", self.version),
            None => write!(f, "{}", self.version),
        }
    }
}

/// One conversation to replay: the turns up to and including the user's
/// question (system messages are the prompt's business and are dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalExample {
    /// Where it came from (an inference id or `file:LINE`).
    pub id: String,
    /// The turns.
    pub messages: Vec<ChatMessage>,
    /// The results of the tools the logged answer ran, for `--replay-tools`.
    pub tool_results: Vec<crate::domain::RecordedToolResult>,
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A dataset line is not usable (and the run stops on bad lines).
    #[error("{file}:{line}: {message} (without --stop-on-bad-line such lines are skipped)")]
    BadLine {
        /// The dataset's name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No examples.
    #[error("the dataset is empty: widen the filters, or check the file")]
    Empty,
    /// The candidate's or baseline's model, or the judge, names no alias.
    #[error("{role} `{alias}` is not a model alias; known: {}", known.join(", "))]
    UnknownAlias {
        /// Which one (`--judge`, `--candidate-model`, `--baseline-model`).
        role: &'static str,
        /// The name given.
        alias: String,
        /// The configured aliases.
        known: Vec<String>,
    },
    /// The candidate's or baseline's prompt, version or label does not
    /// exist.
    #[error("{role}: {source}")]
    UnknownVersion {
        /// Which one (`--candidate`, `--baseline`).
        role: &'static str,
        /// What the registry said.
        source: RegistryError,
    },
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Logged conversations as examples.
pub fn examples_from_log(examples: Vec<Example>) -> Vec<EvalExample> {
    examples
        .into_iter()
        .filter_map(|e| {
            // The replay starts from the question: the logged answer's tool
            // steps came after it, and the versions decide on their own.
            let messages: Vec<ChatMessage> = e
                .conversation()
                .iter()
                .filter_map(|(role, content)| match Role::parse(role) {
                    Some(Role::System | Role::Tool) | None => None,
                    Some(role) => Some(ChatMessage::new(role, content.clone())),
                })
                .collect();
            if !messages.iter().any(|m| m.role == Role::User) {
                return None;
            }
            Some(EvalExample {
                id: e.id,
                messages,
                tool_results: e.tool_results,
            })
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
            Ok((id, messages)) => out.push(EvalExample {
                id: id.unwrap_or_else(|| format!("{source}:{number}")),
                messages,
                tool_results: Vec::new(),
            }),
            Err(message) if stop_on_bad => {
                return Err(EvalError::BadLine {
                    file: source.to_string(),
                    line: number,
                    message,
                });
            }
            Err(message) => warnings.push(format!("{source}:{number}: {message}; skipped")),
        }
    }
    Ok((out, warnings))
}

/// A line's `id` (an exported inference's, when there is one) and turns.
fn parse_line(line: &str) -> Result<(Option<String>, Vec<ChatMessage>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .map(str::to_string);
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
        let content = match m.get("content") {
            Some(Value::String(text)) => text.clone(),
            // OpenAI's content parts: the text ones, joined.
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(text)) => Ok(text),
                        _ => {
                            Err("a message with a part other than text; only text can be replayed")
                        }
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
                .join("\n"),
            _ => return Err("a message without text `content`".into()),
        };
        match Role::parse(role) {
            Some(Role::System) => {}
            Some(r) => messages.push(ChatMessage::new(r, content)),
            None => {
                return Err(format!(
                    "unknown role `{role}`; use system, developer, user or assistant"
                ));
            }
        }
    }
    while messages.last().is_some_and(|m| m.role == Role::Assistant) {
        messages.pop();
    }
    if messages.is_empty() {
        return Err("no user message".into());
    }
    Ok((id, messages))
}

/// One answer as replayed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The text.
    pub text: String,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first.
    pub tpot_ms: Option<f64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Cost.
    pub cost_usd: Option<f64>,
    /// The version that answered.
    pub version: Option<i64>,
    /// Why there is no answer.
    pub error: Option<String>,
    /// The judge's rubric score, when a rubric was given.
    pub score: Option<Score>,
    /// What the version's `[retrieval]` gave the model, and which it cited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<crate::domain::RetrievalRecord>,
    /// The judge's groundedness check of the answer against the documents
    /// it cited, when it was given any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grounded: Option<Groundedness>,
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

/// Replays every example through the candidate and the baseline, judges
/// and checks them. `progress(done, total)` is called as examples finish.
pub async fn run(
    pipeline: &Pipeline,
    config: &EvalConfig,
    examples: Vec<EvalExample>,
    progress: impl Fn(usize, usize),
) -> Result<Report, EvalError> {
    // Checked before anything is replayed: otherwise every example would
    // fail the same way, one provider-less request at a time.
    for (role, alias) in [
        ("--candidate-model", &config.candidate.model),
        ("--baseline-model", &config.baseline.model),
        ("--judge", &config.judge),
    ] {
        if let Some(alias) = alias.as_ref().filter(|a| !pipeline.router().has(a)) {
            return Err(EvalError::UnknownAlias {
                role,
                alias: alias.clone(),
                known: pipeline.router().aliases(),
            });
        }
    }
    for (role, arm) in [
        ("--candidate", &config.candidate),
        ("--baseline", &config.baseline),
    ] {
        if let Err(source) = pipeline
            .registry()
            .version(&config.prompt, &arm.version)
            .await
        {
            return Err(EvalError::UnknownVersion { role, source });
        }
    }
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
    Ok(report::summarize(config, rows))
}

async fn evaluate(pipeline: &Pipeline, config: &EvalConfig, example: EvalExample) -> EvalRow {
    let question = example
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map_or(String::new(), |m| m.content.clone());
    let recorded = config
        .replay_tools
        .then(|| std::sync::Arc::new(example.tool_results.clone()));
    let mut candidate = answer(
        pipeline,
        &config.prompt,
        &config.candidate,
        &example.messages,
        recorded.clone(),
    )
    .await;
    let mut baseline = answer(
        pipeline,
        &config.prompt,
        &config.baseline,
        &example.messages,
        recorded,
    )
    .await;
    let both = candidate.error.is_none() && baseline.error.is_none();
    let (verdict, readings) = match (&config.judge, both) {
        (Some(j), true) => {
            let first =
                judge::prefer(pipeline, j, &question, &candidate.text, &baseline.text).await;
            let second =
                judge::prefer(pipeline, j, &question, &baseline.text, &candidate.text).await;
            (
                Some(combine(parse_choice(&first), parse_choice(&second))),
                Some((first, second)),
            )
        }
        _ => (None, None),
    };
    if let (Some(j), Some(rubric)) = (&config.judge, &config.rubric) {
        for outcome in [&mut candidate, &mut baseline] {
            if outcome.error.is_none() {
                outcome.score =
                    Some(judge::score(pipeline, j, rubric, &question, &outcome.text).await);
            }
        }
    }
    if let Some(j) = &config.judge {
        for outcome in [&mut candidate, &mut baseline] {
            if outcome.error.is_none()
                && let Some((documents, against)) = documents(pipeline, outcome).await
            {
                outcome.grounded = Some(
                    judge::grounded(pipeline, j, &question, &outcome.text, &documents, against)
                        .await,
                );
            }
        }
    }
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

/// The documents an answer is held against, numbered as the model saw
/// them: those it cited, or (when it cited none) every one it was given;
/// `None` when nothing was retrieved or the chunks are gone.
async fn documents(pipeline: &Pipeline, outcome: &Outcome) -> Option<(String, &'static str)> {
    let record = outcome.retrieval.as_ref()?;
    let knowledge = pipeline.knowledge()?;
    let cited: Vec<_> = record.chunks.iter().filter(|c| c.cited).collect();
    let (chosen, against) = if cited.is_empty() {
        (record.chunks.iter().collect::<Vec<_>>(), "retrieved")
    } else {
        (cited, "cited")
    };
    let ids: Vec<i64> = chosen.iter().map(|c| c.chunk_id).collect();
    let rows = knowledge.store().knowledge_chunks(&ids).await.ok()?;
    let mut text = String::new();
    for c in &chosen {
        if let Some(row) = rows.iter().find(|r| r.id == c.chunk_id) {
            text.push_str(&format!("[{}] {}\n{}\n\n", c.number, c.title, row.body));
        }
    }
    (!text.is_empty()).then_some((text, against))
}

/// One replay through a prompt version, recorded as a test.
async fn answer(
    pipeline: &Pipeline,
    prompt: &str,
    arm: &Arm,
    messages: &[ChatMessage],
    replay_tools: Option<std::sync::Arc<Vec<crate::domain::RecordedToolResult>>>,
) -> Outcome {
    let mut request = Request::new(
        Origin {
            platform: "eval".into(),
            user: Some(crate::domain::User::new("eval", "eval")),
            ..Origin::default()
        },
        Input::Prompt {
            name: prompt.to_string(),
            selector: Some(arm.version.clone()),
            messages: messages.to_vec(),
        },
    );
    request.purpose = Purpose::Test;
    request.model = arm.model.clone();
    request.replay_tools = replay_tools;
    collect(pipeline, request).await
}

/// The longest wait for a rate limit before a replay counts as failed: a
/// minute's allowance refills within it, a daily budget does not.
const MAX_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `request` to the end and keeps what the report needs. A request
/// refused by a rate limit waits until the limit lets it through (when
/// that is at most [`MAX_LIMIT_WAIT`] away) and is tried again, so that a
/// run stays within the limits instead of counting their refusals as
/// failed replays.
async fn collect(pipeline: &Pipeline, request: Request) -> Outcome {
    let mut reply = loop {
        match pipeline.start(request.clone()).await {
            Ok(r) => break r,
            Err(PipelineError::Limited { source, .. })
                if source.retry_after() <= MAX_LIMIT_WAIT =>
            {
                let wait = source.retry_after();
                tokio::time::sleep(wait.max(std::time::Duration::from_millis(50))).await;
            }
            Err(e) => {
                return Outcome {
                    error: Some(match e {
                        PipelineError::Limited { source, .. } => source.to_string(),
                        other => other.to_string(),
                    }),
                    ..Outcome::default()
                };
            }
        }
    };
    let mut out = Outcome::default();
    while let Some(event) = reply.next_event().await {
        match event {
            ReplyEvent::Token(t) => out.text.push_str(&t),
            ReplyEvent::Done(s) => {
                out.ttft_ms = s.ttft_ms;
                out.tpot_ms = s.tpot_ms;
                out.output_tokens = s.usage.map(|u| u.output_tokens);
                out.cost_usd = s.cost_usd;
                out.version = s.prompt.map(|p| p.1);
                out.retrieval = s.retrieval;
            }
            ReplyEvent::Failed { message, .. } => out.error = Some(message),
            ReplyEvent::Started { .. }
            | ReplyEvent::ToolCall(_)
            | ReplyEvent::UsingTool(_)
            | ReplyEvent::Approval(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(err.starts_with("d.jsonl:2: not JSON"), "{err}");
        assert!(err.contains("--stop-on-bad-line"), "{err}");
    }

    /// An exported line keeps its inference id; content parts are read as
    /// their text; a role that is not one is named with the ones that are.
    #[test]
    fn jsonl_ids_content_parts_and_roles() {
        let text = r#"{"id": "0193-abc", "input": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}]}
{"input": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
{"input": [{"role": "bot", "content": "q"}]}"#;
        let (examples, warnings) = examples_from_jsonl("d.jsonl", text, false).unwrap();
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].id, "0193-abc");
        assert_eq!(
            examples[0].messages,
            vec![ChatMessage::new(Role::User, "Hi\nthere")]
        );
        assert!(
            warnings[0].contains("only text can be replayed"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("unknown role `bot`; use system, developer, user or assistant"),
            "{warnings:?}"
        );
    }
}
