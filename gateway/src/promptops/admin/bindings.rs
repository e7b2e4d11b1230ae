//! The `bind` and `unbind` commands: which prompt and label answer in a scope.

use super::{Actor, Admin, AdminError, Output};
use crate::registry::Scope;

impl Admin {
    /// `bind`, or `unbind` when `target` is `None`.
    pub(super) async fn bind(
        &self,
        actor: &Actor,
        scope: Scope,
        target: Option<(String, String)>,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let (before, after) = r
            .bind(
                &actor.id,
                &scope,
                target.as_ref().map(|(p, l)| (p.as_str(), l.as_str())),
            )
            .await?;
        Ok(Output::new(format!(
            "{} now answers with {} (was {})",
            scope.key(),
            after.unwrap_or_else(|| "what its parent scope binds".into()),
            before.unwrap_or_else(|| "unbound".into())
        )))
    }
}
