//! The prompt registry's tables: versions, labels, bindings and the audit
//! log. Every change runs in one transaction that first bumps the registry
//! generation (which also serializes registry writers on both databases,
//! so two admins promoting at once both land, in some order, each audited
//! with the true before and after), writes its audit row, and on PostgreSQL
//! sends a NOTIFY that other replicas listen for.

use prompts::Arm;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::{Backend, Store, StoreError};
use crate::domain::now_ms;

/// The PostgreSQL channel replicas LISTEN on for registry changes.
pub const NOTIFY_CHANNEL: &str = "switchboard_prompts";

/// One stored prompt version.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// The prompt's name.
    pub name: String,
    /// The version number.
    pub version: i64,
    /// The prompt as TOML.
    pub body: String,
    /// The commit message.
    pub message: String,
    /// Who saved it.
    pub author: String,
    /// When, in Unix milliseconds.
    pub created_at_ms: i64,
}

/// Where a label points.
#[derive(Debug, Clone)]
pub struct LabelRow {
    /// The prompt's name.
    pub name: String,
    /// The label.
    pub label: String,
    /// The versions it serves, with weights.
    pub arms: Vec<Arm>,
    /// When it last moved.
    pub updated_at_ms: i64,
    /// Who moved it.
    pub updated_by: String,
}

/// Which prompt answers in a scope.
#[derive(Debug, Clone)]
pub struct BindingRow {
    /// `global`, or `platform/workspace[/channel[/thread]]`.
    pub scope: String,
    /// The prompt's name.
    pub prompt: String,
    /// The label to use.
    pub label: String,
    /// When it was set.
    pub updated_at_ms: i64,
    /// Who set it.
    pub updated_by: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// UUIDv7.
    pub id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Who (`slack:U123`, `cli:alice`).
    pub actor: String,
    /// `create`, `edit`, `promote`, `rollback`, `split`, `bind`, `unbind`,
    /// `import`, `seed`, `test`.
    pub action: String,
    /// `name`, `name@label` or `binding:scope`.
    pub target: String,
    /// The state before, as JSON or text.
    pub before: Option<String>,
    /// The state after.
    pub after: Option<String>,
    /// `ok` or `refused`.
    pub outcome: String,
    /// Why it was refused, or a commit message.
    pub detail: Option<String>,
    /// The registry generation the change made (0 for refusals).
    pub seq: i64,
}

impl AuditRow {
    /// A new entry, now.
    pub fn new(actor: &str, action: &str, target: &str) -> AuditRow {
        AuditRow {
            id: Uuid::now_v7().to_string(),
            at_ms: now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            before: None,
            after: None,
            outcome: "ok".to_string(),
            detail: None,
            seq: 0,
        }
    }
}

/// Everything the registry's cache is built from.
#[derive(Debug, Clone, Default)]
pub struct RegistryRows {
    /// The generation these rows were read at.
    pub generation: i64,
    /// The newest version of every prompt.
    pub latest: Vec<(String, i64)>,
    /// Every label.
    pub labels: Vec<LabelRow>,
    /// Every binding.
    pub bindings: Vec<BindingRow>,
}

/// A registry change to apply in one transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// A new version. `base` is the version the edit started from (`None`
    /// for a new prompt); if the newest version is not `base`, nothing is
    /// written and the newest version is returned as a conflict. `label`
    /// also points that label at the new version.
    Version {
        /// The prompt's name.
        name: String,
        /// The prompt as TOML.
        body: String,
        /// The commit message.
        message: String,
        /// The expected newest version.
        base: Option<i64>,
        /// A label to point at the new version too.
        label: Option<String>,
        /// The audit entry (action, actor; before/after are filled in).
        audit: AuditRow,
    },
    /// Points a label at versions (`None` removes it).
    Label {
        /// The prompt's name.
        name: String,
        /// The label.
        label: String,
        /// The new arms.
        arms: Option<Vec<Arm>>,
        /// The audit entry.
        audit: AuditRow,
    },
    /// Sets (or with `None`, removes) the binding of a scope.
    Binding {
        /// The scope key.
        scope: String,
        /// (prompt, label).
        target: Option<(String, String)>,
        /// The audit entry.
        audit: AuditRow,
    },
}

/// What a [`Write`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The new version's number.
    Version(i64),
    /// The base was stale: this is the newest version now (`None`: the
    /// prompt does not exist).
    Conflict(Option<i64>),
    /// The label's or binding's previous state, as stored in the audit.
    Moved {
        /// Before.
        before: Option<String>,
        /// After.
        after: Option<String>,
    },
}

/// Arms as stored (and as shown in the audit): `[{"version":3,"weight":100}]`.
pub fn arms_json(arms: &[Arm]) -> String {
    serde_json::to_string(arms).unwrap_or_else(|_| "[]".into())
}

fn parse_arms(text: &str) -> Vec<Arm> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Store {
    /// The registry's generation: it changes whenever anything in it does.
    pub async fn registry_generation(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT generation FROM prompt_registry_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Reads the labels, bindings and newest versions, consistently.
    pub async fn registry_rows(&self) -> Result<RegistryRows, StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation: i64 =
            sqlx::query("SELECT generation FROM prompt_registry_state WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let latest = sqlx::query("SELECT name, MAX(version) FROM prompt_versions GROUP BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let labels = sqlx::query(
            "SELECT name, label, arms, updated_at, updated_by FROM prompt_labels ORDER BY name, label",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(LabelRow {
                name: r.try_get(0)?,
                label: r.try_get(1)?,
                arms: parse_arms(&r.try_get::<String, _>(2)?),
                updated_at_ms: r.try_get(3)?,
                updated_by: r.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let bindings = sqlx::query(
            "SELECT scope, prompt, label, updated_at, updated_by FROM prompt_bindings ORDER BY scope",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(BindingRow {
                scope: r.try_get(0)?,
                prompt: r.try_get(1)?,
                label: r.try_get(2)?,
                updated_at_ms: r.try_get(3)?,
                updated_by: r.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        tx.commit().await?;
        Ok(RegistryRows {
            generation,
            latest,
            labels,
            bindings,
        })
    }

    /// One version of a prompt.
    pub async fn prompt_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<VersionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, version, body, message, author, created_at FROM prompt_versions \
             WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| version_row(&r))
            .transpose()
            .map_err(StoreError::from)
    }

    /// Every version of a prompt, newest first.
    pub async fn prompt_versions(&self, name: &str) -> Result<Vec<VersionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, body, message, author, created_at FROM prompt_versions \
             WHERE name = $1 ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(version_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// Audit entries, newest first: all of them, or those about one prompt
    /// (its versions and labels).
    pub async fn audit_rows(
        &self,
        prompt: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let columns =
            "id, at, actor, action, target, before_value, after_value, outcome, detail, seq";
        let rows = match prompt {
            Some(name) => {
                let pattern = format!("{}@%", name.replace('\\', "\\\\").replace('_', "\\_"));
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {columns} FROM prompt_audit WHERE target = $1 OR target LIKE $2 ESCAPE '\\' \
                     ORDER BY at DESC, seq DESC, id DESC LIMIT $3"
                )))
                .bind(name)
                .bind(pattern)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {columns} FROM prompt_audit ORDER BY at DESC, seq DESC, id DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?,
        };
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    target: r.try_get(4)?,
                    before: r.try_get(5)?,
                    after: r.try_get(6)?,
                    outcome: r.try_get(7)?,
                    detail: r.try_get(8)?,
                    seq: r.try_get(9)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Records an audit entry that changes nothing (a refusal, a test).
    pub async fn insert_audit(&self, row: &AuditRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, row).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies one registry change with its audit entry, atomically.
    pub async fn write_registry(&self, write: Write) -> Result<Written, StoreError> {
        let mut tx = self.pool.begin().await?;
        // First statement is a write: it takes the lock that orders all
        // registry writers (a row lock on PostgreSQL, the write lock on SQLite).
        sqlx::query("UPDATE prompt_registry_state SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let seq: i64 = sqlx::query("SELECT generation FROM prompt_registry_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        // Stamped now that the lock is held, so the audit's order is the
        // order in which changes took effect.
        let now = now_ms();
        let stamp = |row: &mut AuditRow| {
            row.id = Uuid::now_v7().to_string();
            row.at_ms = now;
            row.seq = seq;
        };
        let written = match write {
            Write::Version {
                name,
                body,
                message,
                base,
                label,
                mut audit,
            } => {
                let newest: Option<i64> =
                    sqlx::query("SELECT MAX(version) FROM prompt_versions WHERE name = $1")
                        .bind(&name)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get(0)?;
                if newest != base {
                    tx.rollback().await?;
                    return Ok(Written::Conflict(newest));
                }
                let version = newest.unwrap_or(0) + 1;
                sqlx::query(
                    "INSERT INTO prompt_versions (name, version, body, message, author, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&name)
                .bind(version)
                .bind(&body)
                .bind(&message)
                .bind(&audit.actor)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                stamp(&mut audit);
                audit.before = newest.map(|v| format!("v{v}"));
                audit.after = Some(format!("v{version}"));
                audit.detail = Some(message);
                insert_audit(&mut tx, &audit).await?;
                if let Some(label) = label {
                    let arms = vec![Arm {
                        version,
                        weight: 100,
                    }];
                    let mut moved =
                        AuditRow::new(&audit.actor, &audit.action, &format!("{name}@{label}"));
                    let (before, after) =
                        set_label(&mut tx, &name, &label, Some(&arms), &audit.actor, now).await?;
                    moved.before = before;
                    moved.after = after;
                    insert_audit(&mut tx, &moved).await?;
                }
                Written::Version(version)
            }
            Write::Label {
                name,
                label,
                arms,
                mut audit,
            } => {
                let (before, after) =
                    set_label(&mut tx, &name, &label, arms.as_deref(), &audit.actor, now).await?;
                stamp(&mut audit);
                audit.before = before.clone();
                audit.after = after.clone();
                insert_audit(&mut tx, &audit).await?;
                Written::Moved { before, after }
            }
            Write::Binding {
                scope,
                target,
                mut audit,
            } => {
                let before: Option<String> =
                    sqlx::query("SELECT prompt, label FROM prompt_bindings WHERE scope = $1")
                        .bind(&scope)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| -> Result<String, sqlx::Error> {
                            Ok(format!(
                                "{}@{}",
                                r.try_get::<String, _>(0)?,
                                r.try_get::<String, _>(1)?
                            ))
                        })
                        .transpose()?;
                match &target {
                    Some((prompt, label)) => {
                        sqlx::query(
                            "INSERT INTO prompt_bindings (scope, prompt, label, updated_at, updated_by) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope) DO UPDATE SET \
                             prompt = excluded.prompt, label = excluded.label, \
                             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                        )
                        .bind(&scope)
                        .bind(prompt)
                        .bind(label)
                        .bind(now)
                        .bind(&audit.actor)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM prompt_bindings WHERE scope = $1")
                            .bind(&scope)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let after = target.map(|(p, l)| format!("{p}@{l}"));
                stamp(&mut audit);
                audit.before = before.clone();
                audit.after = after.clone();
                insert_audit(&mut tx, &audit).await?;
                Written::Moved { before, after }
            }
        };
        if self.backend == Backend::Postgres {
            // Delivered to listeners when the transaction commits.
            sqlx::query("SELECT pg_notify($1, 'changed')")
                .bind(NOTIFY_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// The connection URL, for a LISTEN connection.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

async fn set_label(
    tx: &mut Transaction<'_, Any>,
    name: &str,
    label: &str,
    arms: Option<&[Arm]>,
    actor: &str,
    now: i64,
) -> Result<(Option<String>, Option<String>), StoreError> {
    let before: Option<String> =
        sqlx::query("SELECT arms FROM prompt_labels WHERE name = $1 AND label = $2")
            .bind(name)
            .bind(label)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    let after = arms.map(arms_json);
    match &after {
        Some(json) => {
            sqlx::query(
                "INSERT INTO prompt_labels (name, label, arms, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, label) DO UPDATE SET \
                 arms = excluded.arms, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(name)
            .bind(label)
            .bind(json)
            .bind(now)
            .bind(actor)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM prompt_labels WHERE name = $1 AND label = $2")
                .bind(name)
                .bind(label)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok((before, after))
}

async fn insert_audit(tx: &mut Transaction<'_, Any>, row: &AuditRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO prompt_audit (id, at, actor, action, target, before_value, after_value, outcome, detail, seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.id)
    .bind(row.at_ms)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(&row.target)
    .bind(&row.before)
    .bind(&row.after)
    .bind(&row.outcome)
    .bind(&row.detail)
    .bind(row.seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn version_row(r: &sqlx::any::AnyRow) -> Result<VersionRow, sqlx::Error> {
    Ok(VersionRow {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        body: r.try_get(2)?,
        message: r.try_get(3)?,
        author: r.try_get(4)?,
        created_at_ms: r.try_get(5)?,
    })
}
