//! What travels to a model: chat messages ([`ChatMessage`], with their
//! [`Role`], any [`Image`]s and tool calls), sampling parameters and the
//! tools offered ([`Params`]), and the token counts a provider reports back
//! ([`Usage`]).

use serde::{Deserialize, Serialize};

use super::{ToolCall, ToolChoice, ToolSpec};

/// Who speaks in a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// A person.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call the model made.
    Tool,
}

impl Role {
    /// The lowercase wire name (`system`, `user`, `assistant`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Parses a wire name; `developer` (OpenAI's newer name) counts as system.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "system" | "developer" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// One chat message as sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// The text.
    pub content: String,
    /// Images sent with the text (only to vision-capable aliases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// The tools an assistant message called (its text may then be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call whose result it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// An image attached to a message, for models that read images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub media_type: String,
    /// The file's name, for notes and the log.
    pub name: String,
    /// The bytes, base64-encoded (as both OpenAI and Anthropic take them).
    pub base64: String,
}

impl Image {
    /// The media types models accept.
    pub const MEDIA_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

    /// An image from its bytes; `None` for a media type models do not take.
    pub fn from_bytes(media_type: &str, name: &str, bytes: &[u8]) -> Option<Image> {
        use base64::Engine;
        let media_type = media_type.split(';').next().unwrap_or("").trim();
        Image::MEDIA_TYPES.contains(&media_type).then(|| Image {
            media_type: media_type.to_string(),
            name: name.to_string(),
            base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    /// A `data:` URL of the image.
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.media_type, self.base64)
    }
}

impl ChatMessage {
    /// A message with this role and text.
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            images: Vec::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            tool_call_id: Some(call_id.into()),
            ..ChatMessage::new(Role::Tool, content)
        }
    }

    /// An assistant message that called these tools.
    pub fn calling(content: impl Into<String>, calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage {
            tool_calls: calls,
            ..ChatMessage::new(Role::Assistant, content)
        }
    }
}

/// Sampling parameters. Unset ones are left to the provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The most tokens to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for reproducible sampling, where the provider supports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The tools the model may call (none: a plain chat request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Whether, and which, tools it must call; `None` leaves it to the
    /// provider (`auto` when tools are offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

impl Params {
    /// `self`, with every unset field taken from `base`.
    pub fn or(mut self, base: &Params) -> Params {
        self.temperature = self.temperature.or(base.temperature);
        self.top_p = self.top_p.or(base.top_p);
        self.max_tokens = self.max_tokens.or(base.max_tokens);
        self.seed = self.seed.or(base.seed);
        if self.stop.is_empty() {
            self.stop = base.stop.clone();
        }
        if self.tools.is_empty() {
            self.tools = base.tools.clone();
        }
        if self.tool_choice.is_none() {
            self.tool_choice = base.tool_choice.clone();
        }
        self
    }
}

/// Token counts as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}
