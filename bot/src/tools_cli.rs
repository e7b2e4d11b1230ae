//! `switchboard tools`: the operator's view of the tools prompts may offer —
//! every tool with its JSON Schema (each `[tools.NAME]` MCP server started
//! to list its own), and one call run as a dry run, outside any answer.

use anyhow::{Context, bail};
use clap::Subcommand;
use gateway::domain::ToolCall;
use gateway::knowledge::{Knowledge, Viewer};
use gateway::tools::{CallContext, Toolbox};

/// `switchboard tools …`
#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Every tool prompts may offer, with its JSON Schema: the built-ins, and each [tools.NAME] server's own (started to list them).
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one tool call as a dry run, outside any answer, and print its result.
    Call {
        /// The tool: its own name, or `SERVER.TOOL` when two servers have one of that name.
        name: String,
        /// The arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
    },
}

/// Runs a `tools` command.
pub async fn run(config: &gateway::Config, command: ToolsCommand) -> anyhow::Result<()> {
    let store = gateway::app::open_store(config).await?;
    let knowledge = Knowledge::new(config, store.clone()).ok();
    let toolbox = Toolbox::new(config, knowledge);
    let result = execute(&toolbox, command).await;
    toolbox.stop().await;
    store.close().await;
    result
}

async fn execute(toolbox: &Toolbox, command: ToolsCommand) -> anyhow::Result<()> {
    match command {
        ToolsCommand::List { json } => {
            let listed = toolbox.list().await;
            let failed: Vec<String> = listed
                .iter()
                .filter_map(|(server, r)| r.as_ref().err().map(|e| format!("{server}: {e}")))
                .collect();
            if json {
                let out: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|(server, r)| match r {
                        Ok(tools) => serde_json::json!({"server": server, "tools": tools}),
                        Err(e) => serde_json::json!({"server": server, "error": e.to_string()}),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for (server, r) in &listed {
                    match r {
                        Ok(tools) => {
                            for t in tools {
                                println!("{server}: {}", t.name);
                                if let Some(d) = &t.description {
                                    println!("  {d}");
                                }
                                println!("  schema: {}", t.parameters);
                            }
                        }
                        Err(e) => println!("{server}: unavailable: {e}"),
                    }
                }
            }
            if !failed.is_empty() {
                bail!(
                    "{} tool server(s) could not be listed:\n  {}",
                    failed.len(),
                    failed.join("\n  ")
                );
            }
            Ok(())
        }
        ToolsCommand::Call { name, arguments } => {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&arguments)
                .context(
                    "the arguments must be a JSON object, such as '{\"timezone\": \"UTC\"}'",
                )?;
            let wanted = match name.split_once('.') {
                Some(_) => vec![name.clone()],
                None => toolbox.names(),
            };
            let offer = toolbox.offer(&wanted).await;
            let tool = name.split_once('.').map_or(name.as_str(), |(_, t)| t);
            if !offer.offers(tool) {
                let known: Vec<&str> = offer.specs.iter().map(|s| s.name.as_str()).collect();
                let mut message = format!(
                    "there is no tool `{name}`; the tools are: {}",
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                for u in &offer.unavailable {
                    message.push_str(&format!("\n  left out: {u}"));
                }
                bail!(message);
            }
            let call = ToolCall {
                id: "cli".into(),
                name: tool.to_string(),
                arguments,
            };
            let context = CallContext {
                viewer: Viewer::operator(),
                history: &[],
            };
            let outcome = toolbox.call(&offer, &call, &context).await;
            if let Some(e) = &outcome.error {
                bail!("{e}");
            }
            println!("{}", outcome.text);
            if outcome.truncated {
                eprintln!(
                    "(the model would see the first {} of {} bytes: [tool_loop] max_result_bytes)",
                    toolbox.limits().max_result_bytes,
                    outcome.bytes
                );
            }
            eprintln!("({:.0} ms)", outcome.ms);
            Ok(())
        }
    }
}
