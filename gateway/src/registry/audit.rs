//! The audit log: attempts that were refused (or changed nothing) are recorded here, and the
//! log is read back newest first. Successful changes write their row with the change itself.

use super::{Registry, RegistryError};
use crate::store::AuditRow;

impl Registry {
    /// Records an attempt that was refused (or that changes nothing).
    pub async fn audit(&self, row: &AuditRow) -> Result<(), RegistryError> {
        Ok(self.inner.store.insert_audit(row).await?)
    }

    /// Audit entries, newest first.
    pub async fn history(
        &self,
        name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, RegistryError> {
        Ok(self.inner.store.audit_rows(name, limit).await?)
    }
}
