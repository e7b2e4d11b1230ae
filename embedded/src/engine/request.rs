//! What a caller asks for: the conversation ([`ChatTurn`]s) and the limits and sampling
//! settings of one chat completion ([`GenerateRequest`]), checked before any work starts.

use super::GenerateError;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTurn {
    /// `system`, `user` or `assistant` (passed to the model's chat template as is).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatTurn {
    /// A turn with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` turn.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The conversation, oldest first.
    pub messages: Vec<ChatTurn>,
    /// Most tokens to generate (at least 1).
    pub max_tokens: u32,
    /// Sampling temperature; 0 means greedy (deterministic).
    pub temperature: f32,
    /// Nucleus sampling threshold; 1 disables it. Ignored when greedy.
    pub top_p: f32,
    /// Keep only the `top_k` likeliest tokens; 0 or less disables it. Ignored when greedy.
    pub top_k: i32,
    /// Seed of the random sampler. Ignored when greedy.
    pub seed: u32,
    /// Strings that end the generation; they are never emitted, not even in part.
    pub stop: Vec<String>,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

impl GenerateRequest {
    /// A greedy request for these messages with the default limits.
    pub fn new(messages: Vec<ChatTurn>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

/// Refuses requests that cannot be generated.
pub(super) fn validate_request(req: &GenerateRequest) -> Result<(), GenerateError> {
    if req.messages.is_empty() {
        return Err(GenerateError::InvalidRequest(
            "the conversation has no messages".into(),
        ));
    }
    if req.max_tokens == 0 {
        return Err(GenerateError::InvalidRequest(
            "max_tokens must be at least 1".into(),
        ));
    }
    if !req.temperature.is_finite() || req.temperature < 0.0 {
        return Err(GenerateError::InvalidRequest(format!(
            "temperature must be 0 or more, not {}",
            req.temperature
        )));
    }
    if !req.top_p.is_finite() || req.top_p <= 0.0 || req.top_p > 1.0 {
        return Err(GenerateError::InvalidRequest(format!(
            "top_p must be in (0, 1], not {}",
            req.top_p
        )));
    }
    Ok(())
}
