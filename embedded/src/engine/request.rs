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
    /// Divides the likelihood of tokens generated in the last `repeat_last_n`
    /// tokens (greedy or not), so a small model does not loop on a phrase;
    /// 1 disables it. Default [`DEFAULT_REPEAT_PENALTY`].
    pub repeat_penalty: f32,
    /// How many of the latest generated tokens the penalty looks back on.
    pub repeat_last_n: i32,
}

/// The repetition penalty of a request that sets none: small models such as
/// SmolLM2-135M loop at temperature 0 without it ("a deep shade of indigo,
/// a deep shade of indigo, …"). The same value as Ollama's default.
pub const DEFAULT_REPEAT_PENALTY: f32 = 1.1;
/// The look-back of [`DEFAULT_REPEAT_PENALTY`], in tokens (llama.cpp's default).
pub const DEFAULT_REPEAT_LAST_N: i32 = 64;

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
            repeat_penalty: DEFAULT_REPEAT_PENALTY,
            repeat_last_n: DEFAULT_REPEAT_LAST_N,
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
    check_repeat_penalty(req.repeat_penalty).map_err(GenerateError::InvalidRequest)?;
    if req.repeat_last_n < 0 {
        return Err(GenerateError::InvalidRequest(format!(
            "repeat_last_n must be 0 or more, not {}",
            req.repeat_last_n
        )));
    }
    Ok(())
}

/// Checks a repetition penalty: from 1 (off) to 2. Below 1 it would favour
/// repeating; far above it garbles answers.
///
/// # Errors
///
/// A message naming the value and the range.
pub fn check_repeat_penalty(penalty: f32) -> Result<(), String> {
    if penalty.is_finite() && (1.0..=2.0).contains(&penalty) {
        Ok(())
    } else {
        Err(format!(
            "repeat_penalty must be from 1.0 (off) to 2.0, not {penalty}; 1.1 suits small models"
        ))
    }
}
