//! The console adapter: `switchboard chat`, a conversation in the terminal
//! through the same pipeline the chat platforms use. Tokens are printed as
//! they arrive; `/good` and `/bad` record feedback on the last answer,
//! `/new` starts over, `/stats` shows the last answer's figures, `/prompt …`
//! runs an admin command (as the chat platforms' slash command does, acting
//! as the local operator), and Ctrl-C stops an answer in progress. Like
//! the chat adapters it runs with the handles it uses (`Console`), taken
//! from the gateway once when it starts, and its votes go through one
//! function (`vote`).

use std::io::Write;

use futures_util::StreamExt;
use gateway::domain::{FeedbackRecord, User, now_ms};
use gateway::domain::{Input, Request};
use gateway::promptops::admin::Admin;
use gateway::promptops::feedback::{FeedbackDoor, Verdict};
use gateway::{ChatMessage, Inbound, Origin, Pipeline, ReplyEvent, Role, Summary};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use gateway::Gateway as App;

/// What the console uses of the gateway.
struct Console {
    /// Answers questions.
    pipeline: Pipeline,
    /// Where votes go.
    door: FeedbackDoor,
    /// Runs `/prompt` commands.
    admin: Admin,
}

const HELP: &str = "Commands: /good, /bad (feedback on the last answer), /new (start over), /stats, /prompt … (manage prompts; /prompt help), /help, /quit";

/// Runs the chat until end of input or `/quit`.
pub async fn run(app: &App) -> anyhow::Result<()> {
    let console = Console {
        pipeline: app.pipeline.clone(),
        door: app.feedback.clone(),
        admin: app.admin.clone(),
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "console".into());
    let mut out = std::io::stdout();
    writeln!(out, "Switchboard chat. {HELP}")?;
    let mut history: Vec<ChatMessage> = Vec::new();
    let mut last: Option<Summary> = None;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let Some(line) = lines.next_line().await? else {
            writeln!(out)?;
            break;
        };
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/help" => writeln!(out, "{HELP}")?,
            "/new" => {
                history.clear();
                last = None;
                writeln!(out, "(new conversation)")?;
            }
            "/stats" => match &last {
                Some(s) => writeln!(out, "{}", stats(s))?,
                None => writeln!(out, "(no answer yet)")?,
            },
            "/good" | "/bad" => match &last {
                Some(s) => {
                    let up = line == "/good";
                    let verdict = vote(&console, s.inference_id, &user, up).await;
                    if verdict.taken() {
                        writeln!(
                            out,
                            "(recorded {} for answer {})",
                            if up { "👍" } else { "👎" },
                            s.inference_id
                        )?;
                    } else {
                        writeln!(out, "({})", verdict.reply(Some(up)))?;
                    }
                }
                None => writeln!(out, "(no answer to rate yet)")?,
            },
            text if text == "/prompt" || text.starts_with("/prompt ") => {
                let args = text.trim_start_matches("/prompt").trim();
                if args == "help" {
                    writeln!(out, "{}", gateway::promptops::admin::USAGE)?;
                    continue;
                }
                match gateway::promptops::admin::parse_command(args, None) {
                    Err(message) => writeln!(out, "{message}")?,
                    Ok(command) => {
                        match console
                            .admin
                            .run(&gateway::promptops::admin::Actor::cli(&user), command)
                            .await
                        {
                            Ok(output) => write!(out, "{}", output.to_text())?,
                            Err(e) => writeln!(out, "error: {e}")?,
                        }
                    }
                }
            }
            text if text.starts_with('/') => writeln!(out, "unknown command `{text}`. {HELP}")?,
            text => {
                let inbound = Inbound {
                    origin: Origin {
                        platform: "console".into(),
                        user: Some(User::new("console", user.clone())),
                        ..Origin::default()
                    },
                    user_name: Some(user.clone()),
                    text: text.to_string(),
                    history: history.clone(),
                    ..Inbound::default()
                };
                let origin = inbound.origin.clone();
                let answer = ask(
                    &console.pipeline,
                    Request::new(origin, Input::Chat(inbound)),
                    &mut out,
                )
                .await?;
                if let Some((answer, summary)) = answer {
                    history.push(ChatMessage::new(Role::User, text));
                    history.push(ChatMessage::new(Role::Assistant, answer));
                    last = Some(summary);
                }
            }
        }
    }
    Ok(())
}

/// Streams one answer to `out`. Returns the text and figures when it
/// completed; failures are printed.
async fn ask(
    pipeline: &Pipeline,
    request: Request,
    out: &mut impl Write,
) -> anyhow::Result<Option<(String, Summary)>> {
    let mut reply = match pipeline.start(request).await {
        Ok(r) => r,
        Err(e) => {
            writeln!(out, "error: {e}")?;
            return Ok(None);
        }
    };
    let mut text = String::new();
    loop {
        let event = tokio::select! {
            event = reply.next() => event,
            _ = tokio::signal::ctrl_c() => {
                writeln!(out, "\n(stopped)")?;
                return Ok(None);
            }
        };
        match event {
            None => return Ok(None),
            // The console cannot ask (`confirms` is off): never sent here.
            Some(
                ReplyEvent::Started { .. } | ReplyEvent::ToolCall(_) | ReplyEvent::Approval(_),
            ) => {}
            Some(ReplyEvent::UsingTool(name)) => {
                if !text.is_empty() && !text.ends_with('\n') {
                    writeln!(out)?;
                }
                writeln!(out, "(using {name}…)")?;
                out.flush()?;
            }
            Some(ReplyEvent::Token(t)) => {
                write!(out, "{t}")?;
                out.flush()?;
                text.push_str(&t);
            }
            Some(ReplyEvent::Done(summary)) => {
                writeln!(out)?;
                if !summary.citations.is_empty() {
                    writeln!(out, "Sources:")?;
                    for c in &summary.citations {
                        match &c.link {
                            Some(link) => writeln!(out, "  [{}] {} ({link})", c.number, c.label())?,
                            None => writeln!(out, "  [{}] {}", c.number, c.label())?,
                        }
                    }
                }
                return Ok(Some((text, summary)));
            }
            Some(ReplyEvent::Failed {
                message, partial, ..
            }) => {
                if partial {
                    writeln!(out)?;
                }
                writeln!(out, "error: {message}")?;
                return Ok(None);
            }
        }
    }
}

/// Takes a 👍 (`up`) or 👎 by `user` on an answer through the feedback
/// door. Every vote of the console goes through here.
async fn vote(console: &Console, inference_id: Uuid, user: &str, up: bool) -> Verdict {
    console
        .door
        .submit(FeedbackRecord {
            id: Uuid::now_v7(),
            inference_id,
            created_at_ms: now_ms(),
            kind: "thumbs".into(),
            score: Some(if up { 1.0 } else { 0.0 }),
            comment: None,
            user: Some(User::new("console", user)),
            source: "console".into(),
        })
        .await
}

fn stats(s: &Summary) -> String {
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0} ms"));
    let usage = s.usage.map_or("n/a".to_string(), |u| {
        format!("{} in / {} out", u.input_tokens, u.output_tokens)
    });
    let cost = s
        .cost_usd
        .map_or("n/a (no price configured)".to_string(), |c| {
            format!("${c:.6}")
        });
    format!(
        "model: {} ({})\nTTFT: {}\nTPOT: {}\ntotal: {:.0} ms\ntokens: {}\ncost: {}\ninference: {}",
        s.alias,
        s.target.as_deref().unwrap_or("n/a"),
        ms(s.ttft_ms),
        ms(s.tpot_ms),
        s.total_ms,
        usage,
        cost,
        s.inference_id
    )
}
