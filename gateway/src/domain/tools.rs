//! What a model may call and what it asked for: the tools offered with a
//! request ([`ToolSpec`], [`ToolChoice`]), a call the model made
//! ([`ToolCall`]), and a call as recorded with its answer
//! ([`ToolCallRecord`]). One shape for every provider: OpenAI's
//! `tools` / `tool_calls` and Anthropic's `tool_use` / `tool_result` blocks
//! are translated to and from it in the provider's own file.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool offered to the model: a function with a JSON Schema for its
/// arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The function's name, as the model will call it.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments (an object schema), passed as given.
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
    /// OpenAI's `strict` flag, passed through when a client set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The schema of a tool that takes no arguments.
pub fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Whether, and which, tools the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    /// The model decides (the default when tools are offered).
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Function(String),
}

impl ToolChoice {
    /// Reads `auto`, `none`, `required`, or a tool's name.
    pub fn parse(s: &str) -> ToolChoice {
        match s {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" | "any" => ToolChoice::Required,
            name => ToolChoice::Function(name.to_string()),
        }
    }
}

/// One call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which its result refers to (`call_…`, `toolu_…`).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet parsed
    /// (a model may write JSON that does not parse; the caller decides).
    pub arguments: String,
}

/// A piece of a streamed tool call: the first piece of a call carries its
/// id and name, later ones more of its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Which call of the answer (0-based, in the order the model made them).
    pub index: u32,
    /// The call's id, on its first piece.
    pub id: Option<String>,
    /// The tool's name, on its first piece.
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: String,
}

/// Tool calls put together from their streamed pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCalls {
    calls: Vec<ToolCall>,
}

impl ToolCalls {
    /// Takes one piece; a piece for a call not seen yet starts it.
    pub fn push(&mut self, delta: &ToolCallDelta) {
        let index = delta.index as usize;
        while self.calls.len() <= index {
            self.calls.push(ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
        }
        let call = &mut self.calls[index];
        if let Some(id) = &delta.id {
            call.id.clone_from(id);
        }
        if let Some(name) = &delta.name {
            call.name.push_str(name);
        }
        call.arguments.push_str(&delta.arguments);
    }

    /// Whether no call was made.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls, in order.
    pub fn calls(&self) -> &[ToolCall] {
        &self.calls
    }

    /// The calls, in order, taken out.
    pub fn take(&mut self) -> Vec<ToolCall> {
        std::mem::take(&mut self.calls)
    }
}

/// A tool's result as a logged answer got it, for replaying the answer
/// without running the tool again (`switchboard eval --replay-tools`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedToolResult {
    /// The tool.
    pub name: String,
    /// The arguments it was called with.
    pub arguments: String,
    /// What it returned (as the model was given it).
    pub result: String,
}

/// A tool call waiting for the asker's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// What the answer is given back with (`Pipeline::approvals`).
    pub id: String,
    /// The tool.
    pub tool: String,
    /// Its arguments, as the model wrote them.
    pub arguments: String,
}

/// One call of a tool that Switchboard ran for an answer, as recorded with
/// the inference (the result itself is in the conversation, as the `tool`
/// message the model was given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The model's id for the call.
    pub call_id: String,
    /// The tool's name, as the model called it.
    pub name: String,
    /// Which model step asked for it (1-based).
    pub step: u32,
    /// The arguments' JSON text, as the model wrote it.
    pub arguments: String,
    /// The result's size in bytes, before any cut.
    pub result_bytes: u64,
    /// Whether the result was cut to the size limit.
    pub truncated: bool,
    /// How long it ran.
    pub ms: f64,
    /// What went wrong, if it did (told to the model as the result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `approved`, `denied` or `timed_out` for a tool that asks first
    /// (`not_asked` where the front end cannot ask); `None` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_pieces_make_whole_calls_in_order() {
        let mut calls = ToolCalls::default();
        let piece = |index, id: Option<&str>, name: Option<&str>, args: &str| ToolCallDelta {
            index,
            id: id.map(str::to_string),
            name: name.map(str::to_string),
            arguments: args.to_string(),
        };
        calls.push(&piece(0, Some("call_a"), Some("get_time"), ""));
        calls.push(&piece(1, Some("call_b"), Some("get_time"), "{\"tz\":"));
        calls.push(&piece(0, None, None, "{\"tz\":\"Asia/Tokyo\"}"));
        calls.push(&piece(1, None, None, "\"UTC\"}"));
        assert_eq!(
            calls.calls(),
            &[
                ToolCall {
                    id: "call_a".into(),
                    name: "get_time".into(),
                    arguments: "{\"tz\":\"Asia/Tokyo\"}".into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "get_time".into(),
                    arguments: "{\"tz\":\"UTC\"}".into()
                },
            ]
        );
    }
}
