//! `switchboard chat` as a user runs it: a real process, lines on stdin,
//! answers streamed to stdout from a stand-in provider, feedback and the
//! inference rows in the SQLite file.

use std::process::Stdio;

use testkit::standin::{self, Reply, StandIn, split};
use tokio::io::AsyncWriteExt;

async fn run_chat(config: &str, dir: &std::path::Path, input: &str) -> (bool, String, String) {
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", path.to_str().unwrap(), "chat"])
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
        .expect("switchboard chat must finish at end of input")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn chat_streams_answers_keeps_context_records_feedback_and_stats() {
    let provider = StandIn::start().await;
    provider.then([
        Reply::OpenAiStream(split("Paris is the capital."), (30, 5)),
        Reply::OpenAiStream(split("About two million people."), (50, 5)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"data_dir = "{}"
[providers.stand-in]
kind = "openai"
base_url = "{}"
prices = {{ "m" = {{ input = 1.0, output = 1.0 }} }}
[models.default]
targets = ["stand-in/m"]
"#,
        dir.path().display(),
        provider.url
    );
    let input = "What is the capital of France?\nHow many people live there?\n/stats\n/bad\n/new\n/good\n/quit\n";
    let (ok, out, err) = run_chat(&config, dir.path(), input).await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Paris is the capital."), "{out}");
    assert!(out.contains("About two million people."), "{out}");
    assert!(
        out.contains("TTFT:") && out.contains("TPOT:") && out.contains("tokens: 50 in / 5 out"),
        "{out}"
    );
    assert!(out.contains("cost: $0.000055"), "{out}");
    assert!(out.contains("recorded 👎"), "{out}");
    assert!(
        out.contains("(new conversation)") && out.contains("no answer to rate yet"),
        "{out}"
    );

    // The second question carried the first exchange as context.
    let second = &provider.received()[1].body["messages"];
    let contents: Vec<&str> = second
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents[1..],
        [
            "What is the capital of France?",
            "Paris is the capital.",
            "How many people live there?"
        ]
    );

    // Rows are in the SQLite file in data_dir.
    let store = gateway::store::Store::connect(&format!(
        "sqlite://{}/switchboard.db",
        dir.path().display()
    ))
    .await
    .unwrap();
    assert_eq!(
        store
            .count(gateway::store::Table::Inferences)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.count(gateway::store::Table::Feedback).await.unwrap(),
        1
    );
    // A 👎 from the console, on the answer it named.
    let answer = out
        .split("recorded 👎 for answer ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the answer's id: {out}"));
    let votes = store.feedback_for(answer).await.unwrap();
    assert_eq!(votes.len(), 1, "{votes:?}");
    assert_eq!(
        (votes[0].0.as_str(), votes[0].1, votes[0].2.as_str()),
        ("thumbs", Some(0.0), "console")
    );
}

#[tokio::test]
async fn chat_reports_provider_failures_and_keeps_going() {
    let provider = StandIn::start().await;
    provider.then([Reply::Status(
        401,
        standin::openai_error("Incorrect API key provided", "invalid_request_error"),
        vec![],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "data_dir = \"{}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.default]\ntargets = [\"p/m\"]\n",
        dir.path().display(),
        provider.url
    );
    let (ok, out, _) = run_chat(&config, dir.path(), "hello\nagain\n").await;
    assert!(ok);
    assert!(
        out.contains("error: every target of model `default` failed")
            && out.contains("Incorrect API key"),
        "{out}"
    );
    assert!(
        out.contains("Hello from the stand-in."),
        "the next question is answered: {out}"
    );
}

#[tokio::test]
async fn a_bad_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "data_dir = \"{}\"\n[server]\nlisten = \"nowhere\"\n",
        dir.path().display()
    );
    let (ok, _, err) = run_chat(&config, dir.path(), "").await;
    assert!(!ok);
    assert!(
        err.contains("server.listen") && err.contains("nowhere"),
        "{err}"
    );
    assert!(
        !dir.path().join("switchboard.db").exists(),
        "nothing may start on a bad configuration"
    );
}

#[tokio::test]
async fn prompt_commands_work_in_the_console() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "data_dir = \"{}\"\n[providers.stand-in]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.default]\ntargets = [\"stand-in/m\"]\n",
        dir.path().display(),
        provider.url
    );
    let input = "/prompt list\n/prompt show assistant\n/prompt promote assistant 7\n/prompt frobnicate\n/prompt test assistant -- Hi there\n/quit\n";
    let (ok, out, err) = run_chat(&config, dir.path(), input).await;
    assert!(ok, "stdout: {out}\nstderr: {err}");
    assert!(
        // The library's three: assistant, and the shortcuts' two.
        out.contains("3 prompts") && out.contains("production→v1"),
        "{out}"
    );
    assert!(
        out.contains("assistant v1") && out.contains("role = \"system\""),
        "{out}"
    );
    assert!(
        out.contains("error: prompt `assistant` has no version 7; its newest is v1"),
        "{out}"
    );
    assert!(
        out.contains("cannot read `frobnicate`") && out.contains("usage:"),
        "{out}"
    );
    assert!(
        out.contains("test of assistant v1") && out.contains("Hello from the stand-in."),
        "{out}"
    );
}
