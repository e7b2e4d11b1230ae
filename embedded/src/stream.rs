//! Turns the bytes of generated tokens into text that is safe to stream.
//!
//! A token is a run of bytes, not of characters: one character of UTF-8 can be split across
//! two tokens, and a stop sequence can be split across many. The two filters here sit between
//! the sampler and the channel so that listeners only ever see whole characters, and never the
//! beginning of a stop sequence that later completes.

/// Reassembles UTF-8 from token pieces, holding back an incomplete trailing character until
/// the bytes that finish it arrive.
#[derive(Debug, Default)]
pub(crate) struct Utf8Assembler {
    pending: Vec<u8>,
}

impl Utf8Assembler {
    /// Adds the bytes of one token and returns the text that is now complete. Bytes that can
    /// never be valid UTF-8 become U+FFFD.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Ok(s) = std::str::from_utf8(&self.pending[..valid]) {
                        out.push_str(s);
                    }
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Returns whatever is still held back, at the end of a generation.
    pub(crate) fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// The result of feeding text to a [`StopFilter`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Text that is safe to emit (possibly empty, while a possible stop sequence is held).
    Text(String),
    /// A stop sequence completed; this is the text before it. Nothing after it is emitted.
    Stopped(String),
}

/// Holds back text that might be the beginning of a stop sequence.
#[derive(Debug, Default)]
pub(crate) struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    /// A filter for these stop sequences (empty ones are ignored).
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds generated text; returns what may be emitted now.
    pub(crate) fn push(&mut self, text: &str) -> Filtered {
        if self.stops.is_empty() {
            return Filtered::Text(text.to_owned());
        }
        self.held.push_str(text);
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Filtered::Stopped(before);
        }
        let keep = self.partial_suffix_len();
        let emit = self.held.len() - keep;
        Filtered::Text(self.held.drain(..emit).collect())
    }

    /// Returns the held text at the end of a generation: no stop sequence completed.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of the held text that is a proper prefix of a stop
    /// sequence (it may still become that stop sequence).
    fn partial_suffix_len(&self) -> usize {
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let first = self.held.len().saturating_sub(longest.saturating_sub(1));
        (first..self.held.len())
            .filter(|&i| self.held.is_char_boundary(i))
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .map_or(0, |i| self.held.len() - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_characters_split_across_tokens() {
        let mut a = Utf8Assembler::default();
        let bytes = "é€😀".as_bytes();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&a.push(std::slice::from_ref(b)));
        }
        out.push_str(&a.finish());
        assert_eq!(out, "é€😀");
    }

    #[test]
    fn holds_incomplete_character_until_finished() {
        let mut a = Utf8Assembler::default();
        assert_eq!(a.push(&[b'a', 0xF0, 0x9F]), "a");
        assert_eq!(a.push(&[0x98, 0x80, b'b']), "😀b");
    }

    #[test]
    fn replaces_invalid_bytes() {
        let mut a = Utf8Assembler::default();
        assert_eq!(a.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        assert_eq!(a.push(&[0xE2, 0x82]), "");
        assert_eq!(a.finish(), "\u{FFFD}");
    }

    #[test]
    fn stop_sequence_split_across_pieces_is_not_emitted() {
        let mut f = StopFilter::new(vec!["END".into()]);
        assert_eq!(f.push("hello E"), Filtered::Text("hello ".into()));
        assert_eq!(f.push("N"), Filtered::Text(String::new()));
        assert_eq!(f.push("D and more"), Filtered::Stopped(String::new()));
    }

    #[test]
    fn false_start_is_released() {
        let mut f = StopFilter::new(vec!["END".into()]);
        assert_eq!(f.push("EN"), Filtered::Text(String::new()));
        assert_eq!(f.push("x"), Filtered::Text("ENx".into()));
        assert_eq!(f.push("E"), Filtered::Text(String::new()));
        assert_eq!(f.finish(), "E");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut f = StopFilter::new(vec!["abc".into(), "bd".into()]);
        assert_eq!(f.push("xab"), Filtered::Text("x".into()));
        assert_eq!(f.push("d"), Filtered::Stopped("a".into()));
    }

    #[test]
    fn stop_inside_one_piece() {
        let mut f = StopFilter::new(vec!["\n\n".into()]);
        assert_eq!(f.push("one\n\ntwo"), Filtered::Stopped("one".into()));
    }

    #[test]
    fn multibyte_stop_prefix_respects_char_boundaries() {
        let mut f = StopFilter::new(vec!["é!".into()]);
        assert_eq!(f.push("café"), Filtered::Text("caf".into()));
        assert_eq!(f.push("?"), Filtered::Text("é?".into()));
    }

    #[test]
    fn no_stops_pass_through() {
        let mut f = StopFilter::new(vec![String::new()]);
        assert_eq!(f.push("abc"), Filtered::Text("abc".into()));
    }
}
