//! No acknowledged row is lost: `switchboard serve` acknowledges feedback
//! while its database cannot take writes, is killed with SIGKILL, and after
//! a restart every acknowledged row is in the database, once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use gateway::store::{Store, Table};
use testkit::standin::StandIn;
use tokio::io::AsyncBufReadExt;

fn start_serve(config: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("start switchboard serve")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("serve did not come up");
}

#[tokio::test]
async fn acknowledged_feedback_survives_a_locked_database_and_sigkill() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let db = dir.path().join("switchboard.db");
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.default]\ntargets = [\"p/m\"]\n",
            dir.path().display(),
            provider.url
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = start_serve(&config);
    wait_ready(&client, &base).await;
    let answer = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&serde_json::json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["x-switchboard-inference-id"]
        .to_str()
        .unwrap()
        .to_string();
    // The answer's own row is written before the database is locked.
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let started = Instant::now();
    while store.count(Table::Inferences).await.unwrap() < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the inference row never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another process holds SQLite's write lock: Switchboard's writes wait.
    let mut lock = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\nc.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(120)",
            db.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 holds the SQLite lock");
    let mut lines = tokio::io::BufReader::new(lock.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("locked"));

    let clicks = 40;
    for i in 0..clicks {
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            client
                .post(format!("{base}/v1/feedback"))
                .json(&serde_json::json!({"inference_id": id, "kind": "thumbs", "score": i % 2, "user": format!("U{i}")}))
                .send(),
        )
        .await
        .expect("a click is acknowledged while the database is locked")
        .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // Killed before the database could take a single one of them.
    serve.start_kill().unwrap();
    serve.wait().await.unwrap();
    lock.start_kill().unwrap();
    lock.wait().await.unwrap();
    assert_eq!(
        store.count(Table::Feedback).await.unwrap(),
        0,
        "the lock held every write back"
    );

    // After a restart every acknowledged click is there, exactly once.
    let mut serve = start_serve(&config);
    wait_ready(&client, &base).await;
    let started = Instant::now();
    loop {
        let n = store.count(Table::Feedback).await.unwrap();
        if n == clicks {
            break;
        }
        assert!(n < clicks, "duplicates: {n} rows for {clicks} clicks");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {n} of {clicks} clicks after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.count(Table::Feedback).await.unwrap(), clicks);
    // Written segments are removed, and so is the killed process's lock;
    // what is left is the running process's lock and its empty segments
    // made ahead of use.
    let spool = dir.path().join("spool");
    let locks: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("lock"))
        .collect();
    assert_eq!(locks.len(), 1, "one lock, the running process's: {locks:?}");
    for entry in std::fs::read_dir(&spool).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.iter().all(|b| *b == 0),
            "{} still holds rows",
            path.display()
        );
    }
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
    store.close().await;
}
