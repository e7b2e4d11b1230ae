//! The admin command layer: every prompt-ops action (`list`, `show`,
//! `create`, `edit`, `diff`, `promote`, `rollback`, `test`, `bind`,
//! `split`, `history`) as one platform-neutral API. Each command takes the
//! [`Actor`] who asked and checks that actor's rights itself, so a Slack
//! slash command, a Discord interaction and the CLI are all thin parsers
//! over it and none can skip a check. Results are platform-neutral
//! [`Output`]s that each front end renders its own way; refusals of
//! changes are written to the audit log.

use std::collections::BTreeSet;

use prompts::{Arm, Prompt};

use crate::config::AdminConfig;
use crate::pipeline::{Input, Pipeline, PipelineError, Purpose, Request};
use crate::registry::{LATEST, Registry, RegistryError, Scope, Selector};
use crate::reply::ReplyEvent;
use crate::store::AuditRow;
use crate::types::{ChatMessage, Origin, Role};

/// Who is asking, as the front end knows them.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// `platform:id` (`slack:U0123`, `discord:8035…`, `cli:alice`).
    pub id: String,
    /// A display name, for messages.
    pub name: String,
    /// Platform roles, as `platform:role` (`discord:role:1234`).
    pub roles: Vec<String>,
    /// Whether the platform says this user administers the workspace.
    pub platform_admin: bool,
}

impl Actor {
    /// The operator at the command line. Whoever can run the CLI against
    /// the database already holds its credentials, so the CLI acts as an
    /// admin; it is audited as `cli:<user>`.
    pub fn cli(user: &str) -> Actor {
        Actor {
            id: format!("cli:{user}"),
            name: user.to_string(),
            roles: Vec::new(),
            platform_admin: true,
        }
    }
}

/// What an actor may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rights {
    /// Nothing.
    None,
    /// Read, save versions, test, move unprotected labels.
    Editor,
    /// Everything.
    Admin,
}

/// One admin command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Every prompt, its newest version, labels and bindings.
    List,
    /// One version in full (default: `production`, else the newest).
    Show {
        /// The prompt.
        name: String,
        /// Which version.
        version: Option<Selector>,
    },
    /// A new prompt (its version 1).
    Create {
        /// The prompt.
        prompt: Prompt,
        /// Commit message.
        message: String,
    },
    /// A new version of an existing prompt, made from `base`.
    Edit {
        /// The new content.
        prompt: Prompt,
        /// The version the edit started from.
        base: i64,
        /// Commit message.
        message: String,
    },
    /// A unified diff between two versions.
    Diff {
        /// The prompt.
        name: String,
        /// From.
        from: Selector,
        /// To.
        to: Selector,
    },
    /// Points a label at one version.
    Promote {
        /// The prompt.
        name: String,
        /// The version.
        version: i64,
        /// The label (`production` when not given).
        label: String,
    },
    /// Moves a label back to where it pointed before its last move, or to
    /// a given version.
    Rollback {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// Where to; `None`: undo the label's last move.
        to: Option<i64>,
    },
    /// Renders a version and answers a sample input with it, recorded as a
    /// test, never as production traffic.
    Test {
        /// The prompt.
        name: String,
        /// Which version (default: `latest`).
        version: Option<Selector>,
        /// The sample question.
        text: String,
    },
    /// Binds a scope to a prompt (and label), or unbinds it.
    Bind {
        /// Where.
        scope: Scope,
        /// (prompt, label); `None` removes the binding.
        target: Option<(String, String)>,
    },
    /// Splits a label's traffic over versions by weight.
    Split {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// Versions and weights.
        arms: Vec<Arm>,
    },
    /// The audit log, of one prompt or of everything.
    History {
        /// The prompt, or all.
        name: Option<String>,
        /// How many entries.
        limit: i64,
    },
}

impl Command {
    /// An edit of prompt `name` from version `base`, given as the TOML a
    /// chat form or an attached file holds; `message` falls back to
    /// `default_message` when blank. The TOML must keep the prompt's name.
    pub fn edit_from_toml(
        name: &str,
        base: i64,
        toml: &str,
        message: Option<&str>,
        default_message: &str,
    ) -> Result<Command, String> {
        let prompt = Prompt::from_toml(name, toml).map_err(|e| e.to_string())?;
        if prompt.name != name {
            return Err(format!(
                "the edit is for `{name}` but the TOML names `{}`; keep the name (new prompts are created from the command line)",
                prompt.name
            ));
        }
        Ok(Command::Edit {
            prompt,
            base,
            message: message
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .unwrap_or(default_message)
                .to_string(),
        })
    }

    /// The command's name, as audited.
    pub fn name(&self) -> &'static str {
        match self {
            Command::List => "list",
            Command::Show { .. } => "show",
            Command::Create { .. } => "create",
            Command::Edit { .. } => "edit",
            Command::Diff { .. } => "diff",
            Command::Promote { .. } => "promote",
            Command::Rollback { .. } => "rollback",
            Command::Test { .. } => "test",
            Command::Bind { target: None, .. } => "unbind",
            Command::Bind { .. } => "bind",
            Command::Split { .. } => "split",
            Command::History { .. } => "history",
        }
    }

    /// What it acts on, as audited: `name`, `name@label`, `binding:scope`.
    fn target(&self) -> String {
        match self {
            Command::List | Command::History { name: None, .. } => "*".into(),
            Command::Show { name, .. }
            | Command::Diff { name, .. }
            | Command::Test { name, .. }
            | Command::History {
                name: Some(name), ..
            } => name.clone(),
            Command::Create { prompt, .. } | Command::Edit { prompt, .. } => prompt.name.clone(),
            Command::Promote { name, label, .. }
            | Command::Rollback { name, label, .. }
            | Command::Split { name, label, .. } => format!("{name}@{label}"),
            Command::Bind { scope, .. } => format!("binding:{}", scope.key()),
        }
    }

    /// Whether it changes anything (refusals of these are audited).
    fn writes(&self) -> bool {
        matches!(
            self,
            Command::Create { .. }
                | Command::Edit { .. }
                | Command::Promote { .. }
                | Command::Rollback { .. }
                | Command::Bind { .. }
                | Command::Split { .. }
        )
    }
}

/// A platform-neutral result: a one-line summary and sections to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// One line saying what happened.
    pub summary: String,
    /// Details.
    pub sections: Vec<Section>,
}

/// One part of an [`Output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    /// Plain text.
    Text(String),
    /// Preformatted text (`toml`, `diff`, or none).
    Code {
        /// A language hint for highlighting.
        language: Option<String>,
        /// The text.
        text: String,
    },
    /// A table.
    Table {
        /// Column names.
        columns: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
    },
}

impl Output {
    fn new(summary: impl Into<String>) -> Output {
        Output {
            summary: summary.into(),
            sections: Vec::new(),
        }
    }

    fn with(mut self, section: Section) -> Output {
        self.sections.push(section);
        self
    }

    /// Plain text, for terminals and logs.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.summary);
        for section in &self.sections {
            out.push('\n');
            match section {
                Section::Text(t) => {
                    out.push_str(t);
                    out.push('\n');
                }
                Section::Code { text, .. } => {
                    out.push_str(text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Section::Table { columns, rows } => {
                    let mut widths: Vec<usize> =
                        columns.iter().map(|c| c.chars().count()).collect();
                    for row in rows {
                        for (i, cell) in row.iter().enumerate() {
                            if let Some(w) = widths.get_mut(i) {
                                *w = (*w).max(cell.chars().count());
                            }
                        }
                    }
                    let line = |cells: &[String]| {
                        let mut l = cells
                            .iter()
                            .zip(&widths)
                            .map(|(c, w)| format!("{c:<w$}"))
                            .collect::<Vec<_>>()
                            .join("  ");
                        l.truncate(l.trim_end().len());
                        l.push('\n');
                        l
                    };
                    out.push_str(&line(columns));
                    for row in rows {
                        out.push_str(&line(row));
                    }
                }
            }
        }
        out
    }
}

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
}

/// The admin command layer. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    registry: Registry,
    pipeline: Option<Pipeline>,
    config: AdminConfig,
}

impl Admin {
    /// The layer over a registry; `pipeline` answers `test` commands.
    pub fn new(registry: Registry, pipeline: Option<Pipeline>, config: AdminConfig) -> Admin {
        Admin {
            registry,
            pipeline,
            config,
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What this actor may do, from the configuration and the roles the
    /// platform reported.
    pub fn rights(&self, actor: &Actor) -> Rights {
        let c = &self.config;
        let has_role = |roles: &[String]| actor.roles.iter().any(|r| roles.contains(r));
        if c.admins.contains(&actor.id)
            || has_role(&c.admin_roles)
            || (c.platform_admins && actor.platform_admin)
        {
            Rights::Admin
        } else if c.editors.contains(&actor.id) || has_role(&c.editor_roles) {
            Rights::Editor
        } else {
            Rights::None
        }
    }

    /// Runs one command for one actor.
    pub async fn run(&self, actor: &Actor, command: Command) -> Result<Output, AdminError> {
        let need = self.needed(&command);
        let have = self.rights(actor);
        if have < need {
            let reason = match need {
                Rights::Admin => format!(
                    "this needs an admin (protected labels: {}); ask an admin, or add `{}` to `admin.admins` in the configuration",
                    self.config.protected_labels.join(", "),
                    actor.id
                ),
                _ => format!(
                    "this needs an editor or admin; add `{}` to `admin.editors` in the configuration",
                    actor.id
                ),
            };
            if command.writes() {
                let mut row = AuditRow::new(&actor.id, command.name(), &command.target());
                row.outcome = "refused".into();
                row.detail = Some(reason.clone());
                self.registry.audit(&row).await?;
            }
            return Err(AdminError::Forbidden {
                actor: actor.id.clone(),
                command: command.name().to_string(),
                target: command.target(),
                reason,
            });
        }
        self.execute(actor, command).await
    }

    /// The rights a command needs.
    fn needed(&self, command: &Command) -> Rights {
        let protected = |label: &str| self.config.protected_labels.iter().any(|l| l == label);
        match command {
            Command::Bind { .. } | Command::Split { .. } => Rights::Admin,
            Command::Promote { label, .. } | Command::Rollback { label, .. }
                if protected(label) =>
            {
                Rights::Admin
            }
            _ => Rights::Editor,
        }
    }

    async fn execute(&self, actor: &Actor, command: Command) -> Result<Output, AdminError> {
        let r = &self.registry;
        match command {
            Command::List => {
                let rows = r
                    .list()
                    .into_iter()
                    .map(|p| {
                        vec![
                            p.name,
                            format!("v{}", p.latest),
                            p.labels
                                .iter()
                                .map(|(l, arms)| format!("{l}→{}", arms_text(arms)))
                                .collect::<Vec<_>>()
                                .join(" "),
                            p.bound
                                .iter()
                                .map(|(s, l)| format!("{s}@{l}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect::<Vec<_>>();
                Ok(
                    Output::new(format!("{} prompts", rows.len())).with(Section::Table {
                        columns: vec![
                            "prompt".into(),
                            "newest".into(),
                            "labels".into(),
                            "bound to".into(),
                        ],
                        rows,
                    }),
                )
            }
            Command::Show { name, version } => {
                let selector = match version {
                    Some(s) => s,
                    None => default_selector(r, &name),
                };
                let (row, prompt) = r.version(&name, &selector).await?;
                let labels: Vec<String> = r
                    .list()
                    .into_iter()
                    .find(|p| p.name == name)
                    .map(|p| {
                        p.labels
                            .into_iter()
                            .filter(|(_, arms)| arms.iter().any(|a| a.version == row.version))
                            .map(|(l, _)| l)
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Output::new(format!("{name} v{}", row.version))
                    .with(Section::Text(format!(
                        "saved by {} at {}: {}{}",
                        row.author,
                        format_ms(row.created_at_ms),
                        row.message,
                        if labels.is_empty() {
                            String::new()
                        } else {
                            format!("\nlabels: {}", labels.join(", "))
                        }
                    )))
                    .with(Section::Code {
                        language: Some("toml".into()),
                        text: prompt.to_toml(),
                    }))
            }
            Command::Create { prompt, message } => {
                let v = r
                    .save(&actor.id, "create", &prompt, &message, None, None)
                    .await?;
                Ok(Output::new(format!(
                    "created {} v{v}; promote it to put it in use",
                    prompt.name
                )))
            }
            Command::Edit {
                prompt,
                base,
                message,
            } => {
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
            Command::Diff { name, from, to } => {
                let (_, a) = r.version(&name, &from).await?;
                let (_, b) = r.version(&name, &to).await?;
                let text = prompts::diff(&a, &b);
                let summary = if text.is_empty() {
                    format!("{name} v{} and v{} are the same", a.version, b.version)
                } else {
                    format!("{name}: v{} → v{}", a.version, b.version)
                };
                Ok(Output::new(summary).with(Section::Code {
                    language: Some("diff".into()),
                    text,
                }))
            }
            Command::Promote {
                name,
                version,
                label,
            } => {
                let (before, _) = r
                    .set_label(
                        &actor.id,
                        "promote",
                        &name,
                        &label,
                        Some(vec![Arm {
                            version,
                            weight: 100,
                        }]),
                        None,
                    )
                    .await?;
                Ok(Output::new(format!(
                    "{name}@{label} now serves v{version} (was {})",
                    before.as_deref().map_or("unset".into(), stored_arms_text)
                )))
            }
            Command::Rollback { name, label, to } => {
                let target = match to {
                    Some(v) => vec![Arm {
                        version: v,
                        weight: 100,
                    }],
                    None => previous_arms(r, &name, &label).await?,
                };
                let (before, _) = r
                    .set_label(
                        &actor.id,
                        "rollback",
                        &name,
                        &label,
                        Some(target.clone()),
                        None,
                    )
                    .await?;
                Ok(Output::new(format!(
                    "{name}@{label} rolled back to {} (was {})",
                    arms_text(&target),
                    before.as_deref().map_or("unset".into(), stored_arms_text)
                )))
            }
            Command::Test {
                name,
                version,
                text,
            } => self.test(actor, &name, version, &text).await,
            Command::Bind { scope, target } => {
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
            Command::Split { name, label, arms } => {
                let (before, _) = r
                    .set_label(&actor.id, "split", &name, &label, Some(arms.clone()), None)
                    .await?;
                Ok(Output::new(format!(
                    "{name}@{label} now splits {} (was {}); each user keeps one version",
                    arms_text(&arms),
                    before.as_deref().map_or("unset".into(), stored_arms_text)
                )))
            }
            Command::History { name, limit } => {
                let rows = r.history(name.as_deref(), limit).await?;
                let table = rows
                    .into_iter()
                    .map(|a| {
                        vec![
                            format_ms(a.at_ms),
                            a.actor,
                            a.action,
                            a.target,
                            a.before.as_deref().map_or("-".into(), readable),
                            a.after.as_deref().map_or("-".into(), readable),
                            if a.outcome == "ok" {
                                a.detail.unwrap_or_default()
                            } else {
                                format!("REFUSED: {}", a.detail.unwrap_or_default())
                            },
                        ]
                    })
                    .collect::<Vec<_>>();
                Ok(
                    Output::new(format!("{} entries", table.len())).with(Section::Table {
                        columns: ["when", "who", "action", "target", "before", "after", "note"]
                            .map(String::from)
                            .to_vec(),
                        rows: table,
                    }),
                )
            }
        }
    }

    async fn test(
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
                user: Some(actor.id.clone()),
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
                    return Ok(Output::new(format!(
                        "test of {p} v{v}: {} tokens in {:.0} ms (inference {}, recorded as a test)",
                        summary.usage.map_or(0, |u| u.output_tokens),
                        summary.total_ms,
                        summary.inference_id
                    ))
                    .with(Section::Text(answer)));
                }
                ReplyEvent::Failed { message, .. } => return Err(AdminError::Test(message)),
                ReplyEvent::Started { .. } => {}
            }
        }
        Err(AdminError::Test("the answer stopped without an end".into()))
    }
}

/// `production` if the prompt has it, else `latest`.
fn default_selector(r: &Registry, name: &str) -> Selector {
    let has_production = r
        .list()
        .iter()
        .any(|p| p.name == name && p.labels.contains_key(crate::registry::PRODUCTION));
    Selector::Label(if has_production {
        crate::registry::PRODUCTION.into()
    } else {
        LATEST.into()
    })
}

/// Where the label pointed before its last move.
async fn previous_arms(r: &Registry, name: &str, label: &str) -> Result<Vec<Arm>, AdminError> {
    let target = format!("{name}@{label}");
    let moves = r.history(Some(name), 1000).await?;
    let last = moves
        .into_iter()
        .find(|a| a.target == target && a.outcome == "ok");
    let before = last.and_then(|a| a.before);
    match before.and_then(|b| serde_json::from_str::<Vec<Arm>>(&b).ok()) {
        Some(arms) if !arms.is_empty() => Ok(arms),
        _ => Err(AdminError::Registry(RegistryError::BadSplit(format!(
            "`{target}` has no earlier state to roll back to; name a version with `--to`"
        )))),
    }
}

fn arms_text(arms: &[Arm]) -> String {
    if let [one] = arms {
        return format!("v{}", one.version);
    }
    arms.iter()
        .map(|a| format!("v{}:{}", a.version, a.weight))
        .collect::<Vec<_>>()
        .join(",")
}

fn stored_arms_text(json: &str) -> String {
    serde_json::from_str::<Vec<Arm>>(json)
        .map(|a| arms_text(&a))
        .unwrap_or_else(|_| json.to_string())
}

/// Audit values as people read them: arms as `v3` or `v2:90,v3:10`.
fn readable(value: &str) -> String {
    if value.starts_with('[') {
        stored_arms_text(value)
    } else {
        value.to_string()
    }
}

/// Unix milliseconds as `2026-11-28 14:05:09 UTC`.
fn format_ms(ms: i64) -> String {
    crate::store::Utc::from_ms(ms).to_string()
}

/// Parses `2:90,3:10` (version:weight pairs) into split arms.
pub fn parse_arms(text: &str) -> Result<Vec<Arm>, RegistryError> {
    let mut arms = Vec::new();
    let mut seen = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (v, w) = part.split_once(':').ok_or_else(|| {
            RegistryError::BadSplit(format!(
                "`{part}`: write each arm as version:weight, like `2:90,3:10`"
            ))
        })?;
        let version = v
            .trim()
            .trim_start_matches('v')
            .parse::<i64>()
            .map_err(|_| RegistryError::BadSplit(format!("`{v}` is not a version number")))?;
        let weight = w
            .trim()
            .parse::<u32>()
            .map_err(|_| RegistryError::BadSplit(format!("`{w}` is not a whole-number weight")))?;
        if !seen.insert(version) {
            return Err(RegistryError::BadSplit(format!(
                "v{version} is listed twice"
            )));
        }
        arms.push(Arm { version, weight });
    }
    if arms.is_empty() {
        return Err(RegistryError::BadSplit(
            "give at least one version:weight pair, like `2:90,3:10`".into(),
        ));
    }
    Ok(arms)
}

/// The text syntax of the chat slash command (`/prompt …`), shared by the
/// Slack and Discord adapters. `here` is the scope the command was typed
/// in, for `bind here …`. `create` and `edit` take the prompt's TOML after
/// the first line (or from a platform's form) and are built by adapters.
pub const USAGE: &str = "\
/prompt list
/prompt show NAME [VERSION|LABEL]
/prompt diff NAME FROM [TO]
/prompt promote NAME VERSION [LABEL]
/prompt rollback NAME [LABEL] [VERSION]
/prompt test NAME [VERSION|LABEL] -- QUESTION
/prompt bind here|SCOPE NAME [LABEL]
/prompt unbind here|SCOPE
/prompt split NAME LABEL V:W,V:W
/prompt history [NAME]";

/// Parses the slash command's text into a [`Command`]; the error is a
/// message for the user, with [`USAGE`].
pub fn parse_command(text: &str, here: Option<&Scope>) -> Result<Command, String> {
    let (head, question) = match text.split_once(" -- ") {
        Some((h, q)) => (h, Some(q.trim().to_string())),
        None => (text, None),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let usage = |why: &str| format!("{why}\nusage:\n{USAGE}");
    let version = |s: &str| match Selector::parse(s) {
        Selector::Version(v) => Ok(v),
        Selector::Label(_) => Err(usage(&format!("`{s}` is not a version number"))),
    };
    let scope = |s: &str| -> Result<Scope, String> {
        if s == "here" {
            here.cloned()
                .ok_or_else(|| usage("`here` only works inside a channel"))
        } else {
            Scope::parse(s).map_err(|e| e.to_string())
        }
    };
    let label_or = |i: usize| {
        words
            .get(i)
            .map_or(crate::registry::PRODUCTION.to_string(), |s| s.to_string())
    };
    match words.as_slice() {
        ["list"] | [] => Ok(Command::List),
        ["show", name] | ["show", name, _] => Ok(Command::Show {
            name: name.to_string(),
            version: words.get(2).map(|s| Selector::parse(s)),
        }),
        ["diff", name, from] | ["diff", name, from, _] => Ok(Command::Diff {
            name: name.to_string(),
            from: Selector::parse(from),
            to: Selector::parse(words.get(3).copied().unwrap_or(LATEST)),
        }),
        ["promote", name, v] | ["promote", name, v, _] => Ok(Command::Promote {
            name: name.to_string(),
            version: version(v)?,
            label: label_or(3),
        }),
        ["rollback", name] | ["rollback", name, _] | ["rollback", name, _, _] => {
            Ok(Command::Rollback {
                name: name.to_string(),
                label: label_or(2),
                to: words.get(3).map(|v| version(v)).transpose()?,
            })
        }
        ["test", name] | ["test", name, _] => Ok(Command::Test {
            name: name.to_string(),
            version: words.get(2).map(|s| Selector::parse(s)),
            text: question.ok_or_else(|| usage("give the question after ` -- `"))?,
        }),
        ["bind", s, name] | ["bind", s, name, _] => Ok(Command::Bind {
            scope: scope(s)?,
            target: Some((name.to_string(), label_or(3))),
        }),
        ["unbind", s] => Ok(Command::Bind {
            scope: scope(s)?,
            target: None,
        }),
        ["split", name, label, arms] => Ok(Command::Split {
            name: name.to_string(),
            label: label.to_string(),
            arms: parse_arms(arms).map_err(|e| e.to_string())?,
        }),
        ["history"] | ["history", _] => Ok(Command::History {
            name: words.get(1).map(|s| s.to_string()),
            limit: 20,
        }),
        _ => Err(usage(&format!("cannot read `{}`", text.trim()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_command_text_parses_into_commands() {
        let here = Scope::parse("slack/T1/C1").unwrap();
        match parse_command("promote support 3", Some(&here)).unwrap() {
            Command::Promote {
                name,
                version,
                label,
            } => {
                assert_eq!(
                    (name.as_str(), version, label.as_str()),
                    ("support", 3, "production")
                )
            }
            other => panic!("{other:?}"),
        }
        match parse_command("bind here support staging", Some(&here)).unwrap() {
            Command::Bind { scope, target } => {
                assert_eq!(scope, here);
                assert_eq!(target, Some(("support".into(), "staging".into())));
            }
            other => panic!("{other:?}"),
        }
        match parse_command("test support v2 -- Where is {{ my }} order?", None).unwrap() {
            Command::Test { version, text, .. } => {
                assert_eq!(version, Some(Selector::Version(2)));
                assert_eq!(text, "Where is {{ my }} order?");
            }
            other => panic!("{other:?}"),
        }
        match parse_command("split support production 1:90,2:10", None).unwrap() {
            Command::Split { arms, .. } => assert_eq!(arms.len(), 2),
            other => panic!("{other:?}"),
        }
        let err = parse_command("promote support staging", None).unwrap_err();
        assert!(
            err.contains("not a version number") && err.contains("usage:"),
            "{err}"
        );
        let err = parse_command("bind here support", None).unwrap_err();
        assert!(err.contains("only works inside a channel"), "{err}");
        assert!(
            parse_command("frobnicate", None)
                .unwrap_err()
                .contains("cannot read")
        );
        assert!(parse_command("split support production 1:x", None).is_err());
    }
}
