//! The command line: the subcommands, and running one. It loads the
//! configuration, wires the gateway together and runs one of the front
//! ends: the terminal chat, the HTTP server, or a maintenance command. The
//! binary only parses the arguments and hands them to [`main`].

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{admin_cli, console, eval_cli, knowledge_cli, models, prompts_cli, telemetry, wiring};

/// Switchboard: a team chat bot with a prompt-ops backend.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    /// Configuration file (default: $SWITCHBOARD_CONFIG, else ./switchboard.toml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line); default: `[telemetry] log_format`.
    #[arg(
        long,
        global = true,
        value_name = "FORMAT",
        env = "SWITCHBOARD_LOG_FORMAT"
    )]
    log_format: Option<gateway::config::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with the bot in this terminal, through the full pipeline.
    Chat,
    /// Run the HTTP server (OpenAI-compatible API, health checks).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check the configuration and print what is in force.
    Config,
    /// Manage embedded model files.
    Models {
        #[command(subcommand)]
        action: ModelsCommand,
    },
    /// Compare a candidate prompt version with a baseline on logged conversations.
    Eval(Box<eval_cli::EvalArgs>),
    /// Export logged conversations: fine-tuning JSONL, eval JSONL or CSV.
    Export {
        /// `openai` (chat fine-tuning JSONL), `eval` (JSONL) or `csv`.
        #[arg(long, default_value = "openai")]
        format: gateway::promptops::export::Format,
        /// Only this prompt.
        #[arg(long)]
        prompt: Option<String>,
        #[command(flatten)]
        logged: eval_cli::DatasetArgs,
        /// Replace e-mail addresses, phone numbers and user mentions.
        #[arg(long)]
        redact: bool,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Manage prompts: versions, labels, A/B splits, bindings, history.
    Prompts {
        #[command(subcommand)]
        action: prompts_cli::PromptsCommand,
    },
    /// Retrieval: ingest the team's documents, list, search and remove sources.
    Knowledge {
        #[command(subcommand)]
        action: knowledge_cli::KnowledgeCommand,
    },
    /// Tools: list every tool prompts may offer, with its schema; run one call as a dry run.
    Tools {
        #[command(subcommand)]
        action: crate::tools_cli::ToolsCommand,
    },
    /// Manage dashboard accounts.
    Admin {
        #[command(subcommand)]
        action: admin_cli::AdminCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Fetch the configured embedded model(s) and the embedding model into `data_dir/models`, verifying the checksums.
    Pull {
        /// Only this model or provider.
        name: Option<String>,
    },
    /// Show the model files present.
    List,
}

/// Runs the parsed command line on a multi-threaded runtime; errors are
/// printed, and the exit code says whether it succeeded.
pub fn main(cli: Cli) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = matches!(
        cli.command,
        Command::Chat
            | Command::Prompts { .. }
            | Command::Export { .. }
            | Command::Eval(_)
            | Command::Admin { .. }
    );
    let path = gateway::config::locate(cli.config.as_deref());
    let config = gateway::Config::load(path.as_deref()).with_context(|| {
        format!(
            "configuration {}",
            path.as_ref()
                .map_or("(built-in defaults)".into(), |p| format!(
                    "`{}`",
                    p.display()
                ))
        )
    })?;
    let format = cli.log_format.unwrap_or(config.telemetry.log_format);
    let telemetry = telemetry::init(&config.telemetry, format, quiet)?;
    let result = execute(cli.command, config, path).await;
    telemetry.shutdown().await;
    result
}

/// Runs one command with the loaded configuration.
async fn execute(
    command: Command,
    config: gateway::Config,
    path: Option<PathBuf>,
) -> anyhow::Result<()> {
    match command {
        Command::Config => {
            println!(
                "configuration: {}",
                path.map_or("(built-in defaults)".into(), |p| p.display().to_string())
            );
            println!("data_dir: {}", config.data_dir.display());
            println!(
                "database: {}",
                gateway::config::redact_url(&config.database_url())
            );
            println!("listen: {}", config.server.listen);
            for (name, alias) in &config.models {
                println!("model {name}: {}", alias.targets.join(" → "));
            }
            for (name, server) in &config.tools {
                let how = match server.transport() {
                    gateway::config::ToolTransport::Stdio { command, args } => {
                        format!(
                            "stdio `{command}{}{}`",
                            if args.is_empty() { "" } else { " " },
                            args.join(" ")
                        )
                    }
                    gateway::config::ToolTransport::Http { url } => {
                        format!("Streamable HTTP {url}")
                    }
                };
                let confirm = if server.confirm {
                    ", asks before each call"
                } else {
                    ""
                };
                println!("tools {name}: {how}{confirm}");
            }
            // The prompts' tools against this configuration: a tool that is
            // not configured, or tools on the embedded model, are refused.
            let problems = match gateway::app::open_store(&config).await {
                Ok(store) => {
                    let problems = match gateway::app::open_registry(&config, &store).await {
                        Ok(registry) => {
                            let p = gateway::tools::check_prompts(&config, &registry).await;
                            registry.close();
                            p
                        }
                        Err(e) => {
                            println!("prompts: not checked (the registry cannot be read: {e})");
                            Vec::new()
                        }
                    };
                    store.close().await;
                    problems
                }
                Err(e) => {
                    println!("prompts: not checked (the database cannot be opened: {e})");
                    Vec::new()
                }
            };
            if !problems.is_empty() {
                anyhow::bail!(
                    "the prompts' tools do not fit this configuration:\n  {}",
                    problems.join("\n  ")
                );
            }
            Ok(())
        }
        Command::Migrate => {
            let store = gateway::app::open_store(&config).await?;
            println!(
                "migrations applied to {}",
                gateway::config::redact_url(&config.database_url())
            );
            store.close().await;
            Ok(())
        }
        Command::Models { action } => {
            let config = config.clone();
            tokio::task::spawn_blocking(move || match action {
                ModelsCommand::Pull { name } => models::pull(&config, name.as_deref()),
                ModelsCommand::List => models::list(&config),
            })
            .await?
        }
        Command::Prompts { action } => prompts_cli::run(&config, action).await,
        Command::Admin { action } => admin_cli::run(&config, action).await,
        Command::Knowledge { action } => knowledge_cli::run(&config, action).await,
        Command::Tools { action } => crate::tools_cli::run(&config, action).await,
        Command::Eval(args) => eval_cli::run(&config, *args).await,
        Command::Export {
            format,
            prompt,
            logged,
            redact,
            output,
        } => {
            let filter = logged.filter(prompt)?;
            let store = gateway::app::open_store(&config).await?;
            let result = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("cannot create `{}`", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    let n = gateway::promptops::export::export(
                        &store, &filter, format, redact, &mut out,
                    )
                    .await;
                    std::io::Write::flush(&mut out)?;
                    n
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    gateway::promptops::export::export(&store, &filter, format, redact, &mut out)
                        .await
                }
            };
            store.close().await;
            let exported = result?;
            match exported.without_ttft {
                0 => eprintln!("exported {} conversations", exported.conversations),
                n => eprintln!(
                    "exported {} conversations ({n} without a TTFT figure: left empty, never 0)",
                    exported.conversations
                ),
            }
            Ok(())
        }
        Command::Chat => {
            models::prepare(&config).await?;
            let app = gateway::Gateway::build(&config).await?;
            let result = console::run(&app).await;
            app.shutdown().await;
            result
        }
        Command::Serve => {
            models::prepare(&config).await?;
            let app = gateway::Gateway::build(&config).await?;
            let result = wiring::serve(&app, &config).await;
            app.shutdown().await;
            result
        }
    }
}
