//! The `test` command: a version answers a sample question through the real pipeline,
//! recorded as a test and never as production traffic.

use super::{Actor, Admin, AdminError, Output, Section};
use crate::domain::ReplyEvent;
use crate::domain::Selector;
use crate::domain::{ChatMessage, Origin, Role};
use crate::domain::{Input, Purpose, Request};
use crate::pipeline::PipelineError;
use crate::registry::LATEST;

impl Admin {
    /// `test`: answers `text` with the version, recorded as a test.
    pub(super) async fn test(
        &self,
        actor: &Actor,
        name: &str,
        version: Option<Selector>,
        text: &str,
    ) -> Result<Output, AdminError> {
        let pipeline = self.pipeline.as_ref().ok_or(AdminError::NoPipeline)?;
        let selector = version.unwrap_or(Selector::Label(LATEST.into()));
        let mut request = Request::new(
            Origin {
                platform: "test".into(),
                user: crate::domain::User::parse(&actor.id),
                ..Origin::default()
            },
            Input::Prompt {
                name: name.to_string(),
                selector: Some(selector),
                messages: vec![ChatMessage::new(Role::User, text)],
            },
        );
        request.purpose = Purpose::Test;
        let mut reply = pipeline.start(request).await.map_err(|e| match e {
            PipelineError::Prompt(r) => AdminError::Registry(r),
            other => AdminError::Test(other.to_string()),
        })?;
        let mut answer = String::new();
        while let Some(event) = reply.next_event().await {
            match event {
                ReplyEvent::Token(t) => answer.push_str(&t),
                ReplyEvent::Done(summary) => {
                    let (p, v) = summary.prompt.clone().unwrap_or_default();
                    let mut output = Output::new(format!(
                        "test of {p} v{v}: {} tokens in {:.0} ms (inference {}, recorded as a test)",
                        summary.usage.map_or(0, |u| u.output_tokens),
                        summary.total_ms,
                        summary.inference_id
                    ))
                    .with(Section::Text(answer));
                    if let Some(retrieval) = &summary.retrieval {
                        output = output.with(Section::Text(retrieval.describe()));
                    }
                    return Ok(output);
                }
                ReplyEvent::Failed { message, .. } => return Err(AdminError::Test(message)),
                ReplyEvent::Started { .. }
                | ReplyEvent::ToolCall(_)
                | ReplyEvent::UsingTool(_)
                | ReplyEvent::Approval(_) => {}
            }
        }
        Err(AdminError::Test("the answer stopped without an end".into()))
    }
}
