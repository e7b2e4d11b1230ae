//! `switchboard serve` with `[slack]` configured, as an operator runs it:
//! the Slack endpoints are mounted beside the HTTP API and answer Slack's
//! signed URL check, and a missing secret stops the start with a message
//! naming the variable. With an app-level token it connects over Socket
//! Mode instead.

use std::time::Duration;

use hmac::{KeyInit, Mac};

fn sign(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let text = format!(
        "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.default]\ntargets = [\"p/m\"]\n[slack]\nbot_token_env = \"SB_TEST_SLACK_BOT_TOKEN\"\nsigning_secret_env = \"SB_TEST_SLACK_SIGNING_SECRET\"\napi_base = \"http://127.0.0.1:9/api\"\n",
        dir.display()
    );
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn serve_mounts_the_slack_endpoints_and_answers_the_signed_url_check() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = config(dir.path(), port);
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env("SB_TEST_SLACK_BOT_TOKEN", "xoxb-test")
        .env("SB_TEST_SLACK_SIGNING_SECRET", "shh")
        .env_remove("SWITCHBOARD_CONFIG")
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

    let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let r = client
        .post(format!("{base}/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign("shh", &ts, body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    for path in ["/slack/events", "/slack/commands", "/slack/interactions"] {
        let r = client
            .post(format!("{base}{path}"))
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", sign("wrong", &ts, body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
}

#[tokio::test]
async fn serve_refuses_to_start_when_a_slack_secret_is_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), free_port());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("SB_TEST_SLACK_BOT_TOKEN", "xoxb-test")
            .env_remove("SB_TEST_SLACK_SIGNING_SECRET")
            .env_remove("SWITCHBOARD_CONFIG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("serve must stop")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("slack.signing_secret_env") && err.contains("SB_TEST_SLACK_SIGNING_SECRET"),
        "{err}"
    );
    assert!(!err.contains("xoxb-test"), "a secret was printed: {err}");
}

/// A stand-in for Slack's Socket Mode: `apps.connections.open` (app-level
/// token only) and a websocket that says `hello`, sends one `events_api`
/// envelope and passes on what the app sends back.
async fn socket_standin() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ws.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                let hello = serde_json::json!({"type": "hello", "num_connections": 1,
                    "connection_info": {"app_id": "A123ABC456"}});
                ws.send(Message::text(hello.to_string())).await.unwrap();
                let envelope = serde_json::json!({
                    "envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf",
                    "type": "events_api",
                    "accepts_response_payload": false,
                    "retry_attempt": 0,
                    "retry_reason": "",
                    "payload": {
                        "token": "ZZZZZZWSxiZZZ2yIvs3peJ", "team_id": "T123ABC456",
                        "api_app_id": "A123ABC456", "type": "event_callback",
                        "event_id": "Ev0SERVESOCKET", "event_time": 1515449522,
                        "event": {"type": "team_join", "user": {"id": "U123ABC456"},
                                  "event_ts": "1515449522.000016"}
                    }
                });
                ws.send(Message::text(envelope.to_string())).await.unwrap();
                while let Some(Ok(frame)) = ws.next().await {
                    if let Message::Text(t) = frame {
                        let _ = tx.send(serde_json::from_str(&t).unwrap_or_default());
                    }
                }
            });
        }
    });
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}/api", api.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/api/apps.connections.open",
        axum::routing::post(move |headers: axum::http::HeaderMap| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            axum::Json(if auth == Some("Bearer xapp-test") {
                serde_json::json!({"ok": true, "url": format!("ws://{ws_addr}/link/?ticket=t1")})
            } else {
                serde_json::json!({"ok": false, "error": "not_allowed_token_type"})
            })
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(api, app).await;
    });
    (api_url, rx)
}

#[tokio::test]
async fn serve_with_an_app_token_connects_over_socket_mode_and_acks_envelopes() {
    gateway::install_crypto();
    let (api_url, mut acks) = socket_standin().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.default]\ntargets = [\"p/m\"]\n[slack]\nbot_token_env = \"SB_TEST_SLACK_BOT_TOKEN\"\napp_token_env = \"SB_TEST_SLACK_APP_TOKEN\"\napi_base = \"{api_url}\"\n",
        dir.path().display()
    );
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", path.to_str().unwrap(), "serve"])
        .env("SB_TEST_SLACK_BOT_TOKEN", "xoxb-test")
        .env("SB_TEST_SLACK_APP_TOKEN", "xapp-test")
        .env_remove("SB_TEST_SLACK_SIGNING_SECRET")
        .env_remove("SWITCHBOARD_CONFIG")
        .kill_on_drop(true)
        .spawn()
        .expect("start switchboard serve");
    let ack = tokio::time::timeout(Duration::from_secs(60), acks.recv())
        .await
        .expect("the envelope is acknowledged")
        .unwrap();
    assert_eq!(
        ack,
        serde_json::json!({"envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf"})
    );
    // Socket Mode needs no public endpoint: none is mounted.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/slack/events"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
