//! `switchboard prompts …` as an operator runs it: a real process against
//! the SQLite file, editing through $EDITOR, files for git, and a dry-run
//! test answered by a stand-in provider.

use std::path::Path;

use testkit::standin::StandIn;

struct Cli {
    config: std::path::PathBuf,
}

impl Cli {
    fn new(dir: &Path, provider_url: &str) -> Cli {
        let config = dir.join("switchboard.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n[providers.stand-in]\nkind = \"openai\"\nbase_url = \"{provider_url}\"\n[models.default]\ntargets = [\"stand-in/m\"]\n",
                dir.display()
            ),
        )
        .unwrap();
        Cli { config }
    }

    /// Runs `switchboard prompts ARGS` with extra environment; returns
    /// (success, stdout, stderr).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&self.config)
            .arg("prompts")
            .args(args)
            .envs(env.iter().copied())
            .env_remove("SWITCHBOARD_CONFIG")
            .output()
            .expect("run switchboard");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let (ok, out, err) = self.run(args, env);
        assert!(ok, "prompts {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }
}

const SUPPORT: &str = r#"name = "support"
description = "Support answers"
[variables]
product = "The product."
[[messages]]
role = "system"
template = "Be brief about {{ product }}."
[[messages]]
role = "history"
[[messages]]
role = "user"
template = "{{ text }}"
"#;

// The commands run as blocking child processes; the stand-in needs a
// worker thread of its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_commands_work_end_to_end_from_the_command_line() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path(), &provider.url);
    let file = dir.path().join("support.toml");
    std::fs::write(&file, SUPPORT).unwrap();

    let out = cli.ok(&[
        "create",
        "support",
        "--file",
        file.to_str().unwrap(),
        "-m",
        "first",
    ]);
    assert!(out.contains("created support v1"), "{out}");

    // `edit` opens $EDITOR on the newest version and saves what it writes.
    let out = cli.ok_with(
        &["edit", "support", "-m", "kinder"],
        &[("EDITOR", "sed -i s/brief/kind/")],
    );
    assert!(out.contains("saved support v2"), "{out}");
    assert!(
        out.contains("-Be brief about {{ product }}.\n+Be kind about {{ product }}."),
        "{out}"
    );
    // An editor that changes nothing saves nothing.
    let out = cli.ok_with(&["edit", "support", "-m", "noop"], &[("EDITOR", "true")]);
    assert!(out.contains("no change; nothing saved"), "{out}");

    let out = cli.ok(&["promote", "support", "2"]);
    assert!(
        out.contains("support@production now serves v2 (was unset)"),
        "{out}"
    );
    let out = cli.ok(&["promote", "support", "1"]);
    assert!(out.contains("now serves v1 (was v2)"), "{out}");
    let out = cli.ok(&["rollback", "support"]);
    assert!(out.contains("rolled back to v2 (was v1)"), "{out}");

    let out = cli.ok(&["list"]);
    assert!(
        out.contains("support") && out.contains("production→v2"),
        "{out}"
    );
    assert!(
        out.contains("assistant"),
        "the seeded default prompt is listed: {out}"
    );
    let out = cli.ok(&["show", "support", "1"]);
    assert!(
        out.contains("support v1") && out.contains("Be brief"),
        "{out}"
    );
    let out = cli.ok(&["diff", "support", "1", "2"]);
    assert!(out.contains("+Be kind about"), "{out}");

    let out = cli.ok(&["split", "support", "staging", "1:50,2:50"]);
    assert!(
        out.contains("support@staging now splits v1:50,v2:50"),
        "{out}"
    );
    let out = cli.ok(&["bind", "slack/T1/C1", "support"]);
    assert!(
        out.contains("slack/T1/C1 now answers with support@production"),
        "{out}"
    );
    let out = cli.ok(&["history", "support"]);
    for action in ["create", "edit", "promote", "rollback", "split"] {
        assert!(out.contains(action), "history lacks {action}: {out}");
    }
    assert!(out.contains("cli:"), "{out}");

    // Bad input: a clear error, a failing exit, nothing stored.
    std::fs::write(&file, SUPPORT.replace("{{ product }}", "{{ prodcut }}")).unwrap();
    let (ok, _, err) = cli.run(
        &[
            "edit",
            "support",
            "--file",
            file.to_str().unwrap(),
            "-m",
            "typo",
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("unknown variable `prodcut`"), "{err}");
    let (ok, _, err) = cli.run(&["split", "support", "staging", "1:50,9:50"], &[]);
    assert!(!ok && err.contains("no version 9"), "{err}");
    let (ok, _, err) = cli.run(&["promote", "support", "staging"], &[]);
    assert!(!ok && err.contains("not a version number"), "{err}");

    // Files for git: export, import unchanged, edit a file, import again.
    let files = dir.path().join("prompts");
    cli.ok(&["export", files.to_str().unwrap()]);
    let out = cli.ok(&["import", files.to_str().unwrap()]);
    assert!(out.contains("support: unchanged (v2)"), "{out}");
    let exported = std::fs::read_to_string(files.join("support.toml")).unwrap();
    std::fs::write(files.join("support.toml"), exported.replace("kind", "warm")).unwrap();
    let out = cli.ok(&["import", files.to_str().unwrap(), "--promote", "production"]);
    assert!(out.contains("support: saved v3"), "{out}");
    let out = cli.ok(&["show", "support"]);
    assert!(
        out.contains("support v3") && out.contains("Be warm"),
        "{out}"
    );

    let out = cli.ok(&["variables"]);
    assert!(
        out.contains("channel_name") && out.contains("history"),
        "{out}"
    );

    // A dry run answers through the model and says it was recorded as a test.
    let out = cli.ok(&["test", "support", "Does it work?", "--version", "1"]);
    assert!(
        out.contains("test of support v1") && out.contains("Hello from the stand-in."),
        "{out}"
    );
    let sent = provider.received().last().unwrap().body.clone();
    assert_eq!(sent["messages"][0]["content"], "Be brief about .");
}
