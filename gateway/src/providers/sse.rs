//! Reading server-sent events out of a response body as its bytes arrive,
//! per the WHATWG `text/event-stream` rules: lines end in LF, CRLF or CR;
//! `data:` lines join with LF; `event:` names the event (`message` when
//! absent); a blank line dispatches; comments (`:`), `id:`, `retry:` and
//! unknown fields are ignored.
//!
//! It exists because an answer is read as a handful of small events per
//! request on the gateway's hottest path: the buffers here are reused, so
//! reading an event allocates nothing once they have grown to its size.

/// One dispatched event, borrowed from the reader until the next call.
#[derive(Debug, PartialEq)]
pub(crate) struct SseEvent<'a> {
    /// The `event:` field, or `message`.
    pub event: &'a str,
    /// The `data:` lines, joined by LF.
    pub data: &'a str,
}

/// The body is not UTF-8 text: it cannot be an event stream.
#[derive(Debug, thiserror::Error)]
#[error("the event stream is not UTF-8 text (byte {offset} of a line)")]
pub(crate) struct NotText {
    offset: usize,
}

/// Events split from a body pushed in as it arrives.
#[derive(Default)]
pub(crate) struct SseReader {
    /// Bytes received and not yet read, from `start`.
    buf: Vec<u8>,
    start: usize,
    /// The event being gathered.
    event: String,
    data: String,
    /// Whether a `data:` field was seen for it.
    has_data: bool,
    /// The last line ended in CR: a LF opening the next bytes belongs to it.
    after_cr: bool,
    /// `event` and `data` were handed out: cleared at the next call.
    dispatched: bool,
}

impl SseReader {
    /// Adds bytes that arrived.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event in what has arrived, if any.
    pub(crate) fn next_event(&mut self) -> Result<Option<SseEvent<'_>>, NotText> {
        if std::mem::take(&mut self.dispatched) {
            self.event.clear();
            self.data.clear();
        }
        loop {
            if self.after_cr {
                match self.buf.get(self.start) {
                    // Whether a LF follows is not known yet.
                    None => return Ok(None),
                    Some(b'\n') => self.start += 1,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let rest = &self.buf[self.start..];
            let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
                return Ok(None);
            };
            let line_start = self.start;
            self.after_cr = rest[end] == b'\r';
            self.start += end + 1;
            let line = &self.buf[line_start..line_start + end];
            if line.is_empty() {
                if !self.has_data {
                    // Nothing to dispatch: the event's name goes too.
                    self.event.clear();
                    continue;
                }
                self.has_data = false;
                if self.event.is_empty() {
                    self.event.push_str("message");
                }
                // Handed out until the next call, which clears them.
                self.dispatched = true;
                return Ok(Some(SseEvent {
                    event: &self.event,
                    data: &self.data,
                }));
            }
            let line = std::str::from_utf8(line).map_err(|e| NotText {
                offset: e.valid_up_to(),
            })?;
            let (field, value) = match line.split_once(':') {
                Some(("", _)) => continue,
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "event" => {
                    self.event.clear();
                    self.event.push_str(value);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event in `body` fed in pieces of `step` bytes, as (event, data).
    fn events(body: &[u8], step: usize) -> Vec<(String, String)> {
        let mut reader = SseReader::default();
        let mut out = Vec::new();
        for piece in body.chunks(step) {
            reader.push(piece);
            while let Some(e) = reader.next_event().unwrap() {
                out.push((e.event.to_string(), e.data.to_string()));
            }
        }
        out
    }

    /// However the bytes are cut, the same events come out: names,
    /// multi-line data, comments, CRLF and lone CR line ends, and a field
    /// without a space after its colon.
    #[test]
    fn events_are_the_same_however_the_body_is_cut() {
        let body = b": keep-alive\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: one\r\ndata:two\r\nid: 7\r\n\r\ndata: cr\r\rdata: [DONE]\n\n";
        let want = vec![
            ("message_start".to_string(), "{\"a\":1}".to_string()),
            ("message".to_string(), "one\ntwo".to_string()),
            ("message".to_string(), "cr".to_string()),
            ("message".to_string(), "[DONE]".to_string()),
        ];
        for step in [1, 2, 3, 7, body.len()] {
            assert_eq!(events(body, step), want, "cut every {step} bytes");
        }
    }

    /// An event not yet ended by a blank line is not dispatched; bytes
    /// that are not UTF-8 are an error, not a panic.
    #[test]
    fn an_unfinished_event_waits_and_bad_bytes_are_an_error() {
        assert!(events(b"data: half", 4).is_empty());
        let mut reader = SseReader::default();
        reader.push(b"data: \xff\xfe\n\n");
        assert!(reader.next_event().is_err());
    }
}
