//! The dashboard as an admin uses it: a real `switchboard serve` process
//! on a SQLite file seeded with known requests and votes, driven in a real
//! headless Chromium (and, where only the HTTP matters, by plain requests).
//! The figures shown are checked against what the seeds say, computed here
//! on their own; the promote form works with the page's CSRF token and is
//! refused without a session or a token; wrong passwords are refused and,
//! after a few, even the right one has to wait; a flood of wrong passwords
//! gets few of them checked and does not keep the owner out; an account
//! without rights sees no conversation; a database failure shows a
//! reference, not SQL; cookies are `Secure` unless turned off; the log of a
//! failed sign-in names the address, not the name typed.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::browser::Browser;
use gateway::domain::Purpose;
use gateway::domain::Selector;
use gateway::domain::{FeedbackRecord, InferenceRecord, Status, now_ms};
use gateway::promptops::admin::{Actor, Admin, Command};
use gateway::store::Store;
use gateway::{ChatMessage, Origin, Params, Role};
use testkit::standin::StandIn;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

/// A running `switchboard serve` over a seeded database.
struct Served {
    child: tokio::process::Child,
    base: String,
    db_url: String,
    config: std::path::PathBuf,
    seeds: Seeds,
    provider: StandIn,
    /// What the server wrote to its standard error (its log).
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// The dashboard settings of the tests that drive it over plain HTTP on
/// loopback, where `Secure` cookies must be turned off explicitly.
const PLAIN_HTTP: &str = "[dashboard]\nsecure_cookies = false\n";

/// What was seeded, to compute the expected figures from.
struct Seeds {
    rows: Vec<InferenceRecord>,
    /// Current thumbs votes: (inference, up).
    votes: Vec<(Uuid, bool)>,
    /// The inference with a comment.
    commented: Uuid,
}

fn tool_runs() -> Vec<gateway::domain::ToolCallRecord> {
    let run = |name: &str, arguments: &str, error: Option<&str>| gateway::domain::ToolCallRecord {
        call_id: format!("call_{name}"),
        name: name.into(),
        step: 1,
        arguments: arguments.into(),
        result_bytes: if error.is_some() { 0 } else { 120 },
        truncated: false,
        ms: 12.0,
        error: error.map(str::to_string),
        approval: None,
    };
    vec![
        run("get_current_time", r#"{"timezone":"Asia/Tokyo"}"#, None),
        run(
            "search_wiki",
            "{}",
            Some("tool server `wiki` is unavailable: <b>down</b>"),
        ),
    ]
}

fn retrieved(with_wiki: bool) -> gateway::domain::RetrievalRecord {
    let chunk =
        |number: u32, source: &str, title: &str, cited: bool| gateway::domain::RetrievedChunk {
            number,
            chunk_id: i64::from(number),
            source: source.into(),
            title: title.into(),
            heading: "Attempts".into(),
            link: None,
            score: 0.03,
            similarity: Some(0.6),
            cited,
        };
    let mut chunks = vec![chunk(1, "handbook", "Retry policy", true)];
    if with_wiki {
        chunks.push(chunk(2, "wiki", "Backoff <script>", false));
    }
    gateway::domain::RetrievalRecord {
        sources: vec!["handbook".into(), "wiki".into()],
        chunks,
        warning: None,
    }
}

fn seed_rows() -> Seeds {
    let now = now_ms();
    let mut rows = Vec::new();
    for i in 0..20_i64 {
        let status = match i {
            3 | 7 => Status::Error,
            11 => Status::Limited,
            15 => Status::Partial,
            _ => Status::Ok,
        };
        let answered = status == Status::Ok;
        rows.push(InferenceRecord {
            id: Uuid::now_v7(),
            created_at_ms: now - (i + 1) * 60_000,
            origin: Origin {
                platform: if i % 3 == 0 { "discord" } else { "slack" }.into(),
                workspace: Some("W1".into()),
                channel: Some(format!("C{}", i % 2)),
                thread: None,
                user: Some(gateway::User::new("slack", format!("U{i}"))),
                private: false,
                label: None,
            },
            user_name: None,
            prompt: Some(("assistant".into(), if i < 12 { 1 } else { 2 })),
            prompt_label: Some("production".into()),
            purpose: Purpose::Live,
            alias: "default".into(),
            provider: Some("p".into()),
            model: Some(if i % 4 == 0 { "m-large" } else { "m-small" }.into()),
            input_tokens: Some(10),
            output_tokens: Some(20),
            // Answers 13 (one token: no TPOT) and 17 (no figures at all)
            // are counted as unknown on the tiles, never as 0 ms.
            ttft_ms: (status != Status::Limited && i != 17)
                .then_some(50.0 + ((i * 37) % 400) as f64),
            tpot_ms: (answered && i != 13 && i != 17).then_some(5.0 + (i % 7) as f64),
            total_ms: 500.0,
            provider_ms: 400.0,
            cost_usd: answered.then_some(0.001 * (i + 1) as f64),
            cache_hit: answered && i % 5 == 0,
            tokens_saved: None,
            cost_saved_usd: None,
            streamed: true,
            status,
            error: (!answered).then(|| "the provider failed".into()),
            finish_reason: answered.then(|| "stop".into()),
            attempts: Vec::new(),
            params: Params::default(),
            input: vec![ChatMessage::new(Role::User, format!("question number {i}"))],
            output: Some(format!("answer number {i}")),
            // Answers 2 and 4 were given the handbook's chunks (2 cited one,
            // and also had a wiki chunk).
            retrieval: matches!(i, 2 | 4).then(|| retrieved(i == 2)),
            tool_calls: Vec::new(),
            // Answer 2 ran two tools; one failed (its error is shown as text).
            tool_runs: if i == 2 { tool_runs() } else { Vec::new() },
        });
    }
    // A playground-style test run: never counted.
    let mut test_run = rows[0].clone();
    test_run.id = Uuid::now_v7();
    test_run.purpose = Purpose::Test;
    test_run.cost_usd = Some(5.0);
    test_run.ttft_ms = Some(9000.0);
    rows.push(test_run);

    let mut votes = Vec::new();
    for (i, r) in rows.iter().enumerate().take(20) {
        if r.status != Status::Ok {
            continue;
        }
        if i % 2 == 0 {
            votes.push((r.id, true));
        }
        if i % 3 == 0 {
            votes.push((r.id, false));
        }
    }
    Seeds {
        commented: rows[2].id,
        rows,
        votes,
    }
}

fn feedback(seeds: &Seeds) -> Vec<FeedbackRecord> {
    let now = now_ms();
    let record =
        |inference: Uuid, user: String, score: Option<f64>, kind: &str, comment: Option<&str>| {
            FeedbackRecord {
                id: Uuid::now_v7(),
                inference_id: inference,
                created_at_ms: now,
                kind: kind.into(),
                score,
                comment: comment.map(str::to_string),
                user: Some(gateway::User::new("slack", user)),
                source: "button".into(),
            }
        };
    let mut out = Vec::new();
    // A changed vote: only the last one counts (it is already in `votes`
    // when row 4 is voted up).
    let changed = seeds.rows[4].id;
    out.push(record(changed, "changer".into(), Some(0.0), "thumbs", None));
    for (n, (inference, up)) in seeds.votes.iter().enumerate() {
        let user = if *inference == changed && *up {
            "changer".to_string()
        } else {
            format!("voter{n}")
        };
        out.push(record(
            *inference,
            user,
            Some(if *up { 1.0 } else { 0.0 }),
            "thumbs",
            None,
        ));
    }
    out.push(record(
        seeds.commented,
        "critic".into(),
        None,
        "comment",
        Some("This <b>ignored</b> my question"),
    ));
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Served {
    /// Serves with cookies for plain HTTP on loopback.
    async fn start() -> Served {
        Served::start_with(PLAIN_HTTP).await
    }

    /// Serves with `extra` appended to the configuration.
    async fn start_with(extra: &str) -> Served {
        gateway::install_crypto();
        let provider = StandIn::start().await;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let text = format!(
            "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.default]\ntargets = [\"p/m\"]\n{extra}",
            dir.path().display(),
            provider.url
        );
        let config = dir.path().join("switchboard.toml");
        std::fs::write(&config, &text).unwrap();
        let db_url = format!("sqlite://{}/switchboard.db", dir.path().display());

        // Seed: the built-in prompt plus a second version, and the traffic.
        let parsed = gateway::Config::from_parts("test", &text, std::iter::empty()).unwrap();
        let store = Store::connect(&db_url).await.unwrap();
        store.migrate().await.unwrap();
        let registry = gateway::app::open_registry(&parsed, &store).await.unwrap();
        let (_, mut prompt) = registry
            .version("assistant", &Selector::Version(1))
            .await
            .unwrap();
        let system = &mut prompt.messages[0].template;
        let edited = system.replace("concisely and accurately", "briefly, kindly and accurately");
        assert_ne!(
            *system, edited,
            "the built-in prompt changed; update the seed edit"
        );
        *system = edited;
        Admin::new(registry.clone(), None, parsed.admin.clone())
            .run(
                &Actor::cli("seed"),
                Command::Edit {
                    prompt,
                    base: 1,
                    message: "A kinder tone".into(),
                },
            )
            .await
            .unwrap();
        Admin::new(registry.clone(), None, parsed.admin.clone())
            .run(
                &Actor::cli("seed"),
                Command::Promote {
                    name: "assistant".into(),
                    version: 1,
                    label: "production".into(),
                },
            )
            .await
            .unwrap();
        registry.close();
        let seeds = seed_rows();
        store.insert_inferences(&seeds.rows).await.unwrap();
        store.insert_feedback(&feedback(&seeds)).await.unwrap();
        let report = serde_json::json!({
            "wins": 3, "losses": 1, "ties": 0, "examples": 4,
            "win_rate": 0.75, "win_rate_ci": [0.3006, 0.9544],
            "rubric": "Polite <b>and</b> correct",
            "measures": [["rubric score (1–5), mean", "4.00", "3.00"]],
            "rows": [{"question": "Is <i>this</i> better?", "verdict": "candidate",
                      "candidate": {"text": "Yes, kindly.", "score": {"score": 4, "reason": "Kind."}},
                      "baseline": {"text": "Yes.", "score": null}}],
        });
        let summary = serde_json::json!({
            "win_rate": 0.75, "win_rate_ci": [0.3006, 0.9544], "examples": 4, "errors": 0,
        });
        store
            .insert_eval_run(
                "run-1",
                now_ms(),
                "assistant",
                "2",
                "production",
                &summary.to_string(),
                &report.to_string(),
            )
            .await
            .unwrap();
        store.close().await;

        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--config", config.to_str().unwrap(), "serve"])
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start switchboard serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status() == 200
            {
                return Served {
                    child,
                    base,
                    db_url,
                    config,
                    seeds,
                    provider,
                    log,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("switchboard serve did not become ready");
    }

    /// `switchboard admin add NAME`, the password piped on stdin.
    async fn add_account(&self, name: &str) {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "admin",
                "add",
                name,
            ])
            .env_remove("SWITCHBOARD_ADMIN_PASSWORD")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "admin add failed");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&format!("added the dashboard account `{name}`")),
            "{said}"
        );
        assert!(!said.contains(PASSWORD));
    }

    /// The server's log so far.
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server's log has a line containing `needle`, and
    /// returns that line.
    async fn log_line(&self, needle: &str) -> String {
        for _ in 0..100 {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the server never logged `{needle}`; its log:\n{}",
            self.log()
        );
    }

    /// The server process's peak resident memory, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the server runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    async fn store(&self) -> Store {
        Store::connect(&self.db_url).await.unwrap()
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Saves a screenshot of the page when `SWITCHBOARD_TEST_SCREENSHOTS`
/// names a folder, for a person to look at.
async fn picture(b: &mut Browser, name: &str) {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_TEST_SCREENSHOTS") {
        let dir = std::path::Path::new(&dir);
        b.screenshot(&dir.join(format!("{name}.png"))).await;
        b.phone(true).await;
        b.screenshot(&dir.join(format!("{name}-phone.png"))).await;
        b.phone(false).await;
    }
}

/// Fills the sign-in form and submits it.
async fn sign_in(b: &mut Browser, base: &str, name: &str, password: &str) {
    if !b.location().await.ends_with("/dashboard/login") {
        b.goto(&format!("{base}/dashboard/login")).await;
    }
    let js = format!(
        "(() => {{ const f = document.querySelector('#login'); f.name.value = {}; f.password.value = {}; f.requestSubmit(); }})()",
        serde_json::json!(name),
        serde_json::json!(password)
    );
    b.submit(&js).await;
}

// --- the expected figures, from the seeds --------------------------------

fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v[rank.max(1) - 1]
}

fn wilson95(up: f64, n: f64) -> (f64, f64) {
    let z: f64 = 1.96;
    let p = up / n;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z * z / n;
    ((centre - spread) / denom, (centre + spread) / denom)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

#[tokio::test]
async fn an_admin_signs_in_reads_the_figures_diffs_and_promotes() {
    let served = Served::start().await;
    served.add_account("alice").await;
    let base = served.base.clone();
    let seeds = &served.seeds;
    let mut b = Browser::start().await;

    // Signed out, the dashboard sends the browser to the sign-in page.
    b.goto(&format!("{base}/dashboard")).await;
    assert!(b.location().await.ends_with("/dashboard/login"));
    sign_in(&mut b, &base, "alice", PASSWORD).await;
    assert!(
        b.location().await.ends_with("/dashboard"),
        "{}",
        b.location().await
    );
    assert_eq!(b.text("#me").await.as_deref(), Some("alice"));

    // The overview's figures are the seeds', test runs left out.
    let live: Vec<&InferenceRecord> = seeds
        .rows
        .iter()
        .filter(|r| r.purpose == Purpose::Live)
        .collect();
    let ok: Vec<_> = live.iter().filter(|r| r.status == Status::Ok).collect();
    let ups = seeds.votes.iter().filter(|v| v.1).count() as f64;
    let votes = seeds.votes.len() as f64;
    let (lo, hi) = wilson95(ups, votes);
    let ttft: Vec<f64> = live.iter().filter_map(|r| r.ttft_ms).collect();
    let tpot: Vec<f64> = live.iter().filter_map(|r| r.tpot_ms).collect();
    let without = |figure: fn(&InferenceRecord) -> Option<f64>| match ok
        .iter()
        .filter(|r| figure(r).is_none())
        .count()
    {
        1 => "1 answer without this figure".to_string(),
        n => format!("{n} answers without this figure"),
    };
    let cost: f64 = live.iter().filter_map(|r| r.cost_usd).sum();
    let hits = ok.iter().filter(|r| r.cache_hit).count() as f64;
    let expected = [
        ("requests", live.len().to_string()),
        ("votes", seeds.votes.len().to_string()),
        ("thumbs_rate", pct(ups / votes)),
        ("thumbs_ci", format!("{} – {}", pct(lo), pct(hi))),
        (
            "ttft_p50",
            format!("{:.0} ms", nearest_rank(ttft.clone(), 50.0)),
        ),
        ("ttft_p95", format!("{:.0} ms", nearest_rank(ttft, 95.0))),
        (
            "tpot_p50",
            format!("{:.0} ms", nearest_rank(tpot.clone(), 50.0)),
        ),
        ("tpot_p95", format!("{:.0} ms", nearest_rank(tpot, 95.0))),
        ("ttft_unknown", without(|r| r.ttft_ms)),
        ("tpot_unknown", without(|r| r.tpot_ms)),
        ("cost", format!("${cost:.4}")),
        ("cost_per_day", format!("${:.4}", cost / 14.0)),
        (
            "cost_per_request",
            format!("${:.4}", cost / ok.len() as f64),
        ),
        ("cache_hit_rate", pct(hits / ok.len() as f64)),
        (
            "errors",
            live.iter()
                .filter(|r| matches!(r.status, Status::Error | Status::Partial))
                .count()
                .to_string(),
        ),
        (
            "limited",
            live.iter()
                .filter(|r| r.status == Status::Limited)
                .count()
                .to_string(),
        ),
    ];
    for (figure, want) in expected {
        assert_eq!(
            b.text(&format!("[data-figure={figure}]")).await.as_deref(),
            Some(want.as_str()),
            "figure {figure}"
        );
    }
    picture(&mut b, "overview").await;
    // By platform: Discord's requests.
    let discord = live
        .iter()
        .filter(|r| r.origin.platform == "discord")
        .count();
    let shown = b
        .eval(
            "[...document.querySelectorAll('table[data-breakdown=platform] tr')].map(r => [...r.cells].map(c => c.textContent.trim())).find(c => c[0] === 'discord')[1]",
        )
        .await;
    assert_eq!(shown, serde_json::json!(discord.to_string()));
    // By knowledge source: the answers given each source's chunks.
    let by_source = b
        .eval(
            "[...document.querySelectorAll('table[data-breakdown=\"knowledge source\"] tr')].slice(1).map(r => [r.cells[0].textContent.trim(), r.cells[1].textContent.trim()])",
        )
        .await;
    assert_eq!(
        by_source,
        serde_json::json!([["handbook", "2"], ["wiki", "1"]])
    );
    // Charts are drawn on the server: SVG with bars, and no script at all.
    assert_eq!(
        b.eval("document.querySelectorAll('svg.chart').length")
            .await,
        5
    );
    assert!(
        b.eval("document.querySelectorAll('svg.chart rect').length")
            .await
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(b.eval("document.scripts.length").await, 0);

    // The prompt page shows each version's figures side by side.
    b.goto(&format!("{base}/dashboard/prompts")).await;
    b.submit("document.querySelector('a[href=\"/dashboard/prompts/assistant\"]').click()")
        .await;
    let v2: Vec<_> = live
        .iter()
        .filter(|r| r.prompt.as_ref().unwrap().1 == 2)
        .collect();
    let v2_ids: Vec<Uuid> = v2.iter().map(|r| r.id).collect();
    let v2_votes: Vec<bool> = seeds
        .votes
        .iter()
        .filter(|v| v2_ids.contains(&v.0))
        .map(|v| v.1)
        .collect();
    let row = b
        .eval("[...document.querySelector('tr[data-version=\"2\"]').cells].map(c => c.textContent.trim())")
        .await;
    assert_eq!(row[2], serde_json::json!(v2.len().to_string()), "{row}");
    assert_eq!(
        row[3],
        serde_json::json!(pct(
            v2_votes.iter().filter(|u| **u).count() as f64 / v2_votes.len() as f64
        )),
        "{row}"
    );
    assert_eq!(
        b.text("[data-label=production]").await.as_deref(),
        Some("production → v1")
    );
    picture(&mut b, "prompt").await;

    // The diff between v1 and v2 shows the edited line.
    b.submit("document.querySelector('#diff-form').requestSubmit()")
        .await;
    assert!(
        b.location()
            .await
            .contains("/dashboard/prompts/assistant/diff?from=1&to=2")
    );
    let added = b
        .eval("[...document.querySelectorAll('#diff .add')].map(e => e.textContent).join('\\n')")
        .await;
    let removed = b
        .eval("[...document.querySelectorAll('#diff .del')].map(e => e.textContent).join('\\n')")
        .await;
    assert!(
        added
            .as_str()
            .unwrap()
            .contains("briefly, kindly and accurately"),
        "{added}"
    );
    assert!(
        removed
            .as_str()
            .unwrap()
            .contains("concisely and accurately"),
        "{removed}"
    );
    picture(&mut b, "diff").await;

    // Promote v2 to production with the page's form (and its CSRF token).
    b.goto(&format!("{base}/dashboard/prompts/assistant")).await;
    b.submit(
        "(() => { const f = [...document.querySelectorAll('form.promote')].find(f => f.version.value === '2'); \
         f.label.value = 'production'; f.requestSubmit(); })()",
    )
    .await;
    let notice = b.text("#notice").await.unwrap();
    assert!(
        notice.contains("assistant@production now serves v2 (was v1)"),
        "{notice}"
    );
    assert_eq!(
        b.text("[data-label=production]").await.as_deref(),
        Some("production → v2")
    );
    let store = served.store().await;
    let production = |rows: gateway::store::RegistryRows| {
        rows.labels
            .iter()
            .find(|l| l.name == "assistant" && l.label == "production")
            .map(|l| l.arms.iter().map(|a| a.version).collect::<Vec<_>>())
    };
    assert_eq!(
        production(store.registry_rows().await.unwrap()),
        Some(vec![2])
    );
    let audit = store.audit_rows(Some("assistant"), 50).await.unwrap();
    assert_eq!(audit[0].actor, "dashboard:alice");
    assert_eq!(audit[0].action, "promote");
    let audited = audit.len();

    // The same POST (back to v1) without the token, with a wrong token, or
    // without a session is refused, and nothing changes.
    let url = format!("{base}/dashboard/prompts/assistant/promote");
    let csrf = b
        .eval("document.querySelector('form.promote input[name=csrf]').value")
        .await;
    let csrf = csrf.as_str().unwrap().to_string();
    // In the browser: a form posted without the token, and with a wrong one.
    for token in [None, Some("0000")] {
        b.submit(&format!(
            "(() => {{ const f = document.createElement('form'); f.method = 'post'; f.action = {}; \
             const add = (k, v) => {{ const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }}; \
             add('version', '1'); add('label', 'production'); {} document.body.appendChild(f); f.submit(); }})()",
            serde_json::json!(url),
            token.map_or(String::new(), |t| format!("add('csrf', '{t}');"))
        ))
        .await;
        let page = b.eval("document.body.innerText").await;
        assert!(page.as_str().unwrap().starts_with("refused: "), "{page}");
        assert!(page.as_str().unwrap().contains("CSRF token"), "{page}");
    }
    // Over HTTP: with the session but no token, and with a token but no session.
    let session = b
        .cookie(&format!("{base}/dashboard"), "switchboard_session")
        .await
        .expect("the browser holds a session cookie");
    let with_session = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("switchboard_session={session}"))
        .body("version=1&label=production")
        .send()
        .await
        .unwrap();
    assert_eq!(with_session.status(), 403);
    let anonymous = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("version=1&label=production&csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    assert_eq!(
        production(store.registry_rows().await.unwrap()),
        Some(vec![2])
    );
    assert_eq!(
        store.audit_rows(Some("assistant"), 50).await.unwrap().len(),
        audited
    );
    b.goto(&format!("{base}/dashboard/prompts/assistant")).await;
    assert_eq!(
        b.text("[data-label=production]").await.as_deref(),
        Some("production → v2")
    );

    // Roll production back to where it was before the promote.
    b.submit(
        "(() => { const f = [...document.querySelectorAll('form.rollback')].find(f => f.label.value === 'production'); \
         f.to.value = ''; f.requestSubmit(); })()",
    )
    .await;
    let notice = b.text("#notice").await.unwrap();
    assert!(
        notice.contains("assistant@production rolled back to v1 (was v2)"),
        "{notice}"
    );
    assert_eq!(
        production(store.registry_rows().await.unwrap()),
        Some(vec![1])
    );
    assert_eq!(
        store.audit_rows(Some("assistant"), 1).await.unwrap()[0].actor,
        "dashboard:alice"
    );

    // The stored evaluation run and its report.
    let run = b
        .eval("[...document.querySelector('a[href=\"/dashboard/evals/run-1\"]').closest('tr').cells].map(c => c.textContent.trim())")
        .await;
    assert_eq!(run[3], "75.0%", "{run}");
    assert_eq!(run[4], "30.1% – 95.4%", "{run}");
    b.submit("document.querySelector('a[href=\"/dashboard/evals/run-1\"]').click()")
        .await;
    let headline = b.text("#headline").await.unwrap();
    assert!(
        headline.contains("4 examples; candidate won 3, lost 1, tied 0; win rate 75.0%"),
        "{headline}"
    );
    assert_eq!(
        b.text("#rubric").await.as_deref(),
        Some("Rubric: Polite <b>and</b> correct")
    );
    let measure = b
        .eval("[...document.querySelectorAll('#measures td')].map(c => c.textContent.trim())")
        .await;
    assert_eq!(
        measure,
        serde_json::json!(["rubric score (1–5), mean", "4.00", "3.00"])
    );
    let example = b
        .eval("[...document.querySelectorAll('main .scroll table td')].map(c => c.textContent.trim())")
        .await;
    assert_eq!(
        example,
        serde_json::json!([
            "Is <i>this</i> better?",
            "candidate",
            "Yes, kindly.",
            "4: Kind.",
            "Yes.",
            "–"
        ])
    );

    // Feedback review: the commented answer with its conversation, escaped.
    b.goto(&format!("{base}/dashboard/feedback")).await;
    picture(&mut b, "feedback").await;
    let card = format!("[data-inference=\"{}\"]", seeds.commented);
    let text = b.text(&card).await.expect("the commented answer is listed");
    assert!(
        text.contains("question number 2") && text.contains("answer number 2"),
        "{text}"
    );
    assert!(
        text.contains("This <b>ignored</b> my question"),
        "user text is shown as text: {text}"
    );
    // What the answer was given, and what it cited.
    assert!(
        text.contains("retrieved: [1] Retry policy › Attempts · cited")
            && text.contains("[2] Backoff <script> › Attempts"),
        "{text}"
    );
    // The tools it ran, with their arguments, and the one that failed.
    assert!(
        text.contains(r#"tools: get_current_time({"timezone":"Asia/Tokyo"}) · 120 B · 12 ms"#)
            && text.contains("search_wiki({}) · 0 B · 12 ms · failed: tool server `wiki` is unavailable: <b>down</b>"),
        "{text}"
    );
    b.submit(&format!(
        "(() => {{ const f = document.querySelector('{card} form[action$=\"/dataset\"]'); f.dataset.value = 'tone-problems'; f.requestSubmit(); }})()"
    ))
    .await;
    assert!(
        b.text("#notice")
            .await
            .unwrap()
            .contains("to the dataset tone-problems")
    );
    b.submit(&format!(
        "document.querySelector('{card} form[action$=\"/reviewed\"]').requestSubmit()"
    ))
    .await;
    assert!(b.text("#notice").await.unwrap().contains("reviewed"));
    assert_eq!(
        b.text(&card).await,
        None,
        "reviewed answers leave the queue"
    );

    // Playground: run v2 on an input through the configured model.
    b.goto(&format!("{base}/dashboard/playground")).await;
    b.submit(
        "(() => { const f = document.querySelector('#play'); f.prompt.value = 'assistant'; f.version.value = '2'; \
         f.input.value = 'Where is the office?'; f.requestSubmit(); })()",
    )
    .await;
    assert_eq!(
        b.text("#answer").await.as_deref(),
        Some("Hello from the stand-in.")
    );
    assert_eq!(b.text("#tokens-out").await.as_deref(), Some("5"));
    let sent = served.provider.received().last().unwrap().body.clone();
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("briefly, kindly"),
        "v2's system prompt was sent: {sent}"
    );
    assert_eq!(sent["messages"][1]["content"], "Where is the office?");

    // An unsaved draft runs too; nothing is saved.
    b.submit(
        "(() => { const f = document.querySelector('#play'); f.version.value = ''; \
         f.draft.value = 'name = \"assistant\"\\nmodel = \"default\"\\n\\n[[messages]]\\nrole = \"system\"\\ntemplate = \"Answer like a pirate, {{ user_name }}.\"\\n\\n[[messages]]\\nrole = \"user\"\\ntemplate = \"{{ text }}\"\\n'; \
         f.input.value = 'Where is the office?'; f.requestSubmit(); })()",
    )
    .await;
    assert_eq!(
        b.text("#answer").await.as_deref(),
        Some("Hello from the stand-in."),
        "{:?}",
        b.text("#error").await
    );
    assert!(b.text("h2").await.unwrap().contains("unsaved draft"));
    let sent = served.provider.received().last().unwrap().body.clone();
    assert_eq!(
        sent["messages"][0]["content"],
        "Answer like a pirate, alice."
    );
    assert_eq!(
        store.registry_rows().await.unwrap().latest,
        vec![
            ("ask_about".to_string(), 1),
            ("assistant".to_string(), 2),
            ("summarize".to_string(), 1)
        ],
        "the draft was not saved"
    );
    picture(&mut b, "playground").await;

    store.close().await;
    b.close().await;
    served.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_slowed_after_repeats() {
    let served = Served::start().await;
    served.add_account("bob").await;
    let base = served.base.clone();
    let mut b = Browser::start().await;

    for _ in 0..3 {
        sign_in(&mut b, &base, "bob", "not the password at all").await;
        assert!(b.location().await.ends_with("/dashboard/login"));
        assert_eq!(
            b.text("#error").await.as_deref(),
            Some("Wrong name or password.")
        );
    }
    // Now even the right password must wait.
    sign_in(&mut b, &base, "bob", PASSWORD).await;
    let error = b.text("#error").await.unwrap();
    let secs: u64 = error
        .strip_prefix("Too many wrong passwords. Try again in ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not slowed: {error}"));
    assert!((1..=5).contains(&secs), "{error}");
    b.goto(&format!("{base}/dashboard")).await;
    assert!(
        b.location().await.ends_with("/dashboard/login"),
        "no session was made"
    );

    // Once the wait is over, the right password signs in.
    tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(300)).await;
    sign_in(&mut b, &base, "bob", PASSWORD).await;
    assert_eq!(b.text("#me").await.as_deref(), Some("bob"));

    b.close().await;
    served.stop().await;
}

// --- over plain HTTP ----------------------------------------------------------

/// An HTTP client whose connections come from `from` (any 127.x address is
/// this machine), keeping no cookies of its own.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` value for `name` in a response, whole (attributes too).
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// A cookie's value from its `Set-Cookie` line.
fn cookie_value(line: &str) -> String {
    line.split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap()
}

/// The sign-in form's double-submit token, from the form page.
async fn login_token(client: &reqwest::Client, base: &str) -> String {
    let page = client
        .get(format!("{base}/dashboard/login"))
        .send()
        .await
        .unwrap();
    cookie_value(&set_cookie(&page, "switchboard_login").expect("a sign-in token cookie"))
}

/// Posts the sign-in form with `token`.
async fn post_sign_in(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", token)
        .append_pair("name", name)
        .append_pair("password", password)
        .finish();
    client
        .post(format!("{base}/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("switchboard_login={token}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Signs in over HTTP and returns the session cookie's value.
async fn http_session(client: &reqwest::Client, base: &str, name: &str) -> String {
    let token = login_token(client, base).await;
    let r = post_sign_in(client, base, &token, name, PASSWORD).await;
    assert_eq!(r.status(), 303, "{name} could not sign in");
    cookie_value(&set_cookie(&r, "switchboard_session").expect("a session cookie"))
}

/// GETs a dashboard page with a session: (status, body).
async fn page(client: &reqwest::Client, url: &str, session: &str) -> (u16, String) {
    let r = client
        .get(url)
        .header("cookie", format!("switchboard_session={session}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_flood_of_wrong_sign_ins_checks_few_passwords_and_the_owner_still_signs_in() {
    let served = Served::start().await;
    served.add_account("alice").await;
    let base = served.base.clone();
    let attacker = client_from("127.0.0.2");
    let token = login_token(&attacker, &base).await;
    let before = served.peak_rss_kib();

    // A hundred wrong sign-ins at once from one address: half on alice,
    // half on names that do not exist.
    let tries = (0..100).map(|i| {
        let (attacker, base, token) = (attacker.clone(), base.clone(), token.clone());
        async move {
            let name = if i % 2 == 0 {
                "alice".to_string()
            } else {
                format!("ghost{i}")
            };
            let r = post_sign_in(&attacker, &base, &token, &name, "not the password at all").await;
            let retry = r.headers().get("retry-after").is_some();
            (name, r.status().as_u16(), retry)
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let after = served.peak_rss_kib();
    let checked: Vec<_> = answers.iter().filter(|a| a.1 == 401).collect();
    let alice_checked = checked.iter().filter(|a| a.0 == "alice").count();
    eprintln!(
        "flood: {} of 100 passwords checked ({alice_checked} on alice), peak RSS {} MiB -> {} MiB",
        checked.len(),
        before / 1024,
        after / 1024
    );
    // "Wrong name or password" means the password was checked; everything
    // else was refused at once with 429 and a Retry-After.
    assert!(
        checked.len() <= 10,
        "{} passwords were checked; at most the 10 free failures of one address may be",
        checked.len()
    );
    assert!(alice_checked <= 3, "{alice_checked} checks on alice");
    for (name, status, retry) in &answers {
        assert!(
            *status == 401 || (*status == 429 && *retry),
            "{name}: {status} (Retry-After: {retry})"
        );
    }
    assert!(
        after.saturating_sub(before) < 100 * 1024,
        "the server's peak memory grew from {before} KiB to {after} KiB"
    );

    // The real alice, from another address, is not locked out.
    let owner = client_from("127.0.0.3");
    let token = login_token(&owner, &base).await;
    let r = post_sign_in(&owner, &base, &token, "alice", PASSWORD).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    served.stop().await;
}

#[tokio::test]
async fn an_account_without_rights_sees_no_conversation() {
    let served = Served::start_with(&format!(
        "{PLAIN_HTTP}[admin]\nplatform_admins = false\neditors = [\"dashboard:erin\"]\n\
         admins = [\"cli:seed\"]\n"
    ))
    .await;
    served.add_account("nobody").await;
    served.add_account("erin").await;
    let base = served.base.clone();

    // A direct message with a comment: it waits in the review queue.
    let mut dm = served.seeds.rows[0].clone();
    dm.id = Uuid::now_v7();
    dm.origin.private = true;
    dm.origin.channel = Some("D0SECRET".into());
    dm.input = vec![ChatMessage::new(
        Role::User,
        "the private plan for the offsite",
    )];
    dm.output = Some("keep the offsite plan quiet".into());
    let store = served.store().await;
    store.insert_inferences(&[dm.clone()]).await.unwrap();
    let mut comment = feedback(&served.seeds).pop().unwrap();
    comment.id = Uuid::now_v7();
    comment.inference_id = dm.id;
    // Only the asker may leave feedback on a DM's answer.
    comment.user = dm.origin.user.clone();
    store.insert_feedback(&[comment]).await.unwrap();
    store.close().await;

    let client = client_from("127.0.0.1");
    let nobody = http_session(&client, &base, "nobody").await;
    for path in [
        "/dashboard/feedback",
        "/dashboard/feedback?reviewed=1",
        "/dashboard",
        "/dashboard/prompts",
        "/dashboard/prompts/assistant",
        "/dashboard/prompts/assistant/diff?from=1&to=2",
        "/dashboard/evals/run-1",
        "/dashboard/playground",
    ] {
        let (status, body) = page(&client, &format!("{base}{path}"), &nobody).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("admin.editors")
                && body.contains("admin.admins")
                && body.contains("dashboard:nobody"),
            "{path} does not say which key grants access: {body}"
        );
        for secret in ["private plan", "offsite plan quiet", "question number"] {
            assert!(!body.contains(secret), "{path} shows `{secret}`");
        }
    }

    // An editor reads the queue, the DM included.
    let erin = http_session(&client, &base, "erin").await;
    let (status, body) = page(&client, &format!("{base}/dashboard/feedback"), &erin).await;
    assert_eq!(status, 200);
    assert!(body.contains("the private plan for the offsite"), "{body}");
    served.stop().await;
}

#[tokio::test]
async fn a_database_failure_shows_a_reference_not_sql() {
    let served = Served::start().await;
    served.add_account("alice").await;
    let base = served.base.clone();
    let client = client_from("127.0.0.1");
    let session = http_session(&client, &base, "alice").await;

    let store = served.store().await;
    store
        .execute_admin("ALTER TABLE feedback_reviews RENAME TO feedback_reviews_gone")
        .await
        .unwrap();
    store.close().await;
    let (status, body) = page(&client, &format!("{base}/dashboard/feedback"), &session).await;
    assert_eq!(status, 500, "{body}");
    let reference = body
        .strip_prefix("Something went wrong (ref ")
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no reference: {body}"))
        .to_string();
    for leak in [
        "feedback_reviews",
        "SELECT",
        "no such table",
        "database error",
    ] {
        assert!(!body.contains(leak), "the page shows `{leak}`: {body}");
    }
    // The detail is in the server's log, under the reference.
    let line = served.log_line(&reference).await;
    assert!(line.contains("feedback_reviews"), "{line}");
    served.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_by_default_and_failed_sign_ins_log_no_name() {
    let served = Served::start_with("").await;
    served.add_account("alice").await;
    let base = served.base.clone();
    let client = client_from("127.0.0.1");

    let form = client
        .get(format!("{base}/dashboard/login"))
        .send()
        .await
        .unwrap();
    let login = set_cookie(&form, "switchboard_login").unwrap();
    assert!(login.contains("; Secure"), "{login}");
    let token = cookie_value(&login);

    // A failed sign-in is logged with the address, not the name typed
    // (which is often a password typed into the wrong field).
    let typed = "Tr0ub4dor-typed-in-the-name-field";
    let r = post_sign_in(&client, &base, &token, typed, "wrong password").await;
    assert_eq!(r.status(), 401);
    let line = served.log_line("sign-in failed").await;
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(!served.log().contains(typed), "{}", served.log());

    let r = post_sign_in(&client, &base, &token, "alice", PASSWORD).await;
    assert_eq!(r.status(), 303);
    let session = set_cookie(&r, "switchboard_session").unwrap();
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    served.stop().await;
}
