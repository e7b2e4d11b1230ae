//! Retrieval embeds and cites chunks, not whole documents: each chunk must
//! fit the embedding model's input, and should read as one coherent piece
//! under one heading so that its citation (heading path and anchor) is
//! true. This module packs parsed sections, and chat threads, into such
//! chunks under a token budget. Counting tokens is the costly call (the
//! real tokenizer), so every paragraph, sentence or message is counted once
//! and sums stand in for the growing chunk; only the finished chunk is
//! counted again, to set its exact size.

use super::document::ParsedDoc;

/// A chunk ready to be embedded and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDraft {
    /// The heading path of the section it comes from (empty for threads,
    /// plain text and PDF pages).
    pub headings: Vec<String>,
    /// The section's link fragment, if it has one.
    pub anchor: Option<String>,
    /// The chunk's text: whole paragraphs joined by a blank line, or the
    /// pieces of one paragraph too long for a chunk.
    pub text: String,
    /// `count(&text)`: at most the budget, unless a single character is
    /// already over it.
    pub tokens: usize,
}

/// One message of a chat thread, for [`chunk_thread`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadMessage<'a> {
    /// Who wrote it, as it should read in the chunk.
    pub author: &'a str,
    /// What they wrote.
    pub text: &'a str,
}

/// Packs a document's sections into chunks of at most `budget` tokens as
/// counted by `count` (the embedding model's tokenizer; any `Fn` works).
///
/// A chunk never spans two sections, however small they are. Within a
/// section whole paragraphs are packed greedily, in order, joined by
/// `"\n\n"`; a paragraph over the budget is cut at sentence ends, then at
/// line ends, then at whitespace, and a word still over it by characters,
/// and its pieces pack on with their neighbours. Sections without
/// paragraphs give no chunk. A `budget` of 0 is taken as 1.
pub fn chunk_document(
    doc: &ParsedDoc,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<ChunkDraft> {
    let budget = budget.max(1);
    let packer = Packer::new(count);
    let mut out = Vec::new();
    for section in &doc.sections {
        let mut atoms = Vec::new();
        for paragraph in &section.paragraphs {
            let text = paragraph.trim_end().trim_start_matches('\n');
            if text.trim().is_empty() {
                continue;
            }
            atoms.extend(packer.atoms(text, budget, PARAGRAPH_GLUE));
        }
        out.extend(
            packer
                .pack(atoms, budget, None)
                .into_iter()
                .map(|piece| ChunkDraft {
                    headings: section.headings.clone(),
                    anchor: section.anchor.clone(),
                    text: piece.text,
                    tokens: piece.tokens,
                }),
        );
    }
    out
}

/// Packs a chat thread into chunks of at most `budget` tokens. Each
/// message reads `author: text` on its own line. A thread that fits is one
/// chunk; otherwise messages are packed greedily in order and every chunk
/// after the first opens with the first message's line (the question, cut
/// by words with `…` if it is over half the budget) so that each chunk
/// carries what was asked. A message over the budget is cut like a long
/// paragraph. Empty messages are left out; a `budget` of 0 is taken as 1.
pub fn chunk_thread(
    messages: &[ThreadMessage<'_>],
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<ChunkDraft> {
    let budget = budget.max(1);
    let lines: Vec<String> = messages
        .iter()
        .filter(|m| !m.text.trim().is_empty())
        .map(|m| format!("{}: {}", m.author.trim(), m.text.trim()))
        .collect();
    if lines.is_empty() {
        return Vec::new();
    }
    let packer = Packer::new(count);
    let sizes: Vec<usize> = lines.iter().map(|l| count(l)).collect();
    let estimate = sizes.iter().sum::<usize>() + packer.line * (lines.len() - 1);
    if estimate <= budget {
        let text = lines.join("\n");
        let tokens = count(&text);
        if tokens <= budget {
            return vec![thread_chunk(text, tokens)];
        }
    }
    let context = packer.context(&lines[0], sizes[0], budget / 2);
    let room = context.as_ref().map_or(budget, |c| {
        budget.saturating_sub(c.tokens + packer.line).max(1)
    });
    let mut atoms = Vec::new();
    for (k, (line, size)) in lines.iter().zip(&sizes).enumerate() {
        let glue = if k == 0 { "" } else { "\n" };
        // The question opens the first chunk, which carries no context.
        let limit = if k == 0 { budget } else { room };
        if *size <= limit {
            atoms.push(Piece {
                glue: glue.to_string(),
                text: line.clone(),
                tokens: *size,
            });
        } else {
            atoms.extend(packer.split(line, room, Level::Sentence, glue));
        }
    }
    packer
        .pack(atoms, budget, context.as_ref())
        .into_iter()
        .map(|piece| thread_chunk(piece.text, piece.tokens))
        .collect()
}

fn thread_chunk(text: String, tokens: usize) -> ChunkDraft {
    ChunkDraft {
        headings: Vec::new(),
        anchor: None,
        text,
        tokens,
    }
}

/// What joins two paragraphs in a chunk.
const PARAGRAPH_GLUE: &str = "\n\n";

/// A run of text with its size and what joins it to the run before it
/// (ignored when it opens a chunk).
#[derive(Debug, Clone)]
struct Piece {
    glue: String,
    text: String,
    tokens: usize,
}

/// How finely a text over the budget is cut, coarsest first.
#[derive(Debug, Clone, Copy)]
enum Level {
    Sentence,
    Line,
    Word,
}

impl Level {
    fn finer(self) -> Option<Level> {
        match self {
            Level::Sentence => Some(Level::Line),
            Level::Line => Some(Level::Word),
            Level::Word => None,
        }
    }

    /// The byte ranges of the units of `text` at this level.
    fn units(self, text: &str) -> Vec<(usize, usize)> {
        match self {
            Level::Sentence => sentences(text),
            Level::Line => runs(text, |c| c == '\n'),
            Level::Word => runs(text, char::is_whitespace),
        }
    }
}

/// The tokenizer and the sizes of the separators it joins with.
struct Packer<'c> {
    count: &'c dyn Fn(&str) -> usize,
    paragraph: usize,
    line: usize,
    space: usize,
}

impl<'c> Packer<'c> {
    fn new(count: &'c dyn Fn(&str) -> usize) -> Packer<'c> {
        Packer {
            count,
            paragraph: count(PARAGRAPH_GLUE),
            line: count("\n"),
            space: count(" "),
        }
    }

    /// What a separator is expected to add to a sum of counts.
    fn glue_tokens(&self, glue: &str) -> usize {
        if glue.is_empty() {
            0
        } else if glue.contains("\n\n") {
            self.paragraph
        } else if glue.contains('\n') {
            self.line
        } else {
            self.space
        }
    }

    /// `text` as pieces of at most `budget`, the first joined by `glue`.
    fn atoms(&self, text: &str, budget: usize, glue: &str) -> Vec<Piece> {
        let tokens = (self.count)(text);
        if tokens <= budget {
            return vec![Piece {
                glue: glue.to_string(),
                text: text.to_string(),
                tokens,
            }];
        }
        self.split(text, budget, Level::Sentence, glue)
    }

    /// A text known to be over `budget`, cut at `level` (and finer where a
    /// unit is still over) into packed pieces of at most `budget`.
    fn split(&self, text: &str, budget: usize, level: Level, glue: &str) -> Vec<Piece> {
        let units = level.units(text);
        if units.len() <= 1 {
            // Nothing to cut at this level: the text is still one unit.
            let unit = units.first().map_or(text, |&(s, e)| &text[s..e]);
            let mut pieces = match level.finer() {
                Some(finer) => self.split(unit, budget, finer, ""),
                None => self.split_chars(unit, budget),
            };
            if let Some(first) = pieces.first_mut() {
                first.glue = glue.to_string();
            }
            return pieces;
        }
        let mut atoms = Vec::with_capacity(units.len());
        let mut previous_end = None;
        for (start, end) in units {
            let unit_glue = previous_end.map_or(glue, |p| &text[p..start]);
            previous_end = Some(end);
            let unit = &text[start..end];
            let tokens = (self.count)(unit);
            if tokens <= budget {
                atoms.push(Piece {
                    glue: unit_glue.to_string(),
                    text: unit.to_string(),
                    tokens,
                });
                continue;
            }
            let mut pieces = match level.finer() {
                Some(finer) => self.split(unit, budget, finer, ""),
                None => self.split_chars(unit, budget),
            };
            if let Some(first) = pieces.first_mut() {
                first.glue = unit_glue.to_string();
            }
            atoms.extend(pieces);
        }
        self.pack(atoms, budget, None)
    }

    /// A word over `budget` cut into the longest runs of characters that
    /// fit, found by exponential then binary search on prefix counts.
    fn split_chars(&self, word: &str, budget: usize) -> Vec<Piece> {
        let mut bounds: Vec<usize> = word.char_indices().map(|(i, _)| i).collect();
        bounds.push(word.len());
        let chars = bounds.len() - 1;
        let size = |a: usize, b: usize| (self.count)(&word[bounds[a]..bounds[b]]);
        let mut out = Vec::new();
        let mut a = 0;
        while a < chars {
            // `good` fits (or is one character, which must be taken anyway).
            let mut good = a + 1;
            let mut good_tokens = None;
            let mut bad = None;
            let mut step = budget;
            while bad.is_none() && good < chars {
                let probe = (a + step).min(chars);
                if probe <= good {
                    step *= 2;
                    continue;
                }
                let t = size(a, probe);
                if t <= budget {
                    good = probe;
                    good_tokens = Some(t);
                    step *= 2;
                } else {
                    bad = Some(probe);
                }
            }
            if let Some(mut hi) = bad {
                while hi - good > 1 {
                    let mid = good + (hi - good) / 2;
                    let t = size(a, mid);
                    if t <= budget {
                        good = mid;
                        good_tokens = Some(t);
                    } else {
                        hi = mid;
                    }
                }
            }
            let tokens = good_tokens.unwrap_or_else(|| size(a, good));
            out.push(Piece {
                glue: String::new(),
                text: word[bounds[a]..bounds[good]].to_string(),
                tokens,
            });
            a = good;
        }
        out
    }

    /// Packs pieces greedily, in order, into runs of at most `budget`. With
    /// a `context`, every run after the first opens with it (a line of its
    /// own), or goes without it if even one piece will not fit beside it.
    fn pack(&self, mut atoms: Vec<Piece>, budget: usize, context: Option<&Piece>) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        let mut i = 0;
        while i < atoms.len() {
            let context = if out.is_empty() { None } else { context }
                .filter(|c| c.tokens + self.line + atoms[i].tokens <= budget);
            let mut estimate = context.map_or(0, |c| c.tokens + self.line) + atoms[i].tokens;
            let mut end = i + 1;
            while end < atoms.len() {
                let next = estimate + self.glue_tokens(&atoms[end].glue) + atoms[end].tokens;
                if next > budget {
                    break;
                }
                estimate = next;
                end += 1;
            }
            loop {
                let single = end - i == 1;
                if single && context.is_none() {
                    out.push(Piece {
                        glue: std::mem::take(&mut atoms[i].glue),
                        text: std::mem::take(&mut atoms[i].text),
                        tokens: atoms[i].tokens,
                    });
                    break;
                }
                let text = render(context, &atoms[i..end]);
                let tokens = (self.count)(&text);
                if tokens <= budget {
                    out.push(Piece {
                        glue: atoms[i].glue.clone(),
                        text,
                        tokens,
                    });
                    break;
                }
                if single {
                    // The context does not fit beside this piece: go without.
                    out.push(Piece {
                        glue: std::mem::take(&mut atoms[i].glue),
                        text: std::mem::take(&mut atoms[i].text),
                        tokens: atoms[i].tokens,
                    });
                    break;
                }
                // The sum undercounted the joined text: leave the last piece
                // for the next run.
                end -= 1;
            }
            i = end;
        }
        out
    }

    /// The question line as context for later chunks: whole if it is at
    /// most `limit` tokens, else its longest word prefix that fits with
    /// `…`; `None` if not even one word does.
    fn context(&self, line: &str, tokens: usize, limit: usize) -> Option<Piece> {
        if limit == 0 {
            return None;
        }
        let piece = |text: String, tokens| Piece {
            glue: String::new(),
            text,
            tokens,
        };
        if tokens <= limit {
            return Some(piece(line.to_string(), tokens));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let cut = |n: usize| format!("{}…", words[..n].join(" "));
        let (mut good, mut hi) = (0usize, words.len());
        let mut best = None;
        while hi - good > 1 {
            let mid = good + (hi - good) / 2;
            let text = cut(mid);
            let t = (self.count)(&text);
            if t <= limit {
                good = mid;
                best = Some(piece(text, t));
            } else {
                hi = mid;
            }
        }
        best
    }
}

/// Pieces joined by their glue, after the context line if there is one.
fn render(context: Option<&Piece>, pieces: &[Piece]) -> String {
    let mut text = String::new();
    if let Some(c) = context {
        text.push_str(&c.text);
        text.push('\n');
    }
    for (k, piece) in pieces.iter().enumerate() {
        if k > 0 {
            text.push_str(&piece.glue);
        }
        text.push_str(&piece.text);
    }
    text
}

/// Maximal runs of characters that are not `sep`, as byte ranges; runs of
/// whitespace only are left out (they become the glue between units).
fn runs(text: &str, sep: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if sep(c) {
            if let Some(s) = start.take() {
                push_unit(text, s, i, &mut out);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        push_unit(text, s, text.len(), &mut out);
    }
    out
}

/// Sentences as byte ranges: each ends after `.`, `!` or `?` (and any
/// closing quotes or brackets) that whitespace follows.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        while let Some(&(_, n)) = chars.peek() {
            if matches!(n, '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '”' | '’') {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(end, next)) = chars.peek() else {
            break;
        };
        if next.is_whitespace() {
            push_unit(text, start, end, &mut out);
            while chars.peek().is_some_and(|&(_, n)| n.is_whitespace()) {
                chars.next();
            }
            start = chars.peek().map_or(text.len(), |&(i, _)| i);
        }
    }
    push_unit(text, start, text.len(), &mut out);
    out
}

/// Adds `text[start..end]` with its surrounding whitespace trimmed, unless
/// nothing is left; leading spaces of a line are kept (code indentation).
fn push_unit(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let unit = &text[start..end];
    let trimmed_end = unit.trim_end();
    if trimmed_end.trim_start().is_empty() {
        return;
    }
    let lead = trimmed_end.len() - trimmed_end.trim_start_matches('\n').len();
    out.push((start + lead, start + trimmed_end.len()));
}

#[cfg(test)]
mod tests {
    use super::super::document::{DocKind, ParsedDoc, Section, parse};
    use super::*;
    use std::cell::Cell;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    fn section(headings: &[&str], anchor: Option<&str>, paragraphs: &[&str]) -> Section {
        Section {
            headings: headings.iter().map(|h| h.to_string()).collect(),
            anchor: anchor.map(str::to_string),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn doc(sections: Vec<Section>) -> ParsedDoc {
        ParsedDoc {
            title: "t".into(),
            sections,
        }
    }

    /// A deterministic pseudo-random stream (no crates): xorshift.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    /// Prose with sentences, hard-wrapped lines, long words and unicode.
    fn prose(rng: &mut Rng, words_wanted: usize) -> String {
        let vocabulary = [
            "the",
            "gateway",
            "retries",
            "backoff",
            "é",
            "naïve",
            "token",
            "budget",
            "x",
            "configuration",
            "日本語テキスト",
            "a",
        ];
        let mut out = String::new();
        for w in 0..words_wanted {
            if w > 0 {
                out.push(match rng.below(12) {
                    0 => '\n',
                    _ => ' ',
                });
            }
            if rng.below(40) == 0 {
                let long: String = (0..rng.below(300) + 1)
                    .map(|k| char::from(b'a' + (k % 26) as u8))
                    .collect();
                out.push_str(&long);
            } else {
                out.push_str(vocabulary[rng.below(vocabulary.len() as u64)]);
            }
            match rng.below(9) {
                0 => out.push('.'),
                1 => out.push_str("?\""),
                2 => out.push('!'),
                _ => {}
            }
        }
        out
    }

    /// The text without any whitespace: what no chunking may lose or repeat.
    fn ink(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn chunks_never_span_two_sections_however_small() {
        let d = doc(vec![
            section(&["Guide"], Some("guide"), &["Tiny."]),
            section(
                &["Guide", "Retries"],
                Some("retries"),
                &["Also tiny.", "Two."],
            ),
            section(&["Guide", "Empty"], Some("empty"), &[]),
            section(&[], None, &["   "]),
            section(&["Guide", "Last"], None, &["End."]),
        ]);
        let chunks = chunk_document(&d, 1000, &words);
        let summary: Vec<(String, Option<&str>, &str)> = chunks
            .iter()
            .map(|c| (c.headings.join(" > "), c.anchor.as_deref(), c.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Guide".to_string(), Some("guide"), "Tiny."),
                (
                    "Guide > Retries".to_string(),
                    Some("retries"),
                    "Also tiny.\n\nTwo."
                ),
                ("Guide > Last".to_string(), None, "End."),
            ]
        );
        assert_eq!(chunks[1].tokens, 3);
    }

    #[test]
    fn paragraphs_pack_greedily_in_order() {
        let d = doc(vec![section(
            &["S"],
            None,
            &["one two three", "four five", "six seven eight", "nine"],
        )]);
        let chunks = chunk_document(&d, 5, &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["one two three\n\nfour five", "six seven eight\n\nnine"]
        );
        assert!(chunks.iter().all(|c| c.tokens == words(&c.text)));
    }

    #[test]
    fn long_paragraphs_split_at_sentences_then_words_then_characters() {
        let para = "First sentence is here. Second one follows! Is this third? \
                    Fourth sentence ends the paragraph.";
        let chunks = chunk_document(&doc(vec![section(&["S"], None, &[para])]), 7, &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "First sentence is here. Second one follows!",
                "Is this third?",
                "Fourth sentence ends the paragraph."
            ]
        );

        // A sentence longer than the budget is cut at whitespace.
        let long = "one two three four five six seven eight nine ten eleven.";
        let chunks = chunk_document(&doc(vec![section(&[], None, &[long])]), 4, &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "one two three four",
                "five six seven eight",
                "nine ten eleven."
            ]
        );

        // With a per-character tokenizer a long word is cut by characters.
        let word = "abcdefghijklmnopqrstuvwxyz";
        let chunks = chunk_document(&doc(vec![section(&[], None, &[word])]), 10, &chars);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["abcdefghij", "klmnopqrst", "uvwxyz"]);

        // Code keeps its lines: cut at line ends, indentation intact.
        let code = "```\nfn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n```";
        let chunks = chunk_document(&doc(vec![section(&[], None, &[code])]), 7, &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "```\nfn main() {",
                "    let x = 1;\n    println!(\"{x}\");\n}\n```"
            ]
        );
    }

    #[test]
    fn every_chunk_fits_the_budget_and_no_text_is_lost() {
        // A tokenizer that charges extra for long texts: sums of parts then
        // undercount the joined chunk, which packing must catch.
        let lumpy = |s: &str| words(s) + if s.len() > 120 { 3 } else { 0 };
        // Roughly what a BPE tokenizer does: a token per 4 bytes of a word.
        let bpe = |s: &str| {
            s.split_whitespace()
                .map(|w| w.len().div_ceil(4))
                .sum::<usize>()
        };
        type Count<'a> = &'a dyn Fn(&str) -> usize;
        let counters: [(&str, Count); 4] = [
            ("words", &words),
            ("chars", &chars),
            ("lumpy", &lumpy),
            ("bpe", &bpe),
        ];
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for round in 0..24 {
            let sections: Vec<Section> = (0..rng.below(4) + 1)
                .map(|s| Section {
                    headings: vec![format!("H{s}")],
                    anchor: Some(format!("h{s}")),
                    paragraphs: (0..rng.below(6))
                        .map(|_| {
                            let n = rng.below(200) + 1;
                            prose(&mut rng, n)
                        })
                        .collect(),
                })
                .collect();
            let d = doc(sections);
            for budget in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 400, 5000] {
                for (name, count) in counters {
                    let chunks = chunk_document(&d, budget, count);
                    for c in &chunks {
                        assert_eq!(c.tokens, count(&c.text), "{name}: tokens is the count");
                        assert!(
                            c.tokens <= budget,
                            "round {round}, {name}, budget {budget}: {} tokens in {:?}",
                            c.tokens,
                            c.text
                        );
                        assert!(!c.text.trim().is_empty());
                    }
                    for s in &d.sections {
                        let want: String = s.paragraphs.iter().map(|p| ink(p)).collect();
                        let got: String = chunks
                            .iter()
                            .filter(|c| c.headings == s.headings)
                            .map(|c| ink(&c.text))
                            .collect();
                        assert_eq!(got, want, "{name}, budget {budget}: text lost or repeated");
                    }
                }
            }
        }
    }

    #[test]
    fn counting_stays_linear_in_the_text() {
        let calls = Cell::new(0usize);
        let counted_chars = Cell::new(0usize);
        let count = |s: &str| {
            calls.set(calls.get() + 1);
            counted_chars.set(counted_chars.get() + s.len());
            words(s)
        };
        let mut rng = Rng(42);
        let paragraphs: Vec<String> = (0..2000)
            .map(|_| {
                let n = rng.below(60) + 1;
                prose(&mut rng, n)
            })
            .collect();
        let total: usize = paragraphs.iter().map(String::len).sum();
        let d = ParsedDoc {
            title: "big".into(),
            sections: vec![Section {
                headings: vec![],
                anchor: None,
                paragraphs,
            }],
        };
        let chunks = chunk_document(&d, 200, &count);
        assert!(chunks.len() > 50);
        assert!(
            counted_chars.get() < 4 * total,
            "counted {} bytes for a {total}-byte document",
            counted_chars.get()
        );
        assert!(
            calls.get() < 2000 + 2 * chunks.len() + 10,
            "{} calls",
            calls.get()
        );
    }

    #[test]
    fn parsed_markdown_chunks_carry_heading_paths_and_anchors() {
        let text = "# Runbook\n\nStart here.\n\n## Restarting the gateway\n\n\
                    Drain traffic first. Then restart.\n\n```\n# restart\nsystemctl restart sb\n```\n";
        let parsed = match parse(DocKind::Markdown, text.as_bytes(), "runbook.md") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let chunks = chunk_document(&parsed, 100, &words);
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[1].headings,
            vec!["Runbook", "Restarting the gateway"]
        );
        assert_eq!(chunks[1].anchor.as_deref(), Some("restarting-the-gateway"));
        assert_eq!(
            chunks[1].text,
            "Drain traffic first. Then restart.\n\n```\n# restart\nsystemctl restart sb\n```"
        );
    }

    #[test]
    fn a_thread_that_fits_is_one_chunk() {
        let thread = [
            ThreadMessage {
                author: "alice",
                text: "How do I rotate the API key?",
            },
            ThreadMessage {
                author: "bob",
                text: "  Run `switchboard keys rotate`.  ",
            },
            ThreadMessage {
                author: "carol",
                text: "   ",
            },
        ];
        let chunks = chunk_thread(&thread, 100, &words);
        assert_eq!(
            chunks,
            vec![ChunkDraft {
                headings: vec![],
                anchor: None,
                text: "alice: How do I rotate the API key?\nbob: Run `switchboard keys rotate`."
                    .into(),
                tokens: 13,
            }]
        );
        assert!(chunk_thread(&[], 100, &words).is_empty());
    }

    #[test]
    fn long_threads_carry_the_question_into_every_chunk() {
        let question = "alice: Why does the gateway return 429?";
        let replies: Vec<String> = (0..12)
            .map(|n| format!("reply number {n} explains one more cause of the limit"))
            .collect();
        let mut thread = vec![ThreadMessage {
            author: "alice",
            text: "Why does the gateway return 429?",
        }];
        thread.extend(replies.iter().map(|r| ThreadMessage {
            author: "bob",
            text: r,
        }));
        let chunks = chunk_thread(&thread, 40, &words);
        assert!(chunks.len() > 1);
        assert!(chunks[0].text.starts_with(question));
        for c in &chunks {
            assert!(c.tokens <= 40 && c.tokens == words(&c.text), "{c:?}");
            assert!(
                c.text.starts_with(question),
                "every chunk opens with the question: {c:?}"
            );
        }
        // Every reply is in exactly one chunk, in order.
        let mut seen = Vec::new();
        for c in &chunks {
            for line in c.text.lines().skip(1) {
                seen.push(line.to_string());
            }
        }
        let want: Vec<String> = replies.iter().map(|r| format!("bob: {r}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_long_question_is_cut_and_long_messages_split() {
        let long_question = format!("{} end?", "word ".repeat(30));
        let long_reply = "This reply is long. ".repeat(20);
        let thread = [
            ThreadMessage {
                author: "alice",
                text: &long_question,
            },
            ThreadMessage {
                author: "bob",
                text: "short answer here",
            },
            ThreadMessage {
                author: "bob",
                text: &long_reply,
            },
        ];
        let budget = 20;
        let chunks = chunk_thread(&thread, budget, &words);
        for c in &chunks {
            assert!(c.tokens <= budget, "{c:?}");
        }
        for c in &chunks[1..] {
            let first = c.text.lines().next().unwrap_or_default();
            assert!(first.starts_with("alice: word word"), "{c:?}");
            assert!(first.ends_with('…'), "the question is cut: {first:?}");
            assert!(words(first) <= budget / 2);
        }
        let all: String = chunks
            .iter()
            .map(|c| c.text.clone())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            all.matches("This reply is long.").count(),
            20,
            "the long reply is all there"
        );
        assert!(all.contains("bob: short answer here"));

        // Property-style: any budget keeps every chunk within it.
        for budget in 1..60 {
            for c in chunk_thread(&thread, budget, &words) {
                assert!(c.tokens <= budget, "budget {budget}: {c:?}");
            }
            for c in chunk_thread(&thread, budget, &chars) {
                assert!(c.tokens <= budget, "budget {budget} chars: {c:?}");
            }
        }
    }

    #[test]
    fn degenerate_budgets_and_documents() {
        assert!(chunk_document(&doc(vec![]), 10, &words).is_empty());
        assert!(chunk_document(&doc(vec![section(&["A"], None, &[])]), 10, &words).is_empty());
        let d = doc(vec![section(&[], None, &["alpha beta"])]);
        let zero = chunk_document(&d, 0, &words);
        let texts: Vec<&str> = zero.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["alpha", "beta"], "a budget of 0 is taken as 1");
        // A tokenizer that charges more than the budget for one character:
        // the best that can be done is one character a chunk.
        let heavy = |s: &str| 3 * s.chars().count();
        let chunks = chunk_document(&doc(vec![section(&[], None, &["ab"])]), 2, &heavy);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["a", "b"]);
    }
}
