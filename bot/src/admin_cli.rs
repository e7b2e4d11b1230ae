//! `switchboard admin add|list|remove`: the dashboard's accounts. The
//! password is never a command-line argument (those show in `ps` and shell
//! history): it is read from `$SWITCHBOARD_ADMIN_PASSWORD` when set, else
//! asked for twice on the terminal without echo, else read as the first
//! line of standard input.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use gateway::http::dashboard::accounts;

/// The variable a script can pass the password in.
const PASSWORD_ENV: &str = "SWITCHBOARD_ADMIN_PASSWORD";

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a dashboard account (password from $SWITCHBOARD_ADMIN_PASSWORD, the terminal, or stdin).
    Add {
        /// The account name (letters, digits, `.`, `_`, `-`).
        name: String,
    },
    /// List the dashboard accounts.
    List,
    /// Remove a dashboard account and end its sessions.
    Remove {
        /// The account name.
        name: String,
    },
}

pub async fn run(config: &gateway::Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = gateway::app::open_store(config).await?;
    let result = match command {
        AdminCommand::Add { name } => {
            let password = read_password()?;
            accounts::add_account(&store, &name, &password)
                .await
                .map(|()| println!("added the dashboard account `{name}`; sign in at /dashboard"))
                .map_err(anyhow::Error::from)
        }
        AdminCommand::List => store
            .accounts()
            .await
            .map_err(anyhow::Error::from)
            .map(|list| {
                if list.is_empty() {
                    println!("no dashboard accounts; add one with `switchboard admin add NAME`");
                }
                for (name, created) in list {
                    println!("{name}\tcreated {}", gateway::domain::Utc::from_ms(created));
                }
            }),
        AdminCommand::Remove { name } => accounts::remove_account(&store, &name)
            .await
            .map(|()| println!("removed the dashboard account `{name}` and ended its sessions"))
            .map_err(anyhow::Error::from),
    };
    store.close().await;
    result
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV)
        && !p.is_empty()
    {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let second = prompt_hidden("Password again: ")?;
        if first != second {
            bail!("the two passwords differ; run the command again");
        }
        return Ok(first);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password given: set ${PASSWORD_ENV}, run on a terminal, or pipe the password on standard input"
        );
    }
    Ok(password)
}

/// Asks on the terminal with echo turned off (`stty -echo`).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    writeln!(err)?;
    read.context("cannot read the password from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
