//! The ground floor: the types every layer shares, importing nothing else of
//! the crate. A request ([`Request`], [`Input`], [`Selector`], [`Purpose`])
//! and who sent it ([`User`], [`Origin`], [`Inbound`]); what travels to a
//! model ([`ChatMessage`], [`Params`], [`Usage`]); what comes back
//! ([`ReplyStream`], [`Summary`]); what is recorded ([`InferenceRecord`],
//! [`FeedbackRecord`], [`Attempt`], [`Status`], [`Audience`]); inference ids
//! ([`InferenceIds`]) and time ([`Utc`], [`now_ms`]); what retrieval gave an answer
//! ([`RetrievalRecord`], [`Citation`]); tools offered and called ([`ToolSpec`],
//! [`ToolCall`], [`ToolCallRecord`]).

mod chat;
mod ids;
mod knowledge;
mod record;
mod reply;
mod request;
mod time;
mod tools;
mod user;

pub use chat::{ChatMessage, Image, Params, Role, Usage};
pub use ids::{InferenceIds, minted_ms};
pub use knowledge::{Citation, RetrievalRecord, RetrievedChunk, cited_numbers};
pub use record::{Attempt, Audience, FeedbackRecord, InferenceRecord, Status};
pub use reply::{ReplyEvent, ReplyStream, Summary};
pub use request::{CacheControl, Input, Purpose, Request, Selector, TTL_HEADER};
pub use time::{Utc, now_ms};
pub use tools::{
    ApprovalRequest, RecordedToolResult, ToolCall, ToolCallDelta, ToolCallRecord, ToolCalls,
    ToolChoice, ToolSpec, empty_object_schema,
};
pub use user::{Inbound, Origin, User};
