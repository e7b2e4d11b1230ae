//! Stage 2, resolve: which prompt and version answer a request — the
//! channel's binding for a chat message, or the named prompt and selector of
//! an API request (binding → label or A/B split → version, in the
//! [`Registry`]) — and, through the context and render stages, the
//! messages it sends.

use tracing::Instrument;

use super::{Pipeline, PipelineError, Prepared};
use crate::domain::{Input, Request, Role, Selector};

impl Pipeline {
    /// Runs the retrieve stage when the version has `[retrieval]`: the
    /// documents go into their variable, the record comes back.
    async fn retrieved(
        &self,
        prompt: &crate::registry::Resolved,
        question: &str,
        request: &Request,
        variables: &mut std::collections::BTreeMap<String, String>,
    ) -> Option<crate::domain::RetrievalRecord> {
        let settings = prompt.compiled.prompt().retrieval.as_ref()?;
        let (documents, record) = self
            .retrieve(settings, question, &request.origin)
            .instrument(tracing::info_span!("knowledge.retrieve"))
            .await;
        variables.insert(settings.variable.clone(), documents);
        Some(record)
    }

    /// Stages 2–4: prompt, context and rendering.
    pub(super) async fn prepare(&self, request: &Request) -> Result<Prepared, PipelineError> {
        match &request.input {
            Input::Messages { alias, messages } => {
                if messages.is_empty() {
                    return Err(PipelineError::BadRequest(
                        "`messages` must not be empty".into(),
                    ));
                }
                Ok(Prepared {
                    alias: alias.clone(),
                    prompt: None,
                    label: None,
                    messages: messages.clone(),
                    params: request.params.clone(),
                    cache: None,
                    images_unread: Vec::new(),
                    retrieval: None,
                    tools: Vec::new(),
                    tool_choice: None,
                })
            }
            Input::Prompt {
                name,
                selector,
                messages,
            } => {
                let selector = selector
                    .clone()
                    .unwrap_or_else(|| Selector::Label(crate::registry::PRODUCTION.into()));
                let prompt = self
                    .inner
                    .registry
                    .resolve(name, &selector, &request.origin)
                    .instrument(tracing::info_span!("prompt.resolve"))
                    .await?;
                let Some(last_user) = messages.iter().rposition(|m| m.role == Role::User) else {
                    return Err(PipelineError::BadRequest(format!(
                        "prompt `{name}` needs a user message to answer"
                    )));
                };
                let history = messages[..last_user]
                    .iter()
                    .filter(|m| m.role != Role::System)
                    .cloned()
                    .collect::<Vec<_>>();
                let user_name = request
                    .origin
                    .label
                    .clone()
                    .or_else(|| request.origin.user.as_ref().map(|u| u.id.clone()));
                let mut variables = self.context(request, user_name, None, None, &[]);
                let retrieval = self
                    .retrieved(
                        &prompt,
                        &messages[last_user].content,
                        request,
                        &mut variables,
                    )
                    .await;
                let mut prepared = self.render(
                    &prompt,
                    request.model.as_deref(),
                    &messages[last_user].content,
                    &history,
                    variables,
                    &request.params,
                )?;
                prepared.retrieval = retrieval;
                Ok(prepared)
            }
            Input::Chat(inbound) => {
                let prompt = self
                    .inner
                    .registry
                    .resolve_bound(&inbound.origin)
                    .instrument(tracing::info_span!("prompt.resolve"))
                    .await?;
                let mut variables = self.context(
                    request,
                    inbound.user_name.clone(),
                    inbound.channel_name.clone(),
                    inbound.workspace_name.clone(),
                    &inbound.attachments,
                );
                let retrieval = self
                    .retrieved(&prompt, &inbound.text, request, &mut variables)
                    .await;
                let mut prepared = self.render(
                    &prompt,
                    request.model.as_deref(),
                    &inbound.text,
                    &inbound.history,
                    variables,
                    &request.params,
                )?;
                prepared.retrieval = retrieval;
                if !inbound.images.is_empty() {
                    let question = prepared
                        .messages
                        .iter_mut()
                        .rev()
                        .find(|m| m.role == Role::User);
                    match question {
                        Some(q) if self.inner.options.vision.contains(&prepared.alias) => {
                            q.images = inbound.images.clone();
                        }
                        _ => {
                            prepared.images_unread =
                                inbound.images.iter().map(|i| i.name.clone()).collect();
                        }
                    }
                }
                Ok(prepared)
            }
        }
    }
}
