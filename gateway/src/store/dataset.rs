//! Reading logged conversations back as a dataset: the inferences that
//! match a filter (all, the oldest N, or a random sample of N), each with
//! its messages and its current 👍 / 👎, oldest first. Exports (and
//! evaluation) start here.

use sqlx::Row;

use super::{Store, StoreError};

/// Which inferences to read. Unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct DatasetFilter {
    /// Only this prompt.
    pub prompt: Option<String>,
    /// Only this version of it.
    pub version: Option<i64>,
    /// Only versions that came through this label.
    pub label: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only answers whose current thumbs vote is up (`Some(true)`) or down.
    pub thumbs: Option<bool>,
    /// From this time (Unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// At most this many (the oldest first).
    pub limit: Option<i64>,
    /// A random sample of this many instead (still returned oldest first).
    /// Wins over `limit`.
    pub sample: Option<i64>,
}

/// One logged conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The inference id.
    pub id: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Platform.
    pub platform: String,
    /// Channel.
    pub channel: Option<String>,
    /// User.
    pub user: Option<String>,
    /// The user's display name, when a chat platform gave one.
    pub user_name: Option<String>,
    /// Prompt name.
    pub prompt: Option<String>,
    /// Prompt version.
    pub version: Option<i64>,
    /// Model.
    pub model: Option<String>,
    /// Token counts.
    pub input_tokens: Option<i64>,
    /// Token counts.
    pub output_tokens: Option<i64>,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Cost.
    pub cost_usd: Option<f64>,
    /// The messages sent: (role, content).
    pub input: Vec<(String, String)>,
    /// The answer.
    pub output: Option<String>,
    /// The results of the tools Switchboard ran for the answer, as the
    /// model was given them.
    pub tool_results: Vec<crate::domain::RecordedToolResult>,
    /// The mean of the current thumbs votes (1 up, 0 down), if any.
    pub thumbs: Option<f64>,
}

impl Example {
    /// The conversation up to and including the question, without the
    /// steps of the answer's own tool calls (which came after it): what a
    /// replay or a training line starts from.
    pub fn conversation(&self) -> &[(String, String)] {
        let question = self
            .input
            .iter()
            .rposition(|(role, _)| role == "user")
            .map_or(self.input.len(), |i| i + 1);
        &self.input[..question]
    }
}

impl Store {
    /// Answered (status `ok`, live) inferences matching `filter`, oldest first.
    pub async fn dataset(&self, filter: &DatasetFilter) -> Result<Vec<Example>, StoreError> {
        let thumbs = "(SELECT AVG(f.score) FROM feedback f WHERE f.inference_id = i.id \
                      AND f.kind = 'thumbs' AND f.replaced_by IS NULL)";
        let mut sql = format!(
            "SELECT i.id, i.created_at, i.platform, i.channel, i.user_id, i.prompt_name, i.prompt_version, \
             i.model, i.input_tokens, i.output_tokens, i.ttft_ms, i.cost_usd, {thumbs}, i.messages, i.user_name \
             FROM inferences i WHERE i.status = 'ok' AND i.purpose = 'live'"
        );
        let mut text: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        // Text parameters first ($1…), then numbers; each condition names its slot.
        let mut conditions: Vec<String> = Vec::new();
        for (column, value) in [
            ("i.prompt_name", &filter.prompt),
            ("i.prompt_label", &filter.label),
            ("i.channel", &filter.channel),
        ] {
            if let Some(v) = value {
                text.push(v.clone());
                conditions.push(format!("{column} = $T{}", text.len()));
            }
        }
        for (condition, value) in [
            ("i.prompt_version = $N", filter.version),
            ("i.created_at >= $N", filter.since_ms),
            ("i.created_at < $N", filter.until_ms),
        ] {
            if let Some(v) = value {
                numbers.push(v);
                conditions.push(condition.replace("$N", &format!("$N{}", numbers.len())));
            }
        }
        for c in &conditions {
            let c = renumber(c, text.len());
            sql.push_str(" AND ");
            sql.push_str(&c);
        }
        match filter.thumbs {
            Some(true) => sql.push_str(&format!(" AND {thumbs} >= 0.5")),
            Some(false) => sql.push_str(&format!(" AND {thumbs} < 0.5")),
            None => {}
        }
        match (filter.sample, filter.limit) {
            // `random()` in both SQLite and PostgreSQL; sorted below.
            (Some(n), _) => sql.push_str(&format!(" ORDER BY random() LIMIT {}", n.max(0))),
            (None, limit) => {
                sql.push_str(" ORDER BY i.created_at, i.id");
                if let Some(limit) = limit {
                    sql.push_str(&format!(" LIMIT {}", limit.max(0)));
                }
            }
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in &text {
            query = query.bind(t.clone());
        }
        for n in &numbers {
            query = query.bind(*n);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let mut input = Vec::new();
            let mut output = None;
            let stored: String = r.try_get(13)?;
            let tool_results = super::ingest::parse_tool_results(&id, &stored)?;
            for (direction, role, content) in super::ingest::parse_messages(&id, &stored)? {
                if direction == "output" {
                    output = Some(content);
                } else {
                    input.push((role, content));
                }
            }
            out.push(Example {
                id,
                created_at_ms: r.try_get(1)?,
                platform: r.try_get(2)?,
                channel: r.try_get(3)?,
                user: r.try_get(4)?,
                user_name: r.try_get(14)?,
                prompt: r.try_get(5)?,
                version: r.try_get(6)?,
                model: r.try_get(7)?,
                input_tokens: r.try_get(8)?,
                output_tokens: r.try_get(9)?,
                ttft_ms: r.try_get(10)?,
                cost_usd: r.try_get(11)?,
                input,
                output,
                tool_results,
                thumbs: r.try_get(12)?,
            });
        }
        if filter.sample.is_some() {
            out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        }
        Ok(out)
    }
}

/// `$T3` → `$3`, `$N2` → `$(texts + 2)`.
fn renumber(condition: &str, texts: usize) -> String {
    if let Some((head, n)) = condition.split_once("$T") {
        return format!("{head}${n}");
    }
    if let Some((head, n)) = condition.split_once("$N") {
        let n: usize = n.parse().unwrap_or(0);
        return format!("{head}${}", texts + n);
    }
    condition.to_string()
}
