//! The official OpenAI Python SDK, unmodified, against Switchboard: it must
//! work as it does against OpenAI, streaming and not, and turn Switchboard's
//! errors into its own exceptions, and make its tool-call round trip; `/v1/embeddings` with the embedded model. The interpreter is
//! `$SWITCHBOARD_TEST_PYTHON` (ops/test.sh installs the SDK in a venv).

use testkit::standin::{Reply, StandIn};
use testkit::{Harness, one_provider};

#[tokio::test]
async fn the_openai_python_sdk_works_against_switchboard() {
    let python = std::env::var("SWITCHBOARD_TEST_PYTHON").expect(
        "SWITCHBOARD_TEST_PYTHON is not set: run the tests with ops/test.sh, which installs the OpenAI SDK",
    );
    let provider = StandIn::start().await;
    let models = switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string();
    let toml = format!(
        "[knowledge]\nmodels_dir = {models:?}\n{}",
        one_provider(&provider.url)
    );
    let h = Harness::start(&toml, &[]).await;
    // The script's chat requests in order: two plain questions, a tool
    // call asked for plainly and streamed, and the answer to its result.
    let hello = || Reply::OpenAiJson("Hello from the stand-in.".into(), (11, 5));
    let call = || Reply::tool_call("call_tokyo", "get_time", r#"{"timezone":"Asia/Tokyo"}"#);
    provider.then([
        hello(),
        hello(),
        call(),
        call(),
        Reply::OpenAiJson("It is 9 in the morning in Tokyo.".into(), (30, 9)),
    ]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(format!("{}/v1", h.url))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "the SDK check failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the SDK sent reached the provider with its options intact.
    let sent = &provider.received()[0].body;
    assert_eq!(sent["max_tokens"], 32);
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["stop"], serde_json::json!(["\n\n"]));
    // The tool round trip reached the provider in OpenAI's shape.
    let last = &provider.received()[4].body;
    assert_eq!(last["messages"][1]["tool_calls"][0]["id"], "call_tokyo");
    assert_eq!(last["messages"][2]["role"], "tool");
    assert_eq!(last["messages"][2]["tool_call_id"], "call_tokyo");
    assert_eq!(last["tools"][0]["function"]["name"], "get_time");
}
