//! `switchboard eval` and `switchboard export` as an operator runs them:
//! conversations logged by `switchboard chat` are replayed through a
//! candidate and a baseline version, judged in both orders and checked;
//! the report is written and the exit code gates on the win rate.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use testkit::standin::{self, Reply, StandIn};
use tokio::io::AsyncWriteExt;

/// Writes a configuration with `data_dir` in `dir`, one OpenAI-compatible
/// provider `p` at `url`, and these `[models.*]` tables.
fn write_config(dir: &Path, url: &str, models: &str) -> std::path::PathBuf {
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{url}\"\n{models}",
            dir.display()
        ),
    )
    .unwrap();
    config
}

async fn switchboard(
    config: &Path,
    args: &[impl AsRef<std::ffi::OsStr>],
    input: &str,
) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("SWITCHBOARD_CONFIG")
        .spawn()
        .expect("start switchboard");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("switchboard finishes")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `switchboard eval assistant --candidate 2 --dataset FILE EXTRA…`.
async fn eval_file(config: &Path, file: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["eval", "assistant", "--candidate", "2", "--dataset"];
    args.push(file.to_str().unwrap());
    args.extend(extra);
    switchboard(config, &args, "").await
}

#[tokio::test]
async fn eval_judges_both_orders_writes_the_report_and_gates_on_the_win_rate() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &provider.url,
        // Prices for `p` (the line still belongs to its table).
        "prices = { m = { input = 1.0, output = 2.0 } }\n[models.default]\ntargets = [\"p/m\"]\n",
    );
    // Two logged conversations through the default prompt (v1).
    provider.then([Reply::text("Paris."), Reply::text("Berlin.")]);
    let (ok, out, err) = switchboard(
        &config,
        &["chat"],
        "Capital of France?\n/good\n/new\nCapital of Germany?\n/quit\n",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    // A candidate v2 of the default prompt.
    let file = dir.path().join("assistant.toml");
    std::fs::write(
        &file,
        "name = \"assistant\"\nmodel = \"default\"\n[[messages]]\nrole = \"system\"\ntemplate = \"Answer in one word.\"\n[[messages]]\nrole = \"history\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    let (ok, out, err) = switchboard(
        &config,
        &[
            "prompts",
            "edit",
            "assistant",
            "--file",
            file.to_str().unwrap(),
            "-m",
            "terser",
        ],
        "",
    )
    .await;
    assert!(ok, "{out}\n{err}");

    // Per example, in order: candidate, baseline, judge (candidate as A),
    // judge (candidate as B). Example 1: the judge prefers the candidate in
    // both orders. Example 2: the judge always says A (position bias): a tie.
    // The candidate answers in 2 tokens at once; the baseline in 6 and 3,
    // each 60 ms apart.
    let slow = |text: &str| Reply::OpenAiSlow(standin::split(text), Duration::from_millis(60));
    let two = |a: &str, b: &str| Reply::OpenAiStream(vec![a.into(), b.into()], (11, 2));
    provider.then([
        two("Par", "is"),
        slow("I think it might be Lyon."),
        Reply::text("A"),
        Reply::text("B"),
        two("Ber", "lin"),
        slow("Berlin, of course."),
        Reply::text("A"),
        Reply::text("A"),
    ]);
    let report = dir.path().join("report");
    let args = [
        "eval",
        "assistant",
        "--candidate",
        "2",
        "--baseline",
        "production",
        "--judge",
        "default",
        "--check",
        "max-chars:10",
        "--concurrency",
        "1",
        "--min-win-rate",
        "0.7",
        "--report",
        report.to_str().unwrap(),
    ];
    let (ok, out, err) = switchboard(&config, &args, "").await;
    assert!(ok, "win rate 75% passes 70%:\n{out}\n{err}");
    assert!(
        out.contains("candidate win rate 75%") && out.contains("1 wins, 0 losses, 1 ties"),
        "{out}"
    );
    assert!(
        out.contains("| check `max-chars:10` | 100% | 0% |"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["rows"][0]["verdict"], "candidate");
    assert_eq!(json["rows"][1]["verdict"], "tie");
    assert_eq!(json["rows"][0]["candidate"]["version"], 2);
    assert_eq!(json["rows"][0]["baseline"]["version"], 1);
    // The candidate is cheaper (2 output tokens at $2/M against 6 and 3)
    // and faster, to its first token and per token after it.
    let cost = json["cost_delta_usd"].as_f64().unwrap();
    assert!((cost + 5e-6).abs() < 1e-9, "{cost}");
    for delta in ["ttft_delta_ms", "tpot_delta_ms"] {
        let ms = json[delta]
            .as_f64()
            .unwrap_or_else(|| panic!("{delta}: {json}"));
        assert!(ms < -40.0, "{delta}: {ms}");
    }
    let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        markdown.contains("TTFT, mean difference") && markdown.contains("75%"),
        "{markdown}"
    );
    assert!(
        std::fs::read_to_string(report.join("report.html"))
            .unwrap()
            .contains("<table>")
    );
    // The judge saw the question and both answers, candidate first, then second.
    let received = provider.received();
    let judge_prompt = received[received.len() - 6].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        judge_prompt.contains("[Answer A]\nParis\n")
            && judge_prompt.contains("[Answer B]\nI think it might be Lyon."),
        "{judge_prompt}"
    );
    // The second time with the answers swapped: the candidate is B.
    let swapped = received[received.len() - 5].body["messages"][1]["content"]
        .as_str()
        .unwrap();
    assert!(
        swapped.contains("[Answer A]\nI think it might be Lyon.")
            && swapped.contains("[Answer B]\nParis\n"),
        "{swapped}"
    );
    // The candidate answered through v2's template, the baseline through
    // v1's, both on the logged question.
    let (candidate, baseline) = (
        &received[received.len() - 8].body["messages"],
        &received[received.len() - 7].body["messages"],
    );
    assert_eq!(
        candidate[0]["content"], "Answer in one word.",
        "{candidate}"
    );
    assert_ne!(baseline[0]["content"], "Answer in one word.", "{baseline}");
    for side in [candidate, baseline] {
        let last = side.as_array().unwrap().last().unwrap();
        assert_eq!(last["content"], "Capital of France?", "{side}");
    }
    // The report is stored for the dashboard.
    let store = gateway::store::Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("switchboard.db").display()
    ))
    .await
    .unwrap();
    let runs = store.eval_runs("assistant").await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let summary: serde_json::Value = serde_json::from_str(&runs[0].3).unwrap();
    assert_eq!(summary["win_rate"], 0.75, "{summary}");
    assert_eq!(summary["examples"], 2, "{summary}");
    store.close().await;

    // From a JSONL file with a corrupt line, and a threshold it misses.
    let dataset = dir.path().join("d.jsonl");
    std::fs::write(
        &dataset,
        "{\"input\": [{\"role\": \"user\", \"content\": \"Capital of Spain?\"}]}\nnot json\n",
    )
    .unwrap();
    provider.then([
        Reply::text("Madrid"),
        Reply::text("Madrid."),
        Reply::text("B"),
        Reply::text("A"),
    ]);
    let (ok, out, err) = eval_file(
        &config,
        &dataset,
        &["--judge", "default", "--concurrency", "1"],
    )
    .await;
    assert!(!ok, "a loss must fail the gate:\n{out}");
    assert!(
        err.contains("d.jsonl:2: not JSON") && err.contains("skipped"),
        "{err}"
    );
    assert!(
        err.contains("falls short") && err.contains("win rate 0%"),
        "{err}"
    );
    let (ok, _, err) = eval_file(&config, &dataset, &["--stop-on-bad-line"]).await;
    assert!(
        !ok && err.contains(&format!("{}:2: not JSON", dataset.display())),
        "{err}"
    );

    // A file is replayed whole: the 50-example default is for logged
    // conversations.
    let big = dir.path().join("big.jsonl");
    let lines: Vec<String> = (0..55)
        .map(|i| format!(r#"{{"input":[{{"role":"user","content":"q{i}"}}]}}"#))
        .collect();
    std::fs::write(&big, lines.join("\n")).unwrap();
    let before = provider.received().len();
    let (ok, out, err) = eval_file(&config, &big, &[]).await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        provider.received().len() - before,
        110,
        "each of the 55 examples answered by both sides"
    );

    // The logged conversations export in the fine-tuning format.
    let out_file = dir.path().join("train.jsonl");
    let (ok, _, err) = switchboard(
        &config,
        &[
            "export",
            "--format",
            "openai",
            "--output",
            out_file.to_str().unwrap(),
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("exported 2 conversations"), "{err}");
    let text = std::fs::read_to_string(out_file).unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "test replays are not exported: {text}"
    );

    // Only 👍 answers, as the operator asks for them.
    let (ok, out, err) = switchboard(&config, &["export", "--feedback", "up"], "").await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("Capital of France?") && lines[0].contains("Paris."),
        "{out}"
    );
    // CSV, one row a conversation after the header.
    let (ok, out, err) = switchboard(&config, &["export", "--format", "csv"], "").await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("Capital of Germany?"), "{out}");
    // Eval JSONL that `eval --dataset` takes back: both conversations
    // replayed through both sides.
    let exported = dir.path().join("exported.jsonl");
    let (ok, _, err) = switchboard(
        &config,
        &[
            "export",
            "--format",
            "eval",
            "--output",
            exported.to_str().unwrap(),
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let before = provider.received().len();
    let (ok, out, err) = eval_file(&config, &exported, &[]).await;
    assert!(ok, "{out}\n{err}");
    let questions: Vec<String> = provider.received()[before..]
        .iter()
        .filter_map(|r| {
            r.body["messages"].as_array()?.last()?["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(questions.len(), 4, "{questions:?}");
    for q in ["Capital of France?", "Capital of Germany?"] {
        assert_eq!(
            questions.iter().filter(|x| *x == q).count(),
            2,
            "{questions:?}"
        );
    }
}

/// A run under a rate limit waits for it instead of failing the replays it
/// refuses: at 12 requests a minute for the eval's user (12 at once, then
/// one every 5 s), 7 examples through both sides, 4 at a time (14
/// requests), are all answered.
#[tokio::test]
async fn eval_waits_for_rate_limits_instead_of_failing_replays() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &provider.url,
        "[models.default]\ntargets = [\"p/m\"]\n[limits.user]\nrequests_per_minute = 12\n",
    );
    let dataset = dir.path().join("d.jsonl");
    let lines: Vec<String> = (0..7)
        .map(|i| format!(r#"{{"input":[{{"role":"user","content":"q{i}"}}]}}"#))
        .collect();
    std::fs::write(&dataset, lines.join("\n")).unwrap();
    provider.always(Reply::text("An answer."));
    let report = dir.path().join("report");
    let args = [
        "eval",
        "assistant",
        "--candidate",
        "1",
        "--dataset",
        dataset.to_str().unwrap(),
        "--concurrency",
        "4",
        "--report",
        report.to_str().unwrap(),
    ];
    let (ok, out, err) = switchboard(&config, &args, "").await;
    assert!(ok, "{out}\n{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["examples"], 7, "{json}");
    assert_eq!(json["errors"], 0, "no replay failed on the limit: {json}");
    assert_eq!(provider.received().len(), 14);
}

#[tokio::test]
async fn eval_scores_against_a_rubric_compares_models_and_gates_on_the_score() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &provider.url,
        "[models.default]\ntargets = [\"p/big\"]\n[models.small]\ntargets = [\"p/small\"]\n",
    );
    let dataset = dir.path().join("d.jsonl");
    std::fs::write(
        &dataset,
        "{\"input\": [{\"role\": \"user\", \"content\": \"Capital of France?\"}]}\n",
    )
    .unwrap();
    let schema = dir.path().join("city.schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}"#,
    )
    .unwrap();
    let rubric = "Names the capital in a full sentence.";
    let schema_check = format!("json-schema:{}", schema.display());
    let run = |max_drop: &'static str| {
        let mut args = vec![
            "eval".to_string(),
            "assistant".into(),
            "--candidate".into(),
            "production".into(),
            "--candidate-model".into(),
            "small".into(),
            "--judge".into(),
            "default".into(),
            "--rubric".into(),
            rubric.into(),
            "--check".into(),
            "regex:^Paris".into(),
            "--check".into(),
            schema_check.clone(),
            "--dataset".into(),
            dataset.display().to_string(),
            "--concurrency".into(),
            "1".into(),
            "--report".into(),
            dir.path().join("report").display().to_string(),
        ];
        if !max_drop.is_empty() {
            args.extend(["--max-score-drop".to_string(), max_drop.to_string()]);
        }
        args
    };
    // Candidate (on `small`), baseline, the pairwise judge in both orders
    // (the candidate wins), then the rubric scores: candidate, baseline.
    let script = || {
        [
            Reply::text("{\"city\": \"Paris\"}"),
            Reply::text("Paris is the capital of France."),
            Reply::text("A"),
            Reply::text("B"),
            Reply::text("SCORE: 2\nREASON: Bare JSON, not a sentence."),
            Reply::text("SCORE: 5\nREASON: A full sentence."),
        ]
    };
    provider.then(script());
    let args = run("");
    let (ok, out, err) = switchboard(&config, &args, "").await;
    assert!(
        !ok,
        "a win on preference does not excuse a score drop:\n{out}\n{err}"
    );
    assert!(
        err.contains("the rubric score fell by 3.00 (allowed: 0.00)"),
        "{err}"
    );
    assert!(
        err.contains("[##############################] 1/1 examples"),
        "a progress bar: {err}"
    );
    assert!(
        out.contains("| rubric score (1–5), mean | 2.00 | 5.00 |")
            && out.contains("| check `regex:^Paris` | 0% | 100% |")
            && out.contains(&format!("| check `{schema_check}` | 100% | 0% |"))
            && out.contains("2: Bare JSON, not a sentence.")
            && out.contains("candidate win rate 100%"),
        "{out}"
    );
    let received = provider.received();
    let models: Vec<&str> = received
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        models,
        ["small", "big", "big", "big", "big", "big"],
        "the candidate answers on `small`, the rest on the prompt's model"
    );
    let scoring = received[4].body["messages"][1]["content"]
        .as_str()
        .unwrap_or("");
    assert!(
        scoring.contains(rubric) && scoring.contains("[Answer]\n{\"city\": \"Paris\"}\n"),
        "{scoring}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["candidate"], "production on small");
    assert_eq!(json["score_delta"], -3.0);
    assert_eq!(
        json["rows"][0]["baseline"]["score"]["reason"],
        "A full sentence."
    );

    // Allowing a drop of 3.5 lets the same results pass.
    provider.then(script());
    let args = run("3.5");
    let (ok, out, err) = switchboard(&config, &args, "").await;
    assert!(ok, "{out}\n{err}");

    // A rubric needs a judge; a bad check, an unknown model, version or
    // label, and log filters beside a file are refused before anything
    // runs.
    let before = provider.received().len();
    for (extra, refusal) in [
        (&["--rubric", "x"][..], "--rubric needs --judge"),
        (&["--check", "regex:(a"], "does not compile"),
        (
            &["--candidate-model", "nope"],
            "--candidate-model `nope` is not a model alias; known: default, small",
        ),
        (
            &["--baseline", "9"],
            "--baseline: prompt `assistant` has no version 9",
        ),
        (
            &["--baseline", "staging"],
            "--baseline: prompt `assistant` has no label `staging`",
        ),
        (
            &["--dataset", "any.jsonl", "--label", "production"],
            "--label choose among logged conversations",
        ),
    ] {
        let mut args = vec!["eval", "assistant", "--candidate", "production"];
        args.extend(extra);
        let (ok, _, err) = switchboard(&config, &args, "").await;
        assert!(!ok && err.contains(refusal), "{err}");
    }
    assert_eq!(provider.received().len(), before, "nothing was replayed");
}

/// A candidate with `[retrieval]` against a baseline without: the report
/// shows what each was given and which it cited, and the judge checks the
/// candidate's claims against the text of the chunks it cited.
#[tokio::test]
async fn eval_shows_what_was_retrieved_and_checks_claims_against_the_cited_chunks() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let models = switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string();
    let config = write_config(
        dir.path(),
        &provider.url,
        &format!("[models.default]\ntargets = [\"p/m\"]\n[knowledge]\nmodels_dir = {models:?}\n"),
    );
    let docs = dir.path().join("handbook");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("retry.md"),
        "# Retry policy\n\n## Attempts\n\nA failed call is retried three times, with exponential backoff.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("lunch.md"),
        "# Lunch\n\nLunch is at noon in the kitchen.\n",
    )
    .unwrap();
    let (ok, out, err) = switchboard(
        &config,
        &[
            "knowledge",
            "ingest",
            docs.to_str().unwrap(),
            "--source",
            "handbook",
        ],
        "",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let file = dir.path().join("assistant.toml");
    std::fs::write(
        &file,
        "name = \"assistant\"\nmodel = \"default\"\n[retrieval]\nsources = [\"handbook\"]\ntop_k = 2\n\
         [[messages]]\nrole = \"system\"\ntemplate = \"Cite as [n]:\\n{{ documents }}\"\n\
         [[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    let (ok, out, err) = switchboard(
        &config,
        &[
            "prompts",
            "edit",
            "assistant",
            "--file",
            file.to_str().unwrap(),
            "-m",
            "grounded",
        ],
        "",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let dataset = dir.path().join("d.jsonl");
    std::fs::write(
        &dataset,
        "{\"input\": [{\"role\": \"user\", \"content\": \"What does our retry policy say?\"}]}\n",
    )
    .unwrap();
    // Candidate, baseline, the pairwise judge twice, then the groundedness
    // check of the candidate (the baseline was given nothing to check).
    provider.then([
        Reply::text("A failed call is retried three times [1]. Each retry waits 5 s [1]."),
        Reply::text("No idea."),
        Reply::text("A"),
        Reply::text("B"),
        Reply::text(
            "SUPPORTED: A failed call is retried three times.\nUNSUPPORTED: Each retry waits 5 s.",
        ),
    ]);
    let report = dir.path().join("report");
    let (ok, out, err) = eval_file(
        &config,
        &dataset,
        &[
            "--judge",
            "default",
            "--concurrency",
            "1",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("| claims supported by their documents (judge) | 50% (1 answers) | – |"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    let candidate = &json["rows"][0]["candidate"];
    assert_eq!(
        candidate["retrieval"]["chunks"][0]["title"], "Retry policy",
        "{candidate}"
    );
    assert_eq!(
        candidate["retrieval"]["chunks"][0]["cited"], true,
        "{candidate}"
    );
    assert_eq!(candidate["grounded"]["supported"], 1, "{candidate}");
    assert_eq!(candidate["grounded"]["against"], "cited", "{candidate}");
    assert_eq!(
        candidate["grounded"]["unsupported"][0],
        "Each retry waits 5 s."
    );
    assert!(json["rows"][0]["baseline"].get("retrieval").is_none());
    // The judge was shown the cited chunk's own text.
    let received = provider.received();
    let check = received.last().unwrap().body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        check.contains(
            "[1] Retry policy\nA failed call is retried three times, with exponential backoff."
        ),
        "{check}"
    );
    assert!(
        !check.contains("Lunch is at noon"),
        "only the cited chunk: {check}"
    );
    let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        markdown.contains("[1]* Retry policy › Attempts"),
        "{markdown}"
    );
    assert!(
        markdown.contains("unsupported: Each retry waits 5 s."),
        "{markdown}"
    );
}
