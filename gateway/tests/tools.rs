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
