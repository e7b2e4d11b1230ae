//! Prompt resolution and rendering on the request path.
//!
//! Builds a registry on SQLite in a temporary folder with a typical support
//! prompt (a system message with a few variables and a conditional, the
//! history placeholder and the user turn) bound to a channel, then times
//! the pipeline's resolve + render stages for a Slack message with 20
//! history messages, one call at a time. The baseline, in the same run, is
//! rendering without the registry's compiled cache (parsing the templates
//! for every request, which is what a registry without it would do).
//! Prints p50 / p99 / max for each and their ratio. Run it in release mode:
//!
//!     cargo run --release -p switchboard-ops --bin bench_prompts [ITERATIONS]

use std::time::{Duration, Instant};

use anyhow::Context;
use gateway::domain::{Input, Request};
use gateway::promptops::admin::{Actor, Admin, Command};
use gateway::registry::Scope;
use gateway::{ChatMessage, Inbound, Origin, Role};
use prompts::{Prompt, RenderContext, Turn};

const PROMPT: &str = r#"
name = "support"
description = "Answers product questions in the support channel."
model = "default"
[params]
temperature = 0.2
max_tokens = 512
[variables]
product = "The product being supported."
[[messages]]
role = "system"
template = """
You are {{ bot_name }}, the support assistant for {{ product or "our product" }} in #{{ channel_name }} on {{ platform }}.
Today is {{ today }}. You are talking with {{ user_name }}.
{% if attachments %}They attached:
{{ attachments }}
{% endif %}Answer in at most three short paragraphs. If you are unsure, say so and suggest filing a ticket."""
[[messages]]
role = "history"
[[messages]]
role = "user"
template = "{{ text }}"
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let dir =
        std::env::temp_dir().join(format!("switchboard-bench-prompts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create the benchmark's data folder")?;
    let config = gateway::Config::from_parts(
        "bench",
        &format!(
            "data_dir = {:?}\n[providers.none]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[models.default]\ntargets = [\"none/m\"]\n",
            dir.display().to_string()
        ),
        Vec::new(),
    )?;
    let app = gateway::Gateway::build(&config).await?;
    let admin = Admin::new(app.registry.clone(), None, config.admin.clone());
    let operator = Actor::cli("bench");
    let prompt = Prompt::from_toml("support.toml", PROMPT)?;
    admin
        .run(
            &operator,
            Command::Create {
                prompt: prompt.clone(),
                message: "bench".into(),
            },
        )
        .await?;
    admin
        .run(
            &operator,
            Command::Promote {
                name: "support".into(),
                version: 1,
                label: "production".into(),
            },
        )
        .await?;
    admin
        .run(
            &operator,
            Command::Bind {
                scope: Scope::parse("slack/T1/C1")?,
                target: Some(("support".into(), "production".into())),
            },
        )
        .await?;

    let history: Vec<ChatMessage> = (0..20)
        .map(|i| {
            let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
            ChatMessage::new(role, format!("Message {i} of the thread, about an order that has not arrived and what to do next."))
        })
        .collect();
    let inbound = Inbound {
        origin: Origin {
            platform: "slack".into(),
            workspace: Some("T1".into()),
            channel: Some("C1".into()),
            thread: Some("1700000000.000100".into()),
            user: Some(gateway::User::new("slack", "U123")),
            private: false,
            label: None,
        },
        user_name: Some("Ada".into()),
        channel_name: Some("support".into()),
        workspace_name: Some("Acme".into()),
        text: "Where is my order #1234? {{ this stays literal }}".into(),
        history: history.clone(),
        attachments: Vec::new(),
        images: Vec::new(),
        is_admin: false,
        confirms: false,
    };
    let mut request = Request::new(inbound.origin.clone(), Input::Chat(inbound.clone()));
    request
        .variables
        .insert("product".into(), "Acme Cloud".into());

    // The registry path: resolve (binding → label → version) + render.
    let preview = app.pipeline.preview(&request).await?;
    anyhow::ensure!(
        preview.prompt == Some(("support".into(), 1)) && preview.messages.len() == 22,
        "unexpected preview: {:?}",
        preview.prompt
    );
    let registry = time(iterations, || async {
        let p = app.pipeline.preview(&request).await;
        std::hint::black_box(p.map(|p| p.messages.len()).unwrap_or(0));
    })
    .await;

    // Baseline: the same render, parsing the templates every time.
    let ctx = RenderContext {
        text: inbound.text.clone(),
        history: history
            .iter()
            .map(|m| Turn {
                role: m.role.as_str().into(),
                name: None,
                content: m.content.clone(),
            })
            .collect(),
        variables: [
            ("bot_name", "Switchboard"),
            ("product", "Acme Cloud"),
            ("channel_name", "support"),
            ("platform", "slack"),
            ("today", "2026-11-28"),
            ("user_name", "Ada"),
            ("attachments", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let baseline = time(iterations / 10, || async {
        std::hint::black_box(prompt.render(&ctx).map(|m| m.len()).unwrap_or(0));
    })
    .await;

    println!("resolve + render, typical prompt, 20 history messages ({iterations} calls)");
    println!(
        "{:<40} {:>9} {:>9} {:>9}",
        "path", "p50 µs", "p99 µs", "max µs"
    );
    for (name, t) in [
        ("registry (compiled, snapshot)", &registry),
        ("baseline (parse templates per request)", &baseline),
    ] {
        println!(
            "{name:<40} {:>9.2} {:>9.2} {:>9.2}",
            us(t, 0.50),
            us(t, 0.99),
            us(t, 1.0)
        );
    }
    println!(
        "ratio registry / baseline: p50 {:.2}x, p99 {:.2}x (target: registry p99 <= 50 µs)",
        us(&registry, 0.50) / us(&baseline, 0.50),
        us(&registry, 0.99) / us(&baseline, 0.99)
    );
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs `f` `n` times (after a warm-up), returning sorted durations.
async fn time<F, Fut>(n: usize, f: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        f().await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn us(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}
