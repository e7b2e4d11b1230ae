//! `switchboard knowledge …` as an operator runs it: a real process against
//! the SQLite file and the embedded embedding model (from the shared model
//! cache): ingest a folder, search it (text and JSON), list, re-ingest
//! after a change, and the errors for bad input.

use std::path::Path;

struct Cli {
    config: std::path::PathBuf,
}

impl Cli {
    fn new(dir: &Path) -> Cli {
        let models = switchboard_embedded::default_models_dir()
            .expect("set SWITCHBOARD_MODEL_CACHE or HOME");
        let config = dir.join("switchboard.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[knowledge]\nmodels_dir = {:?}\n[providers.stand-in]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n[models.default]\ntargets = [\"stand-in/m\"]\n",
                dir.display().to_string(),
                models.display().to_string()
            ),
        )
        .unwrap();
        Cli { config }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_top(&[&["knowledge"], args].concat())
    }

    /// Runs `switchboard ARGS` (any subcommand).
    fn run_top(&self, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("SWITCHBOARD_CONFIG")
            .output()
            .expect("run switchboard");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(
            ok,
            "knowledge {args:?} failed:\nstdout: {out}\nstderr: {err}"
        );
        out
    }
}

#[test]
fn an_operator_ingests_a_folder_searches_it_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("ops")).unwrap();
    std::fs::write(
        docs.join("retry.md"),
        "# Retry policy\n\n## Attempts\n\nA failed call is retried three times with exponential backoff.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("ops/deploys.txt"),
        "Deploys happen on Tuesdays and Thursdays after the standup.\n\nNever deploy on a Friday.",
    )
    .unwrap();
    std::fs::write(docs.join("diagram.png"), [0x89, b'P', b'N', b'G']).unwrap();
    let cli = Cli::new(dir.path());
    let docs_arg = docs.display().to_string();

    let out = cli.ok(&["ingest", &docs_arg, "--source", "handbook"]);
    assert!(
        out.contains("source `handbook`: 2 added, 0 updated, 0 unchanged, 0 removed, 1 skipped"),
        "{out}"
    );
    let (_, _, err) = cli.run(&["ingest", &docs_arg, "--source", "handbook"]);
    assert!(
        err.contains("skipped") && err.contains("diagram.png"),
        "{err}"
    );

    let out = cli.ok(&["search", "when can we ship to production?", "--top-k", "1"]);
    assert!(out.starts_with("1. ["), "{out}");
    assert!(out.contains("deploys"), "{out}");
    assert!(out.contains("Never deploy on a Friday"), "{out}");

    let out = cli.ok(&[
        "search",
        "how many retries",
        "--source",
        "handbook",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["title"], "Retry policy", "{v}");
    assert_eq!(v["hits"][0]["heading"], "Attempts", "{v}");
    assert!(
        v["hits"][0]["link"]
            .as_str()
            .unwrap()
            .ends_with("retry.md#attempts"),
        "{v}"
    );
    assert!(v["hits"][0]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(v["warnings"], serde_json::json!([]));

    let out = cli.ok(&["list"]);
    assert!(
        out.contains("handbook  files · global · 2 documents"),
        "{out}"
    );
    assert!(out.contains("all-MiniLM-L6-v2"), "{out}");

    // A changed file is read again; the other is not.
    std::fs::write(
        docs.join("retry.md"),
        "# Retry policy\n\n## Attempts\n\nA failed call is retried five times.\n",
    )
    .unwrap();
    let out = cli.ok(&["ingest", &docs_arg, "--source", "handbook"]);
    assert!(out.contains("0 added, 1 updated, 1 unchanged"), "{out}");

    // Bad input: a clear error, nothing changed.
    let (ok, _, err) = cli.run(&["ingest", "/nonexistent/folder", "--source", "handbook"]);
    assert!(!ok && err.contains("/nonexistent/folder"), "{err}");
    let (ok, _, err) = cli.run(&["ingest", &docs_arg, "--source", "bad name!"]);
    assert!(!ok && err.contains("not a knowledge source name"), "{err}");
    let (ok, _, err) = cli.run(&[
        "ingest", &docs_arg, "--source", "handbook", "--scope", "slack/T1",
    ]);
    assert!(!ok && err.contains("belongs to `global`"), "{err}");
    let (ok, _, err) = cli.run(&["ingest", &docs_arg, "--source", "other", "--scope", "slack"]);
    assert!(!ok && err.contains("`slack` is not a scope"), "{err}");
    let (ok, _, err) = cli.run(&["remove", "wiki"]);
    assert!(!ok && err.contains("no knowledge source `wiki`"), "{err}");
    let out = cli.ok(&["list"]);
    assert!(
        out.contains("handbook  files · global · 2 documents"),
        "{out}"
    );

    cli.ok(&["remove", "handbook"]);
    let out = cli.ok(&["list"]);
    assert!(out.contains("no knowledge sources yet"), "{out}");
    let (ok, out, err) = cli.run(&["search", "retry"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("empty") && out.contains("nothing found"),
        "{out} {err}"
    );
}

const PROMPT: &str = "name = \"handbook\"\n[retrieval]\nsources = [\"handbook\"]\ntop_k = 1\nmode = \"MODE\"\n\
[[messages]]\nrole = \"system\"\ntemplate = \"Cite as [n]:\\n{{ documents }}\"\n\
[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n";

/// `switchboard eval --retrieval`: two versions' retrieval settings side by
/// side on a labelled file; dense search finds the paraphrase that lexical
/// search misses.
#[test]
fn eval_compares_two_versions_retrieval_on_labelled_questions() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("oncall.md"),
        "# On-call\n\nThe on-call engineer is paged through PagerDuty and acknowledges within 15 minutes.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("retry.md"),
        "# Retry policy\n\nA failed call is retried three times with exponential backoff.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("lunch.md"),
        "# Lunch\n\nLunch is served at noon in the kitchen.\n",
    )
    .unwrap();
    let cli = Cli::new(dir.path());
    cli.ok(&[
        "ingest",
        &docs.display().to_string(),
        "--source",
        "handbook",
    ]);
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    let import = |mode: &str| {
        std::fs::write(prompts.join("handbook.toml"), PROMPT.replace("MODE", mode)).unwrap();
        let (ok, out, err) = cli.run_top(&["prompts", "import", prompts.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
    };
    import("lexical");
    import("dense");
    let labels = dir.path().join("labels.jsonl");
    std::fs::write(
        &labels,
        concat!(
            "{\"question\": \"how many times is a failed call retried\", \"documents\": [\"retry.md\"]}\n",
            "{\"question\": \"who responds to an emergency alert at night\", \"documents\": [\"oncall.md\"]}\n",
            "{\"question\": \"when is lunch served\", \"pages\": [\"lunch.md\"]}\n",
        ),
    )
    .unwrap();
    let labels_arg = labels.display().to_string();
    let (ok, out, err) = cli.run_top(&[
        "eval",
        "handbook",
        "--baseline",
        "1",
        "--candidate",
        "2",
        "--retrieval",
        &labels_arg,
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("retrieval on 3 labelled questions"), "{out}");
    let row = |arm: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(&format!("| {arm} ")))
            .unwrap_or_else(|| panic!("no {arm} row: {out}"))
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let (baseline, candidate) = (row("baseline"), row("candidate"));
    assert_eq!(&baseline[2..5], ["v1", "lexical", "1"], "{out}");
    assert_eq!(&candidate[2..5], ["v2", "dense", "1"], "{out}");
    // Lexical search has no words of the on-call page to go on.
    assert_eq!(baseline[5], "0.667", "{out}");
    assert_eq!(candidate[5], "1.000", "{out}");
    assert!(!out.contains("missed by the candidate"), "{out}");

    // A gate: fails below --min-recall, and a bad labelled file is named.
    let (ok, _, err) = cli.run_top(&[
        "eval",
        "handbook",
        "--baseline",
        "2",
        "--candidate",
        "1",
        "--retrieval",
        &labels_arg,
        "--min-recall",
        "0.9",
    ]);
    assert!(!ok && err.contains("below --min-recall 0.9"), "{err}");
    std::fs::write(&labels, "{\"question\": \"x\"}\n").unwrap();
    let (ok, _, err) = cli.run_top(&[
        "eval",
        "handbook",
        "--baseline",
        "1",
        "--candidate",
        "2",
        "--retrieval",
        &labels_arg,
    ]);
    assert!(
        !ok && err.contains("line 1") && err.contains("at least one of"),
        "{err}"
    );
}

/// An ingest killed part way resumes when run again: every document is
/// committed on its own, so what was stored stays, nothing is half stored,
/// and the second run adds only the rest.
#[test]
fn an_ingest_killed_part_way_resumes_where_it_stopped() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..300 {
        std::fs::write(
            docs.join(format!("note{i:03}.md")),
            format!(
                "# Note {i}\n\nThis is note number {i} about subject {}.\n",
                i * 7
            ),
        )
        .unwrap();
    }
    let cli = Cli::new(dir.path());
    let docs_arg = docs.display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&cli.config)
        .args(["knowledge", "ingest", &docs_arg, "--source", "notes"])
        .env_remove("SWITCHBOARD_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut added = 0;
    for line in std::io::BufReader::new(stderr).lines() {
        if line.unwrap().trim_start().starts_with("added ") {
            added += 1;
            if added == 10 {
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(added, 10, "the ingest ended before it could be killed");

    let out = cli.ok(&["ingest", &docs_arg, "--source", "notes"]);
    let counts: Vec<usize> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .take(3)
        .collect();
    let (new, unchanged) = (counts[0], counts[2]);
    assert!(unchanged >= 10 && new >= 1, "{out}");
    assert_eq!(new + unchanged, 300, "{out}");
    let out = cli.ok(&["list"]);
    assert!(
        out.contains("notes  files · global · 300 documents, 300 chunks"),
        "{out}"
    );
}

/// `switchboard models pull all-MiniLM-L6-v2` fetches (here: finds, verified,
/// in the shared cache) the embedding model, for machines prepared before
/// they go offline.
#[test]
fn models_pull_fetches_the_embedding_model_too() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let (ok, out, err) = cli.run_top(&["models", "pull", "all-MiniLM-L6-v2"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("embedding model all-MiniLM-L6-v2 at "),
        "{out}"
    );
    let models = switchboard_embedded::default_models_dir().unwrap();
    assert!(models.join("all-MiniLM-L6-v2/model.safetensors").is_file());
    let (ok, _, err) = cli.run_top(&["models", "pull", "no-such-model"]);
    assert!(
        !ok && err.contains("no local model `no-such-model`"),
        "{err}"
    );
}

/// `switchboard knowledge sync slack` reads the configured channels from
/// Slack (the stand-in Web API, with the bot token from the environment),
/// and a second sync after a deletion removes the thread.
#[test]
fn sync_reads_the_configured_slack_channels_and_removes_deleted_threads() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(testkit::slack::FakeSlack::start());
    api.user("UANN", "ann", false);
    api.channel("C0ENG", "eng", false, true);
    api.say(
        "C0ENG",
        "UANN",
        "1700000001.000100",
        None,
        "Deploys freeze on Fridays after noon.",
    );
    api.say(
        "C0ENG",
        "UANN",
        "1700000002.000100",
        None,
        "The staging database resets nightly.",
    );
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let mut toml = std::fs::read_to_string(&cli.config).unwrap();
    toml.push_str(&format!(
        "[slack]\nbot_token_env = \"SLACK_BOT_TOKEN\"\nsigning_secret_env = \"SLACK_SIGNING_SECRET\"\napi_base = \"{}\"\nknowledge_channels = [\"C0ENG\"]\n",
        api.url
    ));
    std::fs::write(&cli.config, toml).unwrap();
    let sync = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&cli.config)
            .args(["knowledge", "sync", "slack"])
            .env_remove("SWITCHBOARD_CONFIG")
            .env("SLACK_BOT_TOKEN", testkit::slack::TOKEN)
            .env("SLACK_SIGNING_SECRET", "s")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let out = sync();
    assert!(out.contains("#eng: 2 threads: 2 added"), "{out}");
    let found = cli.ok(&["search", "when do deploys freeze", "--source", "slack"]);
    assert!(found.contains("Deploys freeze on Fridays"), "{found}");
    assert!(
        found.contains("https://example.slack.com/archives/C0ENG/p1700000001000100"),
        "{found}"
    );
    let listed = cli.ok(&["list"]);
    assert!(
        listed.contains("slack  slack · slack/T123ABC456 · 2 documents"),
        "{listed}"
    );

    api.delete("C0ENG", "1700000001.000100");
    let out = sync();
    assert!(
        out.contains("#eng: 1 threads: 0 added, 0 changed, 1 unchanged, 1 removed"),
        "{out}"
    );
    let found = cli.ok(&["search", "when do deploys freeze", "--source", "slack"]);
    assert!(!found.contains("Deploys freeze"), "{found}");
}

/// `switchboard knowledge sync discord` reads the configured Discord
/// channels (the stand-in REST API, the bot token from the environment),
/// leaving out the bot's own messages.
#[test]
fn sync_reads_the_configured_discord_channels() {
    use testkit::discord::{APP, BOT, user_message};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let discord = rt.block_on(testkit::discord::Discord::start());
    const ENG: &str = "1200000000000000009";
    discord.seed_channel(ENG, "eng", false);
    let mut m = user_message(
        "1700000000000002000",
        "Deploys freeze on Fridays after noon.",
        false,
    );
    m["channel_id"] = serde_json::json!(ENG);
    discord.seed(m);
    let mut own = user_message("1700000000000002001", "an answer of the bot's own", false);
    own["channel_id"] = serde_json::json!(ENG);
    own["author"] = serde_json::json!({ "id": BOT, "username": "switchboard", "bot": true });
    discord.seed(own);
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let mut toml = std::fs::read_to_string(&cli.config).unwrap();
    toml.push_str(&format!(
        "[discord]\ntoken_env = \"STANDIN_DISCORD_TOKEN\"\napplication_id = \"{APP}\"\napi_base = \"{}\"\nmessage_content = true\nknowledge_channels = [\"{ENG}\"]\n",
        discord.api_base
    ));
    std::fs::write(&cli.config, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&cli.config)
        .args(["knowledge", "sync", "discord"])
        .env_remove("SWITCHBOARD_CONFIG")
        .env("STANDIN_DISCORD_TOKEN", "stand-in-bot-token")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("#eng: 1 threads: 1 added"), "{text}");
    let found = cli.ok(&["search", "when do deploys freeze", "--source", "discord"]);
    assert!(found.contains("Deploys freeze on Fridays"), "{found}");
    assert!(
        found.contains("https://discord.com/channels/1300000000000000001/1200000000000000009/1700000000000002000"),
        "{found}"
    );
    let own = cli.ok(&[
        "search",
        "an answer of the bot's own",
        "--source",
        "discord",
    ]);
    assert!(!own.contains("bot's own"), "{own}");
}
