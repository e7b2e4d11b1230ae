//! Feedback review: the answers users disliked (a current 👎) or commented
//! on, each with its whole conversation, so a reviewer can mark them
//! reviewed and collect the instructive ones into named datasets.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use minijinja::context;
use serde::Serialize;

use super::session::{Reader, Session};
use super::{Dashboard, DashboardError, v, when};
use crate::domain::now_ms;

/// How many answers one page shows.
const PAGE: i64 = 50;

/// `GET /dashboard/feedback` (`?reviewed=1` for the reviewed ones).
pub async fn list(
    State(d): State<Dashboard>,
    Reader(session): Reader,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, DashboardError> {
    let reviewed = q.get("reviewed").is_some_and(|v| v == "1");
    page(&d, &session, reviewed, StatusCode::OK, None).await
}

async fn page(
    d: &Dashboard,
    session: &Session,
    reviewed: bool,
    status: StatusCode,
    notice: Option<(bool, String)>,
) -> Result<Response, DashboardError> {
    #[derive(Serialize)]
    struct Item {
        id: String,
        created: String,
        place: String,
        prompt: String,
        thumbs_down: i64,
        reviewed_by: Option<String>,
        messages: Vec<(String, String)>,
        comments: Vec<(String, String)>,
        datasets: Vec<String>,
        /// What retrieval gave the model: (`[n] title › heading`, source,
        /// cited).
        retrieved: Vec<(String, String, bool)>,
        /// The tools Switchboard ran for it, one line each (`name(arguments)
        /// · size · time`, and how a failed or refused one ended).
        tools: Vec<String>,
    }
    let mut items = Vec::new();
    for r in d.store.review_queue(reviewed, PAGE).await? {
        let stored = d.store.inference(&r.id).await?;
        let retrieved = stored
            .as_ref()
            .and_then(|i| i.retrieval.as_deref())
            .and_then(|j| serde_json::from_str::<crate::domain::RetrievalRecord>(j).ok())
            .map(|rec| {
                rec.chunks
                    .into_iter()
                    .map(|c| {
                        let mut label = format!("[{}] {}", c.number, c.title);
                        if !c.heading.is_empty() {
                            label.push_str(&format!(" › {}", c.heading));
                        }
                        (label, c.source, c.cited)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tools = stored
            .as_ref()
            .and_then(|i| i.tool_calls.as_deref())
            .and_then(|j| serde_json::from_str::<Vec<crate::domain::ToolCallRecord>>(j).ok())
            .map(|calls| calls.iter().map(tool_line).collect())
            .unwrap_or_default();
        let messages = stored
            .map(|i| {
                i.messages
                    .into_iter()
                    .map(|(_, role, content)| (role, content))
                    .collect()
            })
            .unwrap_or_default();
        let comments = d
            .store
            .comments(&r.id)
            .await?
            .into_iter()
            .map(|(user, c)| (user.unwrap_or_else(|| "someone".into()), c))
            .collect();
        items.push(Item {
            created: when(r.created_at_ms),
            place: match &r.channel {
                Some(c) => format!("{} #{c}", r.platform),
                None => r.platform.clone(),
            },
            prompt: match (&r.prompt, r.version) {
                (Some(p), Some(v)) => format!("{p} v{v}"),
                (Some(p), None) => p.clone(),
                _ => "(no prompt)".into(),
            },
            thumbs_down: r.thumbs_down,
            reviewed_by: r.reviewed_by,
            datasets: d.store.datasets_of(&r.id).await?,
            messages,
            comments,
            retrieved,
            tools,
            id: r.id,
        });
    }
    let datasets = d.store.datasets().await?;
    let mut out = d.render(
        "feedback.html",
        context! {
            title => "Feedback review",
            me => &session.account,
            csrf => &session.csrf,
            reviewed => reviewed,
            items => v(items),
            datasets => v(datasets),
            notice => v(notice),
        },
    )?;
    *out.status_mut() = status;
    Ok(out)
}

/// One tool call as the answer's card shows it.
fn tool_line(c: &crate::domain::ToolCallRecord) -> String {
    let mut line = format!(
        "{}({}) · {} B{} · {:.0} ms",
        c.name,
        c.arguments,
        c.result_bytes,
        if c.truncated { " (cut)" } else { "" },
        c.ms
    );
    if let Some(a) = &c.approval {
        line.push_str(&format!(" · {a}"));
    }
    if let Some(e) = &c.error {
        line.push_str(&format!(" · failed: {e}"));
    }
    line
}

/// `POST /dashboard/feedback/{id}/reviewed`.
pub async fn mark_reviewed(
    State(d): State<Dashboard>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DashboardError> {
    if let Err(refusal) = session
        .verified_form(&body)
        .and_then(|_| d.may_edit(&session))
    {
        return Ok(refusal.into_response());
    }
    if !d.store.inference_exists(&id).await? {
        return Err(DashboardError::NotFound(format!(
            "there is no answer `{id}`"
        )));
    }
    d.store
        .mark_reviewed(&id, &format!("dashboard:{}", session.account), now_ms())
        .await?;
    page(
        &d,
        &session,
        false,
        StatusCode::OK,
        Some((true, format!("Marked {id} reviewed."))),
    )
    .await
}

/// `POST /dashboard/feedback/{id}/dataset` (`dataset`).
pub async fn add_to_dataset(
    State(d): State<Dashboard>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DashboardError> {
    let form = match session
        .verified_form(&body)
        .and_then(|f| d.may_edit(&session).map(|()| f))
    {
        Ok(f) => f,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let name = form.get("dataset").map(|s| s.trim()).unwrap_or_default();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return page(
            &d,
            &session,
            false,
            StatusCode::BAD_REQUEST,
            Some((
                false,
                format!(
                    "`{name}` is not a dataset name: use 1–64 letters, digits, `-`, `_` or `.`"
                ),
            )),
        )
        .await;
    }
    if !d.store.inference_exists(&id).await? {
        return Err(DashboardError::NotFound(format!(
            "there is no answer `{id}`"
        )));
    }
    let added = d
        .store
        .add_to_dataset(
            name,
            &id,
            &format!("dashboard:{}", session.account),
            now_ms(),
        )
        .await?;
    let notice = if added {
        format!("Added {id} to the dataset {name}.")
    } else {
        format!("{id} is already in the dataset {name}.")
    };
    page(&d, &session, false, StatusCode::OK, Some((true, notice))).await
}
