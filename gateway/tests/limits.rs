//! Rate limits, budgets and event dedupe against a real Redis, as a user
//! notices them: how many requests are answered, the 429 with the limit
//! named and `Retry-After`, the refill, the budget message and the next
//! day; several gateways sharing one Redis enforcing one limit; and what
//! happens while Redis is killed and after it returns.
//!
//! Limits read an injected clock, frozen unless a test moves it, so that
//! "ten seconds later" and "the next day" need no waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::config::RedisConfig;
use gateway::guards::dedupe::EventDedupe;
use gateway::guards::limits::{LimitError, ManualClock};
use gateway::guards::redis_link::RedisLink;
use gateway::{ChatMessage, Input, Origin, PipelineError, ReplyEvent, Request, Role};
use serde_json::{Value, json};
use testkit::redis::{RedisServer, redis_section, shared_url};
use testkit::standin::{Reply, StandIn};
use testkit::{Answer, Harness, one_provider};

/// Noon, UTC, on some day.
const NOON_US: i64 = (20_000 * 86_400 + 12 * 3600) * 1_000_000;

/// A question asked by `user`, who calls with an API key of their own
/// (the key, not the body's `user` field, is who a per-user limit counts).
struct Ask {
    user: String,
    body: Value,
}

fn ask(user: &str, question: &str) -> Ask {
    Ask {
        user: user.to_string(),
        body: json!({
            "model": "default",
            "user": user,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0.0,
        }),
    }
}

/// The variable holding every test caller's key.
const KEYS_ENV: &str = "LIMITS_TEST_KEYS";

/// `name:key-name` for every caller these tests use.
fn keys() -> String {
    let named = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "probe-a", "probe-b",
    ];
    named
        .iter()
        .map(|n| n.to_string())
        .chain((0..450).map(|i| format!("user{i}")))
        .map(|n| format!("{n}:key-{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sends an [`Ask`] with its asker's key.
trait AskAs {
    async fn ask(&self, ask: Ask) -> Answer;
}

impl AskAs for Harness {
    async fn ask(&self, ask: Ask) -> Answer {
        let bearer = format!("Bearer key-{}", ask.user);
        self.chat_with(ask.body, &[("authorization", &bearer)])
            .await
    }
}

fn message(a: &Answer) -> String {
    a.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn start(config: &str, clock: &Arc<ManualClock>) -> Harness {
    let config = format!("[server]\napi_keys_env = \"{KEYS_ENV}\"\n{config}");
    Harness::start_with_clock(&config, &[(KEYS_ENV, &keys())], clock.clone()).await
}

fn link_of(h: &Harness) -> RedisLink {
    h.gateway
        .pipeline
        .guards()
        .redis
        .clone()
        .expect("the gateway uses Redis")
}

#[tokio::test]
async fn three_gateways_sharing_redis_admit_exactly_the_limit() {
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("ok".into(), (5, 1)));
    let limit: usize = 150;
    // Fail closed with a generous timeout: a burst of 450 requests on a
    // debug build must not slip through to in-process limits.
    let config = format!(
        "{}\n{}timeout_ms = 5000\n[limits.global]\nrequests_per_minute = {limit}\n",
        one_provider(&provider.url),
        redis_section(&shared_url(), "closed")
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let gateways = [
        Arc::new(start(&config, &clock).await),
        Arc::new(start(&config, &clock).await),
        Arc::new(start(&config, &clock).await),
    ];
    let mut tasks = Vec::new();
    for i in 0..3 * limit {
        let h = gateways[i % 3].clone();
        // Different questions, so no answer comes from the cache.
        tasks.push(tokio::spawn(async move {
            h.ask(ask(&format!("user{i}"), &format!("question {i}")))
                .await
                .status
        }));
    }
    let mut admitted: usize = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("request task") {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let tolerance = (limit as f64 * 0.01).ceil() as usize;
    assert!(
        admitted.abs_diff(limit) <= tolerance,
        "admitted {admitted} of {} with a limit of {limit}",
        3 * limit
    );
    assert_eq!(admitted + refused, 3 * limit);
    assert_eq!(provider.received().len(), admitted);
}

#[tokio::test]
async fn a_per_user_limit_counts_the_api_key_whatever_user_the_body_names() {
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("ok".into(), (5, 1)));
    let config = format!(
        "{}\n[limits.user]\nrequests_per_minute = 2\n",
        one_provider(&provider.url)
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let h = start(&config, &clock).await;
    // Ten requests under alice's key, each claiming another `user`.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let mut a = ask("alice", &format!("rotating {i}"));
        a.body["user"] = json!(format!("someone-{i}"));
        if i == 9 {
            a.body.as_object_mut().unwrap().remove("user");
        }
        statuses.push(h.ask(a).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "rotating or omitting `user` must not buy more requests: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 8);
    // Another key has an allowance of its own.
    assert_eq!(h.ask(ask("bob", "mine")).await.status, 200);
    // The body's `user` is kept as the asker's name under the key.
    let answered = h.ask(ask("carol", "who am I")).await;
    let row = h.row(&answered.inference_id()).await;
    assert_eq!(row.user_id.as_deref(), Some("http:carol"));
    assert_eq!(row.user_name.as_deref(), Some("carol"));

    // Without keys, every caller on this machine is one caller.
    let keyless = Harness::start_with_clock(&config, &[], clock.clone()).await;
    let mut admitted = 0;
    for i in 0..10 {
        let a = ask(&format!("user{i}"), &format!("local {i}"));
        if keyless.chat(a.body).await.status == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2, "keyless loopback callers share one allowance");
}

async fn limits_refill_at_the_configured_rate(redis: Option<&str>) {
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("ok".into(), (5, 1)));
    let prefix = format!("test-{}:", uuid::Uuid::now_v7().simple());
    let section = redis.map_or(String::new(), |url| {
        format!("[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n")
    });
    let config = format!(
        "{}\n{section}\n[limits.user]\nrequests_per_minute = 6\n",
        one_provider(&provider.url)
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let h = start(&config, &clock).await;
    let mut n = 0;
    let mut alice = || {
        n += 1;
        ask("alice", &format!("question {n}"))
    };

    for _ in 0..6 {
        assert_eq!(h.ask(alice()).await.status, 200);
    }
    let refused = h.ask(alice()).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.headers["retry-after"], "10");
    assert_eq!(refused.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        message(&refused),
        "Rate limit reached: you have used your 6 requests per minute. Try again in 10 s."
    );
    // The refusal is recorded.
    let row = h.row(&refused.inference_id()).await;
    assert_eq!(row.status, "limited");
    assert!(
        row.error
            .unwrap_or_default()
            .contains("6 requests per minute")
    );
    // Another user has an allowance of their own.
    assert_eq!(h.ask(ask("bob", "hello")).await.status, 200);

    // One request's worth refills every ten seconds...
    clock.advance(Duration::from_secs(9));
    assert_eq!(h.ask(alice()).await.status, 429);
    clock.advance(Duration::from_secs(1));
    assert_eq!(h.ask(alice()).await.status, 200);
    assert_eq!(h.ask(alice()).await.status, 429);
    // ...and a quiet minute refills it all, no more.
    clock.advance(Duration::from_secs(120));
    for _ in 0..6 {
        assert_eq!(h.ask(alice()).await.status, 200);
    }
    assert_eq!(h.ask(alice()).await.status, 429);

    if let Some(url) = redis {
        // The limiter's keys expire by themselves, within about a minute.
        let client = redis::Client::open(url).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis");
        // Per user: the place (platform, workspace) and the user's one text form.
        let key = format!("{prefix}rl:u:http:-:http:alice:rpm");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(pttl > 0 && pttl <= 61_000, "{key} expires in {pttl} ms");
    }
}

#[tokio::test]
async fn limits_refill_at_the_configured_rate_in_redis() {
    limits_refill_at_the_configured_rate(Some(&shared_url())).await;
}

#[tokio::test]
async fn limits_refill_at_the_configured_rate_in_process() {
    limits_refill_at_the_configured_rate(None).await;
}

#[tokio::test]
async fn token_limits_reserve_an_estimate_and_settle_with_real_usage() {
    let provider = StandIn::start().await;
    // Each answer really uses 12 + 3 tokens.
    provider.always(Reply::OpenAiJson("ok".into(), (12, 3)));
    let config = format!(
        "{}\n{}\n[limits.user]\ntokens_per_minute = 1000\n",
        one_provider(&provider.url),
        redis_section(&shared_url(), "open")
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let h = start(&config, &clock).await;
    // Each request reserves ~500 tokens; without settling, the third
    // would not fit. Settled at 15 each, many do.
    for i in 0..8 {
        let mut body = ask("carol", &format!("q{i}"));
        body.body["max_tokens"] = json!(500);
        let a = h.ask(body).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
    }
    // 8 × 15 = 120 used; a request that may use 990 more does not fit.
    let mut big = ask("carol", "a long one");
    big.body["max_tokens"] = json!(990);
    let refused = h.ask(big).await;
    assert_eq!(refused.status, 429);
    assert!(
        message(&refused).contains("1000 tokens per minute"),
        "{}",
        refused.body
    );
}

/// Sends one non-streamed request through the pipeline as a chat adapter
/// would, from workspace T1; the answer's text or the refusal.
async fn ask_in_workspace(h: &Harness, question: &str) -> Result<String, LimitError> {
    let origin = Origin {
        platform: "slack".into(),
        workspace: Some("T1".into()),
        channel: Some("C1".into()),
        user: Some(gateway::User::new("slack", "U1")),
        ..Origin::default()
    };
    let mut request = Request::new(
        origin,
        Input::Messages {
            alias: "default".into(),
            messages: vec![ChatMessage::new(Role::User, question)],
        },
    );
    request.stream = false;
    match h.gateway.pipeline.start(request).await {
        Ok(mut reply) => {
            let mut text = String::new();
            while let Some(event) = reply.next_event().await {
                match event {
                    ReplyEvent::Token(t) => text.push_str(&t),
                    ReplyEvent::Done(_) => return Ok(text),
                    ReplyEvent::Failed { message, .. } => panic!("the answer failed: {message}"),
                    _ => {}
                }
            }
            panic!("the answer ended without a summary")
        }
        Err(PipelineError::Limited { source, .. }) => Err(source),
        Err(other) => panic!("refused for another reason: {other}"),
    }
}

#[tokio::test]
async fn a_budget_exhausted_mid_day_refuses_until_the_next_day() {
    let provider = StandIn::start().await;
    // 12 input tokens at $1000/M and 3 output at $2000/M: $0.018 each.
    provider.always(Reply::OpenAiJson("Answered.".into(), (12, 3)));
    let config = format!(
        r#"
[providers.primary]
kind = "openai"
base_url = "{}"
prices = {{ "gpt-test" = {{ input = 1000.0, output = 2000.0 }} }}
[models.default]
targets = ["primary/gpt-test"]
{}
[limits.workspace]
daily_budget_usd = 1.0
[limits.workspaces.T1.workspace]
daily_budget_usd = 0.05
"#,
        provider.url,
        redis_section(&shared_url(), "open")
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let h = start(&config, &clock).await;
    // $0, $0.018, $0.036 spent before each: all under $0.05.
    for i in 0..3 {
        let answer = ask_in_workspace(&h, &format!("question {i}")).await;
        assert_eq!(answer.expect("under budget"), "Answered.");
    }
    let refused = ask_in_workspace(&h, "one more")
        .await
        .expect_err("the budget is spent");
    assert_eq!(
        refused.to_string(),
        "Daily budget reached: this workspace has spent its USD 0.05 for today (UTC). Try again in 12 h 0 min, after midnight UTC."
    );
    assert_eq!(refused.retry_after(), Duration::from_secs(12 * 3600));
    // Later the same day: still refused.
    clock.advance(Duration::from_secs(11 * 3600));
    assert!(ask_in_workspace(&h, "one more").await.is_err());
    // The next day the budget is fresh.
    clock.advance(Duration::from_secs(3600 + 1));
    let answer = ask_in_workspace(&h, "a new day").await;
    assert_eq!(answer.expect("a new day's budget"), "Answered.");
    assert_eq!(provider.received().len(), 4);
}

/// Waits until the gateway's link has found Redis again: each request is
/// a probe, and the link is up once one of them got through.
async fn wait_for_redis(h: &Harness, user: &str) {
    let link = link_of(h);
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0.. {
        h.ask(ask(user, &format!("probe {i}"))).await;
        if !link.is_down() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis did not come back within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn redis_killed_fail_open_keeps_answering_then_shared_limits_and_cache_return() {
    let mut server = RedisServer::start();
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("Still here.".into(), (5, 1)));
    let config = format!(
        "{}\n{}\n[limits.user]\nrequests_per_minute = 4\n",
        one_provider(&provider.url),
        redis_section(&server.url(), "open")
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let a = start(&config, &clock).await;
    let b = start(&config, &clock).await;

    // Shared: alice's four requests on A use up her allowance on B too.
    for i in 0..4 {
        assert_eq!(a.ask(ask("alice", &format!("a{i}"))).await.status, 200);
    }
    assert_eq!(b.ask(ask("alice", "b")).await.status, 429);

    server.kill();
    // Requests keep being answered, promptly, under in-process limits.
    for i in 0..4 {
        let sent = Instant::now();
        let answer = a.ask(ask("erin", &format!("outage {i}"))).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "a request waited {:?} on a dead Redis",
            sent.elapsed()
        );
    }
    assert_eq!(a.ask(ask("erin", "outage 5")).await.status, 429);
    assert!(link_of(&a).fallbacks() > 0, "the fallback is counted");
    assert!(link_of(&a).is_down());

    server.restart();
    wait_for_redis(&a, "probe-a").await;
    wait_for_redis(&b, "probe-b").await;

    // Shared limits again, without a restart of either gateway.
    for i in 0..4 {
        assert_eq!(a.ask(ask("dave", &format!("d{i}"))).await.status, 200);
    }
    let refused = b.ask(ask("dave", "from b")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);

    // The shared cache works again: A's answer serves B.
    let asked = provider.received().len();
    let first = a.ask(ask("frank", "Cached across replicas?")).await;
    assert_eq!(first.status, 200);
    let second = b.ask(ask("grace", "Cached across replicas?")).await;
    assert_eq!(second.status, 200);
    assert_eq!(provider.received().len(), asked + 1);
    assert!(b.row(&second.inference_id()).await.cache_hit);
}

#[tokio::test]
async fn redis_killed_fail_closed_refuses_clearly_then_recovers() {
    let mut server = RedisServer::start();
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("Answered.".into(), (5, 1)));
    let config = format!(
        "{}\n{}\n[limits.user]\nrequests_per_minute = 100\n",
        one_provider(&provider.url),
        redis_section(&server.url(), "closed")
    );
    let clock = Arc::new(ManualClock::new(NOON_US));
    let h = start(&config, &clock).await;
    assert_eq!(h.ask(ask("alice", "before")).await.status, 200);

    server.kill();
    let sent = Instant::now();
    let refused = h.ask(ask("alice", "during")).await;
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.headers.contains_key("retry-after"));
    let text = message(&refused);
    assert!(
        text.contains("rate limits cannot be checked")
            && text.contains("redis.on_failure = \"closed\"")
            && text.contains(&format!("127.0.0.1:{}", server.port)),
        "{text}"
    );
    let row = h.row(&refused.inference_id()).await;
    assert_eq!(row.status, "error");
    assert_eq!(provider.received().len(), 1, "no model was asked");

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = h.ask(ask("alice", "after")).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(
            Instant::now() < deadline,
            "still refused 15 s after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn replicas_agree_on_which_events_were_already_handled() {
    let config = RedisConfig {
        url: Some(shared_url()),
        key_prefix: format!("test-{}:", uuid::Uuid::now_v7().simple()),
        ..RedisConfig::default()
    };
    let replicas: Vec<Arc<EventDedupe>> = (0..3)
        .map(|_| {
            let link = RedisLink::from_config(&config).expect("link");
            Arc::new(EventDedupe::new(link))
        })
        .collect();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let d = replicas[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            d.first_seen("slack:Ev42", Duration::from_millis(500)).await
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        if t.await.expect("task").expect("Redis answers") {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1, "exactly one replica handles the event");
    // After the TTL, the id is forgotten.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        replicas[0]
            .first_seen("slack:Ev42", Duration::from_millis(500))
            .await
            .expect("Redis answers")
    );
}
