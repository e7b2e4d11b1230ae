//! Feedback from Discord: the 👍 / 👎 buttons under a finished answer
//! (their `custom_id` carries the inference id) and the same emoji as
//! reactions on the bot's messages. Both become thumbs rows on the
//! inference; a changed vote replaces the earlier one in the store.
//! Removing the reaction that cast the current vote withdraws it: a thumbs
//! row without a score replaces it, so the answer counts as neither.

use gateway::store::{FeedbackRecord, now_ms};
use serde_json::{Value, json};
use uuid::Uuid;

const PREFIX: &str = "sb:fb:";

/// The action row with the two feedback buttons for an inference.
pub fn buttons(inference_id: Uuid) -> Value {
    json!([{
        "type": 1,
        "components": [
            { "type": 2, "style": 2, "emoji": { "name": "👍" }, "custom_id": custom_id(inference_id, true) },
            { "type": 2, "style": 2, "emoji": { "name": "👎" }, "custom_id": custom_id(inference_id, false) }
        ]
    }])
}

/// `sb:fb:up:<uuid>` or `sb:fb:down:<uuid>`.
pub fn custom_id(inference_id: Uuid, up: bool) -> String {
    format!("{PREFIX}{}:{inference_id}", if up { "up" } else { "down" })
}

/// The inference and the vote a button's `custom_id` carries.
pub fn parse_custom_id(custom_id: &str) -> Option<(Uuid, bool)> {
    let rest = custom_id.strip_prefix(PREFIX)?;
    let (vote, id) = rest.split_once(':')?;
    let up = match vote {
        "up" => true,
        "down" => false,
        _ => return None,
    };
    Some((Uuid::parse_str(id).ok()?, up))
}

/// The vote a reaction emoji means, if any.
pub fn reaction_vote(emoji: &str) -> Option<bool> {
    // Discord sends skin-tone variants as their own emoji.
    let base: String = emoji
        .chars()
        .filter(|c| !('\u{1F3FB}'..='\u{1F3FF}').contains(c))
        .collect();
    match base.as_str() {
        "👍" => Some(true),
        "👎" => Some(false),
        _ => None,
    }
}

/// The inference a message of the bot answered, read from its buttons.
pub fn inference_of(components: &[Value]) -> Option<Uuid> {
    components
        .iter()
        .flat_map(|row| {
            row.get("components")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c.get("custom_id").and_then(Value::as_str))
        .find_map(|id| parse_custom_id(id).map(|(uuid, _)| uuid))
}

/// A thumbs row by `user` (a Discord user id) from `source`.
pub fn record(inference_id: Uuid, up: bool, user: &str, source: &str) -> FeedbackRecord {
    FeedbackRecord {
        id: Uuid::now_v7(),
        inference_id,
        created_at_ms: now_ms(),
        kind: "thumbs".to_string(),
        score: Some(if up { 1.0 } else { 0.0 }),
        comment: None,
        user: Some(voter(user)),
        source: source.to_string(),
    }
}

/// The row that withdraws `user`'s vote (a removed reaction).
pub fn withdrawal(inference_id: Uuid, user: &str) -> FeedbackRecord {
    FeedbackRecord {
        score: None,
        ..record(inference_id, true, user, "reaction")
    }
}

/// How a Discord user is named in feedback rows.
pub fn voter(user: &str) -> gateway::User {
    gateway::User::new("discord", user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_carry_the_inference_and_read_back() {
        let id = Uuid::now_v7();
        let row = buttons(id);
        let ids: Vec<&str> = row[0]["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["custom_id"].as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(
            ids.iter().all(|c| c.len() <= 100),
            "Discord allows 100 characters"
        );
        assert_eq!(parse_custom_id(ids[0]), Some((id, true)));
        assert_eq!(parse_custom_id(ids[1]), Some((id, false)));
        assert_eq!(
            inference_of(row.as_array().map_or(&[][..], |v| v)),
            Some(id)
        );
        assert_eq!(parse_custom_id("sb:fb:maybe:x"), None);
        assert_eq!(parse_custom_id("other:button"), None);
    }

    #[test]
    fn thumbs_reactions_count_with_any_skin_tone() {
        assert_eq!(reaction_vote("👍"), Some(true));
        assert_eq!(reaction_vote("👍🏽"), Some(true));
        assert_eq!(reaction_vote("👎"), Some(false));
        assert_eq!(reaction_vote("🎉"), None);
    }

    #[test]
    fn a_record_is_a_thumbs_row_scored_one_or_zero() {
        let id = Uuid::now_v7();
        let up = record(id, true, "42", "button");
        assert_eq!((up.kind.as_str(), up.score), ("thumbs", Some(1.0)));
        assert_eq!(
            up.user.map(|u| u.to_string()).as_deref(),
            Some("discord:42")
        );
        assert_eq!(record(id, false, "42", "reaction").score, Some(0.0));
    }
}
