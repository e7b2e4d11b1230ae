//! Splitting a long answer into messages that fit a platform's limit
//! (Discord: 2,000 characters; a Slack section: 3,000), at the safest
//! boundary available: a blank line, then a line end, then a space, and
//! only as a last resort inside a word. A Markdown code block cut in two
//! is closed at the end of one chunk and reopened (with its language) at
//! the start of the next, so every chunk renders on its own. And the other
//! way: the newest lines of a thread that fit a budget ([`newest_within`]).

/// The newest lines that fit in `budget` characters, oldest first, and how
/// many older ones were left out.
pub fn newest_within(lines: &[String], budget: usize) -> (String, usize) {
    let mut used = 0;
    let mut kept = 0;
    for line in lines.iter().rev() {
        let cost = line.chars().count() + 1;
        if used + cost > budget && kept > 0 {
            break;
        }
        used += cost;
        kept += 1;
    }
    let from = lines.len() - kept;
    (lines[from..].join("\n"), from)
}

/// Splits `text` into chunks of at most `max` characters (not bytes).
/// Joining the chunks gives back `text`, apart from the fences added to
/// close and reopen a code block at a cut. `max` below 16 is taken as 16.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    pieces(text, max)
        .into_iter()
        .map(|p| format!("{}{}{}", p.prefix, p.body, p.suffix))
        .collect()
}

/// One chunk: the original text `body`, with a fence reopened before it
/// and one closed after it where a code block was cut.
struct Piece<'a> {
    prefix: String,
    body: &'a str,
    suffix: &'static str,
}

fn pieces(text: &str, max: usize) -> Vec<Piece<'_>> {
    let max = max.max(16);
    let mut out = Vec::new();
    // The fence opening the code block the next chunk starts inside, if any.
    let mut reopen: Option<String> = None;
    let mut rest = text;
    while !rest.is_empty() {
        // A fence line too long to repeat is reopened without its info string.
        let prefix = match &reopen {
            Some(f) if f.chars().count() <= max / 4 => format!("{f}\n"),
            Some(_) => "```\n".to_string(),
            None => String::new(),
        };
        let room = max - prefix.chars().count();
        if rest.chars().count() <= room {
            out.push(Piece {
                prefix,
                body: rest,
                suffix: "",
            });
            break;
        }
        // Leave space to close a fence that is open at the cut.
        let end = cut_point(rest, room - 4);
        let (head, tail) = rest.split_at(end);
        let open = open_fence(reopen.as_deref(), head);
        let suffix = match (&open, head.ends_with('\n')) {
            (None, _) => "",
            (Some(_), true) => "```",
            (Some(_), false) => "\n```",
        };
        out.push(Piece {
            prefix,
            body: head,
            suffix,
        });
        reopen = open;
        rest = tail;
    }
    out
}

/// The byte index to cut `text` at so the head has at most `budget`
/// characters, preferring a blank line, a line end, then a space.
fn cut_point(text: &str, budget: usize) -> usize {
    let limit = text
        .char_indices()
        .nth(budget)
        .map_or(text.len(), |(i, _)| i);
    let window = &text[..limit];
    // Do not cut so early that chunks become tiny: look in the last half.
    let floor = limit / 2;
    for sep in ["\n\n", "\n", " "] {
        if let Some(i) = window.rfind(sep)
            && i + sep.len() > floor
        {
            return i + sep.len();
        }
    }
    limit.max(text.chars().next().map_or(1, char::len_utf8))
}

/// After `head` (which starts inside `open` if given), the fence line of
/// the code block still open at its end.
fn open_fence(open: Option<&str>, head: &str) -> Option<String> {
    let mut current = open.map(str::to_string);
    for line in head.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            current = match current {
                Some(_) => None,
                None => Some(trimmed.trim_end().to_string()),
            };
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks' original text, without the fences the splitter added.
    fn rejoin(text: &str, max: usize) -> String {
        pieces(text, max).iter().map(|p| p.body).collect()
    }

    fn fences_balanced(chunk: &str) -> bool {
        chunk
            .lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count()
            % 2
            == 0
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(split_message("hello", 2000), vec!["hello".to_string()]);
        assert!(split_message("", 2000).is_empty());
    }

    #[test]
    fn cuts_prefer_paragraphs_then_lines_then_spaces() {
        let text = format!("{}\n\n{}", "a".repeat(30), "b".repeat(30));
        assert_eq!(
            split_message(&text, 40),
            vec![format!("{}\n\n", "a".repeat(30)), "b".repeat(30)]
        );
        let words = "alpha beta gamma delta epsilon zeta eta theta";
        for chunk in split_message(words, 20) {
            assert!(chunk.chars().count() <= 20);
            assert!(!chunk.starts_with(' '), "{chunk:?}");
        }
    }

    #[test]
    fn a_code_block_cut_in_two_is_closed_and_reopened() {
        let code: String = (0..60).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("Here:\n```rust\n{code}```\nDone.");
        let chunks = split_message(&text, 200);
        assert!(chunks.len() > 3);
        assert!(chunks[1].starts_with("```rust\n"), "{:?}", chunks[1]);
        for c in &chunks {
            assert!(c.chars().count() <= 200, "{c:?}");
            assert!(fences_balanced(c), "unbalanced: {c:?}");
        }
        assert_eq!(rejoin(&text, 200), text);
    }

    #[test]
    fn random_texts_keep_every_property() {
        let pieces = [
            "word ",
            "longerword ",
            "\n",
            "\n\n",
            "```py\n",
            "```\n",
            "é",
            "🙂",
            "x",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..500 {
            let n = rng.usize(0..400);
            let text: String = (0..n).map(|_| pieces[rng.usize(0..pieces.len())]).collect();
            let max = rng.usize(16..120);
            let chunks = split_message(&text, max);
            for c in &chunks {
                assert!(c.chars().count() <= max, "{max}: {c:?}");
                assert!(
                    fences_balanced(c) || chunks.len() == 1 || c == chunks.last().unwrap(),
                    "{max}: {c:?} in {chunks:?}"
                );
            }
            assert_eq!(rejoin(&text, max), text, "max {max}: {chunks:?}");
        }
    }

    #[test]
    fn the_newest_messages_are_kept_within_the_budget() {
        let lines: Vec<String> = (0..10).map(|i| format!("user: message {i}")).collect();
        let (text, left_out) = newest_within(&lines, 40);
        assert_eq!(left_out, 8);
        assert_eq!(text, "user: message 8\nuser: message 9");
        let (text, left_out) = newest_within(&lines, 10_000);
        assert_eq!(left_out, 0);
        assert!(text.starts_with("user: message 0"));
    }
}
