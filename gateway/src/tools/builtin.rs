//! The built-in tools, which need no server: `search_knowledge` (retrieval's
//! hybrid search, as the asker: only what they may see) and
//! `thread_history` (the earlier messages of the current thread that the
//! history window left out).

use serde_json::{Value, json};

use super::{CallContext, ToolError};
use crate::domain::ToolSpec;
use crate::knowledge::{Knowledge, SearchQuery};

/// How many chunks `search_knowledge` gives at most.
const SEARCH_TOP_K: usize = 5;

/// A built-in tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    SearchKnowledge,
    ThreadHistory,
}

impl Builtin {
    /// The built-in of this name.
    pub(crate) fn named(name: &str) -> Option<Builtin> {
        match name {
            "search_knowledge" => Some(Builtin::SearchKnowledge),
            "thread_history" => Some(Builtin::ThreadHistory),
            _ => None,
        }
    }

    /// What the model is told about it.
    pub(crate) fn spec(self) -> ToolSpec {
        match self {
            Builtin::SearchKnowledge => ToolSpec {
                name: "search_knowledge".into(),
                description: Some(
                    "Searches the team's own documents and chat threads. Returns numbered passages with their titles and links."
                        .into(),
                ),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to look for, in a few words."},
                        "source": {"type": "string", "description": "Only this knowledge source (optional)."}
                    },
                    "required": ["query"]
                }),
                strict: None,
            },
            Builtin::ThreadHistory => ToolSpec {
                name: "thread_history".into(),
                description: Some(
                    "Earlier messages of the current conversation that are not in view, oldest first."
                        .into(),
                ),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "How many of the latest earlier messages (default 50)."}
                    }
                }),
                strict: None,
            },
        }
    }

    /// Runs it.
    pub(crate) async fn call(
        self,
        arguments: &serde_json::Map<String, Value>,
        context: &CallContext<'_>,
        knowledge: Option<&Knowledge>,
    ) -> Result<String, ToolError> {
        match self {
            Builtin::SearchKnowledge => {
                let query = arguments
                    .get("query")
                    .and_then(Value::as_str)
                    .filter(|q| !q.trim().is_empty())
                    .ok_or_else(|| ToolError::Arguments {
                        tool: "search_knowledge".into(),
                        message: "`query` (a string) is required".into(),
                    })?;
                let Some(knowledge) = knowledge else {
                    return Err(ToolError::Unavailable {
                        server: "search_knowledge".into(),
                        reason: "retrieval is not set up in this process".into(),
                    });
                };
                let sources = arguments
                    .get("source")
                    .and_then(Value::as_str)
                    .map(|s| vec![s.to_string()])
                    .unwrap_or_default();
                let result = knowledge
                    .search(
                        &SearchQuery::new(query, sources, SEARCH_TOP_K),
                        &context.viewer,
                    )
                    .await
                    .map_err(|e| ToolError::Failed {
                        tool: "search_knowledge".into(),
                        message: e.to_string(),
                    })?;
                if result.hits.is_empty() {
                    let mut out = "No passages found.".to_string();
                    for w in &result.warnings {
                        out.push_str(&format!(" ({w})"));
                    }
                    return Ok(out);
                }
                let mut out = String::new();
                for (i, hit) in result.hits.iter().enumerate() {
                    let c = &hit.chunk;
                    out.push_str(&format!("[{}] {}", i + 1, c.title));
                    if !c.heading.is_empty() {
                        out.push_str(&format!(" › {}", c.heading));
                    }
                    if let Some(link) = &c.link {
                        out.push_str(&format!(" ({link})"));
                    }
                    out.push('\n');
                    out.push_str(&c.body);
                    out.push_str("\n\n");
                }
                Ok(out.trim_end().to_string())
            }
            Builtin::ThreadHistory => {
                let limit = arguments
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(50)
                    .clamp(1, 200) as usize;
                let earlier = context.history;
                if earlier.is_empty() {
                    return Ok("There are no earlier messages in this conversation.".into());
                }
                let from = earlier.len().saturating_sub(limit);
                let mut out = String::new();
                for m in &earlier[from..] {
                    out.push_str(&format!("{}: {}\n", m.role.as_str(), m.content));
                }
                Ok(out.trim_end().to_string())
            }
        }
    }
}
