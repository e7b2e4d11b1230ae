//! The overview page: how the bot is doing over the last days, as figures,
//! day-by-day charts, and tables by platform, channel, model and knowledge
//! source.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use minijinja::{Value, context};

use super::figures::{self, Figures};
use super::session::Reader;
use super::{Dashboard, DashboardError, charts};
use crate::domain::now_ms;

const DAY_MS: i64 = 86_400_000;

/// `GET /dashboard?days=N` (1–90, default 14).
pub async fn page(
    State(d): State<Dashboard>,
    Reader(session): Reader,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, DashboardError> {
    let days = query
        .get("days")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(14)
        .clamp(1, 90);
    let today = now_ms().div_euclid(DAY_MS) * DAY_MS;
    let since = today - (days - 1) * DAY_MS;
    let rows = d.store.traffic(since, None).await?;
    let total = figures::compute(&rows);
    let daily = figures::by_day(&rows, since, days);
    let series = |f: &dyn Fn(&Figures) -> Option<f64>| -> Vec<(String, Option<f64>)> {
        daily
            .iter()
            .map(|(day, fig)| (day.clone(), f(fig)))
            .collect()
    };
    let chart_list = [
        charts::bars(
            "Requests per day",
            &series(&|f| Some(f.requests as f64)),
            |v| format!("{v:.0}"),
        ),
        charts::bars(
            "👍 rate per day",
            &series(&|f| f.thumbs_rate),
            figures::percent,
        ),
        charts::bars("TTFT p50 per day", &series(&|f| f.ttft_p50), figures::ms),
        charts::bars("Cost per day", &series(&|f| Some(f.cost)), figures::usd),
        charts::bars(
            "Errors and refusals per day",
            &series(&|f| Some((f.errors + f.limited) as f64)),
            |v| format!("{v:.0}"),
        ),
    ]
    .into_iter()
    .map(Value::from_safe_string)
    .collect::<Vec<_>>();
    let table = |groups: Vec<(String, Figures)>| -> Vec<Value> {
        groups
            .iter()
            .map(|(k, f)| context! { key => k, f => super::v(figures::display(f)) })
            .collect()
    };
    let mut shown = figures::display(&total);
    shown.insert("cost_per_day", figures::usd(total.cost / days as f64));
    d.render(
        "overview.html",
        context! {
            title => "Overview",
            me => &session.account,
            csrf => &session.csrf,
            days => days,
            since => crate::domain::Utc::from_ms(since).date(),
            f => super::v(shown),
            charts => chart_list,
            by_platform => table(figures::by(&rows, |r| Some(r.platform.clone()))),
            by_channel => table(figures::by(&rows, |r| r.channel.clone())),
            by_model => table(figures::by(&rows, |r| r.model.clone())),
            by_source => table(figures::by_source(&rows)),
        },
    )
}
