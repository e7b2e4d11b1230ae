//! The prompt pages: every prompt with its labels; one prompt's versions
//! with their figures side by side (the table that decides a promote),
//! promote and rollback forms, the diff between any two versions, and the
//! prompt's evaluation runs with their reports. Changes go through the
//! admin command layer, which checks rights and writes the audit log.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use minijinja::context;
use serde::Serialize;

use super::figures;
use super::session::{Reader, Session};
use super::{Dashboard, DashboardError, admin_error_text, v, when};
use crate::domain::Selector;
use crate::promptops::admin::{AdminError, Command, Section};
use crate::registry::RegistryError;

/// `GET /dashboard/prompts`.
pub async fn list(
    State(d): State<Dashboard>,
    Reader(session): Reader,
) -> Result<Response, DashboardError> {
    #[derive(Serialize)]
    struct Item {
        name: String,
        latest: i64,
        labels: Vec<(String, String)>,
        bound: Vec<String>,
    }
    let items: Vec<Item> = d
        .admin
        .registry()
        .list()
        .into_iter()
        .map(|p| Item {
            labels: p
                .labels
                .iter()
                .map(|(l, arms)| (l.clone(), arms_text(arms)))
                .collect(),
            bound: p.bound.iter().map(|(s, l)| format!("{s} → {l}")).collect(),
            name: p.name,
            latest: p.latest,
        })
        .collect();
    d.render(
        "prompts.html",
        context! { title => "Prompts", me => &session.account, csrf => &session.csrf, prompts => v(items) },
    )
}

fn arms_text(arms: &[prompts::Arm]) -> String {
    match arms {
        [one] => format!("v{}", one.version),
        _ => arms
            .iter()
            .map(|a| format!("v{} ({}%)", a.version, a.weight))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `GET /dashboard/prompts/{name}`.
pub async fn show(
    State(d): State<Dashboard>,
    Reader(session): Reader,
    Path(name): Path<String>,
) -> Result<Response, DashboardError> {
    prompt_page(&d, &session, &name, StatusCode::OK, None).await
}

/// A prompt's page, with the outcome of an action when there was one.
async fn prompt_page(
    d: &Dashboard,
    session: &Session,
    name: &str,
    status: StatusCode,
    notice: Option<(bool, String)>,
) -> Result<Response, DashboardError> {
    #[derive(Serialize)]
    struct VersionItem {
        version: i64,
        message: String,
        author: String,
        created: String,
        labels: Vec<String>,
        f: std::collections::BTreeMap<&'static str, String>,
    }
    let registry = d.admin.registry();
    let info = registry
        .list()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| DashboardError::NotFound(format!("there is no prompt `{name}`")))?;
    let versions = registry.versions(name).await.map_err(|e| match e {
        RegistryError::Store(s) => DashboardError::Store(s),
        other => DashboardError::NotFound(other.to_string()),
    })?;
    let rows = d.store.traffic(0, Some(name)).await?;
    let per_version = figures::by(&rows, |r| r.version.map(|v| v.to_string()));
    let items: Vec<VersionItem> = versions
        .iter()
        .map(|row| {
            let f = per_version
                .iter()
                .find(|(k, _)| *k == row.version.to_string())
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            VersionItem {
                version: row.version,
                message: row.message.clone(),
                author: row.author.clone(),
                created: when(row.created_at_ms),
                labels: info
                    .labels
                    .iter()
                    .filter(|(_, arms)| arms.iter().any(|a| a.version == row.version))
                    .map(|(l, arms)| match arms.as_slice() {
                        [_] => l.clone(),
                        _ => format!(
                            "{l} ({}%)",
                            arms.iter()
                                .find(|a| a.version == row.version)
                                .map_or(0, |a| a.weight)
                        ),
                    })
                    .collect(),
                f: figures::display(&f),
            }
        })
        .collect();
    let mut label_names: Vec<String> = info.labels.keys().cloned().collect();
    for l in ["production", "staging"] {
        if !label_names.iter().any(|x| x == l) {
            label_names.push(l.to_string());
        }
    }
    let labels: Vec<(String, String)> = info
        .labels
        .iter()
        .map(|(l, arms)| (l.clone(), arms_text(arms)))
        .collect();
    let evals: Vec<HashMap<&str, String>> = d
        .store
        .eval_runs(name)
        .await?
        .into_iter()
        .map(|(id, candidate, baseline, summary)| {
            let s: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
            let win = s["win_rate"].as_f64().map_or("–".into(), figures::percent);
            let ci = match (s["win_rate_ci"][0].as_f64(), s["win_rate_ci"][1].as_f64()) {
                (Some(lo), Some(hi)) => {
                    format!("{} – {}", figures::percent(lo), figures::percent(hi))
                }
                _ => "–".into(),
            };
            HashMap::from([
                ("id", id),
                ("candidate", candidate),
                ("baseline", baseline),
                ("win_rate", win),
                ("ci", ci),
                ("examples", s["examples"].to_string()),
                ("errors", s["errors"].to_string()),
            ])
        })
        .collect();
    let mut page = d.render(
        "prompt.html",
        context! {
            title => format!("Prompt {name}"),
            me => &session.account,
            csrf => &session.csrf,
            name => name,
            latest => info.latest,
            versions => v(items),
            labels => v(labels),
            label_names => v(label_names),
            evals => v(evals),
            notice => v(notice),
        },
    )?;
    *page.status_mut() = status;
    Ok(page)
}

/// `GET /dashboard/prompts/{name}/diff?from=A&to=B` (versions or labels).
pub async fn diff(
    State(d): State<Dashboard>,
    Reader(session): Reader,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, DashboardError> {
    let from = q.get("from").map_or("production", String::as_str);
    let to = q.get("to").map_or("latest", String::as_str);
    let command = Command::Diff {
        name: name.clone(),
        from: Selector::parse(from),
        to: Selector::parse(to),
    };
    let (status, summary, lines) = match d.admin.run(&session.actor(), command).await {
        Ok(out) => {
            let text = out
                .sections
                .iter()
                .find_map(|s| match s {
                    Section::Code { text, .. } => Some(text.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let lines: Vec<(&'static str, String)> = text
                .lines()
                .map(|l| {
                    let kind = if l.starts_with("+++") || l.starts_with("---") {
                        "head"
                    } else if l.starts_with('+') {
                        "add"
                    } else if l.starts_with('-') {
                        "del"
                    } else if l.starts_with("@@") {
                        "hunk"
                    } else {
                        "same"
                    };
                    (kind, l.to_string())
                })
                .collect();
            (StatusCode::OK, out.summary, lines)
        }
        Err(e) => (error_status(&e), admin_error_text(&e), Vec::new()),
    };
    let versions: Vec<i64> = d
        .admin
        .registry()
        .versions(&name)
        .await
        .map(|rows| rows.iter().map(|r| r.version).collect())
        .unwrap_or_default();
    let mut page = d.render(
        "diff.html",
        context! {
            title => format!("Diff of {name}"),
            me => &session.account,
            csrf => &session.csrf,
            name => &name,
            from => from,
            to => to,
            versions => v(versions),
            summary => summary,
            lines => v(lines),
        },
    )?;
    *page.status_mut() = status;
    Ok(page)
}

fn error_status(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Forbidden { .. } => StatusCode::FORBIDDEN,
        AdminError::Registry(RegistryError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Runs a label change for the signed-in account and shows the prompt's
/// page with what happened.
async fn change(
    d: &Dashboard,
    session: &Session,
    name: &str,
    command: Result<Command, String>,
) -> Result<Response, DashboardError> {
    let (status, notice) = match command {
        Ok(command) => match d.admin.run(&session.actor(), command).await {
            Ok(out) => (StatusCode::OK, (true, out.summary)),
            Err(e) => (error_status(&e), (false, admin_error_text(&e))),
        },
        Err(why) => (StatusCode::BAD_REQUEST, (false, why)),
    };
    tracing::info!(account = %session.account, prompt = name, ok = notice.0, "dashboard label change");
    prompt_page(d, session, name, status, Some(notice)).await
}

/// `POST /dashboard/prompts/{name}/promote` (`version`, `label`, `csrf`).
pub async fn promote(
    State(d): State<Dashboard>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, DashboardError> {
    let form = match session
        .verified_form(&body)
        .and_then(|f| d.may_edit(&session).map(|()| f))
    {
        Ok(f) => f,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let command = version_field(&form, "version").and_then(|v| {
        let v = v.ok_or("choose the version to promote")?;
        Ok(Command::Promote {
            name: name.clone(),
            version: v,
            label: label_field(&form)?,
        })
    });
    change(&d, &session, &name, command).await
}

/// `POST /dashboard/prompts/{name}/rollback` (`label`, optional `to`, `csrf`).
pub async fn rollback(
    State(d): State<Dashboard>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, DashboardError> {
    let form = match session
        .verified_form(&body)
        .and_then(|f| d.may_edit(&session).map(|()| f))
    {
        Ok(f) => f,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let command = version_field(&form, "to").and_then(|to| {
        Ok(Command::Rollback {
            name: name.clone(),
            label: label_field(&form)?,
            to,
        })
    });
    change(&d, &session, &name, command).await
}

fn version_field(form: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    match form.get(key).map(|s| s.trim().trim_start_matches('v')) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("`{s}` is not a version number")),
    }
}

fn label_field(form: &HashMap<String, String>) -> Result<String, String> {
    let label = form
        .get("label")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .unwrap_or(crate::registry::PRODUCTION);
    if label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(label.to_string())
    } else {
        Err(format!(
            "`{label}` is not a label name (letters, digits, `-`, `_`, `.`)"
        ))
    }
}

/// `GET /dashboard/evals/{id}`: one evaluation run's report.
pub async fn eval_report(
    State(d): State<Dashboard>,
    Reader(session): Reader,
    Path(id): Path<String>,
) -> Result<Response, DashboardError> {
    let run =
        d.store.eval_run(&id).await?.ok_or_else(|| {
            DashboardError::NotFound(format!("there is no evaluation run `{id}`"))
        })?;
    let report: serde_json::Value = serde_json::from_str(&run.report).unwrap_or_default();
    let headline = {
        let wins = report["wins"].as_u64().unwrap_or(0);
        let losses = report["losses"].as_u64().unwrap_or(0);
        let ties = report["ties"].as_u64().unwrap_or(0);
        format!(
            "{} examples; candidate won {wins}, lost {losses}, tied {ties}; win rate {} (95% CI {})",
            report["examples"].as_u64().unwrap_or(0),
            report["win_rate"]
                .as_f64()
                .map_or("–".into(), figures::percent),
            match (
                report["win_rate_ci"][0].as_f64(),
                report["win_rate_ci"][1].as_f64()
            ) {
                (Some(lo), Some(hi)) =>
                    format!("{} – {}", figures::percent(lo), figures::percent(hi)),
                _ => "–".into(),
            }
        )
    };
    let rows: Vec<HashMap<&str, String>> = report["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    HashMap::from([
                        ("question", r["question"].as_str().unwrap_or("").to_string()),
                        ("verdict", r["verdict"].as_str().unwrap_or("–").to_string()),
                        ("candidate", answer(&r["candidate"])),
                        ("candidate_score", score(&r["candidate"]["score"])),
                        ("baseline", answer(&r["baseline"])),
                        ("baseline_score", score(&r["baseline"]["score"])),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let measures: Vec<HashMap<&str, String>> = report["measures"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    HashMap::from([
                        ("measure", text(&m[0])),
                        ("candidate", text(&m[1])),
                        ("baseline", text(&m[2])),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    d.render(
        "eval.html",
        context! {
            title => format!("Evaluation of {}", run.prompt),
            me => &session.account,
            csrf => &session.csrf,
            run => v(HashMap::from([
                ("id", run.id.clone()),
                ("prompt", run.prompt.clone()),
                ("candidate", run.candidate.clone()),
                ("baseline", run.baseline.clone()),
                ("created", when(run.created_at_ms)),
            ])),
            headline => headline,
            rubric => report["rubric"].as_str(),
            measures => v(measures),
            rows => v(rows),
        },
    )
}

/// A rubric score and its reason, or "–" when the answer was not scored.
fn score(s: &serde_json::Value) -> String {
    if s.is_null() {
        return "–".into();
    }
    let value = s["score"].as_u64().map_or("?".into(), |v| v.to_string());
    format!("{value}: {}", s["reason"].as_str().unwrap_or(""))
}

fn answer(o: &serde_json::Value) -> String {
    match o["error"].as_str() {
        Some(e) => format!("(failed: {e})"),
        None => o["text"].as_str().unwrap_or("").to_string(),
    }
}
