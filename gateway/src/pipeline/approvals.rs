//! Confirmation of tools that ask first (`confirm = true`): the tool loop
//! asks ([`Approvals::ask`]) and waits; the front end shows Approve / Deny
//! for the request's id ([`crate::domain::ReplyEvent::Approval`]) and hands
//! the click to [`Approvals::decide`], which takes it only from the asker or
//! an admin. No answer within `[tool_loop] confirm_timeout_ms` is a denial.
//! Pending requests live in this replica: a click that reaches another
//! replica is told the request is unknown (and the tool is not run).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::domain::User;

/// Why a click was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// No request waits under this id: decided already, timed out, or asked
    /// on another replica.
    #[error("this request is no longer waiting (it was answered, or it timed out)")]
    Unknown,
    /// Someone other than the asker (and not an admin) clicked.
    #[error("only the person who asked (or an admin) may answer this")]
    NotYours,
}

struct Pending {
    asker: Option<User>,
    answer: oneshot::Sender<bool>,
}

/// The requests waiting for an answer.
#[derive(Default)]
pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Approvals {
    /// A new request for `asker`'s approval: its id, and where the answer
    /// arrives (`true` approved, `false` denied; dropped when forgotten).
    pub(super) fn ask(&self, asker: Option<User>) -> (String, oneshot::Receiver<bool>) {
        let id = format!("ap_{}", Uuid::now_v7().simple());
        let (answer, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), Pending { asker, answer });
        }
        (id, rx)
    }

    /// Stops waiting for `id` (it timed out, or the answer went away).
    pub(super) fn forget(&self, id: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(id);
        }
    }

    /// `actor`'s answer to request `id`; `admin` says whether the front end
    /// found the actor to be an admin. Nothing changes when refused.
    pub fn decide(
        &self,
        id: &str,
        actor: &User,
        admin: bool,
        approve: bool,
    ) -> Result<(), ApprovalError> {
        let Ok(mut pending) = self.pending.lock() else {
            return Err(ApprovalError::Unknown);
        };
        let Some(p) = pending.get(id) else {
            return Err(ApprovalError::Unknown);
        };
        if !admin && p.asker.as_ref() != Some(actor) {
            return Err(ApprovalError::NotYours);
        }
        let p = pending.remove(id).ok_or(ApprovalError::Unknown)?;
        // The loop may have stopped waiting a moment ago: then nothing runs.
        p.answer.send(approve).map_err(|_| ApprovalError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_asker_or_an_admin_answers_and_only_once() {
        let approvals = Approvals::default();
        let alice = User::new("slack", "UALICE");
        let bob = User::new("slack", "UBOB");
        let (id, mut rx) = approvals.ask(Some(alice.clone()));
        assert_eq!(
            approvals.decide(&id, &bob, false, true),
            Err(ApprovalError::NotYours)
        );
        assert!(rx.try_recv().is_err(), "a stranger's click changes nothing");
        assert_eq!(approvals.decide(&id, &alice, false, false), Ok(()));
        assert_eq!(rx.try_recv(), Ok(false));
        assert_eq!(
            approvals.decide(&id, &alice, false, true),
            Err(ApprovalError::Unknown)
        );
        let (id, mut rx) = approvals.ask(Some(alice));
        assert_eq!(
            approvals.decide(&id, &bob, true, true),
            Ok(()),
            "an admin may answer"
        );
        assert_eq!(rx.try_recv(), Ok(true));
        assert_eq!(
            approvals.decide("ap_made_up", &bob, true, true),
            Err(ApprovalError::Unknown)
        );
    }
}
