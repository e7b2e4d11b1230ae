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
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&self.config)
            .arg("knowledge")
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
