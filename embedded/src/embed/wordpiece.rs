//! The model's tokenizer, read from its `tokenizer.json`: BERT's text normalizer, its
//! whitespace-and-punctuation pre-tokenizer and greedy longest-match WordPiece, reproducing
//! Hugging Face `tokenizers` token for token.
//!
//! An embedding model only understands the token ids it was trained on, so this must agree with
//! the tokenizer the model was trained with, down to accents, CJK text and emoji. The steps, in
//! `tokenizers`' order:
//!
//! 1. Special tokens (`[CLS]`, `[MASK]`, …) written in the text are matched verbatim first.
//! 2. Normalizer: drop control characters, U+0000 and U+FFFD and turn every whitespace into a
//!    space; put spaces around CJK ideographs; decompose (NFD) and drop nonspacing marks (accent
//!    stripping); lowercase.
//! 3. Pre-tokenizer: split on whitespace, and make every punctuation character its own word.
//! 4. WordPiece: split each word into the longest vocabulary pieces from the left, later pieces
//!    carrying the `##` prefix; a word longer than `max_input_chars_per_word` characters, or
//!    with a part no piece matches, becomes one `[UNK]`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::EmbedError;
use super::chars::{is_chinese, is_control, is_nonspacing_mark, is_punctuation, is_whitespace};

/// What BERT's normalizer does, as configured in `tokenizer.json`.
#[derive(Debug, Clone, Copy)]
struct Normalizer {
    clean_text: bool,
    handle_chinese_chars: bool,
    strip_accents: bool,
    lowercase: bool,
}

/// A BERT WordPiece tokenizer.
#[derive(Debug)]
pub(crate) struct WordPiece {
    /// Pieces that can start a word, and every other vocabulary entry.
    vocab: HashMap<String, u32>,
    /// Pieces that continue a word, keyed without their `##` prefix.
    continuation: HashMap<String, u32>,
    /// Tokens matched verbatim in the raw text before normalization, longest first.
    added: Vec<(String, u32)>,
    normalizer: Normalizer,
    max_chars_per_word: usize,
    unk: u32,
    cls: u32,
    sep: u32,
    /// One past the largest id this tokenizer can produce.
    id_limit: u32,
}

impl WordPiece {
    /// Reads the tokenizer from a `tokenizer.json` file.
    pub(crate) fn load(path: &Path) -> Result<Self, EmbedError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| EmbedError::read(path.to_path_buf(), e))?;
        Self::from_json(&text).map_err(|detail| EmbedError::BadTokenizer {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Builds the tokenizer from the text of a `tokenizer.json`; the error says what is wrong.
    pub(crate) fn from_json(text: &str) -> Result<Self, String> {
        let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
        let model = json.get("model").ok_or("no `model`")?;
        let model_type = model.get("type").and_then(Value::as_str);
        if model_type != Some("WordPiece") {
            return Err(format!(
                "model type is {}, expected WordPiece",
                model_type.unwrap_or("missing")
            ));
        }
        let entries = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or("no `model.vocab` object")?;
        let prefix = match model.get("continuing_subword_prefix") {
            None | Some(Value::Null) => "##",
            Some(v) => v
                .as_str()
                .ok_or("`model.continuing_subword_prefix` is not a string")?,
        };
        let mut vocab = HashMap::with_capacity(entries.len());
        let mut continuation = HashMap::new();
        let mut id_limit = 0;
        for (token, id) in entries {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| format!("vocabulary entry `{token}` has no valid id"))?;
            id_limit = id_limit.max(id + 1);
            if let Some(rest) = token.strip_prefix(prefix).filter(|r| !r.is_empty()) {
                continuation.insert(rest.to_string(), id);
            }
            vocab.insert(token.clone(), id);
        }
        let lookup = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| format!("the vocabulary has no `{token}`"))
        };
        let unk_token = match model.get("unk_token") {
            None | Some(Value::Null) => "[UNK]",
            Some(v) => v.as_str().ok_or("`model.unk_token` is not a string")?,
        };
        let unk = lookup(unk_token)?;
        let cls = lookup("[CLS]")?;
        let sep = lookup("[SEP]")?;
        let max_chars_per_word = match model.get("max_input_chars_per_word") {
            None | Some(Value::Null) => 100,
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("`model.max_input_chars_per_word` is not a count")?,
        };
        let normalizer = parse_normalizer(json.get("normalizer"))?;
        match json
            .get("pre_tokenizer")
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        {
            Some("BertPreTokenizer") => {}
            other => {
                return Err(format!(
                    "pre-tokenizer is {}, expected BertPreTokenizer",
                    other.unwrap_or("missing")
                ));
            }
        }
        let mut added = parse_added(json.get("added_tokens"))?;
        for (_, id) in &added {
            id_limit = id_limit.max(id + 1);
        }
        added.sort_by_key(|(content, _)| std::cmp::Reverse(content.len()));
        Ok(Self {
            vocab,
            continuation,
            added,
            normalizer,
            max_chars_per_word,
            unk,
            cls,
            sep,
            id_limit,
        })
    }

    /// The id of `[CLS]`, which starts every sequence.
    pub(crate) fn cls(&self) -> u32 {
        self.cls
    }

    /// The id of `[SEP]`, which ends every sequence.
    pub(crate) fn sep(&self) -> u32 {
        self.sep
    }

    /// One past the largest token id this tokenizer can produce.
    pub(crate) fn id_limit(&self) -> u32 {
        self.id_limit
    }

    /// Appends the token ids of `text` to `out`, without `[CLS]` and `[SEP]`.
    pub(crate) fn tokenize(&self, text: &str, out: &mut Vec<u32>) {
        let mut normalized = String::new();
        let mut rest = text;
        while let Some((at, content, id)) = self.next_added(rest) {
            self.tokenize_plain(&rest[..at], &mut normalized, out);
            out.push(id);
            rest = &rest[at + content.len()..];
        }
        self.tokenize_plain(rest, &mut normalized, out);
    }

    /// The leftmost added token in `text` (the longest where several start there).
    fn next_added(&self, text: &str) -> Option<(usize, &str, u32)> {
        if self.added.is_empty() {
            return None;
        }
        text.char_indices().find_map(|(at, _)| {
            let tail = &text[at..];
            self.added
                .iter()
                .find(|(content, _)| tail.starts_with(content.as_str()))
                .map(|(content, id)| (at, content.as_str(), *id))
        })
    }

    /// Tokenizes text that holds no added tokens; `normalized` is scratch space.
    fn tokenize_plain(&self, text: &str, normalized: &mut String, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        self.normalize(text, normalized);
        let mut word_start = None;
        for (at, c) in normalized.char_indices() {
            let space = c.is_whitespace();
            if space || is_punctuation(c) {
                if let Some(start) = word_start.take() {
                    self.word_pieces(&normalized[start..at], out);
                }
                if !space {
                    self.word_pieces(&normalized[at..at + c.len_utf8()], out);
                }
            } else if word_start.is_none() {
                word_start = Some(at);
            }
        }
        if let Some(start) = word_start {
            self.word_pieces(&normalized[start..], out);
        }
    }

    /// BERT's normalizer: `text` cleaned, CJK spaced, accents stripped and lowercased into
    /// `out`.
    fn normalize(&self, text: &str, out: &mut String) {
        let n = self.normalizer;
        let mut cleaned = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            let c = if n.clean_text {
                if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) { ' ' } else { c }
            } else {
                c
            };
            if n.handle_chinese_chars && is_chinese(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        out.clear();
        // Decomposition leaves ASCII as it is, and lowercasing ASCII needs no tables.
        if cleaned.is_ascii() {
            out.push_str(&cleaned);
            if n.lowercase {
                out.make_ascii_lowercase();
            }
            return;
        }
        let stripped: String = if n.strip_accents {
            cleaned.nfd().filter(|&c| !is_nonspacing_mark(c)).collect()
        } else {
            cleaned
        };
        if n.lowercase {
            out.extend(stripped.chars().flat_map(char::to_lowercase));
        } else {
            out.push_str(&stripped);
        }
    }

    /// Greedy longest-match-first WordPiece over one word.
    fn word_pieces(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > self.max_chars_per_word {
            out.push(self.unk);
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let piece = loop {
                let candidate = &word[start..end];
                let table = if start == 0 {
                    &self.vocab
                } else {
                    &self.continuation
                };
                if let Some(&id) = table.get(candidate) {
                    break Some(id);
                }
                // Drop the candidate's last character and try again.
                match candidate.char_indices().next_back() {
                    Some((last, _)) if last > 0 => end = start + last,
                    _ => break None,
                }
            };
            match piece {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

fn parse_normalizer(value: Option<&Value>) -> Result<Normalizer, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Err("no `normalizer`, expected BertNormalizer".into());
    };
    let kind = value.get("type").and_then(Value::as_str);
    if kind != Some("BertNormalizer") {
        return Err(format!(
            "normalizer is {}, expected BertNormalizer",
            kind.unwrap_or("missing")
        ));
    }
    let flag = |name: &str, default: bool| match value.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`normalizer.{name}` is not true or false")),
    };
    let lowercase = flag("lowercase", true)?;
    Ok(Normalizer {
        clean_text: flag("clean_text", true)?,
        handle_chinese_chars: flag("handle_chinese_chars", true)?,
        // Unset, accents are stripped exactly when the text is lowercased.
        strip_accents: flag("strip_accents", lowercase)?,
        lowercase,
    })
}

/// The added tokens, which are matched verbatim in the raw text.
fn parse_added(value: Option<&Value>) -> Result<Vec<(String, u32)>, String> {
    let Some(list) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or("`added_tokens` is not a list")?;
    let mut added = Vec::with_capacity(list.len());
    for token in list {
        let content = token
            .get("content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or("an added token has no `content`")?;
        let id = token
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| format!("added token `{content}` has no valid id"))?;
        for option in ["normalized", "single_word", "lstrip", "rstrip"] {
            if token.get(option).and_then(Value::as_bool) == Some(true) {
                return Err(format!(
                    "added token `{content}` sets `{option}`, which this tokenizer does not support"
                ));
            }
        }
        added.push((content.to_string(), id));
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tokenizer.json with a tiny vocabulary, configured like all-MiniLM-L6-v2's.
    fn tiny() -> WordPiece {
        // Ids are positions: [UNK] is 1, "hello" 5, "mask" 27.
        let words = "[PAD] [UNK] [CLS] [SEP] [MASK] hello world ! ? , ' un ##aff ##able cafe \
                     naive 中 文 s don t $ 5 a ##a ##b i mask σ";
        let vocab: serde_json::Map<String, Value> = words
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| (w.to_string(), Value::from(i)))
            .collect();
        let json = serde_json::json!({
            "added_tokens": [
                {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false,
                 "rstrip": false, "normalized": false, "special": true},
                {"id": 4, "content": "[MASK]", "single_word": false, "lstrip": false,
                 "rstrip": false, "normalized": false, "special": true}
            ],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                           "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                      "continuing_subword_prefix": "##", "max_input_chars_per_word": 10,
                      "vocab": vocab}
        });
        WordPiece::from_json(&json.to_string()).expect("tiny tokenizer.json is valid")
    }

    fn ids(text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        tiny().tokenize(text, &mut out);
        out
    }

    #[test]
    fn splits_words_and_punctuation() {
        assert_eq!(ids("Hello, world!"), [5, 9, 6, 7]);
        assert_eq!(ids("don't"), [19, 10, 20]);
        assert_eq!(ids("  hello\t\nworld?! "), [5, 6, 8, 7]);
        // ASCII symbols count as punctuation.
        assert_eq!(ids("$5"), [21, 22]);
    }

    #[test]
    fn matches_the_longest_pieces_first() {
        assert_eq!(ids("unaffable"), [11, 12, 13]);
        assert_eq!(ids("aab"), [23, 24, 25]);
        // A word with a part no piece matches is one [UNK], not a partial match.
        assert_eq!(ids("unaffablex"), [1]);
        assert_eq!(ids("hello xyz world"), [5, 1, 6]);
    }

    #[test]
    fn words_over_the_length_limit_are_unknown() {
        assert_eq!(ids("aaaaaaaaaa"), [23, 24, 24, 24, 24, 24, 24, 24, 24, 24]);
        assert_eq!(ids("aaaaaaaaaaa"), [1]);
    }

    #[test]
    fn strips_accents_and_lowercases() {
        assert_eq!(ids("Café NAÏVE"), [14, 15]);
        // Capital I with dot above decomposes to I + a combining dot, which is stripped.
        assert_eq!(ids("İ"), [26]);
        // Greek capital sigma lowercases per character, never to the final form.
        assert_eq!(ids("Σ"), [28]);
    }

    #[test]
    fn cleans_control_characters_and_spaces_cjk() {
        assert_eq!(ids("hel\u{200B}lo\u{0}\u{FFFD}"), [5]);
        assert_eq!(ids("hello\u{3000}world"), [5, 6]);
        assert_eq!(ids("中文hello"), [16, 17, 5]);
    }

    #[test]
    fn matches_special_tokens_verbatim() {
        assert_eq!(ids("hello[MASK]world"), [5, 4, 6]);
        // Lowercase is not the special token: it is split as text ("[" and "]" are unknown).
        assert_eq!(ids("[mask]"), [1, 27, 1]);
    }

    #[test]
    fn empty_and_blank_text_have_no_tokens() {
        assert!(ids("").is_empty());
        assert!(ids(" \n\t\u{200D}").is_empty());
    }

    #[test]
    fn rejects_a_tokenizer_it_cannot_run() {
        let err = WordPiece::from_json(r#"{"model":{"type":"BPE","vocab":{}}}"#)
            .expect_err("BPE is not WordPiece");
        assert!(err.contains("WordPiece"), "{err}");
        assert!(WordPiece::from_json("{").is_err());
    }
}
