//! The official OpenAI Python SDK, unmodified, against Switchboard: it must
//! work as it does against OpenAI, streaming and not, and turn Switchboard's
//! errors into its own exceptions; `/v1/embeddings` with the embedded model. The interpreter is
//! `$SWITCHBOARD_TEST_PYTHON` (ops/test.sh installs the SDK in a venv).

use testkit::standin::StandIn;
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
}
