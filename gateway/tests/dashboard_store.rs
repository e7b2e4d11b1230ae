//! The dashboard's tables and reads on both backends: accounts and their
//! password check, sessions and their expiry, the traffic rows figures are
//! computed from (current votes only), the review queue, review marks and
//! datasets; and the sign-in throttle shared through Redis by replicas,
//! falling back to each process while Redis is down.
//!
//! PostgreSQL tests need `SWITCHBOARD_TEST_POSTGRES_URL` (see `store.rs`),
//! Redis ones `SWITCHBOARD_TEST_REDIS_URL` (`ops/test.sh` sets both).

use std::sync::Arc;

use gateway::config::RedisConfig;
use gateway::domain::Purpose;
use gateway::domain::{FeedbackRecord, InferenceRecord, Status, now_ms};
use gateway::guards::redis_link::RedisLink;
use gateway::http::dashboard::accounts::{self, AccountError};
use gateway::http::dashboard::throttle::{Admission, FREE_FAILURES_PER_ACCOUNT, Throttle};
use gateway::store::Store;
use gateway::{ChatMessage, Origin, Params, Role};
use testkit::fresh_postgres;
use uuid::Uuid;

fn inference(status: Status, purpose: Purpose, at: i64) -> InferenceRecord {
    InferenceRecord {
        id: Uuid::now_v7(),
        created_at_ms: at,
        origin: Origin {
            platform: "slack".into(),
            workspace: None,
            channel: Some("C1".into()),
            thread: None,
            user: Some(gateway::User::new("slack", "U1")),
            private: false,
            label: None,
        },
        user_name: None,
        prompt: Some(("assistant".into(), 2)),
        prompt_label: Some("production".into()),
        purpose,
        alias: "default".into(),
        provider: Some("p".into()),
        model: Some("m".into()),
        input_tokens: Some(5),
        output_tokens: Some(7),
        ttft_ms: Some(100.0),
        tpot_ms: Some(9.0),
        total_ms: 200.0,
        provider_ms: 150.0,
        cost_usd: Some(0.25),
        cache_hit: false,
        tokens_saved: None,
        cost_saved_usd: None,
        streamed: true,
        status,
        error: None,
        finish_reason: None,
        attempts: vec![],
        params: Params::default(),
        input: vec![ChatMessage::new(Role::User, "why is the sky blue?")],
        output: Some("Rayleigh scattering.".into()),
        retrieval: None,
        tool_calls: Vec::new(),
        tool_runs: Vec::new(),
    }
}

fn vote(inference: Uuid, user: &str, score: Option<f64>, comment: Option<&str>) -> FeedbackRecord {
    FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id: inference,
        created_at_ms: now_ms(),
        kind: if comment.is_some() {
            "comment"
        } else {
            "thumbs"
        }
        .into(),
        score,
        comment: comment.map(str::to_string),
        user: Some(gateway::User::new("slack", user)),
        source: "button".into(),
    }
}

async fn dashboard_tables(url: &str) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();

    // Accounts: hashed, checked, unique, removable.
    accounts::add_account(&store, "alice", "a long enough password")
        .await
        .unwrap();
    let hash = store.account_hash("alice").await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("long enough"));
    assert!(
        accounts::check_sign_in(&store, "alice", "a long enough password")
            .await
            .unwrap()
    );
    assert!(
        !accounts::check_sign_in(&store, "alice", "a long enough passwore")
            .await
            .unwrap()
    );
    assert!(
        !accounts::check_sign_in(&store, "nobody", "a long enough password")
            .await
            .unwrap()
    );
    assert!(matches!(
        accounts::add_account(&store, "alice", "another long password").await,
        Err(AccountError::Exists(_))
    ));
    assert!(matches!(
        accounts::add_account(&store, "bob", "short").await,
        Err(AccountError::ShortPassword)
    ));
    assert!(matches!(
        accounts::add_account(&store, "bob smith", "a long enough password").await,
        Err(AccountError::BadName(_))
    ));

    // Sessions: found until they expire or end; gone with their account.
    let now = now_ms();
    store
        .insert_session("h1", "alice", "c1", now, now + 60_000)
        .await
        .unwrap();
    store
        .insert_session("h2", "alice", "c2", now - 120_000, now - 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.session("h1", now).await.unwrap(),
        Some(("alice".into(), "c1".into()))
    );
    assert_eq!(store.session("h2", now).await.unwrap(), None, "expired");
    store.delete_session("h1", now).await.unwrap();
    assert_eq!(store.session("h1", now).await.unwrap(), None, "signed out");
    store
        .insert_session("h3", "alice", "c3", now, now + 60_000)
        .await
        .unwrap();
    accounts::remove_account(&store, "alice").await.unwrap();
    assert_eq!(
        store.session("h3", now).await.unwrap(),
        None,
        "removed accounts are signed out"
    );
    assert!(store.accounts().await.unwrap().is_empty());

    // Traffic: live rows only, with current votes.
    let liked = inference(Status::Ok, Purpose::Live, now - 1000);
    let disliked = inference(Status::Ok, Purpose::Live, now - 900);
    let refused = inference(Status::Limited, Purpose::Live, now - 800);
    let test_run = inference(Status::Ok, Purpose::Test, now - 700);
    let old = inference(Status::Ok, Purpose::Live, now - 10 * 86_400_000);
    store
        .insert_inferences(&[liked.clone(), disliked.clone(), refused, test_run, old])
        .await
        .unwrap();
    store
        .insert_feedback(&[
            vote(liked.id, "U1", Some(0.0), None),
            vote(liked.id, "U1", Some(1.0), None), // changed mind: only 👍 counts
            vote(liked.id, "U2", Some(1.0), None),
            vote(disliked.id, "U3", Some(0.0), None),
            vote(disliked.id, "U4", None, Some("too vague")),
        ])
        .await
        .unwrap();
    let rows = store.traffic(now - 86_400_000, None).await.unwrap();
    assert_eq!(rows.len(), 3, "the test run and the old row are left out");
    assert_eq!((rows[0].thumbs_up, rows[0].thumbs_down), (2, 0));
    assert_eq!((rows[1].thumbs_up, rows[1].thumbs_down), (0, 1));
    assert_eq!(rows[2].status, "limited");
    assert_eq!(store.traffic(0, Some("other")).await.unwrap().len(), 0);
    assert_eq!(store.traffic(0, Some("assistant")).await.unwrap().len(), 4);

    // Review queue: the 👎 (with its comment); reviewed ones move aside.
    let queue = store.review_queue(false, 50).await.unwrap();
    assert_eq!(
        queue.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![disliked.id.to_string()]
    );
    assert_eq!(
        store.comments(&disliked.id.to_string()).await.unwrap(),
        vec![(Some("slack:U4".into()), "too vague".into())]
    );
    store
        .mark_reviewed(&disliked.id.to_string(), "dashboard:alice", now)
        .await
        .unwrap();
    assert!(store.review_queue(false, 50).await.unwrap().is_empty());
    let reviewed = store.review_queue(true, 50).await.unwrap();
    assert_eq!(reviewed[0].reviewed_by.as_deref(), Some("dashboard:alice"));

    // Datasets: an answer is added once.
    let id = disliked.id.to_string();
    assert!(
        store
            .add_to_dataset("vague", &id, "dashboard:alice", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_to_dataset("vague", &id, "dashboard:alice", now)
            .await
            .unwrap()
    );
    assert_eq!(store.datasets().await.unwrap(), vec![("vague".into(), 1)]);
    assert_eq!(
        store.datasets_of(&id).await.unwrap(),
        vec!["vague".to_string()]
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_dashboard_tables() {
    let dir = tempfile::tempdir().unwrap();
    dashboard_tables(&format!("sqlite://{}/sb.db", dir.path().display())).await;
}

#[tokio::test]
async fn postgres_dashboard_tables() {
    dashboard_tables(&fresh_postgres().await).await;
}

fn link(url: &str, prefix: &str) -> RedisLink {
    RedisLink::from_config(&RedisConfig {
        url: Some(url.to_string()),
        key_prefix: prefix.to_string(),
        ..RedisConfig::default()
    })
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn replicas_share_the_sign_in_throttle_through_redis() {
    let url = testkit::redis::shared_url();
    let prefix = format!("test-{}:", Uuid::now_v7().simple());
    let replicas = [
        Arc::new(Throttle::new(Some(link(&url, &prefix)))),
        Arc::new(Throttle::new(Some(link(&url, &prefix)))),
    ];
    // A hundred attempts at once on one account from one address, spread
    // over two replicas: only the free failures' worth get through.
    let tries = (0..100).map(|i| {
        let t = replicas[i % 2].clone();
        async move { t.reserve("alice", "10.9.0.1").await }
    });
    let mut admitted = Vec::new();
    for a in futures_util::future::join_all(tries).await {
        match a {
            Admission::Go(a) => admitted.push(a),
            Admission::Busy => {}
            Admission::Locked(w) => panic!("locked ({w:?}) before any failure"),
        }
    }
    assert_eq!(admitted.len(), FREE_FAILURES_PER_ACCOUNT as usize);
    for a in admitted {
        a.failed().await;
    }
    // Failures counted on one replica lock the account on the other.
    for t in &replicas {
        assert!(matches!(
            t.reserve("alice", "10.9.0.1").await,
            Admission::Locked(w) if w.as_secs() <= 5
        ));
    }
    // The same account from another address is not locked, on either.
    let Admission::Go(a) = replicas[1].reserve("alice", "10.9.0.2").await else {
        panic!("another address is locked out");
    };
    a.succeeded().await;
    // Nothing of this was kept in the processes themselves.
    assert_eq!(replicas[0].wait_here("alice", "10.9.0.1"), None);
}

#[tokio::test]
async fn without_redis_the_throttle_falls_back_to_this_process() {
    let mut redis = testkit::redis::RedisServer::start();
    let url = redis.url();
    redis.kill();
    let t = Arc::new(Throttle::new(Some(link(&url, "test-down:"))));
    for _ in 0..FREE_FAILURES_PER_ACCOUNT {
        let Admission::Go(a) = t.reserve("bob", "10.9.1.1").await else {
            panic!("refused before any failure");
        };
        a.failed().await;
    }
    assert!(matches!(
        t.reserve("bob", "10.9.1.1").await,
        Admission::Locked(_)
    ));
    assert!(t.wait_here("bob", "10.9.1.1").is_some());
}
