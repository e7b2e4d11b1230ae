//! Retrieval end to end, on SQLite and PostgreSQL, with the real embedded
//! embedding model (fetched once into the shared model cache): ingesting a
//! folder (incremental by content hash, bad files skipped with the reason),
//! hybrid search, who may see what, an embedding model that is down, and an
//! answer through the API that is given the documents and cites them.

use std::path::Path;

use gateway::Config;
use gateway::domain::{Origin, User};
use gateway::knowledge::{Knowledge, SearchQuery, Viewer};
use gateway::store::{ChunkWrite, DocumentWrite, Store};
use prompts::SearchMode;
use serde_json::json;
use testkit::standin::{Reply, StandIn};
use testkit::{Harness, fresh_postgres, one_provider};

const RETRY: &str = "# Retry policy\n\nHow the platform team retries calls to other services.\n\n\
## Attempts\n\nA failed call is retried three times, with exponential backoff starting at 200 ms and capped at 5 seconds.\n\n\
## Idempotency\n\nOnly idempotent requests are retried; a POST needs an idempotency key.\n";
const ONCALL: &str = "# On-call\n\nThe on-call engineer is paged through PagerDuty and acknowledges within 15 minutes.\n\n\
## Handover\n\nHandover happens every Monday at 10:00 in the #ops channel.\n";
const LUNCH: &str = "<html><head><title>Office lunch</title></head><body><nav>Home | About</nav>\
<h1>Lunch</h1><p>Lunch is served at noon in the kitchen on the third floor. Vegetarian options every day.</p></body></html>";

/// The model cache shared by test runs.
fn models_dir() -> String {
    switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string()
}

fn config(database: &str, extra: &str) -> Config {
    let text = format!(
        "data_dir = {:?}\n[database]\nurl = {database:?}\n[knowledge]\nmodels_dir = {:?}\n{extra}\n{}",
        std::env::temp_dir().display().to_string(),
        models_dir(),
        one_provider("http://127.0.0.1:9")
    );
    Config::from_parts("test", &text, Vec::new()).expect("valid config")
}

async fn knowledge(database: &str, extra: &str) -> (Knowledge, Store) {
    gateway::install_crypto();
    let store = Store::connect(database).await.expect("connect");
    store.migrate().await.expect("migrate");
    let k = Knowledge::new(&config(database, extra), store.clone()).expect("knowledge");
    (k, store)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("folder");
    }
    std::fs::write(path, bytes).expect("write");
}

fn handbook() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("handbook");
    write(&root, "retry.md", RETRY.as_bytes());
    write(&root, "team/oncall.md", ONCALL.as_bytes());
    write(&root, "lunch.html", LUNCH.as_bytes());
    // Not UTF-8: skipped with the reason, the rest goes in.
    write(&root, "broken.md", &[0xff, 0xfe, 0x00, 0x41, 0x80]);
    write(&root, "slides.pptx", b"PK\x03\x04 not read");
    write(&root, ".hidden.md", b"# Secret\n\nnot ingested");
    dir
}

async fn databases() -> Vec<(&'static str, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/k.db", dir.path().display());
    vec![
        ("sqlite", sqlite, dir),
        (
            "postgres",
            fresh_postgres().await,
            tempfile::tempdir().expect("temp dir"),
        ),
    ]
}

fn top_titles(result: &gateway::knowledge::SearchResult) -> Vec<String> {
    result.hits.iter().map(|h| h.chunk.title.clone()).collect()
}

#[tokio::test]
async fn a_folder_is_ingested_incrementally_and_search_finds_the_right_document() {
    for (db, url, _dir) in databases().await {
        let (k, _store) = knowledge(&url, "").await;
        let files = handbook();
        let root = files.path().join("handbook");
        let report = k
            .ingest_files(
                "handbook",
                "global",
                std::slice::from_ref(&root),
                &mut |_| {},
            )
            .await
            .expect("ingest");
        assert_eq!(
            (report.added, report.changed, report.unchanged),
            (3, 0, 0),
            "{db}"
        );
        assert!(report.chunks >= 4, "{db}: {report:?}");
        assert_eq!(report.unembedded, 0, "{db}: {:?}", report.warning);
        let mut skipped: Vec<String> = report
            .skipped
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        skipped.sort();
        assert_eq!(skipped, ["broken.md", "slides.pptx"], "{db}");
        assert!(
            report.skipped.iter().any(|s| s.reason.contains("UTF-8")),
            "{db}: {:?}",
            report.skipped
        );

        // Each kind of search finds the retry policy for a retry question.
        for mode in [SearchMode::Hybrid, SearchMode::Lexical, SearchMode::Dense] {
            let q = SearchQuery {
                mode,
                ..SearchQuery::new(
                    "how many times is a failed call retried?",
                    vec!["handbook".into()],
                    3,
                )
            };
            let found = k.search(&q, &Viewer::operator()).await.expect("search");
            assert!(
                found.warnings.is_empty(),
                "{db} {mode:?}: {:?}",
                found.warnings
            );
            let first = &found.hits[0].chunk;
            assert_eq!(
                first.title,
                "Retry policy",
                "{db} {mode:?}: {:?}",
                top_titles(&found)
            );
            assert!(
                first.body.contains("three times"),
                "{db} {mode:?}: {first:?}"
            );
            assert_eq!(first.heading, "Attempts", "{db} {mode:?}");
            assert!(
                first
                    .link
                    .as_deref()
                    .is_some_and(|l| l.ends_with("retry.md#attempts")),
                "{db}: {:?}",
                first.link
            );
        }
        // A question in other words than the document's: dense search
        // carries it (nothing in it matches "paged" or "PagerDuty").
        let q = SearchQuery::new(
            "who gets woken up at night when production breaks",
            vec!["handbook".into()],
            2,
        );
        let found = k.search(&q, &Viewer::operator()).await.expect("search");
        assert_eq!(
            top_titles(&found)[0],
            "On-call",
            "{db}: {:?}",
            top_titles(&found)
        );

        // Nothing changed: nothing is read again.
        let again = k
            .ingest_files(
                "handbook",
                "global",
                std::slice::from_ref(&root),
                &mut |_| {},
            )
            .await
            .expect("again");
        assert_eq!(
            (again.added, again.changed, again.unchanged, again.chunks),
            (0, 0, 3, 0),
            "{db}"
        );

        // One changed, one removed.
        write(
            &root,
            "retry.md",
            RETRY.replace("three times", "five times").as_bytes(),
        );
        std::fs::remove_file(root.join("lunch.html")).expect("remove");
        let changed = k
            .ingest_files(
                "handbook",
                "global",
                std::slice::from_ref(&root),
                &mut |_| {},
            )
            .await
            .expect("changed");
        assert_eq!(
            (
                changed.added,
                changed.changed,
                changed.unchanged,
                changed.removed
            ),
            (0, 1, 1, 1),
            "{db}"
        );
        let q = SearchQuery::new("lunch kitchen noon", vec!["handbook".into()], 5);
        let found = k.search(&q, &Viewer::operator()).await.expect("search");
        assert!(
            !top_titles(&found).contains(&"Office lunch".to_string()),
            "{db}: {:?}",
            top_titles(&found)
        );
        let q = SearchQuery::new(
            "how many times is a failed call retried",
            vec!["handbook".into()],
            1,
        );
        let found = k.search(&q, &Viewer::operator()).await.expect("search");
        assert!(
            found.hits[0].chunk.body.contains("five times"),
            "{db}: {:?}",
            found.hits[0]
        );
        assert!(!found.hits[0].chunk.body.contains("three times"), "{db}");

        let listed = k.sources(&Viewer::operator()).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].documents, listed[0].unembedded), (2, 0), "{db}");

        // Unknown and empty say so.
        let q = SearchQuery::new("retry", vec!["nope".into()], 3);
        let found = k.search(&q, &Viewer::operator()).await.expect("search");
        assert!(found.hits.is_empty());
        assert!(
            found.warnings[0].contains("`nope` does not exist"),
            "{db}: {:?}",
            found.warnings
        );
        k.remove("handbook").await.expect("remove");
        assert!(
            k.remove("handbook")
                .await
                .unwrap_err()
                .to_string()
                .contains("no knowledge source `handbook`")
        );
        let found = k
            .search(&SearchQuery::new("retry", vec![], 3), &Viewer::operator())
            .await
            .expect("search");
        assert!(
            found.warnings.iter().any(|w| w.contains("empty")),
            "{db}: {:?}",
            found.warnings
        );
    }
}

fn doc(key: &str, title: &str, body: &str, audience: Option<&str>) -> DocumentWrite {
    DocumentWrite {
        key: key.into(),
        title: title.into(),
        link: Some(format!("https://example.slack.com/archives/{key}")),
        content_hash: key.into(),
        channel: audience.map(|a| a.trim_start_matches("slack:").to_string()),
        audience: audience.map(String::from),
        author: None,
        at_ms: None,
        chunks: vec![ChunkWrite {
            heading: String::new(),
            anchor: None,
            body: body.into(),
            tokens: 20,
            vector: None,
        }],
    }
}

fn asker(workspace: &str, channel: &str) -> Origin {
    Origin {
        platform: "slack".into(),
        workspace: Some(workspace.into()),
        channel: Some(channel.into()),
        user: Some(User::new("slack", "UBOB")),
        ..Origin::default()
    }
}

/// A private channel's content never reaches an answer outside it, and a
/// workspace's source never reaches another workspace.
#[tokio::test]
async fn nobody_finds_what_they_may_not_see() {
    for (db, url, _dir) in databases().await {
        let (k, store) = knowledge(&url, "").await;
        store
            .ensure_knowledge_source("acme", "slack", "slack/TACME", "all-MiniLM-L6-v2")
            .await
            .expect("source");
        store
            .put_knowledge_document(
                "acme",
                &doc(
                    "CPUBLIC/1",
                    "general",
                    "The launch date for project falcon is March 3.",
                    None,
                ),
            )
            .await
            .expect("doc");
        store
            .put_knowledge_document(
                "acme",
                &doc(
                    "CSECRET/1",
                    "leadership",
                    "The falcon acquisition price is 40 million.",
                    Some("slack:CSECRET"),
                ),
            )
            .await
            .expect("doc");
        let q = SearchQuery {
            mode: SearchMode::Lexical,
            ..SearchQuery::new("falcon acquisition price", vec!["acme".into()], 5)
        };
        // Bob, in a public channel of the same workspace: the public chunk only.
        let found = k
            .search(&q, &Viewer::of(&asker("TACME", "CPUBLIC")))
            .await
            .expect("search");
        assert_eq!(top_titles(&found), ["general"], "{db}");
        // In the private channel itself: both.
        let found = k
            .search(&q, &Viewer::of(&asker("TACME", "CSECRET")))
            .await
            .expect("search");
        assert_eq!(top_titles(&found)[0], "leadership", "{db}");
        // Another workspace, or the HTTP API: the source does not exist for them.
        for origin in [
            asker("TOTHER", "CSECRET"),
            Origin {
                platform: "http".into(),
                ..Origin::default()
            },
        ] {
            let found = k.search(&q, &Viewer::of(&origin)).await.expect("search");
            assert!(found.hits.is_empty(), "{db}: {:?}", top_titles(&found));
            assert!(
                found.warnings[0].contains("does not exist"),
                "{db}: {:?}",
                found.warnings
            );
        }
    }
}

/// An embedding provider that is down: ingest stores the chunks without
/// vectors and says so, search falls back to lexical with a warning.
#[tokio::test]
async fn an_embedding_provider_that_is_down_degrades_to_lexical_search() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/k.db", dir.path().display());
    let extra = "embeddings = \"primary\"\nembedding_model = \"text-embedding-3-small\"";
    let (k, _store) = knowledge(&url, extra).await;
    let files = handbook();
    let report = k
        .ingest_files(
            "handbook",
            "global",
            &[files.path().join("handbook")],
            &mut |_| {},
        )
        .await
        .expect("ingest still stores the documents");
    assert_eq!(report.added, 3);
    assert_eq!(report.unembedded, report.chunks);
    assert!(
        report
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("knowledge sync")),
        "{:?}",
        report.warning
    );
    let found = k
        .search(
            &SearchQuery::new(
                "how many times is a call retried",
                vec!["handbook".into()],
                3,
            ),
            &Viewer::operator(),
        )
        .await
        .expect("search");
    assert_eq!(top_titles(&found)[0], "Retry policy");
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.contains("lexical search only")),
        "{:?}",
        found.warnings
    );
}

/// The prompt of the "done when": a folder ingested, a prompt with
/// `[retrieval] sources = ["handbook"]`, and an answer over the API that
/// was given the right document and cites it; the row keeps what was
/// retrieved and cited.
#[tokio::test]
async fn an_answer_is_given_the_documents_and_cites_them() {
    let provider = StandIn::start().await;
    provider.then([Reply::text("A failed call is retried three times [1].")]);
    let toml = format!(
        "[admin]\nadmins = [\"cli:ops\"]\n[knowledge]\nmodels_dir = {:?}\n{}",
        models_dir(),
        one_provider(&provider.url)
    );
    let h = Harness::start(&toml, &[]).await;
    let files = handbook();
    h.gateway
        .knowledge
        .ingest_files(
            "handbook",
            "global",
            &[files.path().join("handbook")],
            &mut |_| {},
        )
        .await
        .expect("ingest");
    let prompt = prompts::Prompt::from_toml(
        "handbook.toml",
        r#"name = "handbook"
[retrieval]
sources = ["handbook"]
top_k = 2
[[messages]]
role = "system"
template = "Answer from these documents and cite them as [n]:\n{{ documents }}"
[[messages]]
role = "user"
template = "{{ text }}"
"#,
    )
    .expect("prompt");
    h.gateway
        .registry
        .save(
            "test",
            "create",
            &prompt,
            "with retrieval",
            None,
            Some("production"),
        )
        .await
        .expect("save");

    let a = h
        .chat(json!({"model": "prompt:handbook", "messages": [{"role": "user", "content": "How often do we retry a failed call?"}]}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "A failed call is retried three times [1]."
    );
    assert_eq!(v["citations"][0]["number"], 1, "{v}");
    assert_eq!(v["citations"][0]["title"], "Retry policy", "{v}");
    assert!(
        v["citations"][0]["link"]
            .as_str()
            .is_some_and(|l| l.ends_with("retry.md#attempts")),
        "{v}"
    );

    // The model was given the document, numbered.
    let sent = &provider.received()[0];
    let system = sent.body["messages"][0]["content"]
        .as_str()
        .expect("system");
    assert!(system.contains("[1] Retry policy › Attempts"), "{system}");
    assert!(system.contains("retried three times"), "{system}");

    let row = h.row(&a.inference_id()).await;
    let retrieval: gateway::domain::RetrievalRecord =
        serde_json::from_str(row.retrieval.as_deref().expect("retrieval recorded")).expect("json");
    assert_eq!(retrieval.sources, ["handbook"]);
    assert_eq!(retrieval.chunks.len(), 2);
    assert!(
        retrieval.chunks[0].cited && !retrieval.chunks[1].cited,
        "{retrieval:?}"
    );
    assert!(retrieval.warning.is_none(), "{retrieval:?}");

    // `prompts test` shows what was retrieved and what the answer cited.
    provider.then([Reply::text("Three times [1].")]);
    let out = h
        .gateway
        .admin
        .run(
            &gateway::promptops::admin::Actor {
                id: "cli:ops".into(),
                name: "ops".into(),
                ..Default::default()
            },
            gateway::promptops::admin::Command::Test {
                name: "handbook".into(),
                version: None,
                text: "How often do we retry?".into(),
            },
        )
        .await
        .expect("test");
    let text = out.to_text();
    assert!(text.contains("retrieved from handbook:"), "{text}");
    assert!(
        text.contains("[1] Retry policy") && text.contains("similarity"),
        "{text}"
    );
    assert!(text.contains(") cited"), "{text}");

    // A plain OpenAI request (no prompt) has no citations field at all.
    provider.then([Reply::text("Hi.")]);
    let plain = h
        .chat(json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert!(plain.json().get("citations").is_none(), "{}", plain.body);
}

/// An OpenAI-compatible `/v1/embeddings` as the embedding model: here
/// another Switchboard's, which serves OpenAI's wire format.
#[tokio::test]
async fn an_openai_compatible_embeddings_provider_embeds_chunks_and_questions() {
    let server = Harness::start(
        &format!(
            "[knowledge]\nmodels_dir = {:?}\n{}",
            models_dir(),
            one_provider("http://127.0.0.1:9")
        ),
        &[],
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/k.db", dir.path().display());
    let extra = format!(
        "embeddings = \"emb\"\nembedding_model = \"all-MiniLM-L6-v2\"\n[providers.emb]\nkind = \"openai\"\nbase_url = \"{}/v1\"",
        server.url
    );
    let (k, _store) = knowledge(&url, &extra).await;
    let files = handbook();
    let report = k
        .ingest_files(
            "handbook",
            "global",
            &[files.path().join("handbook")],
            &mut |_| {},
        )
        .await
        .expect("ingest");
    assert_eq!(
        (report.added, report.unembedded),
        (3, 0),
        "{:?}",
        report.warning
    );
    let listed = k.sources(&Viewer::operator()).await.expect("list");
    assert_eq!(listed[0].embedder, "emb/all-MiniLM-L6-v2");
    let q = SearchQuery {
        mode: SearchMode::Dense,
        ..SearchQuery::new(
            "who gets woken up at night when production breaks",
            vec![],
            1,
        )
    };
    let found = k.search(&q, &Viewer::operator()).await.expect("search");
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    assert_eq!(top_titles(&found), ["On-call"]);
    assert!(
        found.hits[0].dense.is_some_and(|d| d.1 > 0.2),
        "{:?}",
        found.hits[0].dense
    );
}

/// Two replicas over one database: when one ingests, changes or deletes
/// documents, the other's vector index takes in only what changed (the
/// change log), and what its dense search finds is what is stored now;
/// a removed source makes it read the index again whole.
#[tokio::test]
async fn a_replicas_vector_index_takes_in_only_what_another_changed() {
    for (db, url, _dir) in databases().await {
        let (writer, _store) = knowledge(&url, "").await;
        let (reader, _store2) = knowledge(&url, "").await;
        let files = handbook();
        let root = files.path().join("handbook");
        writer
            .ingest_files(
                "handbook",
                "global",
                std::slice::from_ref(&root),
                &mut |_| {},
            )
            .await
            .expect("ingest");
        let dense = |q: &str| SearchQuery {
            mode: SearchMode::Dense,
            ..SearchQuery::new(q, vec!["handbook".into()], 3)
        };
        let first = reader
            .search(
                &dense("who is paged when something breaks?"),
                &Viewer::operator(),
            )
            .await
            .expect("search");
        assert_eq!(first.refreshed.map(|r| r.0), Some("whole"), "{db}");
        let before = first.indexed;
        let again = reader
            .search(
                &dense("who is paged when something breaks?"),
                &Viewer::operator(),
            )
            .await
            .expect("search");
        assert_eq!(again.refreshed, None, "{db}: nothing changed, nothing read");

        // On the writer: the on-call page changes, lunch goes, a page comes.
        write(
            &root,
            "team/oncall.md",
            b"# On-call\n\nThe on-call engineer is reached through Opsgenie and answers within 5 minutes.\n",
        );
        std::fs::remove_file(root.join("lunch.html")).expect("remove");
        write(
            &root,
            "deploys.md",
            b"# Deploys\n\nDeploys are frozen on Fridays after noon.\n",
        );
        writer
            .ingest_files(
                "handbook",
                "global",
                std::slice::from_ref(&root),
                &mut |_| {},
            )
            .await
            .expect("ingest again");
        let found = reader
            .search(
                &dense("who is paged when something breaks?"),
                &Viewer::operator(),
            )
            .await
            .expect("search");
        assert_eq!(found.refreshed.map(|r| r.0), Some("changes"), "{db}");
        // Just what a replica starting now reads whole.
        let (fresh, _store3) = knowledge(&url, "").await;
        let whole = fresh
            .search(
                &dense("who is paged when something breaks?"),
                &Viewer::operator(),
            )
            .await
            .expect("search");
        assert_eq!(whole.refreshed.map(|r| r.0), Some("whole"), "{db}");
        assert_eq!(found.indexed, whole.indexed, "{db}");
        assert_ne!(found.indexed, before, "{db}: the index changed");
        let ids = |r: &gateway::knowledge::SearchResult| {
            r.hits
                .iter()
                .map(|h| (h.chunk.id, h.dense.map(|d| d.0)))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&found), ids(&whole), "{db}");
        let oncall = found
            .hits
            .iter()
            .find(|h| h.chunk.title == "On-call")
            .expect("the on-call page");
        assert!(
            oncall.chunk.body.contains("Opsgenie"),
            "{db}: {:?}",
            oncall.chunk.body
        );
        let lunch = reader
            .search(&dense("when is lunch served?"), &Viewer::operator())
            .await
            .expect("search");
        assert!(
            !top_titles(&lunch).contains(&"Office lunch".to_string()),
            "{db}"
        );
        let deploys = reader
            .search(
                &dense("can I deploy on a Friday afternoon?"),
                &Viewer::operator(),
            )
            .await
            .expect("search");
        assert_eq!(
            top_titles(&deploys).first().map(String::as_str),
            Some("Deploys"),
            "{db}"
        );

        // A source removed: the index is read again whole, without it.
        let notes = tempfile::tempdir().expect("temp dir");
        write(
            notes.path(),
            "release.md",
            b"# Releases

Releases ship every other Tuesday.
",
        );
        writer
            .ingest_files(
                "notes",
                "global",
                &[notes.path().join("release.md")],
                &mut |_| {},
            )
            .await
            .expect("ingest notes");
        writer.remove("handbook").await.expect("remove");
        let all = SearchQuery {
            mode: SearchMode::Dense,
            ..SearchQuery::new("can I deploy on a Friday afternoon?", Vec::new(), 3)
        };
        let after = reader
            .search(&all, &Viewer::operator())
            .await
            .expect("search");
        assert_eq!(after.refreshed.map(|r| r.0), Some("whole"), "{db}");
        assert_eq!(top_titles(&after), ["Releases"], "{db}");
    }
}

/// `POST /v1/embeddings` counts its texts' tokens against the caller's rate
/// limits like a chat request: over the limit it answers 429 with
/// `Retry-After` and embeds nothing.
#[tokio::test]
async fn embeddings_requests_are_held_to_the_callers_token_limit() {
    let server = Harness::start(
        &format!(
            "[knowledge]\nmodels_dir = {:?}\n{}\n[limits.user]\ntokens_per_minute = 60\n",
            models_dir(),
            one_provider("http://127.0.0.1:9")
        ),
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let text = "the on-call engineer is paged through the phone and answers quickly ".repeat(3);
    let post = || {
        client
            .post(format!("{}/v1/embeddings", server.url))
            .json(&json!({"model": "embedded", "input": [text.clone()]}))
            .send()
    };
    let first = post().await.expect("post");
    assert_eq!(first.status(), 200);
    let body: serde_json::Value = first.json().await.expect("json");
    let used = body["usage"]["prompt_tokens"].as_u64().expect("usage");
    assert!((30..=60).contains(&used), "{used}");
    let second = post().await.expect("post");
    assert_eq!(second.status(), 429);
    assert!(second.headers().get("retry-after").is_some());
    let body: serde_json::Value = second.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
}
