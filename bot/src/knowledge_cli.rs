//! `switchboard knowledge`: the operator's commands for retrieval — ingest
//! folders into a named source, list sources, search them as a prompt
//! would, embed what was stored without vectors, and remove a source.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use gateway::knowledge::{Knowledge, SearchQuery, Viewer};
use prompts::SearchMode;

/// `switchboard knowledge …`
#[derive(Subcommand)]
pub enum KnowledgeCommand {
    /// Read Markdown, text, HTML and PDF files under PATHs into a source (incremental: unchanged files cost nothing, removed ones are deleted).
    Ingest {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The source's name, as `[retrieval] sources` names it.
        #[arg(long)]
        source: String,
        /// Who may see it: `global` (every workspace) or `platform/workspace` (`slack/T0123`).
        #[arg(long, default_value = gateway::knowledge::GLOBAL)]
        scope: String,
    },
    /// Read a chat source's followed channels again (`knowledge_channels` under `[slack]` or `[discord]`), and embed the chunks of a source that were stored without vectors (the embedding model was down).
    Sync {
        /// The source.
        source: String,
    },
    /// Show every source with its scope, counts and embedding model.
    List,
    /// Search as a prompt would, printing ranked chunks with scores and links.
    Search {
        /// The question.
        query: String,
        /// Only this source (repeatable); default: every source.
        #[arg(long)]
        source: Vec<String>,
        /// How many chunks.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// `hybrid`, `lexical` or `dense`.
        #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
        mode: SearchMode,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a source and everything in it.
    Remove {
        /// The source.
        source: String,
    },
}

fn parse_mode(text: &str) -> Result<SearchMode, String> {
    match text {
        "hybrid" => Ok(SearchMode::Hybrid),
        "lexical" => Ok(SearchMode::Lexical),
        "dense" => Ok(SearchMode::Dense),
        other => Err(format!(
            "`{other}` is not a search mode: use hybrid, lexical or dense"
        )),
    }
}

/// Runs one `knowledge` command.
pub async fn run(config: &gateway::Config, command: KnowledgeCommand) -> anyhow::Result<()> {
    let store = gateway::app::open_store(config).await?;
    let knowledge = Knowledge::new(config, store.clone())?;
    let result = execute(config, &knowledge, command).await;
    store.close().await;
    result
}

async fn execute(
    config: &gateway::Config,
    knowledge: &Knowledge,
    command: KnowledgeCommand,
) -> anyhow::Result<()> {
    match command {
        KnowledgeCommand::Ingest {
            paths,
            source,
            scope,
        } => {
            let report = knowledge
                .ingest_files(&source, &scope, &paths, &mut |line| eprintln!("  {line}"))
                .await?;
            for s in &report.skipped {
                eprintln!("skipped {}: {}", s.path.display(), s.reason);
            }
            if let Some(w) = &report.warning {
                eprintln!("warning: {w}");
            }
            println!(
                "source `{source}`: {} added, {} updated, {} unchanged, {} removed, {} skipped; {} chunks written in {:.1} s",
                report.added,
                report.changed,
                report.unchanged,
                report.removed,
                report.skipped.len(),
                report.chunks,
                report.seconds
            );
            Ok(())
        }
        KnowledgeCommand::Sync { source } => sync(config, knowledge, &source).await,
        KnowledgeCommand::List => {
            let sources = knowledge.sources(&Viewer::operator()).await?;
            if sources.is_empty() {
                println!(
                    "no knowledge sources yet: `switchboard knowledge ingest PATH --source NAME`"
                );
            }
            for s in sources {
                let missing = match s.unembedded {
                    0 => String::new(),
                    n => format!(
                        ", {n} without vectors (`switchboard knowledge sync {}`)",
                        s.name
                    ),
                };
                println!(
                    "{}  {} · {} · {} documents, {} chunks · {}{missing}",
                    s.name, s.kind, s.scope, s.documents, s.chunks, s.embedder
                );
            }
            Ok(())
        }
        KnowledgeCommand::Search {
            query,
            source,
            top_k,
            mode,
            json,
        } => {
            if !(1..=50).contains(&top_k) {
                anyhow::bail!("--top-k is from 1 to 50");
            }
            let q = SearchQuery {
                mode,
                ..SearchQuery::new(&query, source, top_k)
            };
            let result = knowledge.search(&q, &Viewer::operator()).await?;
            if json {
                let hits: Vec<_> = result
                    .hits
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        serde_json::json!({
                            "rank": i + 1,
                            "chunk_id": h.chunk.id,
                            "source": h.chunk.source,
                            "document": h.chunk.doc_key,
                            "title": h.chunk.title,
                            "heading": h.chunk.heading,
                            "link": h.chunk.link,
                            "score": h.score,
                            "lexical_rank": h.lexical.map(|l| l.0),
                            "dense_rank": h.dense.map(|d| d.0),
                            "similarity": h.dense.map(|d| d.1),
                            "text": h.chunk.body,
                        })
                    })
                    .collect();
                let out = serde_json::json!({
                    "query": query,
                    "sources": result.sources,
                    "hits": hits,
                    "warnings": result.warnings,
                    "embed_ms": result.embed_ms,
                    "search_ms": result.search_ms,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).context("encoding the results")?
                );
                return Ok(());
            }
            for w in &result.warnings {
                eprintln!("warning: {w}");
            }
            if result.hits.is_empty() {
                println!("nothing found for “{query}”");
            }
            for (i, h) in result.hits.iter().enumerate() {
                let mut title = h.chunk.title.clone();
                if !h.chunk.heading.is_empty() {
                    title.push_str(&format!(" › {}", h.chunk.heading));
                }
                let ranks = [
                    h.lexical.map(|l| format!("lexical #{}", l.0)),
                    h.dense.map(|d| format!("dense #{} ({:.3})", d.0, d.1)),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                println!("{}. [{:.4}] {title}  ({ranks})", i + 1, h.score);
                if let Some(link) = &h.chunk.link {
                    println!("   {link}");
                }
                let preview: String = h.chunk.body.chars().take(200).collect();
                println!("   {}", preview.replace('\n', " "));
            }
            Ok(())
        }
        KnowledgeCommand::Remove { source } => {
            knowledge.remove(&source).await?;
            println!("source `{source}` removed");
            Ok(())
        }
    }
}

/// `knowledge sync SOURCE`: a chat source's channels read again from the
/// platform (Slack's when SOURCE is `slack.knowledge_source`, Discord's
/// when it is `discord.knowledge_source`), then any chunk stored without a
/// vector embedded.
async fn sync(config: &gateway::Config, knowledge: &Knowledge, source: &str) -> anyhow::Result<()> {
    let mut chat = false;
    if let Some(slack) = crate::slack::SlackConfig::from_config(config)?
        && slack.knowledge_source == source
    {
        chat = true;
        let secrets = slack.secrets(&config.env)?;
        let harvest =
            crate::slack::knowledge::Harvest::for_cli(&slack, &secrets.bot_token, knowledge);
        harvest
            .backfill_all(&mut |b| println!("{}", b.summary()))
            .await
            .with_context(|| format!("cannot read Slack channels into `{source}`"))?;
    }
    if let Some(table) = &config.discord {
        let discord = crate::discord::DiscordConfig::parse(table, |var| {
            config.env.get(var).map(str::to_string)
        })?;
        if discord.knowledge_source == source {
            chat = true;
            let harvest = crate::discord::knowledge::Harvest::for_cli(&discord, knowledge).await?;
            harvest
                .backfill_all(&mut |b| println!("{}", b.summary()))
                .await
                .with_context(|| format!("cannot read Discord channels into `{source}`"))?;
        }
    }
    let sources = knowledge.sources(&Viewer::operator()).await?;
    if !sources.iter().any(|s| s.name == source) {
        if chat {
            println!(
                "source `{source}`: no channels to read yet (set slack.knowledge_channels, or run /knowledge sync in a channel)"
            );
            return Ok(());
        }
        anyhow::bail!("there is no knowledge source `{source}` (`switchboard knowledge list`)");
    }
    let n = knowledge.sync_vectors(source).await?;
    println!("source `{source}`: {n} chunks embedded");
    Ok(())
}
