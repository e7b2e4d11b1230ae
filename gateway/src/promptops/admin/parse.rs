//! The text syntax of the chat slash command (`/prompt …`), shared by the Slack and Discord
//! adapters: [`USAGE`], [`parse_command`] and the `V:W,V:W` split arms ([`parse_arms`]).

use std::collections::BTreeSet;

use prompts::Arm;

use super::Command;
use crate::domain::Selector;
use crate::registry::{LATEST, RegistryError, Scope};

/// Parses `2:90,3:10` (version:weight pairs) into split arms.
pub fn parse_arms(text: &str) -> Result<Vec<Arm>, RegistryError> {
    let mut arms = Vec::new();
    let mut seen = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (v, w) = part.split_once(':').ok_or_else(|| {
            RegistryError::BadSplit(format!(
                "`{part}`: write each arm as version:weight, like `2:90,3:10`"
            ))
        })?;
        let version = v
            .trim()
            .trim_start_matches('v')
            .parse::<i64>()
            .map_err(|_| RegistryError::BadSplit(format!("`{v}` is not a version number")))?;
        let weight = w
            .trim()
            .parse::<u32>()
            .map_err(|_| RegistryError::BadSplit(format!("`{w}` is not a whole-number weight")))?;
        if !seen.insert(version) {
            return Err(RegistryError::BadSplit(format!(
                "v{version} is listed twice"
            )));
        }
        arms.push(Arm { version, weight });
    }
    if arms.is_empty() {
        return Err(RegistryError::BadSplit(
            "give at least one version:weight pair, like `2:90,3:10`".into(),
        ));
    }
    Ok(arms)
}

/// The text syntax of the chat slash command (`/prompt …`), shared by the
/// Slack and Discord adapters. `here` is the scope the command was typed
/// in, for `bind here …`. `create` and `edit` take the prompt's TOML after
/// the first line (or from a platform's form) and are built by adapters.
pub const USAGE: &str = "\
/prompt list
/prompt show NAME [VERSION|LABEL]
/prompt diff NAME FROM [TO]
/prompt promote NAME VERSION [LABEL]
/prompt rollback NAME [LABEL] [VERSION]
/prompt test NAME [VERSION|LABEL] -- QUESTION
/prompt bind here|SCOPE NAME [LABEL]
/prompt unbind here|SCOPE
/prompt split NAME LABEL V:W,V:W
/prompt history [NAME]";

/// Parses the slash command's text into a [`Command`]; the error is a
/// message for the user, with [`USAGE`].
pub fn parse_command(text: &str, here: Option<&Scope>) -> Result<Command, String> {
    let (head, question) = match text.split_once(" -- ") {
        Some((h, q)) => (h, Some(q.trim().to_string())),
        None => (text, None),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let usage = |why: &str| format!("{why}\nusage:\n{USAGE}");
    let version = |s: &str| match Selector::parse(s) {
        Selector::Version(v) => Ok(v),
        Selector::Label(_) => Err(usage(&format!("`{s}` is not a version number"))),
    };
    let scope = |s: &str| -> Result<Scope, String> {
        if s == "here" {
            here.cloned()
                .ok_or_else(|| usage("`here` only works inside a channel"))
        } else {
            Scope::parse(s).map_err(|e| e.to_string())
        }
    };
    let label_or = |i: usize| {
        words
            .get(i)
            .map_or(crate::registry::PRODUCTION.to_string(), |s| s.to_string())
    };
    match words.as_slice() {
        ["list"] | [] => Ok(Command::List),
        ["show", name] | ["show", name, _] => Ok(Command::Show {
            name: name.to_string(),
            version: words.get(2).map(|s| Selector::parse(s)),
        }),
        ["diff", name, from] | ["diff", name, from, _] => Ok(Command::Diff {
            name: name.to_string(),
            from: Selector::parse(from),
            to: Selector::parse(words.get(3).copied().unwrap_or(LATEST)),
        }),
        ["promote", name, v] | ["promote", name, v, _] => Ok(Command::Promote {
            name: name.to_string(),
            version: version(v)?,
            label: label_or(3),
        }),
        ["rollback", name] | ["rollback", name, _] | ["rollback", name, _, _] => {
            Ok(Command::Rollback {
                name: name.to_string(),
                label: label_or(2),
                to: words.get(3).map(|v| version(v)).transpose()?,
            })
        }
        ["test", name] | ["test", name, _] => Ok(Command::Test {
            name: name.to_string(),
            version: words.get(2).map(|s| Selector::parse(s)),
            text: question.ok_or_else(|| usage("give the question after ` -- `"))?,
        }),
        ["bind", s, name] | ["bind", s, name, _] => Ok(Command::Bind {
            scope: scope(s)?,
            target: Some((name.to_string(), label_or(3))),
        }),
        ["unbind", s] => Ok(Command::Bind {
            scope: scope(s)?,
            target: None,
        }),
        ["split", name, label, arms] => Ok(Command::Split {
            name: name.to_string(),
            label: label.to_string(),
            arms: parse_arms(arms).map_err(|e| e.to_string())?,
        }),
        ["history"] | ["history", _] => Ok(Command::History {
            name: words.get(1).map(|s| s.to_string()),
            limit: 20,
        }),
        _ => Err(usage(&format!("cannot read `{}`", text.trim()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_command_text_parses_into_commands() {
        let here = Scope::parse("slack/T1/C1").unwrap();
        match parse_command("promote support 3", Some(&here)).unwrap() {
            Command::Promote {
                name,
                version,
                label,
            } => {
                assert_eq!(
                    (name.as_str(), version, label.as_str()),
                    ("support", 3, "production")
                )
            }
            other => panic!("{other:?}"),
        }
        match parse_command("bind here support staging", Some(&here)).unwrap() {
            Command::Bind { scope, target } => {
                assert_eq!(scope, here);
                assert_eq!(target, Some(("support".into(), "staging".into())));
            }
            other => panic!("{other:?}"),
        }
        match parse_command("test support v2 -- Where is {{ my }} order?", None).unwrap() {
            Command::Test { version, text, .. } => {
                assert_eq!(version, Some(Selector::Version(2)));
                assert_eq!(text, "Where is {{ my }} order?");
            }
            other => panic!("{other:?}"),
        }
        match parse_command("split support production 1:90,2:10", None).unwrap() {
            Command::Split { arms, .. } => assert_eq!(arms.len(), 2),
            other => panic!("{other:?}"),
        }
        let err = parse_command("promote support staging", None).unwrap_err();
        assert!(
            err.contains("not a version number") && err.contains("usage:"),
            "{err}"
        );
        let err = parse_command("bind here support", None).unwrap_err();
        assert!(err.contains("only works inside a channel"), "{err}");
        assert!(
            parse_command("frobnicate", None)
                .unwrap_err()
                .contains("cannot read")
        );
        assert!(parse_command("split support production 1:x", None).is_err());
    }
}
