//! The commands that save versions: `create` (a new prompt's version 1) and `edit` (a new
//! version made from a given one, answered with the diff it made).

use prompts::Prompt;

use super::{Actor, Admin, AdminError, Output, Section};
use crate::domain::Selector;

impl Admin {
    /// `create`.
    pub(super) async fn create(
        &self,
        actor: &Actor,
        prompt: Prompt,
        message: String,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let v = r
            .save(&actor.id, "create", &prompt, &message, None, None)
            .await?;
        Ok(Output::new(format!(
            "created {} v{v}; promote it to put it in use",
            prompt.name
        )))
    }

    /// `edit`, from version `base`.
    pub(super) async fn edit(
        &self,
        actor: &Actor,
        prompt: Prompt,
        base: i64,
        message: String,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let v = r
            .save(&actor.id, "edit", &prompt, &message, Some(base), None)
            .await?;
        let (_, old) = r.version(&prompt.name, &Selector::Version(base)).await?;
        let (_, new) = r.version(&prompt.name, &Selector::Version(v)).await?;
        Ok(
            Output::new(format!("saved {} v{v}", prompt.name)).with(Section::Code {
                language: Some("diff".into()),
                text: prompts::diff(&old, &new),
            }),
        )
    }
}
