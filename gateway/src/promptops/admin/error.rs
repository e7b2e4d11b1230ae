//! Why an admin command failed: [`AdminError`] — refused for want of rights, refused by the
//! registry, or a `test` that could not answer.

use crate::registry::RegistryError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The actor lacks the rights; nothing changed.
    #[error("{actor} may not {command} {target}: {reason}")]
    Forbidden {
        /// Who.
        actor: String,
        /// What they tried.
        command: String,
        /// On what.
        target: String,
        /// Which right is missing and who grants it.
        reason: String,
    },
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `test` could not run.
    #[error("the test did not answer: {0}")]
    Test(String),
    /// `test` needs the models, which this front end did not start.
    #[error("testing a prompt needs the model providers; run it where Switchboard serves")]
    NoPipeline,
    /// A knowledge command failed.
    #[error(transparent)]
    Knowledge(#[from] crate::knowledge::KnowledgeError),
    /// What the command needs is not running here.
    #[error("{0}")]
    Unavailable(String),
}
