//! The references under an answer that used retrieved knowledge, in the
//! Markdown both platforms' renderers take (Slack's is converted to mrkdwn
//! with the rest of the answer; Discord shows masked links as they are):
//! numbered like the answer's `[n]`, linked where the source has a web
//! link, with the file path shown otherwise.

use gateway::domain::Citation;

/// The "Sources" block to append to an answer, or `None` when it cited
/// nothing.
pub fn footer(citations: &[Citation]) -> Option<String> {
    if citations.is_empty() {
        return None;
    }
    let mut out = String::from("**Sources**");
    for c in citations {
        let label = escape(&c.label());
        out.push('\n');
        match c.link.as_deref() {
            Some(link) if link.starts_with("https://") || link.starts_with("http://") => {
                out.push_str(&format!("[{}] [{label}]({link})", c.number));
            }
            Some(path) => {
                out.push_str(&format!(
                    "[{}] {label} · `{}`",
                    c.number,
                    path.replace('`', "'")
                ));
            }
            None => out.push_str(&format!("[{}] {label}", c.number)),
        }
    }
    Some(out)
}

/// Brackets and emphasis marks in a title would break the link syntax.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '[' => '(',
            ']' => ')',
            '*' | '_' | '`' | '<' | '>' => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cite(number: u32, title: &str, link: Option<&str>) -> Citation {
        Citation {
            number,
            title: title.into(),
            heading: "Backoff".into(),
            link: link.map(String::from),
            source: "handbook".into(),
        }
    }

    #[test]
    fn web_links_are_links_and_paths_are_shown_as_paths() {
        let text = footer(&[
            cite(1, "Retry [policy]", Some("https://wiki.example/retry")),
            cite(3, "On-call", Some("docs/oncall.md#backoff")),
        ])
        .expect("a footer");
        assert_eq!(
            text,
            "**Sources**\n[1] [Retry (policy) › Backoff](https://wiki.example/retry)\n[3] On-call › Backoff · `docs/oncall.md#backoff`"
        );
        assert_eq!(footer(&[]), None);
    }
}
