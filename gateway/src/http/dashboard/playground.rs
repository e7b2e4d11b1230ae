//! The playground: answer one input with a saved version (or label) of a
//! prompt, or with an unsaved draft pasted as TOML, and see the answer,
//! its tokens, TTFT and cost. Runs are recorded as tests (`purpose =
//! 'test'`), so they never count in the figures.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use minijinja::context;

use super::figures;
use super::session::{Reader, Session};
use super::{Dashboard, DashboardError, v};
use crate::domain::ReplyEvent;
use crate::domain::{ChatMessage, Origin, Params, Role};
use crate::domain::{Input, Purpose, Request, Selector};
use crate::pipeline::PipelineError;
use crate::registry::{LATEST, RegistryError};

/// `GET /dashboard/playground`.
pub async fn form(
    State(d): State<Dashboard>,
    Reader(session): Reader,
) -> Result<Response, DashboardError> {
    render(&d, &session, &HashMap::new(), StatusCode::OK, None, None)
}

fn render(
    d: &Dashboard,
    session: &Session,
    form: &HashMap<String, String>,
    status: StatusCode,
    result: Option<HashMap<&'static str, String>>,
    error: Option<String>,
) -> Result<Response, DashboardError> {
    let names: Vec<String> = d
        .admin
        .registry()
        .list()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let mut page = d.render(
        "playground.html",
        context! {
            title => "Playground",
            me => &session.account,
            csrf => &session.csrf,
            prompts => v(names),
            prompt => field("prompt"),
            version => field("version"),
            draft => field("draft"),
            input => field("input"),
            result => v(result),
            error => error,
        },
    )?;
    *page.status_mut() = status;
    Ok(page)
}

/// `POST /dashboard/playground` (`prompt`, `version`, `draft`, `input`).
pub async fn run(
    State(d): State<Dashboard>,
    session: Session,
    body: Bytes,
) -> Result<Response, DashboardError> {
    let form = match session
        .verified_form(&body)
        .and_then(|f| d.may_edit(&session).map(|()| f))
    {
        Ok(f) => f,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    match answer(&d, &session, &form).await {
        Ok(result) => render(&d, &session, &form, StatusCode::OK, Some(result), None),
        Err(why) => render(
            &d,
            &session,
            &form,
            StatusCode::BAD_REQUEST,
            None,
            Some(why),
        ),
    }
}

/// Runs the request; the error is a message for the page.
async fn answer(
    d: &Dashboard,
    session: &Session,
    form: &HashMap<String, String>,
) -> Result<HashMap<&'static str, String>, String> {
    let text = form.get("input").map(|s| s.trim()).unwrap_or_default();
    if text.is_empty() {
        return Err("write an input for the prompt to answer".into());
    }
    let draft = form.get("draft").map(|s| s.trim()).unwrap_or_default();
    let origin = Origin {
        platform: "dashboard".into(),
        user: Some(crate::domain::User::new(
            "dashboard",
            session.account.clone(),
        )),
        ..Origin::default()
    };
    let mut request = if draft.is_empty() {
        let name = form.get("prompt").map(|s| s.trim()).unwrap_or_default();
        if name.is_empty() {
            return Err("choose a prompt, or paste a draft".into());
        }
        let version = form
            .get("version")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(LATEST);
        Request::new(
            origin,
            Input::Prompt {
                name: name.to_string(),
                selector: Some(Selector::parse(version)),
                messages: vec![ChatMessage::new(Role::User, text)],
            },
        )
    } else {
        let prompt = prompts::Prompt::from_toml("draft", draft).map_err(|e| e.to_string())?;
        let compiled = d
            .admin
            .registry()
            .validate(&prompt)
            .map_err(|e| e.to_string())?;
        let mut ctx = prompts::sample_context(&prompt);
        ctx.text = text.to_string();
        ctx.history.clear();
        ctx.variables
            .insert("bot_name".into(), "Switchboard".into());
        ctx.variables.insert("platform".into(), "dashboard".into());
        ctx.variables
            .insert("user_name".into(), session.account.clone());
        let messages = compiled
            .render(&ctx)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| ChatMessage::new(Role::parse(&m.role).unwrap_or(Role::User), m.content))
            .collect();
        let mut request = Request::new(
            origin,
            Input::Messages {
                alias: prompt.model.clone(),
                messages,
            },
        );
        request.params = Params {
            temperature: prompt.params.temperature,
            top_p: prompt.params.top_p,
            max_tokens: prompt.params.max_tokens,
            stop: prompt.params.stop.clone(),
            seed: None,
            ..Params::default()
        };
        request
    };
    request.purpose = Purpose::Test;
    let mut reply = d.pipeline.start(request).await.map_err(|e| match e {
        PipelineError::Prompt(RegistryError::Store(_)) => {
            super::went_wrong(&e, "dashboard playground failed")
        }
        other => other.to_string(),
    })?;
    let mut answer = String::new();
    while let Some(event) = reply.next_event().await {
        match event {
            ReplyEvent::Token(t) => answer.push_str(&t),
            ReplyEvent::Done(s) => {
                let or_dash = |x: Option<String>| x.unwrap_or_else(|| "–".into());
                return Ok(HashMap::from([
                    ("answer", answer),
                    (
                        "version",
                        s.prompt
                            .map_or("unsaved draft".into(), |(p, v)| format!("{p} v{v}")),
                    ),
                    ("model", or_dash(s.target)),
                    (
                        "input_tokens",
                        or_dash(s.usage.map(|u| u.input_tokens.to_string())),
                    ),
                    (
                        "output_tokens",
                        or_dash(s.usage.map(|u| u.output_tokens.to_string())),
                    ),
                    ("ttft", or_dash(s.ttft_ms.map(figures::ms))),
                    ("tpot", or_dash(s.tpot_ms.map(figures::ms))),
                    ("total", figures::ms(s.total_ms)),
                    ("cost", or_dash(s.cost_usd.map(figures::usd))),
                    ("id", s.inference_id.to_string()),
                    (
                        "retrieved",
                        s.retrieval
                            .as_ref()
                            .map(|r| r.describe())
                            .unwrap_or_default(),
                    ),
                ]));
            }
            ReplyEvent::Failed { message, .. } => {
                return Err(format!("the model failed: {message}"));
            }
            ReplyEvent::Started { .. }
            | ReplyEvent::ToolCall(_)
            | ReplyEvent::UsingTool(_)
            | ReplyEvent::Approval(_) => {}
        }
    }
    Err("the answer stopped without an end".into())
}
