//! Tool calling: client-defined tools passed through the OpenAI-compatible
//! API to OpenAI and Anthropic providers and back, streamed and not,
//! against stand-ins that speak each API's tool-call wire format; the
//! gateway runs none of them.

use serde_json::{Value, json};
use testkit::standin::{Reply, ScriptedCall, StandIn};
use testkit::{Harness, one_provider, sse_data};

/// The tools a client offers, in OpenAI's shape.
fn weather_tools() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"],
                "additionalProperties": false
            },
            "strict": true
        }
    }])
}

fn ask_with_tools(stream: bool) -> Value {
    json!({
        "model": "default",
        "messages": [{"role": "user", "content": "Weather in Paris and Tokyo?"}],
        "tools": weather_tools(),
        "tool_choice": "required",
        "stream": stream,
    })
}

/// The two calls the stand-in's model makes.
fn two_calls() -> Reply {
    Reply::ToolCalls(
        String::new(),
        vec![
            ScriptedCall::new(
                "call_paris",
                "get_weather",
                r#"{"city":"Paris","unit":"c"}"#,
            ),
            ScriptedCall::new("call_tokyo", "get_weather", r#"{"city":"Tokyo"}"#),
        ],
        (40, 30),
    )
}

/// The tool calls of a streamed answer, put together from its deltas as
/// an OpenAI client does: (id, name, arguments) per index.
fn streamed_calls(body: &str) -> (Vec<(String, String, String)>, Option<String>) {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for data in sse_data(body).iter().filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(data).expect("chunk is JSON");
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_string());
        }
        for piece in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = piece["index"].as_u64().expect("index") as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            let call = &mut calls[index];
            if let Some(id) = piece["id"].as_str() {
                call.0 = id.to_string();
                assert_eq!(piece["type"], "function", "{piece}");
            }
            if let Some(name) = piece["function"]["name"].as_str() {
                call.1.push_str(name);
            }
            call.2
                .push_str(piece["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    (calls, finish)
}

fn expected_calls() -> Vec<(String, String, String)> {
    vec![
        (
            "call_paris".into(),
            "get_weather".into(),
            r#"{"city":"Paris","unit":"c"}"#.into(),
        ),
        (
            "call_tokyo".into(),
            "get_weather".into(),
            r#"{"city":"Tokyo"}"#.into(),
        ),
    ]
}

/// The client's second turn: its calls' results.
fn second_turn() -> Value {
    json!({
        "model": "default",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_paris", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}},
                {"id": "call_tokyo", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_paris", "content": "18 C, rain"},
            {"role": "tool", "tool_call_id": "call_tokyo", "content": "25 C, sun"}
        ],
        "tools": weather_tools(),
    })
}

#[tokio::test]
async fn client_tools_pass_through_an_openai_provider_and_come_back_as_tool_calls() {
    let provider = StandIn::start().await;
    provider.then([
        two_calls(),
        two_calls(),
        Reply::OpenAiJson("Paris: rain. Tokyo: sun.".into(), (60, 8)),
    ]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;

    // Streamed: argument deltas, in OpenAI's chunk shape.
    let a = h.chat(ask_with_tools(true)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (calls, finish) = streamed_calls(&a.body);
    assert_eq!(calls, expected_calls());
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    // The tools reached the provider unchanged, with the choice.
    let sent = &provider.received()[0].body;
    assert_eq!(
        sent["tools"],
        weather_tools(),
        "tools are passed through as given"
    );
    assert_eq!(sent["tool_choice"], "required");
    // The row keeps the calls with the answer.
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(row.tool_calls, None, "the gateway ran nothing");

    // Plain: the calls whole, content null.
    let b = h.chat(ask_with_tools(false)).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let v = b.json();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let got: Vec<(String, String, String)> = message["tool_calls"]
        .as_array()
        .expect("tool_calls")
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function");
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected_calls());

    // The results go back in OpenAI's shape, and the answer comes.
    let c = h.chat(second_turn()).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(
        c.json()["choices"][0]["message"]["content"],
        "Paris: rain. Tokyo: sun."
    );
    let sent = &provider.received()[2].body;
    assert_eq!(sent["messages"][1]["content"], Value::Null);
    assert_eq!(sent["messages"][1]["tool_calls"][1]["id"], "call_tokyo");
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\",\"unit\":\"c\"}"
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "18 C, rain", "tool_call_id": "call_paris"})
    );
    // The stored conversation keeps the calls and which call each result answers.
    let row = h.row(&c.inference_id()).await;
    let roles: Vec<&str> = row.messages.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool", "assistant"]);
}

#[tokio::test]
async fn client_tools_are_translated_to_and_from_anthropic_tool_use_blocks() {
    let provider = StandIn::start().await;
    let config = format!(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key_env = "TEST_ANTHROPIC_KEY"

[models.default]
targets = ["claude/claude-test"]
"#,
        provider.url
    );
    let h = Harness::start(&config, &[("TEST_ANTHROPIC_KEY", "sk-ant-test")]).await;
    let with_text = |reply| match reply {
        Reply::ToolCalls(_, calls, usage) => {
            Reply::ToolCalls("Let me check both.".into(), calls, usage)
        }
        other => other,
    };
    provider.then([
        with_text(two_calls()),
        two_calls(),
        Reply::AnthropicJson("Paris: rain. Tokyo: sun.".into(), (60, 8)),
    ]);

    // Streamed: text first, then `tool_use` blocks become OpenAI deltas.
    let a = h.chat(ask_with_tools(true)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (calls, finish) = streamed_calls(&a.body);
    assert_eq!(calls, expected_calls());
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let text: String = sse_data(&a.body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Let me check both.");
    // Anthropic's request shape: `input_schema`, `tool_choice` `any`.
    let sent = &provider.received()[0].body;
    assert_eq!(
        sent["tools"],
        json!([{
            "name": "get_weather",
            "description": "The weather in a city now.",
            "input_schema": weather_tools()[0]["function"]["parameters"],
        }])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));

    // Plain.
    let b = h.chat(ask_with_tools(false)).await;
    let v = b.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris","unit":"c"}"#
    );

    // Results: one user turn of `tool_result` blocks, calls as `tool_use`.
    let c = h.chat(second_turn()).await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(
        c.json()["choices"][0]["message"]["content"],
        "Paris: rain. Tokyo: sun."
    );
    let sent = &provider.received()[2].body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}},
                {"type": "tool_use", "id": "call_tokyo", "name": "get_weather", "input": {"city": "Tokyo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_paris", "content": "18 C, rain"},
                {"type": "tool_result", "tool_use_id": "call_tokyo", "content": "25 C, sun"}
            ]}
        ])
    );
}

#[tokio::test]
async fn malformed_tool_requests_get_400_and_reach_no_model() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let cases = [
        (
            json!({"model": "default", "messages": [{"role": "tool", "content": "42"}]}),
            "tool_call_id",
        ),
        (
            json!({"model": "default", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "retrieval"}]}),
            "tools[0]",
        ),
        (
            json!({"model": "default", "messages": [{"role": "user", "content": "hi"}], "tools": weather_tools(), "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"model": "prompt:assistant", "messages": [{"role": "user", "content": "hi"}], "tools": weather_tools()}),
            "names a prompt, which runs the tools its version lists",
        ),
    ];
    for (body, names) in cases {
        let a = h.chat(body).await;
        assert_eq!(a.status, 400, "{}", a.body);
        let message = a.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(names), "{message}");
    }
    assert!(provider.received().is_empty());
    assert_eq!(h.inference_count().await, 0);
}

// --- Tools Switchboard runs: a prompt's `tools = [...]` -----------------------

use testkit::mcp::{python, server_time as mcp_server_time, test_server};

/// One provider, the time server, the test server (and the same behind a
/// confirmation), and a tight tool loop.
fn tools_config(url: &str, extra: &str) -> String {
    format!(
        r#"{base}
[tools.time]
command = "{time}"
args = ["--local-timezone", "UTC"]

[tools.faults]
command = "{python}"
args = ["{script}"]
env = ["MARK_FILE", "LISTED"]

[tools.careful]
command = "{python}"
args = ["{script}"]
env = ["MARK_FILE"]
confirm = true

[tool_loop]
max_steps = 2
tool_timeout_ms = 3000
{extra}
"#,
        base = one_provider(url),
        time = mcp_server_time(),
        python = python(),
        script = test_server(),
    )
}

/// Saves a prompt offering `tools` as `production`.
async fn tool_prompt(h: &Harness, name: &str, tools: &[&str]) {
    let list = tools
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let prompt = prompts::Prompt::from_toml(
        "p.toml",
        &format!(
            "name = \"{name}\"\nmodel = \"default\"\ntools = [{list}]\n[[messages]]\nrole = \"system\"\ntemplate = \"You answer with tools.\"\n\
             [[messages]]\nrole = \"history\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n"
        ),
    )
    .expect("test prompt parses");
    h.gateway
        .registry
        .save("test", "create", &prompt, "tools", None, Some("production"))
        .await
        .expect("prompt saved");
}

fn ask_prompt(name: &str, question: &str, stream: bool) -> Value {
    json!({
        "model": format!("prompt:{name}"),
        "messages": [{"role": "user", "content": question}],
        "stream": stream,
    })
}

/// The `tool` messages of a request the stand-in received: (call id, text).
fn tool_results(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or_default().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn tool_runs(h_row: &gateway::store::InferenceRow) -> Vec<Value> {
    h_row
        .tool_calls
        .as_deref()
        .map(|t| serde_json::from_str::<Vec<Value>>(t).expect("tool_calls is a JSON array"))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_prompt_with_the_time_tool_answers_through_the_reference_mcp_server() {
    let provider = StandIn::start().await;
    let h = Harness::start(&tools_config(&provider.url, ""), &[]).await;
    tool_prompt(&h, "clock", &["time"]).await;
    provider.then([
        Reply::tool_call(
            "call_tokyo",
            "get_current_time",
            r#"{"timezone":"Asia/Tokyo"}"#,
        ),
        Reply::OpenAiJson("It is morning in Tokyo.".into(), (80, 6)),
    ]);

    let a = h
        .chat(ask_prompt("clock", "What time is it in Tokyo?", true))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The caller sees the answer, never the calls.
    let text: String = sse_data(&a.body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .inspect(|c| assert!(c["choices"][0]["delta"].get("tool_calls").is_none(), "{c}"))
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "It is morning in Tokyo.");

    let received = provider.received();
    assert_eq!(received.len(), 2, "one model call per step");
    // The model was offered the server's own tools and schemas.
    let offered: Vec<&str> = received[0].body["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(
        offered.contains(&"get_current_time") && offered.contains(&"convert_time"),
        "{offered:?}"
    );
    let schema = &received[0].body["tools"][0]["function"]["parameters"];
    assert_eq!(schema["type"], "object", "{schema}");
    // The second call carries the real server's result for the call.
    let results = tool_results(&received[1].body);
    assert_eq!(results.len(), 1, "{:?}", received[1].body);
    assert_eq!(results[0].0, "call_tokyo");
    let time: Value = serde_json::from_str(&results[0].1).expect("the time server answers JSON");
    assert_eq!(time["timezone"], "Asia/Tokyo", "{time}");
    assert!(
        time["datetime"]
            .as_str()
            .is_some_and(|d| d.ends_with("+09:00")),
        "{time}"
    );
    assert_eq!(
        received[1].body["messages"][2]["tool_calls"][0]["id"],
        "call_tokyo"
    );

    // The row: both model calls' tokens, the call, and its result in the conversation.
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(
        (row.input_tokens, row.output_tokens),
        (Some(40 + 80), Some(12 + 6))
    );
    let runs = tool_runs(&row);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["name"], "get_current_time");
    assert_eq!(runs[0]["arguments"], r#"{"timezone":"Asia/Tokyo"}"#);
    assert_eq!(runs[0]["step"], 1);
    assert!(runs[0].get("error").is_none(), "{runs:?}");
    assert!(runs[0]["result_bytes"].as_u64().is_some_and(|b| b > 20));
    assert!(
        row.messages
            .iter()
            .any(|m| m.1 == "tool" && m.2.contains("Asia/Tokyo"))
    );
    let calls = h.metric_lines("switchboard_tool_calls_total").await;
    assert!(
        calls
            .iter()
            .any(|l| l.contains(r#"tool="get_current_time""#)
                && l.contains(r#"outcome="ok""#)
                && l.ends_with(" 1")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_hanging_tool_times_out_and_the_model_is_told() {
    let provider = StandIn::start().await;
    let h = Harness::start(&tools_config(&provider.url, ""), &[]).await;
    tool_prompt(&h, "faulty", &["faults"]).await;
    provider.then([
        Reply::tool_call("call_hang", "hang", "{}"),
        Reply::OpenAiJson("The tool did not answer in time.".into(), (50, 7)),
    ]);
    let started = std::time::Instant::now();
    let a = h
        .chat(ask_prompt("faulty", "try the slow tool", false))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "The tool did not answer in time."
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "bounded by tool_timeout_ms"
    );
    let results = tool_results(&provider.received()[1].body);
    assert!(results[0].1.contains("within 3000 ms"), "{results:?}");
    let row = h.row(&a.inference_id()).await;
    assert!(
        tool_runs(&row)[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("3000 ms"))
    );
}

#[tokio::test]
async fn a_crashed_server_is_reported_to_the_model_and_started_again() {
    let provider = StandIn::start().await;
    let h = Harness::start(
        &tools_config(&provider.url, ""),
        &[("LISTED", "yes"), ("NOT_LISTED", "secret")],
    )
    .await;
    tool_prompt(&h, "faulty", &["faults"]).await;
    provider.then([
        Reply::tool_call("call_crash", "crash", "{}"),
        Reply::OpenAiJson("That tool is unavailable right now.".into(), (50, 7)),
    ]);
    let a = h.chat(ask_prompt("faulty", "crash it", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let results = tool_results(&provider.received()[1].body);
    assert!(results[0].1.contains("unavailable"), "{results:?}");

    // The next answer starts the server again and runs the tool; the
    // server sees only the variables it was given.
    provider.then([
        Reply::ToolCalls(
            String::new(),
            vec![
                ScriptedCall::new("call_listed", "env", r#"{"name":"LISTED"}"#),
                ScriptedCall::new("call_other", "env", r#"{"name":"NOT_LISTED"}"#),
            ],
            (40, 12),
        ),
        Reply::OpenAiJson("done".into(), (50, 1)),
    ]);
    let b = h.chat(ask_prompt("faulty", "show the env", false)).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let results = tool_results(&provider.received()[3].body);
    assert_eq!(
        results,
        [
            ("call_listed".to_string(), "yes".to_string()),
            ("call_other".to_string(), "(unset)".to_string())
        ]
    );
}

#[tokio::test]
async fn malformed_arguments_are_fed_back_once_then_the_answer_fails_clearly() {
    let provider = StandIn::start().await;
    let h = Harness::start(&tools_config(&provider.url, ""), &[]).await;
    tool_prompt(&h, "faulty", &["faults"]).await;
    provider.then([
        Reply::tool_call("call_1", "echo", r#"{"text": "#),
        Reply::tool_call("call_2", "echo", r#"{"text": "again"#),
    ]);
    let a = h.chat(ask_prompt("faulty", "echo something", false)).await;
    assert_eq!(a.status, 502, "{}", a.body);
    let message = a.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("unusable arguments for `echo` again"),
        "{message}"
    );
    // The first time, the model was told what was wrong.
    let results = tool_results(&provider.received()[1].body);
    assert!(results[0].1.contains("not valid JSON"), "{results:?}");
    assert_eq!(h.row(&a.inference_id()).await.status, "error");
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_is_stopped_at_max_steps() {
    let provider = StandIn::start().await;
    let h = Harness::start(&tools_config(&provider.url, ""), &[]).await;
    tool_prompt(&h, "faulty", &["faults"]).await;
    provider.then([
        Reply::tool_call("call_1", "echo", r#"{"text":"one"}"#),
        Reply::tool_call("call_2", "echo", r#"{"text":"two"}"#),
        Reply::OpenAiJson("I could not finish; here is what I have.".into(), (50, 9)),
    ]);
    let a = h.chat(ask_prompt("faulty", "loop forever", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "I could not finish; here is what I have."
    );
    let received = provider.received();
    assert_eq!(
        received.len(),
        3,
        "max_steps = 2, then one answer without tools"
    );
    assert_eq!(received[2].body["tool_choice"], "none");
    let told = received[2].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .any(|m| {
            m["role"] == "system"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("used all the tool calls"))
        });
    assert!(told, "{}", received[2].body);
    assert_eq!(tool_runs(&h.row(&a.inference_id()).await).len(), 2);
}

#[tokio::test]
async fn unknown_tools_are_an_error_result_and_a_confirmed_tool_never_runs_unasked() {
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mark = dir.path().join("ran");
    let mark_env = mark.display().to_string();
    let h = Harness::start(
        &tools_config(&provider.url, ""),
        &[("MARK_FILE", &mark_env)],
    )
    .await;
    tool_prompt(&h, "careful", &["careful.touch"]).await;
    provider.then([
        Reply::ToolCalls(
            String::new(),
            vec![
                ScriptedCall::new("call_1", "rm_rf", "{}"),
                ScriptedCall::new("call_2", "touch", "{}"),
            ],
            (40, 12),
        ),
        Reply::OpenAiJson("I may not do that.".into(), (50, 5)),
    ]);
    let a = h.chat(ask_prompt("careful", "touch the file", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let results = tool_results(&provider.received()[1].body);
    assert!(
        results[0]
            .1
            .contains("there is no tool `rm_rf`; the tools are: touch"),
        "{results:?}"
    );
    assert!(
        results[1].1.contains("was not run") && results[1].1.contains("cannot be asked for here"),
        "{results:?}"
    );
    assert!(
        !mark.exists(),
        "a tool that asks first never runs without approval"
    );
    let runs = tool_runs(&h.row(&a.inference_id()).await);
    assert_eq!(runs[1]["approval"], "not_asked");
}

#[tokio::test]
async fn a_streamable_http_server_gets_its_header_and_new_tools_are_listed_after_list_changed() {
    let provider = StandIn::start().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let mut server = tokio::process::Command::new(python())
        .args([
            test_server(),
            "http".into(),
            port.to_string(),
            "Bearer wiki-token".into(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the HTTP MCP server");
    // Up when it accepts connections.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let extra = format!(
        "[tools.wiki]\nurl = \"http://127.0.0.1:{port}/mcp\"\nheaders_env = {{ Authorization = \"WIKI_MCP_AUTH\" }}\n\
         [tools.wrong]\nurl = \"http://127.0.0.1:{port}/mcp\"\nheaders_env = {{ Authorization = \"WRONG_AUTH\" }}\n"
    );
    // `[tool_loop]` is in the base config; the servers go after it.
    let config =
        tools_config(&provider.url, "").replace("[tool_loop]", &format!("{extra}\n[tool_loop]"));
    let h = Harness::start(
        &config,
        &[
            ("WIKI_MCP_AUTH", "Bearer wiki-token"),
            ("WRONG_AUTH", "Bearer nope"),
        ],
    )
    .await;
    tool_prompt(&h, "wiki", &["wiki", "wrong"]).await;
    provider.then([
        Reply::tool_call("call_1", "grow", "{}"),
        Reply::tool_call("call_2", "extra", "{}"),
        Reply::OpenAiJson("done".into(), (50, 1)),
    ]);
    let a = h.chat(ask_prompt("wiki", "grow and use it", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let received = provider.received();
    // The server with the wrong header is left out, and the model told.
    let system_notes: Vec<&str> = received[0].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "system")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        system_notes
            .iter()
            .any(|n| n.contains("`wrong`") && n.contains("unavailable")),
        "{system_notes:?}"
    );
    assert_eq!(tool_results(&received[1].body)[0].1, "grown");
    // `extra` was not offered at the first step; once the server said its
    // list changed, the next answer offers it.
    let names = |body: &Value| -> Vec<String> {
        body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
            .collect()
    };
    assert!(!names(&received[0].body).contains(&"extra".to_string()));
    provider.then([
        Reply::tool_call("call_3", "extra", "{}"),
        Reply::OpenAiJson("done".into(), (50, 1)),
    ]);
    let b = h.chat(ask_prompt("wiki", "use the new tool", false)).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let received = provider.received();
    assert!(
        names(&received[3].body).contains(&"extra".to_string()),
        "{:?}",
        names(&received[3].body)
    );
    assert_eq!(tool_results(&received[4].body)[0].1, "the extra tool ran");
    let _ = server.kill().await;
}

#[tokio::test]
async fn search_knowledge_searches_as_the_asker_and_thread_history_gives_earlier_turns() {
    let provider = StandIn::start().await;
    let models = switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string();
    let h = Harness::start(
        &format!(
            "[knowledge]\nmodels_dir = {models:?}\n{}",
            one_provider(&provider.url)
        ),
        &[],
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(&ours).expect("folder");
    std::fs::create_dir_all(&theirs).expect("folder");
    std::fs::write(
        ours.join("retry.md"),
        "# Retry policy\n\nA failed call is retried three times with exponential backoff.\n",
    )
    .expect("write");
    std::fs::write(
        theirs.join("retry.md"),
        "# Retry policy of another team\n\nOur retry policy is secret: seven retries.\n",
    )
    .expect("write");
    let k = &h.gateway.knowledge;
    k.ingest_files("handbook", "global", &[ours], &mut |_| {})
        .await
        .expect("ingest");
    k.ingest_files("other-team", "slack/T999", &[theirs], &mut |_| {})
        .await
        .expect("ingest");
    tool_prompt(&h, "helper", &["search_knowledge", "thread_history"]).await;
    provider.then([
        Reply::ToolCalls(
            String::new(),
            vec![
                ScriptedCall::new(
                    "call_search",
                    "search_knowledge",
                    r#"{"query":"retry policy"}"#,
                ),
                ScriptedCall::new("call_history", "thread_history", r#"{"limit":10}"#),
            ],
            (40, 12),
        ),
        Reply::OpenAiJson("Three retries.".into(), (60, 3)),
    ]);
    let a = h
        .chat(json!({
            "model": "prompt:helper",
            "messages": [
                {"role": "user", "content": "earlier question about deploys"},
                {"role": "assistant", "content": "earlier answer: Tuesdays"},
                {"role": "user", "content": "What is our retry policy?"}
            ]
        }))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let results = tool_results(&provider.received()[1].body);
    let search = &results[0].1;
    assert!(
        search.contains("[1] Retry policy") && search.contains("retried three times"),
        "{search}"
    );
    assert!(
        !search.contains("seven retries"),
        "another workspace's source never reaches an answer: {search}"
    );
    let history = &results[1].1;
    assert!(
        history.contains("user: earlier question about deploys")
            && history.contains("assistant: earlier answer: Tuesdays"),
        "{history}"
    );
}

#[tokio::test]
async fn eval_replays_tool_calls_with_recorded_results_or_runs_the_tools_again() {
    use gateway::promptops::eval::{Arm, EvalConfig, examples_from_log, run};
    let provider = StandIn::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mark = dir.path().join("ran");
    let h = Harness::start(
        &tools_config(&provider.url, ""),
        &[("MARK_FILE", &mark.display().to_string())],
    )
    .await;
    tool_prompt(&h, "toucher", &["faults.touch", "faults.env"]).await;
    // The logged answer: it ran `touch` (which wrote the mark).
    provider.then([
        Reply::tool_call("call_1", "touch", "{}"),
        Reply::OpenAiJson("Touched.".into(), (50, 2)),
    ]);
    let a = h.chat(ask_prompt("toucher", "touch it", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(mark.exists());
    h.row(&a.inference_id()).await;
    std::fs::remove_file(&mark).expect("remove the mark");

    let examples = || async {
        examples_from_log(
            h.gateway
                .store
                .dataset(&gateway::store::DatasetFilter {
                    prompt: Some("toucher".into()),
                    ..Default::default()
                })
                .await
                .expect("dataset"),
        )
    };
    // An export is the conversation and the final answer, without the
    // answer's tool steps.
    let mut out = Vec::new();
    gateway::promptops::export::export(
        &h.gateway.store,
        &gateway::store::DatasetFilter::default(),
        gateway::promptops::export::Format::OpenAi,
        false,
        &mut out,
    )
    .await
    .expect("export");
    let line: Value =
        serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).expect("JSON");
    let roles: Vec<&str> = line["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant"], "{line}");
    assert_eq!(line["messages"][2]["content"], "Touched.");
    let logged = examples().await;
    assert_eq!(logged.len(), 1);
    // The replay starts from the question, not from the logged tool steps.
    assert_eq!(
        logged[0].messages.last().map(|m| m.content.as_str()),
        Some("touch it")
    );
    assert_eq!(logged[0].tool_results.len(), 1);
    let arm = || Arm {
        version: gateway::domain::Selector::parse("1"),
        model: None,
    };
    let config = |replay_tools| EvalConfig {
        prompt: "toucher".into(),
        candidate: arm(),
        baseline: arm(),
        judge: None,
        rubric: None,
        checks: Vec::new(),
        concurrency: 1,
        replay_tools,
    };
    // With the recorded results: both sides get "touched" back, one asks
    // for a tool the logged answer never called, and nothing runs.
    provider.then([
        Reply::tool_call("call_2", "touch", "{}"),
        Reply::OpenAiJson("Touched.".into(), (50, 2)),
        Reply::tool_call("call_3", "env", r#"{"name":"HOME"}"#),
        Reply::OpenAiJson("No record.".into(), (50, 2)),
    ]);
    let report = run(
        &h.gateway.pipeline,
        &config(true),
        examples().await,
        |_, _| {},
    )
    .await
    .expect("eval");
    assert_eq!(report.rows.len(), 1);
    let received = provider.received();
    assert_eq!(tool_results(&received[3].body)[0].1, "touched");
    assert!(
        tool_results(&received[5].body)[0]
            .1
            .contains("the logged answer has no result for this call"),
        "{:?}",
        tool_results(&received[5].body)
    );
    assert!(!mark.exists(), "--replay-tools runs nothing");
    // Without: the tools run again.
    provider.then([
        Reply::tool_call("call_4", "touch", "{}"),
        Reply::OpenAiJson("Touched.".into(), (50, 2)),
        Reply::OpenAiJson("Touched without tools.".into(), (50, 2)),
    ]);
    run(
        &h.gateway.pipeline,
        &config(false),
        examples().await,
        |_, _| {},
    )
    .await
    .expect("eval");
    assert!(mark.exists(), "without --replay-tools the tool runs again");
}

#[tokio::test]
async fn every_model_call_of_the_loop_is_charged_to_the_limits() {
    let provider = StandIn::start().await;
    let h = Harness::start(
        &tools_config(&provider.url, "[limits.user]\nrequests_per_minute = 1\n"),
        &[],
    )
    .await;
    tool_prompt(&h, "faulty", &["faults"]).await;
    provider.then([Reply::tool_call("call_1", "echo", r#"{"text":"one"}"#)]);
    let a = h.chat(ask_prompt("faulty", "echo once", false)).await;
    // The question was admitted; the model call after the tool was not.
    assert_eq!(a.status, 429, "{}", a.body);
    let message = a.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("the answer stopped after 1 tool step(s)")
            && message.contains("Rate limit reached"),
        "{message}"
    );
    assert_eq!(
        provider.received().len(),
        1,
        "no model call beyond the limit"
    );
    let row = h.row(&a.inference_id()).await;
    assert_eq!(tool_runs(&row).len(), 1, "the tool that ran is recorded");
}
