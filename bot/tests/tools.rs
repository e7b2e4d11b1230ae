//! `switchboard tools …` and the configuration check of the prompts'
//! tools, as an operator runs them: a real process, the reference MCP time
//! server from PyPI, and the errors for bad input.

use std::path::Path;
use std::process::Command;

use testkit::mcp::server_time as mcp_server_time;

/// A configuration in `dir` with the time server and a model on `models`.
fn config(dir: &Path, models: &str) -> std::path::PathBuf {
    let path = dir.join("switchboard.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n{models}\n[tools.time]\ncommand = {:?}\nargs = [\"--local-timezone\", \"UTC\"]\n",
            dir.display().to_string(),
            mcp_server_time()
        ),
    )
    .unwrap();
    path
}

const HOSTED: &str = "[providers.stand-in]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n[models.default]\ntargets = [\"stand-in/m\"]\n";

fn switchboard(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .expect("run switchboard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tools_list_shows_every_tool_with_its_schema_and_tools_call_runs_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), HOSTED);

    let (ok, out, err) = switchboard(&config, &["tools", "list"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("time: get_current_time"), "{out}");
    assert!(out.contains("time: convert_time"), "{out}");
    assert!(out.contains("(built-in) search_knowledge"), "{out}");
    let (ok, out, _) = switchboard(&config, &["tools", "list", "--json"]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let time = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == "time")
        .expect("the time server");
    let get = time["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "get_current_time")
        .expect("get_current_time");
    assert_eq!(get["parameters"]["type"], "object");
    assert!(
        get["parameters"]["properties"]["timezone"].is_object(),
        "{get}"
    );

    // A dry run of one call, by its name or as SERVER.TOOL.
    let (ok, out, err) = switchboard(
        &config,
        &[
            "tools",
            "call",
            "get_current_time",
            r#"{"timezone": "Asia/Tokyo"}"#,
        ],
    );
    assert!(ok, "{out}\n{err}");
    let result: serde_json::Value = serde_json::from_str(out.trim()).expect("the server's JSON");
    assert_eq!(result["timezone"], "Asia/Tokyo");
    let (ok, out, err) = switchboard(
        &config,
        &[
            "tools",
            "call",
            "time.convert_time",
            r#"{"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}"#,
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("21:00"), "{out}");

    // Bad input: a clear error, and nothing else.
    let (ok, _, err) = switchboard(&config, &["tools", "call", "get_current_time", "{not json"]);
    assert!(!ok && err.contains("must be a JSON object"), "{err}");
    let (ok, _, err) = switchboard(&config, &["tools", "call", "get_weather", "{}"]);
    assert!(
        !ok && err.contains("there is no tool `get_weather`") && err.contains("get_current_time"),
        "{err}"
    );
    let (ok, _, err) = switchboard(
        &config,
        &[
            "tools",
            "call",
            "get_current_time",
            r#"{"timezone": "Mars/Olympus"}"#,
        ],
    );
    assert!(
        !ok && err.contains("Invalid timezone"),
        "the server's own error: {err}"
    );
}

#[test]
fn config_refuses_prompts_whose_tools_do_not_fit_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(
        prompts.join("clock.toml"),
        "name = \"clock\"\nmodel = \"default\"\ntools = [\"time\", \"weather\"]\n[[messages]]\nrole = \"system\"\ntemplate = \"You tell the time.\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    // On the embedded model (no providers configured), with a tool server
    // that does not exist.
    let config = config(dir.path(), "");
    let (ok, out, err) = switchboard(&config, &["prompts", "import", prompts.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    let (ok, _, err) = switchboard(&config, &["config"]);
    assert!(!ok, "the check must fail");
    assert!(
        err.contains("prompt `clock` version 1 offers `weather`, but there is no [tools.weather]"),
        "{err}"
    );
    assert!(
        err.contains("offers tools on model `default`, which runs only on the embedded model")
            && err.contains("cannot call tools"),
        "{err}"
    );
    // On a hosted model, with the unknown tool removed, it passes.
    let hosted = dir.path().join("hosted.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&hosted, format!("{text}\n{HOSTED}")).unwrap();
    std::fs::write(
        prompts.join("clock.toml"),
        "name = \"clock\"\nmodel = \"default\"\ntools = [\"time\"]\n[[messages]]\nrole = \"system\"\ntemplate = \"You tell the time.\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    let (ok, out, err) = switchboard(
        &hosted,
        &[
            "prompts",
            "import",
            prompts.to_str().unwrap(),
            "--promote",
            "production",
        ],
    );
    assert!(ok, "{out}\n{err}");
    // Version 1 (with `weather`) is neither the newest nor under a label:
    // it is not what answers, and the check passes.
    let (ok, out, err) = switchboard(&hosted, &["config"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("tools time: stdio"), "{out}");
}
