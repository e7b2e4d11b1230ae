//! `switchboard eval`: replays logged conversations (or a JSONL file)
//! through a candidate prompt version (or model) and a baseline, judges,
//! scores and checks the answers, writes the report, and fails when the
//! candidate falls short of `--min-win-rate` or `--max-score-drop`, so
//! that a promote can be gated in CI.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use gateway::domain::Selector;
use gateway::domain::Utc;
use gateway::promptops::eval::{
    Arm, Check, EvalConfig, Gate, examples_from_jsonl, examples_from_log,
};
use gateway::store::DatasetFilter;

/// The options of `switchboard eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The prompt to evaluate.
    prompt: String,
    /// The version or label under test.
    #[arg(long)]
    candidate: String,
    /// Answer the candidate with this model alias instead of the prompt's.
    #[arg(long)]
    candidate_model: Option<String>,
    /// The version or label it must beat.
    #[arg(long, default_value = "production")]
    baseline: String,
    /// Answer the baseline with this model alias instead of the prompt's.
    #[arg(long)]
    baseline_model: Option<String>,
    /// The model alias that judges the two answers pairwise (both orders)
    /// and scores them against --rubric.
    #[arg(long)]
    judge: Option<String>,
    /// What a good answer does, for the judge to score each answer 1–5
    /// with a reason (needs --judge).
    #[arg(long)]
    rubric: Option<String>,
    /// A deterministic check, repeatable: contains:TEXT, not-contains:TEXT,
    /// regex:PATTERN, max-chars:N, no-refusal, json, json-schema:FILE.
    #[arg(long = "check")]
    checks: Vec<Check>,
    /// Read examples from this JSONL file (eval or fine-tuning format)
    /// instead of the logged conversations.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Stop at the first unusable dataset line (default: skip it, with a warning).
    #[arg(long)]
    stop_on_bad_line: bool,
    /// Which logged conversations (with --dataset, only --limit and
    /// --sample apply).
    #[command(flatten)]
    logged: DatasetArgs,
    /// Examples replayed at once (rate limits still apply).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Answer the versions' tool calls with the results each logged answer
    /// got, instead of running the tools again (a call the logged answer did
    /// not make gets an error result; nothing runs).
    #[arg(long)]
    replay_tools: bool,
    /// Fail (exit non-zero) when the candidate's win rate is below this.
    #[arg(long, default_value_t = 0.5)]
    min_win_rate: f64,
    /// Fail when the candidate's mean rubric score is more than this below
    /// the baseline's.
    #[arg(long, default_value_t = 0.0)]
    max_score_drop: f64,
    /// Write report.json, report.md and report.html into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Measure retrieval instead of answers: a labelled JSONL file
    /// ({"question": …, "documents": [file, …]} or "chunks": [id, …]), on
    /// which the candidate's and the baseline's `[retrieval]` settings are
    /// scored by recall@k and MRR.
    #[arg(long, value_name = "FILE")]
    retrieval: Option<PathBuf>,
    /// With --retrieval: fail when the candidate's recall@k is below this.
    #[arg(long, default_value_t = 0.0)]
    min_recall: f64,
}

/// Filters over logged conversations, shared by `eval` and `export`.
#[derive(Args)]
pub struct DatasetArgs {
    /// Only conversations answered by this prompt version.
    #[arg(long)]
    version: Option<i64>,
    /// Only versions that came through this label.
    #[arg(long)]
    label: Option<String>,
    /// Only this channel id.
    #[arg(long)]
    channel: Option<String>,
    /// Only answers rated `up` or `down`.
    #[arg(long, value_parser = ["up", "down"])]
    feedback: Option<String>,
    /// From this date (YYYY-MM-DD, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Until this date (YYYY-MM-DD, UTC, exclusive).
    #[arg(long)]
    until: Option<String>,
    /// At most this many, the oldest first (`switchboard eval` on logged
    /// conversations: 50 unless given).
    #[arg(long, conflicts_with = "sample")]
    limit: Option<i64>,
    /// A random sample of this many instead of the oldest.
    #[arg(long)]
    sample: Option<i64>,
}

impl DatasetArgs {
    /// The flags given that only filter logged conversations.
    fn log_only_flags(&self) -> Vec<&'static str> {
        [
            ("--version", self.version.is_some()),
            ("--label", self.label.is_some()),
            ("--channel", self.channel.is_some()),
            ("--feedback", self.feedback.is_some()),
            ("--since", self.since.is_some()),
            ("--until", self.until.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The filter these flags describe, for `prompt`.
    pub fn filter(&self, prompt: Option<String>) -> anyhow::Result<DatasetFilter> {
        let date = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<i64>> {
            value
                .as_deref()
                .map(|v| {
                    Utc::parse_date(v)
                        .with_context(|| format!("--{flag} `{v}`: write a date as YYYY-MM-DD"))
                })
                .transpose()
        };
        Ok(DatasetFilter {
            prompt,
            version: self.version,
            label: self.label.clone(),
            channel: self.channel.clone(),
            thumbs: self.feedback.as_deref().map(|f| f == "up"),
            since_ms: date("since", &self.since)?,
            until_ms: date("until", &self.until)?,
            limit: self.limit,
            sample: self.sample,
        })
    }
}

/// Runs an evaluation and prints its verdict.
pub async fn run(config: &gateway::Config, args: EvalArgs) -> anyhow::Result<()> {
    if let Some(file) = args.retrieval.clone() {
        return retrieval(config, &args, &file).await;
    }
    if args.rubric.is_some() && args.judge.is_none() {
        bail!("--rubric needs --judge ALIAS: the judge model scores the answers");
    }
    if args.dataset.is_some() {
        let given = args.logged.log_only_flags();
        if !given.is_empty() {
            bail!(
                "{} choose among logged conversations and do not apply to --dataset FILE: drop them, or drop --dataset",
                given.join(", ")
            );
        }
    }
    let mut filter = args.logged.filter(Some(args.prompt.clone()))?;
    // Logged conversations are many: the oldest 50 unless told otherwise.
    // A file is taken whole.
    if args.dataset.is_none() && filter.sample.is_none() {
        filter.limit = filter.limit.or(Some(50));
    }
    crate::models::prepare(config).await?;
    let app = gateway::Gateway::build(config).await?;
    let result = evaluate(&app, args, filter).await;
    app.shutdown().await;
    result
}

/// `eval --retrieval FILE`: the two versions' retrieval settings side by
/// side on the labelled questions.
async fn retrieval(
    config: &gateway::Config,
    args: &EvalArgs,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    use gateway::promptops::eval::retrieval::{labelled_from_jsonl, score};
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the labelled questions `{}`", file.display()))?;
    let labelled =
        labelled_from_jsonl(&file.display().to_string(), &text).map_err(anyhow::Error::msg)?;
    let store = gateway::app::open_store(config).await?;
    let registry = gateway::app::open_registry(config, &store).await?;
    let knowledge = gateway::knowledge::Knowledge::new(config, store.clone())?;
    let mut rows = Vec::new();
    for (arm, version) in [("baseline", &args.baseline), ("candidate", &args.candidate)] {
        let (row, prompt) = registry
            .version(&args.prompt, &Selector::parse(version))
            .await?;
        let Some(settings) = &prompt.retrieval else {
            bail!(
                "{} v{} ({arm}) has no [retrieval] table: there is nothing to measure",
                args.prompt,
                row.version
            );
        };
        let query = gateway::knowledge::SearchQuery::of_prompt("", settings);
        let s = score(&knowledge, &query, &labelled).await?;
        for w in &s.warnings {
            eprintln!("warning ({arm}): {w}");
        }
        rows.push((arm, row.version, settings.mode.as_str(), s));
    }
    registry.close();
    store.close().await;
    println!(
        "retrieval on {} labelled questions ({})\n",
        labelled.len(),
        file.display()
    );
    println!("| arm | version | mode | k | recall@k | MRR | search ms |");
    println!("|---|---|---|---|---|---|---|");
    for (arm, version, mode, s) in &rows {
        println!(
            "| {arm} | v{version} | {mode} | {} | {:.3} | {:.3} | {:.1} |",
            s.k, s.recall, s.mrr, s.search_ms
        );
    }
    if let Some((_, _, _, candidate)) = rows.last() {
        if !candidate.missed.is_empty() {
            println!("\nmissed by the candidate:");
            for q in &candidate.missed {
                println!("- {q}");
            }
        }
        if candidate.recall < args.min_recall {
            bail!(
                "the candidate's recall@{} is {:.3}, below --min-recall {}",
                candidate.k,
                candidate.recall,
                args.min_recall
            );
        }
    }
    Ok(())
}

/// A file's examples as `--sample N` (N at random, kept in file order) or
/// `--limit N` (the first N) choose them; all of them with neither.
fn pick<T>(examples: Vec<T>, sample: Option<i64>, limit: Option<i64>) -> Vec<T> {
    let numbered = examples.into_iter().enumerate();
    let mut picked: Vec<_> = match sample {
        Some(n) => fastrand::choose_multiple(numbered, n.max(0) as usize),
        None => numbered
            .take(limit.unwrap_or(i64::MAX).max(0) as usize)
            .collect(),
    };
    picked.sort_by_key(|(i, _)| *i);
    picked.into_iter().map(|(_, e)| e).collect()
}

async fn evaluate(
    app: &gateway::Gateway,
    args: EvalArgs,
    filter: DatasetFilter,
) -> anyhow::Result<()> {
    let examples = match &args.dataset {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the dataset `{}`", path.display()))?;
            let (examples, warnings) =
                examples_from_jsonl(&path.display().to_string(), &text, args.stop_on_bad_line)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            pick(examples, filter.sample, filter.limit)
        }
        None => examples_from_log(app.store.dataset(&filter).await?),
    };
    let config = EvalConfig {
        prompt: args.prompt.clone(),
        candidate: Arm {
            version: Selector::parse(&args.candidate),
            model: args.candidate_model.clone(),
        },
        baseline: Arm {
            version: Selector::parse(&args.baseline),
            model: args.baseline_model.clone(),
        },
        judge: args.judge.clone(),
        rubric: args.rubric.clone(),
        checks: args.checks.clone(),
        concurrency: args.concurrency,
        replay_tools: args.replay_tools,
    };
    let progress = Progress::new();
    let report = gateway::promptops::eval::run(&app.pipeline, &config, examples, |done, total| {
        progress.show(done, total)
    })
    .await?;
    report.save(&app.store).await?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        for (name, text) in [
            (
                "report.json",
                serde_json::to_string_pretty(&report.to_json())?,
            ),
            ("report.md", report.to_markdown()),
            ("report.html", report.to_html()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        eprintln!("report written to {}", dir.display());
    }
    print!("{}", report.to_markdown());
    let shortfalls = report.shortfalls(&Gate {
        min_win_rate: args.min_win_rate,
        max_score_drop: args.max_score_drop,
    });
    if !shortfalls.is_empty() {
        bail!(
            "the candidate falls short: {}; {}",
            shortfalls.join("; "),
            report.headline()
        );
    }
    Ok(())
}

/// A progress bar on standard error: redrawn in place on a terminal, a
/// line per tenth of the run otherwise (CI logs).
struct Progress {
    terminal: bool,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, done: usize, total: usize) {
        const WIDTH: usize = 30;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
        let bar = format!(
            "[{}{}] {done}/{total} examples",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled)
        );
        if self.terminal {
            eprint!("\r{bar}");
            if done == total {
                eprintln!();
            }
        } else if done == total || (done * 10 / total.max(1)) != ((done - 1) * 10 / total.max(1)) {
            eprintln!("{bar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    /// `--sample` draws distinct examples in file order, and not always
    /// the same ones; `--limit` takes the first; neither takes all.
    #[test]
    fn a_file_is_sampled_at_random_in_order_or_limited_from_the_start() {
        let lines: Vec<usize> = (0..10).collect();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let picked = pick(lines.clone(), Some(3), None);
            assert_eq!(picked.len(), 3);
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "{picked:?}");
            seen.extend(picked);
        }
        assert!(seen.len() > 3, "always the same sample: {seen:?}");
        assert_eq!(pick(lines.clone(), Some(20), None), lines);
        assert!(pick(lines.clone(), Some(0), None).is_empty());
        assert_eq!(pick(lines.clone(), None, Some(4)), vec![0, 1, 2, 3]);
        assert_eq!(pick(lines.clone(), None, None), lines);
    }
}
