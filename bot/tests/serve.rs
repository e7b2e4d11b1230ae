//! `switchboard serve` as an operator runs it: a real process that answers
//! the OpenAI-compatible API through a configured provider, and on SIGTERM
//! finishes, writes its rows and exits cleanly.

use std::time::Duration;

use testkit::standin::StandIn;

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = format!(
        "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.default]\ntargets = [\"p/m\"]\n",
        dir.path().display(),
        provider.url
    );
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", path.to_str().unwrap(), "serve"])
        .kill_on_drop(true)
        .spawn()
        .expect("start switchboard serve");

    gateway::install_crypto();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "serve did not become ready");

    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&serde_json::json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-switchboard-inference-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the stand-in."
    );

    let pid = child.id().expect("pid") as i32;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve must stop on SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    // The answered request's row was written before the process exited.
    let store = gateway::store::Store::connect(&format!(
        "sqlite://{}/switchboard.db",
        dir.path().display()
    ))
    .await
    .unwrap();
    let row = store
        .inference(&id)
        .await
        .unwrap()
        .expect("row written before exit");
    assert_eq!(row.status, "ok");
}
