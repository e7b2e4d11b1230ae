//! `switchboard prompts …`: the prompt registry from the command line. Each
//! subcommand is a thin parser over the gateway's admin command layer (the
//! same one the Slack and Discord slash commands use), acting as the local
//! operator; `export` and `import` keep prompts in files for git.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use gateway::domain::Selector;
use gateway::promptops::admin::{Actor, Admin, Command};
use gateway::registry::{PRODUCTION, Scope};
use prompts::Prompt;

/// The prompt commands.
#[derive(Subcommand)]
pub enum PromptsCommand {
    /// Every prompt with its newest version, labels and bindings.
    List,
    /// One version in full (default: production, else the newest).
    Show {
        /// The prompt.
        name: String,
        /// A version number or a label.
        version: Option<String>,
    },
    /// Create a prompt from a file, or in $EDITOR from a starting template.
    Create {
        /// The prompt's name.
        name: String,
        /// Read the prompt from this TOML file instead of opening $EDITOR.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The commit message.
        #[arg(short, long, default_value = "created")]
        message: String,
    },
    /// Save a new version: edit the newest in $EDITOR, or read a file.
    Edit {
        /// The prompt.
        name: String,
        /// Read the new version from this TOML file instead of opening $EDITOR.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The version your edit starts from (default: the newest now). If
        /// another version was saved since, nothing is saved.
        #[arg(long)]
        base: Option<i64>,
        /// The commit message.
        #[arg(short, long)]
        message: String,
    },
    /// A unified diff between two versions (numbers or labels).
    Diff {
        /// The prompt.
        name: String,
        /// From.
        from: String,
        /// To (default: latest).
        #[arg(default_value = "latest")]
        to: String,
    },
    /// Point a label (default: production) at a version.
    Promote {
        /// The prompt.
        name: String,
        /// The version number.
        version: String,
        /// The label.
        #[arg(long, default_value = PRODUCTION)]
        label: String,
    },
    /// Move a label back: undo its last move, or go to a version.
    Rollback {
        /// The prompt.
        name: String,
        /// The label.
        #[arg(long, default_value = PRODUCTION)]
        label: String,
        /// The version to go back to.
        #[arg(long)]
        to: Option<String>,
    },
    /// Answer a sample question with a version (default: latest), recorded as a test.
    Test {
        /// The prompt.
        name: String,
        /// The sample question.
        text: String,
        /// A version number or label.
        #[arg(long)]
        version: Option<String>,
    },
    /// Bind a scope (`global`, `slack/T123`, `slack/T123/C456`, …) to a prompt.
    Bind {
        /// The scope.
        scope: String,
        /// The prompt.
        name: String,
        /// The label to answer with.
        #[arg(long, default_value = PRODUCTION)]
        label: String,
    },
    /// Remove a scope's binding (it then inherits its parent's).
    Unbind {
        /// The scope.
        scope: String,
    },
    /// Split a label's traffic by weight, sticky per user: `2:90,3:10`.
    Split {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// version:weight pairs.
        arms: String,
    },
    /// The audit log (of one prompt, or all).
    History {
        /// The prompt.
        name: Option<String>,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Write one TOML file per prompt (at a label, else the newest) into DIR.
    Export {
        /// The folder.
        dir: PathBuf,
        /// The label to export.
        #[arg(long, default_value = PRODUCTION)]
        label: String,
    },
    /// Read every *.toml in DIR; save a new version of each prompt that changed.
    Import {
        /// The folder.
        dir: PathBuf,
        /// Also point this label at each imported version.
        #[arg(long)]
        promote: Option<String>,
    },
    /// The context variables every template can use.
    Variables,
}

/// Runs one prompt command and prints its result.
pub async fn run(config: &gateway::Config, command: PromptsCommand) -> anyhow::Result<()> {
    if let PromptsCommand::Variables = command {
        for (name, what) in prompts::CONTEXT_VARIABLES {
            println!("{name:<16} {what}");
        }
        return Ok(());
    }
    let actor = Actor::cli(&std::env::var("USER").unwrap_or_else(|_| "operator".into()));
    // `test` answers with the models; everything else needs only the database.
    if let PromptsCommand::Test {
        name,
        text,
        version,
    } = command
    {
        crate::models::prepare(config).await?;
        let app = gateway::Gateway::build(config).await?;
        let result = app
            .admin
            .run(
                &actor,
                Command::Test {
                    name,
                    version: version.as_deref().map(Selector::parse),
                    text,
                },
            )
            .await;
        app.shutdown().await;
        print!("{}", result?.to_text());
        return Ok(());
    }
    let store = gateway::app::open_store(config).await?;
    let registry = gateway::app::open_registry(config, &store).await?;
    let admin = Admin::new(registry.clone(), None, config.admin.clone());
    let result = execute(&admin, &actor, command, config).await;
    registry.close();
    store.close().await;
    result
}

async fn execute(
    admin: &Admin,
    actor: &Actor,
    command: PromptsCommand,
    config: &gateway::Config,
) -> anyhow::Result<()> {
    let command = match command {
        PromptsCommand::List => Command::List,
        PromptsCommand::Show { name, version } => Command::Show {
            name,
            version: version.as_deref().map(Selector::parse),
        },
        PromptsCommand::Create {
            name,
            file,
            message,
        } => {
            let prompt = match file {
                Some(f) => read_prompt(&f)?,
                None => {
                    let start = format!(
                        "name = \"{name}\"\ndescription = \"\"\nmodel = \"default\"\n\n[params]\ntemperature = 0.2\n\n[[messages]]\nrole = \"system\"\ntemplate = \"\"\"\nYou are {{{{ bot_name }}}}, …\"\"\"\n\n[[messages]]\nrole = \"history\"\n\n[[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n"
                    );
                    match in_editor(config, &name, &start)? {
                        Some(p) => p,
                        None => {
                            println!("no change; nothing saved");
                            return Ok(());
                        }
                    }
                }
            };
            same_name(&prompt, &name)?;
            Command::Create { prompt, message }
        }
        PromptsCommand::Edit {
            name,
            file,
            base,
            message,
        } => {
            let base = match base {
                Some(b) => b,
                None => {
                    let (row, _) = admin
                        .registry()
                        .version(&name, &Selector::Label("latest".into()))
                        .await?;
                    row.version
                }
            };
            let prompt = match file {
                Some(f) => read_prompt(&f)?,
                None => {
                    let (_, current) = admin
                        .registry()
                        .version(&name, &Selector::Version(base))
                        .await?;
                    match in_editor(config, &name, &current.to_toml())? {
                        Some(p) => p,
                        None => {
                            println!("no change; nothing saved");
                            return Ok(());
                        }
                    }
                }
            };
            same_name(&prompt, &name)?;
            Command::Edit {
                prompt,
                base,
                message,
            }
        }
        PromptsCommand::Diff { name, from, to } => Command::Diff {
            name,
            from: Selector::parse(&from),
            to: Selector::parse(&to),
        },
        PromptsCommand::Promote {
            name,
            version,
            label,
        } => Command::Promote {
            name,
            version: version_number(&version)?,
            label,
        },
        PromptsCommand::Rollback { name, label, to } => Command::Rollback {
            name,
            label,
            to: to.as_deref().map(version_number).transpose()?,
        },
        PromptsCommand::Bind { scope, name, label } => Command::Bind {
            scope: Scope::parse(&scope)?,
            target: Some((name, label)),
        },
        PromptsCommand::Unbind { scope } => Command::Bind {
            scope: Scope::parse(&scope)?,
            target: None,
        },
        PromptsCommand::Split { name, label, arms } => Command::Split {
            name,
            label,
            arms: gateway::promptops::admin::parse_arms(&arms)?,
        },
        PromptsCommand::History { name, limit } => Command::History { name, limit },
        PromptsCommand::Export { dir, label } => {
            let files = admin.registry().export(&dir, &label).await?;
            for f in &files {
                println!("wrote {f}");
            }
            return Ok(());
        }
        PromptsCommand::Import { dir, promote } => {
            let done = admin
                .registry()
                .import(&actor.id, &dir, promote.as_deref())
                .await?;
            for (name, version, changed) in done {
                if changed {
                    println!("{name}: saved v{version}");
                } else {
                    println!("{name}: unchanged (v{version})");
                }
            }
            return Ok(());
        }
        PromptsCommand::Test { .. } | PromptsCommand::Variables => return Ok(()),
    };
    let output = admin.run(actor, command).await?;
    print!("{}", output.to_text());
    Ok(())
}

fn same_name(prompt: &Prompt, name: &str) -> anyhow::Result<()> {
    if prompt.name != name {
        bail!(
            "the file names prompt `{}`, not `{name}`; fix `name` in the file",
            prompt.name
        );
    }
    Ok(())
}

fn version_number(s: &str) -> anyhow::Result<i64> {
    match Selector::parse(s) {
        Selector::Version(v) => Ok(v),
        Selector::Label(_) => bail!("`{s}` is not a version number; give one like 3 or v3"),
    }
}

fn read_prompt(path: &Path) -> anyhow::Result<Prompt> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(Prompt::from_toml(&path.display().to_string(), &text)?)
}

/// Opens `start` in $EDITOR (else $VISUAL, else vi) and parses what is
/// saved. `None` when nothing changed. A file that does not parse stays
/// where it is so the edit is not lost.
fn in_editor(config: &gateway::Config, name: &str, start: &str) -> anyhow::Result<Option<Prompt>> {
    let editor = std::env::var("EDITOR")
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".into());
    let dir = config.data_dir.join("edits");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, start).with_context(|| format!("cannot write `{}`", path.display()))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status()
        .with_context(|| format!("cannot run the editor `{editor}`; set $EDITOR"))?;
    if !status.success() {
        bail!(
            "the editor `{editor}` exited with {status}; nothing saved (your text is in `{}`)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(&path)?;
    if text == start {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    let prompt = Prompt::from_toml(&path.display().to_string(), &text).with_context(|| {
        format!(
            "nothing saved; fix the file and run again with `--file {}`",
            path.display()
        )
    })?;
    Ok(Some(prompt))
}
