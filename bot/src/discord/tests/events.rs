//! Gateway events as serenity delivers them: each model, written back as
//! JSON by the dispatch ([`crate::discord::dispatch`]), keeps the fields
//! the handlers read.

use serde_json::{Value, json};

use crate::discord::{commands, components, edit, json};

#[test]
fn a_reaction_read_by_serenity_keeps_the_fields_the_adapter_reads() {
    let documented = json!({ "user_id": "1400000000000000001", "channel_id": "1200000000000000001",
        "message_id": "1700000000000000001", "guild_id": "1300000000000000001",
        "emoji": { "id": null, "name": "👍" }, "burst": false, "type": 0 });
    let model: serenity::all::Reaction =
        serde_json::from_value(documented).expect("serenity reads it");
    let back = json("MESSAGE_REACTION_ADD", &model).expect("writes it");
    assert_eq!(back["user_id"], "1400000000000000001");
    assert_eq!(back["message_id"], "1700000000000000001");
    assert_eq!(back["emoji"]["name"], "👍");
}

fn interaction(kind: u8, data: Value, permissions: &str) -> Value {
    json!({
        "id": "1800000000000000001", "application_id": "1000000000000000001", "type": kind,
        "token": "token-1", "version": 1, "guild_id": "1300000000000000001",
        "channel_id": "1200000000000000001", "app_permissions": "0", "locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": { "0": "1300000000000000001" },
        "context": 0, "attachment_size_limit": 10485760,
        "member": { "user": { "id": "1400000000000000001", "username": "ada", "global_name": "Ada L",
                              "discriminator": "0", "avatar": null },
                    "roles": ["1500000000000000001"], "permissions": permissions, "flags": 0,
                    "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false },
        "data": data
    })
}

#[test]
fn a_command_read_by_serenity_names_the_same_caller() {
    let data = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "list", "options": [] }] });
    for permissions in ["0", "32"] {
        let documented = interaction(2, data.clone(), permissions);
        let model: serenity::all::CommandInteraction =
            serde_json::from_value(documented.clone()).expect("serenity reads it");
        let back = json("INTERACTION_CREATE", &model).expect("writes it");
        let (a, b) = (commands::actor(&documented), commands::actor(&back));
        let (a, b) = (a.expect("an actor"), b.expect("an actor"));
        assert_eq!(
            (&a.id, &a.roles, a.platform_admin),
            (&b.id, &b.roles, b.platform_admin)
        );
        assert_eq!(commands::here(&documented), commands::here(&back));
    }
}

#[test]
fn a_click_and_a_form_read_by_serenity_keep_what_the_handlers_read() {
    let id = uuid::Uuid::now_v7();
    let custom = components::custom_id(id, true);
    let mut click = interaction(3, json!({ "custom_id": custom, "component_type": 2 }), "0");
    click["message"] = super::inbound::guild_message("1700000000000000002", "answer", false);
    click["message"]["components"] = components::buttons(id);
    let model: serenity::all::ComponentInteraction =
        serde_json::from_value(click).expect("serenity reads the click");
    let back = json("INTERACTION_CREATE", &model).expect("writes it");
    assert_eq!(back["data"]["custom_id"], custom.as_str());
    assert_eq!(back["member"]["user"]["id"], "1400000000000000001");
    let components: Vec<Value> =
        serde_json::from_value(back["message"]["components"].clone()).expect("rows");
    assert_eq!(components::inference_of(&components), Some(id));

    let toml = "name = \"support\"\nmodel = \"default\"\n\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n";
    let form = interaction(
        5,
        json!({ "custom_id": "sb:edit:2:support", "components": [
            { "type": 1, "components": [{ "type": 4, "custom_id": "toml", "value": toml }] },
            { "type": 1, "components": [{ "type": 4, "custom_id": "message", "value": "shorter" }] } ] }),
        "32",
    );
    let model: serenity::all::ModalInteraction =
        serde_json::from_value(form).expect("serenity reads the form");
    let back = json("INTERACTION_CREATE", &model).expect("writes it");
    assert!(edit::from_modal(&back["data"]).is_ok(), "{back}");
}
