//! Markdown to Slack mrkdwn. Models write CommonMark-style Markdown;
//! Slack renders its own dialect (`*bold*`, `_italic_`, `~strike~`,
//! `<url|text>`, no headings) and needs `&`, `<` and `>` escaped. Code is
//! kept verbatim apart from that escaping.

/// Converts a Markdown answer to mrkdwn.
pub fn to_mrkdwn(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 16);
    let mut in_fence = false;
    for (i, line) in markdown.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            // Slack ignores a language after the fence and would show it.
            out.push_str("```");
            in_fence = !in_fence;
            if !in_fence {
                out.push_str(&escape(trimmed.trim_start_matches('`')));
            }
            continue;
        }
        if in_fence {
            out.push_str(&escape(line));
            continue;
        }
        out.push_str(&block_line(line));
    }
    out
}

/// One line outside code blocks: headings, lists, quotes, then inline.
fn block_line(line: &str) -> String {
    let indent_len = line.len() - line.trim_start().len();
    let (indent, rest) = line.split_at(indent_len);
    let hashes = rest.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) && rest[hashes..].starts_with(' ') {
        let title = rest[hashes..].trim().trim_end_matches('#').trim_end();
        return format!("{indent}*{}*", inline(&strip_emphasis(title)));
    }
    if let Some(item) = rest
        .strip_prefix("- ")
        .or_else(|| rest.strip_prefix("* "))
        .or_else(|| rest.strip_prefix("+ "))
    {
        return format!("{indent}• {}", inline(item));
    }
    if let Some(quote) = rest.strip_prefix("> ") {
        return format!("{indent}> {}", inline(quote));
    }
    if rest == "---" || rest == "***" || rest == "___" {
        return format!("{indent}──────────");
    }
    format!("{indent}{}", inline(rest))
}

/// A heading is bold already; emphasis inside it would toggle it off.
fn strip_emphasis(s: &str) -> String {
    s.replace("**", "").replace("__", "")
}

/// Streamed answers go to Slack as Markdown (`markdown_text`), which Slack
/// renders itself; its mention syntax still works there, so `<!channel>`,
/// `<@U…>` and `<#C…>` written by the model (or injected into the thread
/// it read) are broken with a zero-width space after the `<`: the text
/// reads the same and pings no one.
pub fn defuse_mentions(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut chars = markdown.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '<' && matches!(chars.peek(), Some('!' | '@' | '#')) {
            out.push('\u{200B}');
        }
    }
    out
}

/// The part of streamed text that can be sent now: all of it, but a
/// trailing `<` waits for the next piece (it may open a mention).
pub fn sendable(waiting: &mut String) -> String {
    let keep_lt = waiting.ends_with('<');
    let mut text = std::mem::take(waiting);
    if keep_lt {
        text.pop();
        waiting.push('<');
    }
    defuse_mentions(&text)
}

/// Escapes the three characters Slack reserves.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline spans: code, links, bold, italics, strikethrough.
fn inline(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let text = |c: char, out: &mut String| match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    };
    while i < chars.len() {
        let c = chars[i];
        // `code`: verbatim up to the closing backtick.
        if c == '`'
            && let Some(end) = find(&chars, i + 1, &['`'])
        {
            out.push('`');
            for &ch in &chars[i + 1..end] {
                text(ch, &mut out);
            }
            out.push('`');
            i = end + 1;
            continue;
        }
        // [text](url)
        if c == '['
            && let Some(close) = find(&chars, i + 1, &[']'])
            && chars.get(close + 1) == Some(&'(')
            && let Some(paren) = find(&chars, close + 2, &[')'])
        {
            let label: String = chars[i + 1..close].iter().collect();
            let url: String = chars[close + 2..paren].iter().collect();
            if !url.is_empty() && !url.contains(char::is_whitespace) {
                if is_web_or_mail(&url) {
                    out.push('<');
                    out.push_str(&escape(&url).replace('|', "%7C"));
                    out.push('|');
                    out.push_str(&inline(&label).replace('|', "¦"));
                    out.push('>');
                } else {
                    // `<!channel|x>` or `<@U123|x>` would ping: any other
                    // target stays text.
                    out.push_str(&inline(&label));
                    out.push_str(" (");
                    out.push_str(&escape(&url));
                    out.push(')');
                }
                i = paren + 1;
                continue;
            }
        }
        // **bold** / __bold__
        if (c == '*' || c == '_')
            && chars.get(i + 1) == Some(&c)
            && let Some(end) = find(&chars, i + 2, &[c, c])
            && end > i + 2
        {
            let inner: String = chars[i + 2..end].iter().collect();
            out.push('*');
            out.push_str(&inline(&inner));
            out.push('*');
            i = end + 2;
            continue;
        }
        // ~~strike~~
        if c == '~'
            && chars.get(i + 1) == Some(&'~')
            && let Some(end) = find(&chars, i + 2, &['~', '~'])
            && end > i + 2
        {
            let inner: String = chars[i + 2..end].iter().collect();
            out.push('~');
            out.push_str(&inline(&inner));
            out.push('~');
            i = end + 2;
            continue;
        }
        // *italic* / _italic_ (not inside words, not a lone `*` in maths).
        if (c == '*' || c == '_')
            && chars
                .get(i + 1)
                .is_some_and(|n| !n.is_whitespace() && *n != c)
            && (i == 0 || !chars[i - 1].is_alphanumeric())
            && let Some(end) = find(&chars, i + 1, &[c])
            && !chars[end - 1].is_whitespace()
            && chars.get(end + 1).is_none_or(|n| !n.is_alphanumeric())
        {
            let inner: String = chars[i + 1..end].iter().collect();
            out.push('_');
            out.push_str(&inline(&inner));
            out.push('_');
            i = end + 1;
            continue;
        }
        text(c, &mut out);
        i += 1;
    }
    out
}

/// Whether a link target may become a Slack link: web pages and mail
/// addresses only, never Slack's `!`, `@` or `#` mentions.
fn is_web_or_mail(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme) && lower.len() > scheme.len())
}

/// The index where `pattern` next starts at or after `from`.
fn find(chars: &[char], from: usize, pattern: &[char]) -> Option<usize> {
    if pattern.is_empty() || from >= chars.len() {
        return None;
    }
    (from..=chars.len().saturating_sub(pattern.len())).find(|&j| chars[j..].starts_with(pattern))
}

#[cfg(test)]
mod tests {

    #[test]
    fn mentions_in_streamed_markdown_are_broken_and_a_trailing_lt_waits() {
        assert_eq!(
            super::defuse_mentions("<!here> <@U1> <#C1> a<b <https://x.y>"),
            "<\u{200B}!here> <\u{200B}@U1> <\u{200B}#C1> a<b <https://x.y>"
        );
        let mut waiting = "see <".to_string();
        assert_eq!(super::sendable(&mut waiting), "see ");
        assert_eq!(waiting, "<");
        waiting.push_str("!channel>");
        assert_eq!(super::sendable(&mut waiting), "<\u{200B}!channel>");
        assert!(waiting.is_empty());
    }
    use super::*;

    #[test]
    fn emphasis_links_and_strikethrough_become_mrkdwn() {
        assert_eq!(
            to_mrkdwn("**bold**, __also bold__, *italic*, _too_ and ~~gone~~"),
            "*bold*, *also bold*, _italic_, _too_ and ~gone~"
        );
        assert_eq!(
            to_mrkdwn("see [the docs](https://example.com/a?b=1&c=2) now"),
            "see <https://example.com/a?b=1&amp;c=2|the docs> now"
        );
        assert_eq!(to_mrkdwn("**[x](http://a)**"), "*<http://a|x>*");
    }

    #[test]
    fn reserved_characters_are_escaped_outside_and_inside_code() {
        assert_eq!(to_mrkdwn("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(to_mrkdwn("`if a<b {}`"), "`if a&lt;b {}`");
        assert_eq!(
            to_mrkdwn("```rust\nlet x = *p && **q;\n```\ndone"),
            "```\nlet x = *p &amp;&amp; **q;\n```\ndone"
        );
        // `<!channel>` from a model must not ping anyone.
        assert_eq!(to_mrkdwn("<!channel>"), "&lt;!channel&gt;");
        assert_eq!(
            to_mrkdwn("<!here> <@U123> <#C123> <!subteam^S1>"),
            "&lt;!here&gt; &lt;@U123&gt; &lt;#C123&gt; &lt;!subteam^S1&gt;"
        );
        assert_eq!(to_mrkdwn("# <!channel>"), "*&lt;!channel&gt;*");
        assert_eq!(to_mrkdwn("- `<@U123>`"), "• `&lt;@U123&gt;`");
    }

    #[test]
    fn only_web_and_mail_targets_become_slack_links() {
        // Slack reads `<!channel|x>` as @channel and `<@U123|x>` as a mention.
        assert_eq!(to_mrkdwn("[x](!channel)"), "x (!channel)");
        assert_eq!(to_mrkdwn("[hi](!here)"), "hi (!here)");
        assert_eq!(to_mrkdwn("[x](@U123)"), "x (@U123)");
        assert_eq!(to_mrkdwn("[x](#C123)"), "x (#C123)");
        assert_eq!(to_mrkdwn("[x](!subteam^S1)"), "x (!subteam^S1)");
        assert_eq!(
            to_mrkdwn("[run](javascript:alert(1))"),
            "run (javascript:alert(1))"
        );
        assert_eq!(to_mrkdwn("[x](<!channel>)"), "x (&lt;!channel&gt;)");
        for out in [
            to_mrkdwn("[x](!channel)"),
            to_mrkdwn("[x](@U123)"),
            to_mrkdwn("**[x](!here)**"),
        ] {
            assert!(!out.contains('<'), "no Slack markup in {out}");
        }
        // Web pages and mail addresses still link.
        assert_eq!(
            to_mrkdwn("[mail us](mailto:team@example.com)"),
            "<mailto:team@example.com|mail us>"
        );
        assert_eq!(to_mrkdwn("[x](HTTPS://a.example)"), "<HTTPS://a.example|x>");
        assert_eq!(to_mrkdwn("[x](https://)"), "x (https://)");
    }

    #[test]
    fn headings_lists_and_quotes() {
        assert_eq!(
            to_mrkdwn("# Title\n## **Sub**\n- one\n* two\n  - nested\n1. first\n> quoted"),
            "*Title*\n*Sub*\n• one\n• two\n  • nested\n1. first\n> quoted"
        );
    }

    #[test]
    fn lone_markers_and_words_with_underscores_are_left_alone() {
        assert_eq!(to_mrkdwn("2 * 3 * 4"), "2 * 3 * 4");
        assert_eq!(to_mrkdwn("snake_case_name"), "snake_case_name");
        assert_eq!(to_mrkdwn("unclosed **bold"), "unclosed **bold");
        assert_eq!(to_mrkdwn("[not a link] (x)"), "[not a link] (x)");
    }
}
