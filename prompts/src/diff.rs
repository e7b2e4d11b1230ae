//! Unified diffs between two versions of a prompt, message by message,
//! plus its settings (model, parameters, description, variables), so an
//! admin sees exactly what a promote would change.

use similar::TextDiff;

use crate::{Prompt, TemplateRole};

/// A unified diff from `old` to `new`; empty when they are the same.
/// Each message is diffed on its own under a header naming it.
pub fn diff(old: &Prompt, new: &Prompt) -> String {
    let mut out = String::new();
    let header = |what: &str| {
        (
            format!("{} v{} {what}", old.name, old.version),
            format!("{} v{} {what}", new.name, new.version),
        )
    };
    let (a, b) = (settings(old), settings(new));
    if a != b {
        let (h1, h2) = header("settings");
        out.push_str(&unified(&a, &b, &h1, &h2));
    }
    let count = old.messages.len().max(new.messages.len());
    for i in 0..count {
        let a = old.messages.get(i);
        let b = new.messages.get(i);
        let text = |m: Option<&crate::MessageTemplate>| {
            m.map_or(String::new(), |m| match m.role {
                TemplateRole::History => "(conversation history)\n".to_string(),
                _ => with_newline(&m.template),
            })
        };
        let role = |m: Option<&crate::MessageTemplate>| {
            m.map_or("(none)", |m| match m.role {
                TemplateRole::System => "system",
                TemplateRole::User => "user",
                TemplateRole::Assistant => "assistant",
                TemplateRole::History => "history",
            })
        };
        let (ta, tb) = (text(a), text(b));
        if ta == tb && role(a) == role(b) {
            continue;
        }
        let h1 = format!(
            "{} v{} message {} ({})",
            old.name,
            old.version,
            i + 1,
            role(a)
        );
        let h2 = format!(
            "{} v{} message {} ({})",
            new.name,
            new.version,
            i + 1,
            role(b)
        );
        if ta == tb {
            out.push_str(&format!("--- {h1}\n+++ {h2}\n"));
        } else {
            out.push_str(&unified(&ta, &tb, &h1, &h2));
        }
    }
    out
}

fn unified(a: &str, b: &str, h1: &str, h2: &str) -> String {
    TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(h1, h2)
        .to_string()
}

fn with_newline(s: &str) -> String {
    if s.ends_with('\n') || s.is_empty() {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// Everything but the messages, one setting per line.
fn settings(p: &Prompt) -> String {
    let mut s = format!("description = {:?}\nmodel = {:?}\n", p.description, p.model);
    if let Some(t) = p.params.temperature {
        s.push_str(&format!("temperature = {t}\n"));
    }
    if let Some(t) = p.params.top_p {
        s.push_str(&format!("top_p = {t}\n"));
    }
    if let Some(t) = p.params.max_tokens {
        s.push_str(&format!("max_tokens = {t}\n"));
    }
    if !p.params.stop.is_empty() {
        s.push_str(&format!("stop = {:?}\n", p.params.stop));
    }
    if let Some(v) = p.cache.enabled {
        s.push_str(&format!("cache.enabled = {v}\n"));
    }
    if let Some(v) = p.cache.ttl_secs {
        s.push_str(&format!("cache.ttl_secs = {v}\n"));
    }
    if let Some(v) = p.cache.allow_sampling {
        s.push_str(&format!("cache.allow_sampling = {v}\n"));
    }
    for (k, v) in &p.variables {
        s.push_str(&format!("variable {k} = {v:?}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_messages_and_settings_show_as_unified_diffs() {
        let text = "name = \"p\"\nmodel = \"default\"\n[[messages]]\nrole = \"system\"\ntemplate = \"one\\ntwo\\nthree\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n";
        let old = Prompt::from_toml("p", text).unwrap();
        let mut new = old.clone();
        new.version = 2;
        new.model = "smart".into();
        new.messages[0].template = "one\n2\nthree".into();
        let d = diff(&old, &new);
        assert!(d.contains("--- p v1 settings\n+++ p v2 settings\n"), "{d}");
        assert!(
            d.contains("-model = \"default\"\n+model = \"smart\"\n"),
            "{d}"
        );
        assert!(
            d.contains("--- p v1 message 1 (system)\n+++ p v2 message 1 (system)\n@@"),
            "{d}"
        );
        assert!(d.contains(" one\n-two\n+2\n three\n"), "{d}");
        assert!(!d.contains("message 2"), "{d}");
        assert_eq!(diff(&old, &old), "");
    }
}
