//! Configuration: defaults, the file, environment overrides, secrets kept
//! out of the file, and bad values refused with the key, the value and what
//! is allowed.

use gateway::Config;
use gateway::config::ConfigError;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_parts(
        "switchboard.toml",
        text,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

fn error(text: &str, env: &[(&str, &str)]) -> String {
    load(text, env).expect_err("must be refused").to_string()
}

const GOOD: &str = r#"
data_dir = "/var/lib/switchboard"
[server]
listen = "0.0.0.0:9000"
[database]
url = "postgres://sb@db/switchboard"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
[providers.openai.prices]
"gpt-4o-mini" = { input = 0.15, output = 0.60 }
[providers.anthropic]
kind = "anthropic"
api_key_env = "ANTHROPIC_API_KEY"
[models.default]
targets = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]
"#;

const KEYS: &[(&str, &str)] = &[("OPENAI_API_KEY", "sk-1"), ("ANTHROPIC_API_KEY", "sk-2")];

#[test]
fn no_file_gives_embedded_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database_url(), "sqlite://./data/switchboard.db");
    // With no provider, the embedded model answers as `default`.
    assert!(matches!(
        c.providers["local"],
        gateway::config::ProviderConfig::Local(_)
    ));
    assert_eq!(c.models["default"].targets, ["local/smollm2-135m-instruct"]);
}

#[test]
fn the_documented_keys_are_read_and_secrets_come_from_the_environment() {
    let c = load(GOOD, KEYS).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(c.database_url(), "postgres://sb@db/switchboard");
    let openai = c.providers["openai"].http().unwrap();
    assert_eq!(openai.api_key.as_ref().unwrap().expose(), "sk-1");
    assert_eq!(openai.prices["gpt-4o-mini"].input, 0.15);
    assert_eq!(c.models["default"].targets.len(), 2);
    // A secret never shows in debug output.
    assert!(!format!("{c:?}").contains("sk-1"));
}

#[test]
fn environment_variables_override_any_key() {
    let mut env = KEYS.to_vec();
    env.push(("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:7000"));
    env.push((
        "SWITCHBOARD__PROVIDERS__OPENAI__BASE_URL",
        "http://localhost:11434/v1",
    ));
    env.push(("SWITCHBOARD__ROUTING__RETRIES", "5"));
    env.push(("SWITCHBOARD__DATA_DIR", "/tmp/sb"));
    let c = load(GOOD, &env).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(
        c.providers["openai"].http().unwrap().base_url.as_deref(),
        Some("http://localhost:11434/v1")
    );
    assert_eq!(c.routing.retries, 5);
    assert_eq!(c.data_dir.to_str(), Some("/tmp/sb"));
}

#[test]
fn secrets_in_the_file_are_refused() {
    let text = GOOD.replace(
        "api_key_env = \"OPENAI_API_KEY\"",
        "api_key = \"sk-live-123\"",
    );
    let e = error(&text, KEYS);
    assert!(
        e.contains("providers.openai.api_key") && e.contains("api_key_env"),
        "{e}"
    );
    assert!(
        !e.contains("sk-live-123"),
        "the secret must not be echoed: {e}"
    );
}

#[test]
fn a_missing_key_variable_fails_at_start() {
    let e = error(GOOD, &[("OPENAI_API_KEY", "sk-1")]);
    assert!(
        e.contains("providers.anthropic.api_key_env") && e.contains("ANTHROPIC_API_KEY"),
        "{e}"
    );
}

#[test]
fn bad_values_name_the_key_the_value_and_what_is_allowed() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "kind = \"anthropic\"",
            "kind = \"gemini\"",
            &["providers.anthropic", "gemini", "openai", "anthropic"],
        ),
        (
            "listen = \"0.0.0.0:9000\"",
            "listen = \"everywhere\"",
            &["server.listen", "everywhere"],
        ),
        (
            "targets = [\"openai/gpt-4o-mini\", \"anthropic/claude-3-5-haiku-latest\"]",
            "targets = [\"openai/gpt-4o-mini\", \"mistral/large\"]",
            &[
                "models.default.targets[1]",
                "mistral/large",
                "not defined",
                "anthropic, openai",
            ],
        ),
        (
            "targets = [\"openai/gpt-4o-mini\", \"anthropic/claude-3-5-haiku-latest\"]",
            "targets = [\"gpt-4o-mini\"]",
            &["models.default.targets[0]", "provider/model"],
        ),
        (
            "url = \"postgres://sb@db/switchboard\"",
            "url = \"mysql://x\"",
            &["database.url", "mysql://x", "sqlite://"],
        ),
        (
            "[server]",
            "[server]\nlisten_port = 80",
            &["server", "listen_port"],
        ),
        (
            "base_url = \"https://api.openai.com/v1\"",
            "base_url = \"not a url\"",
            &["providers.openai.base_url", "not a url"],
        ),
    ];
    for (from, to, needles) in cases {
        let text = GOOD.replace(from, to);
        assert_ne!(text, GOOD, "case {to} did not apply");
        let e = error(&text, KEYS);
        for n in *needles {
            assert!(e.contains(n), "error for `{to}` should mention `{n}`: {e}");
        }
    }
}

#[test]
fn invalid_toml_reports_the_line() {
    let e = error("[server\nlisten = 1", &[]);
    assert!(
        e.contains("switchboard.toml") && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn the_example_file_is_valid_and_documents_every_section() {
    let text = include_str!("../../switchboard.example.toml");
    let c = load(text, &[("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "k")])
        .expect("example config must load");
    assert!(c.models.contains_key("default"));
    for key in [
        "data_dir",
        "[server]",
        "[database]",
        "[providers.",
        "[models.",
        "[routing]",
        "api_keys_env",
        "header_timeout_ms",
        "body_timeout_ms",
        "max_connections",
        "home_workspaces",
        "breaker_failures",
        "breaker_cooldown_ms",
        "prices",
        "[cache]",
        "[redis]",
        "[tool_loop]",
        "[tools.",
        "headers_env",
        "on_failure",
        "[limits]",
        "[limits.user]",
        "[limits.channel]",
        "[limits.workspace]",
        "[limits.global]",
        "[limits.workspaces.",
        "requests_per_minute",
        "tokens_per_minute",
        "daily_budget_usd",
        "[dashboard]",
        "secure_cookies",
        "[telemetry]",
        "otlp_endpoint",
        "log_format",
        "capture_content",
    ] {
        assert!(text.contains(key), "example should document `{key}`");
    }
}

#[test]
fn redis_and_limits_are_read_and_bad_values_are_refused_with_the_fix() {
    let text = format!(
        "{GOOD}\n[redis]\nurl = \"redis://cache:6379/0\"\non_failure = \"closed\"\n\
         [limits.user]\nrequests_per_minute = 20\n[limits.workspaces.T1.user]\nrequests_per_minute = 50\n\
         [models.default.cache]\nttl_secs = 60\n"
    );
    let c = load(&text, KEYS).unwrap();
    assert_eq!(c.redis.url.as_deref(), Some("redis://cache:6379/0"));
    assert_eq!(c.redis.on_failure, gateway::config::OnFailure::Closed);
    assert_eq!(c.limits.user.requests_per_minute, Some(20));
    assert_eq!(c.limits.workspaces["T1"].user.requests_per_minute, Some(50));
    assert_eq!(c.models["default"].cache.ttl_secs, Some(60));

    // Overridable from the environment like every key.
    let c = load(
        GOOD,
        &[
            KEYS[0],
            KEYS[1],
            ("SWITCHBOARD__LIMITS__GLOBAL__TOKENS_PER_MINUTE", "90000"),
            ("SWITCHBOARD__REDIS__URL", "redis://:pw@r:6379"),
        ],
    )
    .unwrap();
    assert_eq!(c.limits.global.tokens_per_minute, Some(90000));
    assert_eq!(c.redis.url.as_deref(), Some("redis://:pw@r:6379"));

    let e = error(
        &format!("{GOOD}\n[limits.channel]\nrequests_per_minute = 0\n"),
        KEYS,
    );
    assert!(
        e.contains("limits.channel.requests_per_minute") && e.contains("leave the key out"),
        "{e}"
    );
    let e = error(&format!("{GOOD}\n[redis]\non_failure = \"maybe\"\n"), KEYS);
    assert!(e.contains("redis.on_failure") && e.contains("open"), "{e}");
    let e = error(&format!("{GOOD}\n[redis]\nurl = \"cache:6379\"\n"), KEYS);
    assert!(e.contains("redis.url") && e.contains("redis://"), "{e}");
    let e = error(&format!("{GOOD}\n[limits.user]\nrpm = 5\n"), KEYS);
    assert!(e.contains("limits.user") && e.contains("rpm"), "{e}");
}

#[test]
fn the_servers_connection_limits_have_defaults_and_are_checked() {
    let c = load(GOOD, KEYS).unwrap();
    assert_eq!(c.server.header_timeout_ms, 10_000);
    assert_eq!(c.server.body_timeout_ms, 30_000);
    assert_eq!(c.server.max_connections, 1024);
    assert!(c.server.keep_alive);
    for (key, value, fix) in [
        ("header_timeout_ms", "5", "100 to 3600000"),
        ("body_timeout_ms", "0", "100 to 3600000"),
        ("max_connections", "0", "at least one"),
    ] {
        let text = GOOD.replace("[server]\n", &format!("[server]\n{key} = {value}\n"));
        let e = error(&text, KEYS);
        assert!(
            e.contains(&format!("server.{key}")) && e.contains(fix),
            "{e}"
        );
    }
}

#[test]
fn the_dashboard_is_on_by_default_and_its_settings_are_checked() {
    let c = load(GOOD, KEYS).unwrap();
    assert!(c.dashboard.enabled);
    assert!(c.dashboard.secure_cookies, "Secure cookies by default");
    assert_eq!(c.dashboard.session_hours, 12);
    let c = load(
        GOOD,
        &[
            KEYS[0],
            KEYS[1],
            ("SWITCHBOARD__DASHBOARD__SECURE_COOKIES", "true"),
        ],
    )
    .unwrap();
    assert!(c.dashboard.secure_cookies);
    let e = load(&format!("{GOOD}\n[dashboard]\nsession_hours = 0\n"), KEYS)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dashboard.session_hours") && e.contains("between 1 and 2160"),
        "{e}"
    );
}

#[test]
fn telemetry_is_off_by_default_and_a_bad_endpoint_is_refused_with_the_fix() {
    let c = load(GOOD, KEYS).unwrap();
    assert_eq!(c.telemetry.traces_url(), None);
    assert_eq!(c.telemetry.log_format, gateway::config::LogFormat::Text);
    assert!(!c.telemetry.capture_content);

    let text = format!(
        "{GOOD}\n[telemetry]\notlp_endpoint = \"http://collector:4318/\"\nlog_format = \"json\"\ncapture_content = true\n"
    );
    let c = load(&text, KEYS).unwrap();
    assert_eq!(
        c.telemetry.traces_url().as_deref(),
        Some("http://collector:4318/v1/traces")
    );
    assert_eq!(c.telemetry.log_format, gateway::config::LogFormat::Json);
    assert!(c.telemetry.capture_content);

    let e = load(
        &format!("{GOOD}\n[telemetry]\notlp_endpoint = \"collector:4318\"\n"),
        KEYS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("telemetry.otlp_endpoint") && e.contains("http://otel-collector:4318"),
        "{e}"
    );
    let e = load(
        &format!("{GOOD}\n[telemetry]\nlog_format = \"xml\"\n"),
        KEYS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("telemetry.log_format") && e.contains("json"),
        "{e}"
    );
    let e = load(&format!("{GOOD}\n[telemetry]\nsample_rate = 1\n"), KEYS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sample_rate"), "{e}");
}

#[test]
fn the_deployment_configuration_is_valid() {
    let text = include_str!("../../ops/deploy/switchboard.toml");
    let c = load(
        text,
        &[
            (
                "SWITCHBOARD__DATABASE__URL",
                "postgres://switchboard:pw@postgres:5432/switchboard",
            ),
            ("SWITCHBOARD__REDIS__URL", "redis://redis:6379"),
        ],
    )
    .expect("ops/deploy/switchboard.toml must load");
    assert_eq!(
        c.telemetry.traces_url().as_deref(),
        Some("http://otel-collector:4318/v1/traces")
    );
    assert!(c.database_url().starts_with("postgres://"));
    assert!(c.redis.url.is_some());
}

#[test]
fn provider_header_and_query_values_never_show_in_debug_output_or_errors() {
    let text = format!(
        "{GOOD}\n[providers.openai.headers]\nX-Api-Token = \"s3cr3t\"\n[providers.openai.query]\nsig = \"qu3ry\"\n"
    );
    let c = load(&text, KEYS).unwrap();
    let openai = c.providers["openai"].http().unwrap();
    assert_eq!(openai.headers.0["X-Api-Token"], "s3cr3t", "still sent");
    assert_eq!(openai.query.0["sig"], "qu3ry", "still sent");
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(!shown.contains("qu3ry"), "{shown}");
    assert!(
        shown.contains("\"X-Api-Token\": ****"),
        "the names show: {shown}"
    );

    // A value given by an override that reads as a number is taken as its
    // text, rather than refused with the value quoted in the error.
    let mut env = KEYS.to_vec();
    env.push((
        "SWITCHBOARD__PROVIDERS__OPENAI__HEADERS__X-API-KEY",
        "12345678",
    ));
    let c = load(&text, &env).unwrap();
    assert_eq!(
        c.providers["openai"].http().unwrap().headers.0["x-api-key"],
        "12345678"
    );
    assert!(!format!("{c:?}").contains("12345678"));

    // An error about the provider does not quote them either.
    env.push(("SWITCHBOARD__PROVIDERS__OPENAI__TOTAL_TIMEOUT_MS", "0"));
    let e = error(&text, &env);
    assert!(e.contains("providers.openai"), "{e}");
    for secret in ["s3cr3t", "qu3ry", "12345678"] {
        assert!(!e.contains(secret), "{e}");
    }
}

#[test]
fn tool_servers_are_checked_and_their_header_secrets_come_from_the_environment() {
    let ok = load(
        "[tools.time]\ncommand = \"mcp-server-time\"\nargs = [\"--local-timezone\", \"UTC\"]\n\
         [tools.wiki]\nurl = \"https://wiki.example.com/mcp\"\nheaders_env = { Authorization = \"WIKI_AUTH\" }\nconfirm = true\n",
        &[("WIKI_AUTH", "Bearer s3cr3t")],
    )
    .expect("valid tools");
    assert!(ok.tools["wiki"].confirm);
    assert!(
        !format!("{ok:?}").contains("s3cr3t"),
        "header values are never printed"
    );
    for (text, env, says) in [
        (
            "[tools.x]\ncommand = \"a\"\nurl = \"http://h/mcp\"\n",
            &[][..],
            "either `command` (stdio) or `url`",
        ),
        ("[tools.x]\nargs = [\"a\"]\n", &[][..], "needs `command`"),
        (
            "[tools.x]\nurl = \"ftp://h/mcp\"\n",
            &[][..],
            "http:// or https://",
        ),
        (
            "[tools.x]\nurl = \"http://h/mcp\"\nheaders_env = { Authorization = \"NOPE\" }\n",
            &[][..],
            "$NOPE, which is not set",
        ),
        (
            "[tools.search_knowledge]\ncommand = \"a\"\n",
            &[][..],
            "is a built-in tool",
        ),
        (
            "[tools.x]\ncommand = \"a\"\ntoken = \"t\"\n",
            &[][..],
            "never read from the config file",
        ),
        (
            "[tool_loop]\nmax_steps = 0\n",
            &[][..],
            "tool_loop.max_steps",
        ),
    ] {
        let e = error(text, env);
        assert!(e.contains(says), "{text}: {e}");
    }
}
