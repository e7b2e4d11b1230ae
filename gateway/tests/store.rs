//! The store on both backends: migrations apply (and re-apply) cleanly,
//! batched rows are written once even when a batch is retried, and a chat
//! through the full gateway lands the same rows in SQLite and PostgreSQL.
//!
//! PostgreSQL tests need `SWITCHBOARD_TEST_POSTGRES_URL` (a server they may
//! create databases on); the README's test command starts a throwaway one.

use gateway::store::{Recorder, Store, Table};

use gateway::domain::{FeedbackRecord, InferenceRecord, Status, now_ms};
use gateway::{ChatMessage, Origin, Params, Role};
use serde_json::json;
use testkit::standin::StandIn;
use testkit::{Harness, fresh_postgres, one_provider};
use uuid::Uuid;

pub(crate) fn record(i: usize) -> InferenceRecord {
    InferenceRecord {
        id: Uuid::now_v7(),
        created_at_ms: now_ms(),
        origin: Origin {
            platform: "slack".into(),
            workspace: Some("T1".into()),
            channel: Some("C1".into()),
            thread: Some("1700000000.000100".into()),
            user: Some(gateway::User::new("slack", format!("U{i}"))),
            private: false,
            label: None,
        },
        user_name: None,
        prompt: Some(("assistant".into(), 3)),
        prompt_label: Some("production".into()),
        purpose: gateway::domain::Purpose::Live,
        alias: "default".into(),
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        input_tokens: Some(100 + i as u64),
        output_tokens: Some(20),
        ttft_ms: Some(120.5),
        tpot_ms: Some(8.25),
        total_ms: 300.0,
        provider_ms: 290.0,
        cost_usd: Some(0.000027),
        cache_hit: i % 2 == 1,
        tokens_saved: (i % 2 == 1).then_some(120),
        cost_saved_usd: (i % 2 == 1).then_some(0.000027),
        streamed: true,
        status: Status::Ok,
        error: None,
        finish_reason: Some("stop".into()),
        attempts: vec![],
        params: Params {
            temperature: Some(0.2),
            ..Params::default()
        },
        input: vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, format!("question {i} — ünïcödé ✓")),
        ],
        output: Some(format!("answer {i}")),
        retrieval: None,
        tool_calls: Vec::new(),
        tool_runs: Vec::new(),
    }
}

async fn round_trip(url: &str) {
    let store = Store::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrations are idempotent");

    let rows: Vec<InferenceRecord> = (0..50).map(record).collect();
    let (recorder, task) = Recorder::start(store.clone());
    for r in rows.iter().cloned() {
        recorder.inference(r).await;
    }
    recorder
        .feedback(FeedbackRecord {
            id: Uuid::now_v7(),
            inference_id: rows[7].id,
            created_at_ms: now_ms(),
            kind: "thumbs".into(),
            score: Some(1.0),
            comment: None,
            user: Some(gateway::User::new("slack", "U7")),
            source: "button".into(),
        })
        .await;
    recorder.flush().await;
    assert_eq!(store.count(Table::Inferences).await.unwrap(), 50);
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 1);

    // A retried batch writes nothing twice.
    store.insert_inferences(&rows[..10]).await.expect("retry");
    assert_eq!(store.count(Table::Inferences).await.unwrap(), 50);

    // An answer and a vote on it written together (the recorder's batch),
    // then the same batch again: each row once, the vote on its answer.
    let answer = record(50);
    let click = FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id: answer.id,
        created_at_ms: now_ms(),
        kind: "thumbs".into(),
        score: Some(0.0),
        comment: None,
        user: Some(gateway::User::new("slack", "U50")),
        source: "button".into(),
    };
    for _ in 0..2 {
        store
            .insert_batch(std::slice::from_ref(&answer), std::slice::from_ref(&click))
            .await
            .expect("batch");
    }
    assert_eq!(store.count(Table::Inferences).await.unwrap(), 51);
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 2);
    assert_eq!(
        store.feedback_for(&answer.id.to_string()).await.unwrap(),
        vec![(
            "thumbs".to_string(),
            Some(0.0),
            "button".to_string(),
            Some("slack:U50".to_string())
        )]
    );

    let row = store
        .inference(&rows[7].id.to_string())
        .await
        .unwrap()
        .expect("row 7");
    assert_eq!(row.platform, "slack");
    assert_eq!(row.prompt_name.as_deref(), Some("assistant"));
    assert_eq!(row.prompt_version, Some(3));
    assert_eq!(row.input_tokens, Some(107));
    assert_eq!(row.cost_usd, Some(0.000027));
    // What a cache hit saved (migration 0003) reads back on both databases.
    assert!(row.cache_hit);
    assert_eq!(row.tokens_saved, Some(120));
    assert_eq!(row.cost_saved_usd, Some(0.000027));
    assert_eq!(
        row.messages,
        vec![
            (
                "input".to_string(),
                "system".to_string(),
                "Be brief.".to_string()
            ),
            (
                "input".to_string(),
                "user".to_string(),
                "question 7 — ünïcödé ✓".to_string()
            ),
            (
                "output".to_string(),
                "assistant".to_string(),
                "answer 7".to_string()
            ),
        ]
    );
    let feedback = store.feedback_for(&rows[7].id.to_string()).await.unwrap();
    assert_eq!(
        feedback,
        vec![(
            "thumbs".to_string(),
            Some(1.0),
            "button".to_string(),
            Some("slack:U7".to_string())
        )]
    );
    // A changed vote replaces the earlier one; another user's vote and a
    // comment stay beside it.
    let vote = |score: f64, user: &str, kind: &str| FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id: rows[7].id,
        created_at_ms: now_ms(),
        kind: kind.into(),
        score: Some(score),
        comment: None,
        user: Some(gateway::User::new("slack", user)),
        source: "reaction".into(),
    };
    store
        .insert_feedback(&[
            vote(0.0, "U7", "thumbs"),
            vote(1.0, "U8", "thumbs"),
            vote(0.0, "U7", "comment"),
        ])
        .await
        .unwrap();
    let feedback = store.feedback_for(&rows[7].id.to_string()).await.unwrap();
    let thumbs: Vec<_> = feedback
        .iter()
        .filter(|f| f.0 == "thumbs")
        .map(|f| (f.3.clone().unwrap(), f.1))
        .collect();
    assert_eq!(
        thumbs,
        vec![
            ("slack:U7".to_string(), Some(0.0)),
            ("slack:U8".to_string(), Some(1.0))
        ]
    );
    assert_eq!(feedback.len(), 3);
    // The replaced vote is kept as history.
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 5);
    // Two votes of one user in one batch: the later one counts.
    store
        .insert_feedback(&[vote(1.0, "U9", "thumbs"), vote(0.0, "U9", "thumbs")])
        .await
        .unwrap();
    let current: Vec<_> = store
        .feedback_for(&rows[7].id.to_string())
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.3.as_deref() == Some("slack:U9"))
        .map(|f| f.1)
        .collect();
    assert_eq!(current, vec![Some(0.0)]);
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 7);
    drop(recorder);
    task.await.expect("recorder ends when its handles are gone");
    store.close().await;
}

#[tokio::test]
async fn sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&format!(
        "sqlite://{}/nested/dir/sb.db",
        dir.path().display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_round_trip() {
    round_trip(&fresh_postgres().await).await;
}

/// Feedback that can never be stored, on an answer that is not there or
/// on someone else's direct message, is left out of its batch, and holds
/// up nothing: the rows beside it and after it are written.
async fn feedback_that_cannot_be_stored_is_left_out(url: &str) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let public = record(1);
    let mut private = record(2);
    private.origin.private = true;
    store
        .insert_inferences(&[public.clone(), private.clone()])
        .await
        .unwrap();
    let unknown = Uuid::now_v7();
    store
        .insert_feedback(&[
            thumbs_up(unknown, "U1"),
            thumbs_up(private.id, "U9"),
            thumbs_up(private.id, "U2"),
            thumbs_up(public.id, "U9"),
        ])
        .await
        .expect("a batch with rows that cannot be stored is still written");
    let votes = |id: Uuid| {
        let store = store.clone();
        async move { voters(&store, &id.to_string()).await }
    };
    assert_eq!(
        votes(private.id).await,
        ["slack:U2"],
        "only the asker's vote"
    );
    assert_eq!(votes(public.id).await, ["slack:U9"]);
    assert!(votes(unknown).await.is_empty());
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 2);

    // Through the recorder: a row on an unknown answer does not hold up
    // the queue (the batch is not retried for ever).
    let (recorder, task) = Recorder::start(store.clone());
    recorder.feedback(thumbs_up(Uuid::now_v7(), "U3")).await;
    recorder.feedback(thumbs_up(public.id, "U3")).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), recorder.flush())
        .await
        .expect("the rows after it are written");
    assert_eq!(votes(public.id).await, ["slack:U3", "slack:U9"]);
    drop(recorder);
    task.await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn sqlite_feedback_that_cannot_be_stored_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    feedback_that_cannot_be_stored_is_left_out(&format!("sqlite://{}/sb.db", dir.path().display()))
        .await;
}

#[tokio::test]
async fn postgres_feedback_that_cannot_be_stored_is_left_out() {
    feedback_that_cannot_be_stored_is_left_out(&fresh_postgres().await).await;
}

/// Each filter of a logged dataset (for `eval` and `export`) keeps just the
/// conversations it names, on both backends.
async fn filters(url: &str) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let logged = |i, prompt: &str, version, label: &str, channel: &str| {
        let mut r = record(i);
        r.prompt = Some((prompt.into(), version));
        r.prompt_label = Some(label.into());
        r.origin.channel = Some(channel.into());
        r.created_at_ms = 1_000 * i as i64;
        r
    };
    let rows = [
        logged(1, "assistant", 3, "production", "C1"),
        logged(2, "assistant", 4, "staging", "C2"),
        logged(3, "support", 1, "production", "C1"),
        logged(4, "assistant", 3, "production", "C2"),
    ];
    store.insert_inferences(&rows).await.unwrap();
    let vote = |row: &InferenceRecord, score: f64| FeedbackRecord {
        score: Some(score),
        ..thumbs_up(row.id, "U1")
    };
    store
        .insert_feedback(&[
            vote(&rows[0], 1.0),
            vote(&rows[1], 0.0),
            vote(&rows[3], 0.0),
        ])
        .await
        .unwrap();
    // The changed vote counts, not the first.
    store.insert_feedback(&[vote(&rows[3], 1.0)]).await.unwrap();
    let rows = &rows;
    let ids = |filter: gateway::store::DatasetFilter| {
        let store = store.clone();
        async move {
            let found = store.dataset(&filter).await.unwrap();
            found
                .iter()
                .map(|e| rows.iter().position(|r| r.id.to_string() == e.id).unwrap() + 1)
                .collect::<Vec<_>>()
        }
    };
    use gateway::store::DatasetFilter as F;
    let assistant = || Some("assistant".to_string());
    assert_eq!(ids(F::default()).await, [1, 2, 3, 4]);
    let cases = [
        (
            F {
                prompt: assistant(),
                ..F::default()
            },
            vec![1, 2, 4],
        ),
        (
            F {
                prompt: assistant(),
                version: Some(3),
                ..F::default()
            },
            vec![1, 4],
        ),
        (
            F {
                label: Some("staging".into()),
                ..F::default()
            },
            vec![2],
        ),
        (
            F {
                channel: Some("C2".into()),
                ..F::default()
            },
            vec![2, 4],
        ),
        (
            F {
                thumbs: Some(true),
                ..F::default()
            },
            vec![1, 4],
        ),
        (
            F {
                thumbs: Some(false),
                ..F::default()
            },
            vec![2],
        ),
        (
            F {
                since_ms: Some(2_000),
                until_ms: Some(4_000),
                ..F::default()
            },
            vec![2, 3],
        ),
        (
            F {
                limit: Some(2),
                ..F::default()
            },
            vec![1, 2],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(ids(filter.clone()).await, expected, "{filter:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn sqlite_filters() {
    let dir = tempfile::tempdir().unwrap();
    filters(&format!("sqlite://{}/sb.db", dir.path().display())).await;
}

#[tokio::test]
async fn postgres_filters() {
    filters(&fresh_postgres().await).await;
}

/// `--sample N` picks N matching conversations at random (not the oldest
/// N), each once, and returns them oldest first.
async fn sample(url: &str) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let mut rows: Vec<InferenceRecord> = (0..60).map(record).collect();
    for (i, r) in rows.iter_mut().enumerate() {
        r.created_at_ms += i as i64;
    }
    rows[7].prompt = Some(("other".into(), 1));
    store.insert_inferences(&rows).await.unwrap();
    let filter = |sample, limit| gateway::store::DatasetFilter {
        prompt: Some("assistant".into()),
        sample,
        limit,
        ..Default::default()
    };
    let ids = |examples: Vec<gateway::store::Example>| -> Vec<String> {
        examples.into_iter().map(|e| e.id).collect()
    };
    let oldest = ids(store.dataset(&filter(None, Some(10))).await.unwrap());
    let first = ids(store.dataset(&filter(Some(10), None)).await.unwrap());
    let second = ids(store.dataset(&filter(Some(10), Some(3))).await.unwrap());
    for picked in [&first, &second] {
        assert_eq!(picked.len(), 10, "the sample wins over the limit");
        let in_order: Vec<String> = rows
            .iter()
            .map(|r| r.id.to_string())
            .filter(|id| picked.contains(id))
            .collect();
        assert_eq!(picked, &in_order, "each once, oldest first");
        assert!(!picked.contains(&rows[7].id.to_string()), "filters apply");
    }
    // Equal by chance once in about 10^10 runs.
    assert_ne!(first, oldest, "a sample is not the oldest ten");
    assert_ne!(first, second, "each sample is drawn anew");
    store.close().await;
}

#[tokio::test]
async fn sqlite_sample() {
    let dir = tempfile::tempdir().unwrap();
    sample(&format!("sqlite://{}/sb.db", dir.path().display())).await;
}

#[tokio::test]
async fn postgres_sample() {
    sample(&fresh_postgres().await).await;
}

#[tokio::test]
async fn a_chat_through_the_gateway_lands_in_postgres() {
    let provider = StandIn::start().await;
    let url = fresh_postgres().await;
    let config = format!(
        "[database]\nurl = \"{url}\"\n{}",
        one_provider(&provider.url)
    );
    let h = Harness::start(&config, &[]).await;
    let a = h
        .chat(json!({"model": "prompt:assistant", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(row.prompt_name.as_deref(), Some("assistant"));
    assert_eq!(row.messages.last().unwrap().2, "Hello from the stand-in.");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = match Store::connect(&format!("postgres://sb:hunter2@127.0.0.1:{port}/sb")).await {
        Ok(_) => panic!("connecting to a closed port must fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cannot open the database") && err.contains("database.url"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password must not be shown: {err}"
    );
}

/// PostgreSQL refusing connections while feedback arrives: every click is
/// acknowledged (from the spool), and once the database is back every row
/// is written, once, in order with the rest.
#[tokio::test]
async fn feedback_is_acknowledged_while_postgres_is_unreachable_and_written_after() {
    let url = fresh_postgres().await;
    let name = url.rsplit('/').next().unwrap().to_string();
    let admin = Store::connect(&std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").unwrap())
        .await
        .unwrap();
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (recorder, task) =
        Recorder::start_with_spool(store.clone(), Some(spool.path().to_path_buf()));
    let inference = record(0);
    recorder.inference(inference.clone()).await;
    recorder.flush().await;

    // The database goes away: no new connections, current ones cut.
    cut_off(&admin, &name, false).await;
    let clicks = 200;
    for i in 0..clicks {
        let click = thumbs_up(inference.id, &format!("U{i}"));
        tokio::time::timeout(std::time::Duration::from_secs(2), recorder.feedback(click))
            .await
            .expect("acknowledged while the database is down");
    }
    assert_eq!(
        spooled_rows(spool.path()),
        clicks,
        "the clicks wait in the spool"
    );

    cut_off(&admin, &name, true).await;
    tokio::time::timeout(std::time::Duration::from_secs(30), recorder.flush())
        .await
        .expect("written once the database is back");
    assert_eq!(store.count(Table::Feedback).await.unwrap(), clicks);
    assert_eq!(store.count(Table::Inferences).await.unwrap(), 1);
    drop(recorder);
    task.await.unwrap();
    let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "a clean stop leaves nothing behind: {left:?}"
    );
    store.close().await;
    admin.close().await;
}

/// `POST /v1/feedback` while PostgreSQL refuses connections: a click on
/// an answer the recorder still holds is checked and taken (201); one on
/// an answer written before the outage is taken unchecked (202), and
/// checked once the database is back, so that a vote on someone else's
/// direct message, or on no answer at all, is left out then.
#[tokio::test]
async fn feedback_over_http_is_taken_while_postgres_is_unreachable() {
    let provider = StandIn::start().await;
    let url = fresh_postgres().await;
    let name = url.rsplit('/').next().unwrap().to_string();
    let admin = Store::connect(&std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").unwrap())
        .await
        .unwrap();
    // Each voter calls with an API key of their own: the key is the voter.
    let config = format!(
        "[server]\napi_keys_env = \"VOTER_KEYS\"\n[database]\nurl = \"{url}\"\n{}",
        one_provider(&provider.url)
    );
    let keys = ["U1", "U2", "U5", "U6", "U7"]
        .map(|u| format!("{u}:key-{u}"))
        .join(",");
    let h = Harness::start(&config, &[("VOTER_KEYS", &keys)]).await;
    let as_u5 = [("authorization", "Bearer key-U5")];
    let ask = json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]});
    let old = h.chat_with(ask.clone(), &as_u5).await;
    assert_eq!(old.status, 200, "{}", old.body);
    let old = old.inference_id();
    // An answer in U1's direct message (U1 an API user, as the voters are).
    let mut dm = record(1);
    dm.origin.private = true;
    dm.origin.user = Some(gateway::User::new("http", "U1"));
    h.gateway
        .store
        .insert_inferences(std::slice::from_ref(&dm))
        .await
        .unwrap();
    h.gateway.pipeline.recorder().flush().await;

    cut_off(&admin, &name, false).await;
    let fresh = h.chat_with(ask, &as_u5).await;
    assert_eq!(fresh.status, 200, "answers go on: {}", fresh.body);
    let fresh = fresh.inference_id();
    let dm = dm.id.to_string();
    let unknown = Uuid::now_v7().to_string();
    // U6 changes their mind during the outage: 👍, then 👎.
    for (inference, user, score, status) in [
        (&fresh, "U5", 1, 201),
        (&old, "U6", 1, 202),
        (&dm, "U2", 1, 202),
        (&dm, "U1", 1, 202),
        (&unknown, "U7", 1, 202),
        (&old, "U6", 0, 202),
    ] {
        let body = json!({"inference_id": inference, "kind": "thumbs", "score": score});
        let bearer = format!("Bearer key-{user}");
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            h.post_raw(
                "/v1/feedback",
                &body.to_string(),
                &[("authorization", &bearer)],
            ),
        )
        .await
        .expect("answered while the database is down");
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.json()["checked"], status == 201, "{}", r.body);
    }

    cut_off(&admin, &name, true).await;
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        h.gateway.pipeline.recorder().flush(),
    )
    .await
    .expect("written once the database is back");
    let store = &h.gateway.store;
    assert_eq!(voters(store, &fresh).await, ["http:U5"]);
    assert_eq!(voters(store, &old).await, ["http:U6"]);
    assert_eq!(
        voters(store, &dm).await,
        ["http:U1"],
        "only the asker's vote"
    );
    assert!(voters(store, &unknown).await.is_empty());
    assert_eq!(
        store
            .current_vote(&old, &gateway::User::new("http", "U6"))
            .await
            .unwrap(),
        Some(Some(0.0)),
        "the later vote replaced the earlier, in the order given"
    );
    // U5, U1 and both of U6's (the first kept as history).
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 4);
    admin.close().await;
}

/// Database `name` refuses new connections and its current ones are cut
/// (`back`: false), or takes connections again (`back`: true).
async fn cut_off(admin: &Store, name: &str, back: bool) {
    admin
        .execute_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {back}"))
        .await
        .unwrap();
    if !back {
        admin
            .execute_admin(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .unwrap();
    }
}

/// The users whose current feedback on inference `id` is stored, sorted.
async fn voters(store: &Store, id: &str) -> Vec<String> {
    let mut users: Vec<String> = store
        .feedback_for(id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|f| f.3)
        .collect();
    users.sort();
    users
}

/// Feedback rows in a spool folder's segments (their text ends at the
/// first NUL: space reserved and not yet written).
fn spooled_rows(dir: &std::path::Path) -> i64 {
    let mut rows = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
            let bytes = std::fs::read(&path).unwrap();
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            rows += String::from_utf8_lossy(&bytes[..end])
                .lines()
                .filter(|line| line.contains(r#""row":"feedback""#))
                .count() as i64;
        }
    }
    rows
}

/// A 👍 button click by `user` on `inference`.
fn thumbs_up(inference: Uuid, user: &str) -> FeedbackRecord {
    FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id: inference,
        created_at_ms: now_ms(),
        kind: "thumbs".into(),
        score: Some(1.0),
        comment: None,
        user: Some(gateway::User::new("slack", user)),
        source: "button".into(),
    }
}

/// One spooled feedback row on `inference`, as a segment line.
fn spooled_click(inference: Uuid, user: &str) -> String {
    let mut row = serde_json::to_value(thumbs_up(inference, user)).unwrap();
    row["row"] = json!("feedback");
    format!("{row}\n")
}

/// Processes sharing a spool folder: at start, a recorder replays the
/// segments of processes that have ended (their lock is free, or they
/// predate locks) and leaves a running process's segments alone, so it
/// never takes rows (or empty segments) from under it.
#[tokio::test]
async fn a_spool_shared_by_processes_replays_only_ended_ones() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let store = Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let answer = record(0);
    store
        .insert_inferences(std::slice::from_ref(&answer))
        .await
        .unwrap();

    // A running process: its lock is held.
    let live_lock = std::fs::File::create(spool.join("live.lock")).unwrap();
    live_lock.lock().unwrap();
    std::fs::write(
        spool.join("live-000000000000.jsonl"),
        spooled_click(answer.id, "U-live"),
    )
    .unwrap();
    // A crashed one: its lock file is there but free; its segment has
    // reserved space after the rows.
    std::fs::File::create(spool.join("dead.lock")).unwrap();
    let mut dead = spooled_click(answer.id, "U-dead").into_bytes();
    dead.resize(dead.len() + 4096, 0);
    std::fs::write(spool.join("dead-000000000000.jsonl"), dead).unwrap();
    // And a segment written before processes took locks.
    std::fs::write(
        spool.join("1700000000000-4242-0000000001.jsonl"),
        spooled_click(answer.id, "U-old"),
    )
    .unwrap();

    let (recorder, task) = Recorder::start_with_spool(store.clone(), Some(spool.clone()));
    recorder.flush().await;
    assert_eq!(
        store.count(Table::Feedback).await.unwrap(),
        2,
        "the ended processes' rows are replayed"
    );
    assert!(
        spool.join("live-000000000000.jsonl").exists(),
        "the running process's segment is left alone"
    );
    assert!(spool.join("live.lock").exists());
    assert!(
        !spool.join("dead.lock").exists(),
        "an adopted lock is removed"
    );
    drop(recorder);
    task.await.unwrap();

    // Once that process has ended, the next start replays its rows too.
    drop(live_lock);
    let (recorder, task) = Recorder::start_with_spool(store.clone(), Some(spool.clone()));
    recorder.flush().await;
    assert_eq!(store.count(Table::Feedback).await.unwrap(), 3);
    drop(recorder);
    task.await.unwrap();
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    store.close().await;
}

/// Clicks acknowledged one at a time are appended to one spool segment
/// (not a file each), all of them reach the database, and a clean stop
/// leaves the spool folder empty.
#[tokio::test]
async fn acknowledged_clicks_share_a_segment_and_a_clean_stop_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let store = Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (recorder, task) = Recorder::start_with_spool(store.clone(), Some(spool.clone()));
    let answer = record(0);
    store
        .insert_inferences(std::slice::from_ref(&answer))
        .await
        .unwrap();
    let clicks = 200;
    for i in 0..clicks {
        recorder
            .feedback(thumbs_up(answer.id, &format!("U{i}")))
            .await;
    }
    let with_rows: Vec<(std::path::PathBuf, usize)> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
        .filter_map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            let lines = bytes[..end].iter().filter(|b| **b == b'\n').count();
            (lines > 0).then_some((p, lines))
        })
        .collect();
    assert_eq!(
        with_rows.len(),
        1,
        "every acknowledged click is in one segment: {with_rows:?}"
    );
    assert_eq!(with_rows[0].1, clicks);
    recorder.flush().await;
    assert_eq!(store.count(Table::Feedback).await.unwrap(), clicks as i64);
    drop(recorder);
    task.await.unwrap();
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    store.close().await;
}
