//! `/prompt edit NAME`: the form, its submission by an admin, a refused
//! member, an invalid prompt, and a prompt too long for a form.

use serde_json::{Value, json};

use super::{World, world};

/// Slack's documented view_submission for the form `view` as opened (its
/// title, buttons and blocks echoed back),
/// with the TOML field set to `toml`.
fn submission(user: &str, view: &Value, toml: &str) -> Value {
    json!({
        "type": "view_submission",
        "team": {"id": "T1DC2JH3J", "domain": "testteamnow"},
        "user": {"id": user, "username": "roadrunner", "name": "roadrunner", "team_id": "T1DC2JH3J"},
        "api_app_id": "AAD3351BQ",
        "token": "9s8d9as89d8as9d8as989",
        "trigger_id": "12466734323.1395872398.c1bdb8e5a4a8d9a8d4f4d1e6f0d8c8a6",
        "view": {
            "id": "VMHU10V25",
            "team_id": "T1DC2JH3J",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "title": view["title"],
            "submit": view["submit"],
            "close": view["close"],
            "blocks": view["blocks"],
            "state": {"values": {
                "toml": {"toml": {"type": "plain_text_input", "value": toml}},
                "message": {"message": {"type": "plain_text_input", "value": "friendlier"}}
            }},
            "hash": "156663117.cd33ad1f",
            "root_view_id": "VMHU10V25",
            "app_id": "AAD3351BQ",
            "bot_id": "BA13894H"
        },
        "response_urls": []
    })
}

async fn versions(w: &World, name: &str) -> Vec<(i64, String)> {
    let mut all: Vec<(i64, String)> = w
        .harness
        .gateway
        .registry
        .versions(name)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.body))
        .collect();
    // Oldest first.
    all.sort();
    all
}

#[tokio::test]
async fn prompt_edit_opens_a_form_with_the_toml_and_an_admins_submission_saves_a_version() {
    // The default prompt is shared: only an admin of the whole registry edits it.
    let w = world("[admin]\nhome_workspaces = [\"slack/T1DC2JH3J\"]").await;
    w.api.user("UADMIN", "ada", true);
    w.api.user("UMEMBER", "mel", false);
    let before = versions(&w, "assistant").await;
    let (base, toml) = before.last().unwrap().clone();

    // A member gets no form.
    let r = w.command("UMEMBER", "edit assistant").await.json();
    assert_eq!(r["response_type"], "ephemeral");
    assert!(r["text"].as_str().unwrap().contains("may not edit"), "{r}");
    assert!(w.api.calls_of("views.open").is_empty());

    // An admin gets the form, prefilled with the newest version.
    let r = w.command("UADMIN", "edit assistant").await.json();
    assert_eq!(r["response_type"], "ephemeral", "{r}");
    let opened = w.api.calls_of("views.open");
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].args["trigger_id"],
        "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    );
    let view = opened[0].args["view"].clone();
    let field = &view["blocks"][0]["element"];
    assert_eq!(field["type"], "plain_text_input");
    assert_eq!(field["multiline"], true);
    assert_eq!(field["max_length"], 3000);
    assert_eq!(field["initial_value"], toml.as_str());

    // A member's forged submission is refused in the form; nothing changes.
    let edited = toml.replace("concisely and accurately", "warmly and accurately");
    assert_ne!(edited, toml);
    let r = w
        .interaction(&submission("UMEMBER", &view, &edited))
        .await
        .json();
    assert_eq!(r["response_action"], "errors", "{r}");
    assert!(r["errors"]["toml"].as_str().unwrap().contains("✋"), "{r}");
    assert_eq!(versions(&w, "assistant").await, before);

    // An invalid prompt is shown in the form; nothing changes.
    let broken = toml.replace("{{ user_name }}", "{{ usr }}");
    let r = w
        .interaction(&submission("UADMIN", &view, &broken))
        .await
        .json();
    assert_eq!(r["response_action"], "errors", "{r}");
    assert!(r["errors"]["toml"].as_str().unwrap().contains("usr"), "{r}");
    let r = w
        .interaction(&submission(
            "UADMIN",
            &view,
            "name = \"assistant\"\n[[messages]",
        ))
        .await
        .json();
    assert_eq!(r["response_action"], "errors", "{r}");
    assert_eq!(versions(&w, "assistant").await, before);

    // The admin's edit is saved as a new version and the form shows the diff.
    let r = w
        .interaction(&submission("UADMIN", &view, &edited))
        .await
        .json();
    assert_eq!(r["response_action"], "update", "{r}");
    let shown = r["view"]["blocks"].to_string();
    assert!(
        shown.contains(&format!("saved assistant v{}", base + 1)),
        "{shown}"
    );
    assert!(shown.contains("warmly"), "the diff is shown: {shown}");
    let after = versions(&w, "assistant").await;
    assert_eq!(after.len(), before.len() + 1);
    let (v, body) = after.last().unwrap();
    assert_eq!(*v, base + 1);
    assert!(body.contains("warmly and accurately"), "{body}");
}

#[tokio::test]
async fn a_prompt_too_long_for_a_form_is_answered_with_the_command_line_way() {
    let w = world("").await;
    w.api.user("UADMIN", "ada", true);
    let long = format!(
        "name = \"handbook\"\nmodel = \"default\"\n\n[[messages]]\nrole = \"system\"\ntemplate = \"\"\"\n{}\"\"\"\n\n[[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n",
        "Follow the handbook. ".repeat(200)
    );
    let prompt = prompts::Prompt::from_toml("handbook", &long).unwrap();
    w.harness
        .gateway
        .registry
        .save("test", "create", &prompt, "long", None, None)
        .await
        .unwrap();
    let r = w.command("UADMIN", "edit handbook").await.json();
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("switchboard prompts edit handbook"), "{text}");
    assert!(w.api.calls_of("views.open").is_empty());
}
