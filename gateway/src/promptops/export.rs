//! `switchboard export`: logged conversations as files others can use.
//! `openai` is the chat fine-tuning format (one `{"messages": [...]}` per
//! line, ending with the answer), `eval` is one example per line with its
//! prompt version and feedback (for evaluation runs), `csv` is one row per
//! answer for spreadsheets. `redact` replaces e-mail addresses, phone
//! numbers and user mentions before anything is written.

use std::io::Write;

use serde_json::json;

use crate::domain::Utc;
use crate::store::{DatasetFilter, Store, StoreError};

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI chat fine-tuning JSONL.
    OpenAi,
    /// Evaluation JSONL.
    Eval,
    /// CSV with a header row.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "openai" => Ok(Format::OpenAi),
            "eval" => Ok(Format::Eval),
            "csv" => Ok(Format::Csv),
            other => Err(format!(
                "`{other}` is not an export format; use openai, eval or csv"
            )),
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Conversations written.
    pub conversations: usize,
    /// Of those, answers recorded without a TTFT figure (an empty CSV cell,
    /// never 0).
    pub without_ttft: usize,
}

/// Writes the matching conversations to `out`; says how many, and how many
/// of them have no TTFT figure.
pub async fn export(
    store: &Store,
    filter: &DatasetFilter,
    format: Format,
    redact_pii: bool,
    out: &mut impl Write,
) -> Result<Exported, ExportError> {
    let examples = store.dataset(filter).await?;
    // The asker's id and display name can be anywhere, a prompt that
    // names the user among them ("Answer Ada concisely").
    let clean = |s: &str, e: &crate::store::Example| {
        if redact_pii {
            // The asker as stored (`slack:U0123`), and the bare id a prompt
            // shows (`U0123`).
            let bare = e
                .user
                .as_deref()
                .and_then(crate::domain::User::parse)
                .map(|u| u.id);
            let named = [e.user_name.as_ref(), e.user.as_ref(), bare.as_ref()]
                .into_iter()
                .flatten()
                .fold(s.to_string(), |text, name| redact_name(&text, name));
            redact(&named)
        } else {
            s.to_string()
        }
    };
    if format == Format::Csv {
        writeln!(
            out,
            "id,created_at,platform,channel,user,prompt,version,model,input_tokens,output_tokens,ttft_ms,cost_usd,thumbs,question,answer"
        )?;
    }
    let mut written = 0;
    let mut without_ttft = 0;
    for e in &examples {
        let Some(answer) = &e.output else { continue };
        let clean = |s: &str| clean(s, e);
        match format {
            Format::OpenAi => {
                // The answer's tool steps are left out: the line is the
                // conversation and the final answer.
                let mut messages: Vec<_> = e
                    .conversation()
                    .iter()
                    .filter(|(role, _)| role != "tool")
                    .map(|(role, content)| json!({"role": role, "content": clean(content)}))
                    .collect();
                messages.push(json!({"role": "assistant", "content": clean(answer)}));
                writeln!(out, "{}", json!({ "messages": messages }))?;
            }
            Format::Eval => {
                let input: Vec<_> = e
                    .conversation()
                    .iter()
                    .filter(|(role, _)| role != "tool")
                    .map(|(role, content)| json!({"role": role, "content": clean(content)}))
                    .collect();
                let line = json!({
                    "id": e.id,
                    "prompt": e.prompt,
                    "version": e.version,
                    "model": e.model,
                    "input": input,
                    "output": clean(answer),
                    "thumbs": e.thumbs,
                });
                writeln!(out, "{line}")?;
            }
            Format::Csv => {
                let question = e
                    .input
                    .iter()
                    .rev()
                    .find(|(role, _)| role == "user")
                    .map_or(String::new(), |(_, c)| clean(c));
                let user = if redact_pii {
                    e.user.as_ref().map(|_| "[user]".to_string())
                } else {
                    e.user.clone()
                };
                let fields = [
                    e.id.clone(),
                    Utc::from_ms(e.created_at_ms).to_string(),
                    e.platform.clone(),
                    e.channel.clone().unwrap_or_default(),
                    user.unwrap_or_default(),
                    e.prompt.clone().unwrap_or_default(),
                    e.version.map(|v| v.to_string()).unwrap_or_default(),
                    e.model.clone().unwrap_or_default(),
                    e.input_tokens.map(|v| v.to_string()).unwrap_or_default(),
                    e.output_tokens.map(|v| v.to_string()).unwrap_or_default(),
                    e.ttft_ms.map(|v| format!("{v:.1}")).unwrap_or_default(),
                    e.cost_usd.map(|v| format!("{v:.8}")).unwrap_or_default(),
                    e.thumbs.map(|v| v.to_string()).unwrap_or_default(),
                    question,
                    clean(answer),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        written += 1;
        without_ttft += usize::from(e.ttft_ms.is_none());
    }
    Ok(Exported {
        conversations: written,
        without_ttft,
    })
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Replaces `name` where it stands as a word of its own with `[user]`.
fn redact_name(text: &str, name: &str) -> String {
    if name.trim().is_empty() {
        return text.to_string();
    }
    // Whether the characters beside the name (nearest first) carry on its
    // word: a letter, digit or `_`, or a `.` or `-` joined to more of them
    // ("alice.smith"; a full stop after the name ends the sentence).
    fn joined(mut beside: impl Iterator<Item = char>) -> bool {
        let word = |c: char| c.is_alphanumeric() || c == '_';
        match beside.next() {
            Some(c) if word(c) => true,
            Some('.' | '-') => beside.next().is_some_and(word),
            _ => false,
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (at, _) in text.match_indices(name) {
        if at < done {
            continue;
        }
        let end = at + name.len();
        if !joined(text[..at].chars().rev()) && !joined(text[end..].chars()) {
            out.push_str(&text[done..at]);
            out.push_str("[user]");
            done = end;
        }
    }
    out.push_str(&text[done..]);
    out
}

/// Replaces e-mail addresses with `[email]`, phone numbers (7 or more
/// digits with the usual separators) with `[phone]`, and user mentions
/// (`<@U123>`, `<@!123>`, `@name`) with `[user]`.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    while i < chars.len() {
        let c = chars[i];
        // Platform mentions: <@U123ABC>, <@!123>, <@&123>.
        if c == '<'
            && chars.get(i + 1) == Some(&'@')
            && let Some(end) = chars[i..].iter().position(|&c| c == '>')
            && end <= 40
        {
            out.push_str("[user]");
            i += end + 1;
            continue;
        }
        // E-mail: a word, `@`, a domain with a dot.
        if is_word(c) && (i == 0 || !is_word(chars[i - 1])) {
            let start = i;
            let mut j = i;
            while j < chars.len() && is_word(chars[j]) {
                j += 1;
            }
            if chars.get(j) == Some(&'@') {
                let mut k = j + 1;
                while k < chars.len()
                    && (chars[k].is_alphanumeric() || chars[k] == '.' || chars[k] == '-')
                {
                    k += 1;
                }
                let domain: String = chars[j + 1..k].iter().collect();
                let domain = domain.trim_end_matches('.');
                if domain.contains('.') && domain.len() > 2 {
                    out.push_str("[email]");
                    i = j + 1 + domain.chars().count();
                    continue;
                }
            }
            i = start;
        }
        // @name mentions.
        if c == '@'
            && (i == 0 || !is_word(chars[i - 1]))
            && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
        {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || "._-".contains(chars[j])) {
                j += 1;
            }
            // A full stop or dash after a name ends the sentence, not the name.
            while ".-".contains(chars[j - 1]) {
                j -= 1;
            }
            out.push_str("[user]");
            i = j;
            continue;
        }
        // Phone numbers: + or a digit, then digits and separators, 7+ digits.
        if (c == '+' || c == '(' || c.is_ascii_digit())
            && (i == 0 || !chars[i - 1].is_alphanumeric())
        {
            let mut j = i;
            let mut digits = 0;
            while j < chars.len() && (chars[j].is_ascii_digit() || " -.()+".contains(chars[j])) {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                }
                j += 1;
            }
            // Do not swallow trailing separators, nor a `)` the number
            // did not open.
            while j > i && !chars[j - 1].is_ascii_digit() {
                let opened = chars[i..j].iter().filter(|&&c| c == '(').count();
                let closed = chars[i..j].iter().filter(|&&c| c == ')').count();
                if chars[j - 1] == ')' && closed <= opened {
                    break;
                }
                j -= 1;
            }
            let next_is_word = chars.get(j).is_some_and(|c| c.is_alphanumeric());
            let found: String = chars[i..j].iter().collect();
            let groups: Vec<usize> = found
                .split(['-', '/', '.'])
                .map(|g| g.trim().len())
                .collect();
            let is_date = groups == [4, 2, 2] || groups == [2, 2, 4];
            let is_ip = found.split('.').count() == 4
                && found
                    .split('.')
                    .all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
            // 1 000 000: thousands set apart by spaces.
            let spaced: Vec<&str> = found.split(' ').collect();
            let is_amount = spaced.len() > 1
                && (1..=3).contains(&spaced[0].len())
                && spaced[1..].iter().all(|g| g.len() == 3)
                && spaced.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
            if (7..=15).contains(&digits) && !next_is_word && !is_date && !is_ip && !is_amount {
                out.push_str("[phone]");
                i = j;
                continue;
            }
            // Not a phone number: no part of it is one either.
            if j > i + 1 && !next_is_word {
                out.extend(&chars[i..j]);
                i = j;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_phones_and_mentions_are_redacted() {
        assert_eq!(
            redact(
                "Mail ada.l@example.co.uk or call +44 20 7946 0958, cc <@U024BE7LH> and @grace."
            ),
            "Mail [email] or call [phone], cc [user] and [user]."
        );
        assert_eq!(
            redact("Order 1234 costs $56.78 on 2026-11-28"),
            "Order 1234 costs $56.78 on 2026-11-28"
        );
        assert_eq!(redact("(555) 123-4567"), "[phone]");
        // Addresses, amounts and brackets are not phone numbers.
        assert_eq!(
            redact("host 192.168.100.200 (qty 1 000 000)"),
            "host 192.168.100.200 (qty 1 000 000)"
        );
        assert_eq!(
            redact("(call +1 555 123 4567) or (555) 987-6543."),
            "(call [phone]) or [phone]."
        );
        assert_eq!(redact("<@!80351110224678912> hi"), "[user] hi");
        assert_eq!(redact("no pii here"), "no pii here");
    }

    #[test]
    fn the_askers_id_is_redacted_where_it_stands_alone() {
        assert_eq!(
            redact_name(
                "Answer U123 concisely; U123. U1234 and xU123 differ.",
                "U123"
            ),
            "Answer [user] concisely; [user]. U1234 and xU123 differ."
        );
        assert_eq!(
            redact_name("Answer alice.smith concisely.", "alice.smith"),
            "Answer [user] concisely."
        );
        assert_eq!(redact_name("no one", ""), "no one");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\"\nc"), "\"a, \"\"b\"\"\nc\"");
    }
}
