//! Knowledge arrives as files (Markdown notes, plain text, HTML manuals,
//! PDFs), and retrieval wants it as titled sections whose heading path and
//! link anchor can be cited with the answer. This module turns a file's bytes
//! into that shape with no parsing crates: a line scanner for Markdown, a
//! small tag scanner for HTML that tolerates broken markup, and `pdftotext`
//! (poppler-utils) for PDF. Packing sections into chunks is `chunk.rs`'s job.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// The formats a knowledge file can be read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// CommonMark-ish Markdown (`.md`, `.markdown`).
    Markdown,
    /// Plain text (`.txt`, `.text`).
    Text,
    /// HTML or XHTML (`.html`, `.htm`).
    Html,
    /// PDF (`.pdf`), read through `pdftotext`.
    Pdf,
}

impl DocKind {
    /// The kind a file's extension names, case-insensitively; `None` for
    /// any other extension (the caller skips such files).
    pub fn of_path(path: &Path) -> Option<DocKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" => Some(DocKind::Markdown),
            "txt" | "text" => Some(DocKind::Text),
            "html" | "htm" => Some(DocKind::Html),
            "pdf" => Some(DocKind::Pdf),
            _ => None,
        }
    }

    /// A stable lower-case name (`markdown`, `text`, `html`, `pdf`), for
    /// storage and messages.
    pub fn name(self) -> &'static str {
        match self {
            DocKind::Markdown => "markdown",
            DocKind::Text => "text",
            DocKind::Html => "html",
            DocKind::Pdf => "pdf",
        }
    }

    /// What to tell someone whose file of this kind held no text.
    fn empty_hint(self) -> &'static str {
        match self {
            DocKind::Pdf => {
                "a scanned PDF has no text layer: run it through OCR (e.g. `ocrmypdf`) first"
            }
            DocKind::Html => {
                "it holds only markup, navigation or headings (a page that builds its text with \
                 JavaScript has none until rendered: save the rendered page)"
            }
            DocKind::Markdown | DocKind::Text => "check that the right file was given",
        }
    }
}

/// One run of text under one heading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// The heading path from the top, e.g. `["Retries", "Backoff"]`; empty
    /// for text before the first heading (and for plain text and PDF pages).
    pub headings: Vec<String>,
    /// The link fragment (without `#`) that lands on this section: the
    /// GitHub-style slug of a Markdown heading, the `id` of an HTML heading
    /// (or of the anchor or section element that introduces it), or
    /// `page=N` for a PDF page.
    pub anchor: Option<String>,
    /// The section's paragraphs, in order, never empty strings. Code blocks
    /// and `<pre>` keep their line breaks and spacing; other text has runs
    /// of spaces and tabs collapsed.
    pub paragraphs: Vec<String>,
}

/// A document read into sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDoc {
    /// The document's title: Markdown's first H1, HTML's `<title>` (else
    /// its first `<h1>`), else the caller's fallback.
    pub title: String,
    /// The sections in document order. At least one has paragraphs.
    pub sections: Vec<Section>,
}

/// Why a file could not be read into sections.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A Markdown, text or HTML file in another encoding.
    #[error(
        "`{name}` is not UTF-8 {} (invalid byte at offset {offset}): convert it to UTF-8 first, \
         e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`",
        kind.name()
    )]
    NotUtf8 {
        /// The document's name (the caller's fallback title).
        name: String,
        /// What it was read as.
        kind: DocKind,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// Nothing to index: no text outside markup, or only headings.
    #[error("`{name}` ({}) has no text to index: {}", kind.name(), kind.empty_hint())]
    Empty {
        /// The document's name.
        name: String,
        /// What it was read as.
        kind: DocKind,
    },
    /// A `.pdf` that does not start like one.
    #[error(
        "`{name}` is not a PDF (no `%PDF-` header): check the file, or give it the extension \
         of what it really is"
    )]
    NotPdf {
        /// The document's name.
        name: String,
    },
    /// `pdftotext` is not on `PATH`.
    #[error(
        "cannot read the PDF `{name}`: `pdftotext` is not installed; install poppler-utils \
         (`apt-get install poppler-utils`)"
    )]
    ToolMissing {
        /// The document's name.
        name: String,
    },
    /// `pdftotext` ran and failed.
    #[error(
        "pdftotext could not read `{name}`: {message}; check that the PDF opens in a viewer \
         and is not password-protected"
    )]
    PdfTool {
        /// The document's name.
        name: String,
        /// The first line pdftotext wrote to stderr (or its exit status).
        message: String,
    },
    /// The PDF could not be handed to `pdftotext` through a temporary file.
    #[error(
        "cannot write `{name}` to a temporary file in `{}` for pdftotext: {source}; make the \
         directory writable or point TMPDIR elsewhere",
        dir.display()
    )]
    TempFile {
        /// The document's name.
        name: String,
        /// The temporary directory.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Reads `bytes` as a `kind` document. `fallback_title` (usually the file's
/// name) is the title when the document names none, and names the document
/// in errors.
pub fn parse(kind: DocKind, bytes: &[u8], fallback_title: &str) -> Result<ParsedDoc, ParseError> {
    let name = fallback_title;
    let (title, sections) = match kind {
        DocKind::Pdf => (None, parse_pdf(bytes, name, "pdftotext")?),
        DocKind::Markdown => parse_markdown(&decode(kind, bytes, name)?),
        DocKind::Text => (None, parse_text(&decode(kind, bytes, name)?)),
        DocKind::Html => parse_html(&decode(kind, bytes, name)?),
    };
    let sections: Vec<Section> = sections
        .into_iter()
        .filter(|s| !s.headings.is_empty() || !s.paragraphs.is_empty())
        .collect();
    if sections.iter().all(|s| s.paragraphs.is_empty()) {
        return Err(ParseError::Empty {
            name: name.to_string(),
            kind,
        });
    }
    let title = title
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| fallback_title.trim().to_string());
    Ok(ParsedDoc { title, sections })
}

// ---------------------------------------------------------------------------
// Text helpers

/// UTF-8 text with a leading BOM dropped, line ends made `\n`, and control
/// characters (other than tab and newline) removed.
fn decode(kind: DocKind, bytes: &[u8], name: &str) -> Result<String, ParseError> {
    let (bom, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3, rest),
        None => (0, bytes),
    };
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotUtf8 {
        name: name.to_string(),
        kind,
        offset: bom + e.valid_up_to(),
    })?;
    Ok(clean(text))
}

/// Line ends made `\n`, a form feed a paragraph break, other control
/// characters (but tab) dropped.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\x0c' => out.push_str("\n\n"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Whitespace runs (newlines too) collapsed to one space, ends trimmed.
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Paragraphs split on blank lines; each line's spaces collapsed, line
/// breaks inside a paragraph kept.
fn text_paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        if line.trim().is_empty() {
            flush_lines(&mut lines, &mut out);
        } else {
            lines.push(collapse(line));
        }
    }
    flush_lines(&mut lines, &mut out);
    out
}

fn flush_lines(lines: &mut Vec<String>, out: &mut Vec<String>) {
    if !lines.is_empty() {
        out.push(lines.join("\n"));
        lines.clear();
    }
}

/// Collects sections as headings arrive, keeping the heading path.
#[derive(Default)]
struct Sections {
    done: Vec<Section>,
    current: Section,
    /// (level, text) of each heading on the path.
    path: Vec<(usize, String)>,
}

impl Sections {
    fn paragraph(&mut self, text: String) {
        if !text.trim().is_empty() {
            self.current.paragraphs.push(text);
        }
    }

    fn heading(&mut self, level: usize, text: String, anchor: Option<String>) {
        let before = std::mem::take(&mut self.current);
        if !before.headings.is_empty() || !before.paragraphs.is_empty() {
            self.done.push(before);
        }
        while self.path.last().is_some_and(|(l, _)| *l >= level) {
            self.path.pop();
        }
        self.path.push((level, text));
        self.current = Section {
            headings: self.path.iter().map(|(_, t)| t.clone()).collect(),
            anchor,
            paragraphs: Vec::new(),
        };
    }

    fn finish(mut self) -> Vec<Section> {
        self.done.push(self.current);
        self.done
    }
}

// ---------------------------------------------------------------------------
// Plain text

fn parse_text(text: &str) -> Vec<Section> {
    vec![Section {
        headings: Vec::new(),
        anchor: None,
        paragraphs: text_paragraphs(text),
    }]
}

// ---------------------------------------------------------------------------
// Markdown

/// An open code fence: its character, length and indentation.
#[derive(Clone, Copy)]
struct Fence {
    ch: u8,
    len: usize,
    indent: usize,
}

fn parse_markdown(text: &str) -> (Option<String>, Vec<Section>) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = front_matter_end(&lines);
    let mut out = Sections::default();
    let mut slugs = Slugger::default();
    let mut title = None;
    let mut para: Vec<String> = Vec::new();
    let mut heading = |out: &mut Sections, level: usize, raw: &str, title: &mut Option<String>| {
        let text = heading_text(raw);
        if text.is_empty() {
            return;
        }
        if level == 1 && title.is_none() {
            *title = Some(text.clone());
        }
        let anchor = slugs.slug(&text);
        out.heading(level, text, anchor);
    };
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if let Some(fence) = fence_open(line) {
            flush_md(&mut para, &mut out);
            let mut block = vec![line.trim()];
            while i < lines.len() {
                let inner = lines[i];
                i += 1;
                if fence_closes(inner, fence) {
                    block.push(inner.trim());
                    break;
                }
                block.push(strip_indent(inner, fence.indent).trim_end());
            }
            out.paragraph(block.join("\n"));
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            flush_md(&mut para, &mut out);
            continue;
        }
        if trimmed.starts_with("<!--") {
            flush_md(&mut para, &mut out);
            let mut closing = line;
            while !closing.contains("-->") && i < lines.len() {
                closing = lines[i];
                i += 1;
            }
            continue;
        }
        if let Some((level, raw)) = atx_heading(line) {
            flush_md(&mut para, &mut out);
            heading(&mut out, level, raw, &mut title);
            continue;
        }
        if !para.is_empty() && indent_of(line) < 4 {
            if is_underline(trimmed, '=') {
                let raw = para.join(" ");
                para.clear();
                heading(&mut out, 1, &raw, &mut title);
                continue;
            }
            let after_list = para.last().is_some_and(|l| is_list_item(l));
            // One `-` is more likely an empty list item than an underline.
            if is_underline(trimmed, '-') && trimmed.len() > 1 && !after_list {
                let raw = para.join(" ");
                para.clear();
                heading(&mut out, 2, &raw, &mut title);
                continue;
            }
        }
        if is_thematic_break(trimmed) {
            flush_md(&mut para, &mut out);
            continue;
        }
        para.push(collapse(line));
    }
    flush_md(&mut para, &mut out);
    (title, out.finish())
}

fn flush_md(para: &mut Vec<String>, out: &mut Sections) {
    if !para.is_empty() {
        out.paragraph(para.join("\n"));
        para.clear();
    }
}

/// Where the text starts after a `---` (YAML) or `+++` (TOML) block at the
/// very top; 0 if there is none, or it never closes.
fn front_matter_end(lines: &[&str]) -> usize {
    let Some(first) = lines.first().map(|l| l.trim_end()) else {
        return 0;
    };
    if first != "---" && first != "+++" {
        return 0;
    }
    lines
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| {
            let l = l.trim_end();
            l == first || (first == "---" && l == "...")
        })
        .map_or(0, |(n, _)| n + 1)
}

fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// At most `n` columns of leading spaces removed.
fn strip_indent(line: &str, n: usize) -> &str {
    let spaces = line.bytes().take(n).take_while(|b| *b == b' ').count();
    &line[spaces..]
}

/// A line opening a code fence: three or more backticks or tildes, at any
/// indentation (fences inside list items are indented); a backtick fence's
/// info string holds no backtick.
fn fence_open(line: &str) -> Option<Fence> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = rest.bytes().take_while(|b| *b == ch).count();
    if len < 3 || (ch == b'`' && rest[len..].contains('`')) {
        return None;
    }
    Some(Fence { ch, len, indent })
}

fn fence_closes(line: &str, fence: Fence) -> bool {
    let t = line.trim();
    let len = t.bytes().take_while(|b| *b == fence.ch).count();
    len >= fence.len && len == t.len()
}

/// `# Heading` to `###### Heading` with at most three spaces of indent:
/// the level and the raw text (closing `#`s removed).
fn atx_heading(line: &str) -> Option<(usize, &str)> {
    if indent_of(line) > 3 {
        return None;
    }
    let t = line.trim_start();
    let level = t.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim();
    let without = rest.trim_end_matches('#');
    let raw = if without.is_empty() || without.ends_with([' ', '\t']) {
        without.trim_end()
    } else {
        rest
    };
    Some((level, raw))
}

fn is_underline(trimmed: &str, ch: char) -> bool {
    !trimmed.is_empty() && trimmed.chars().all(|c| c == ch)
}

fn is_thematic_break(trimmed: &str) -> bool {
    let Some(ch) = trimmed.chars().next() else {
        return false;
    };
    if !matches!(ch, '-' | '*' | '_') {
        return false;
    }
    let marks = trimmed.chars().filter(|c| *c == ch).count();
    marks >= 3 && trimmed.chars().all(|c| c == ch || c == ' ' || c == '\t')
}

fn is_list_item(line: &str) -> bool {
    let t = line.trim_start();
    if t == "-" || t == "*" || t == "+" {
        return true;
    }
    if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && (t[digits..].starts_with(". ") || t[digits..].starts_with(") "))
}

/// A heading's display text: links and images reduced to their text,
/// backticks, `**`/`__` and inline HTML tags dropped, whitespace collapsed.
fn heading_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("**") || rest.starts_with("__") {
            rest = &rest[2..];
            continue;
        }
        if c == '`' {
            rest = &rest[1..];
            continue;
        }
        if let Some(after_bang) = rest.strip_prefix("![") {
            if let Some((text, after)) = link_parts(after_bang) {
                out.push_str(text);
                rest = after;
                continue;
            }
        } else if let Some(after_open) = rest.strip_prefix('[')
            && let Some((text, after)) = link_parts(after_open)
        {
            out.push_str(text);
            rest = after;
            continue;
        }
        if c == '<'
            && rest[1..].starts_with(|n: char| n.is_ascii_alphabetic() || n == '/')
            && let Some(end) = rest.find('>')
        {
            rest = &rest[end + 1..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    collapse(&out)
}

/// After a `[`: the link text and what follows `](url)` or `][ref]`.
fn link_parts(s: &str) -> Option<(&str, &str)> {
    let close = s.find(']')?;
    let (text, after) = (&s[..close], &s[close + 1..]);
    let target_end = match after.as_bytes().first() {
        Some(b'(') => after.find(')')?,
        Some(b'[') => after.find(']')?,
        _ => return None,
    };
    Some((text, &after[target_end + 1..]))
}

/// GitHub's heading slugs: lower case, punctuation dropped, spaces made
/// `-`, repeats numbered `-1`, `-2`, … (as github-slugger does).
#[derive(Default)]
struct Slugger {
    seen: HashMap<String, usize>,
}

impl Slugger {
    fn slug(&mut self, text: &str) -> Option<String> {
        let base: String = text
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c),
                _ => None,
            })
            .collect();
        if base.is_empty() {
            return None;
        }
        let mut slug = base.clone();
        while self.seen.contains_key(&slug) {
            let n = self.seen.entry(base.clone()).or_insert(0);
            *n += 1;
            slug = format!("{base}-{n}");
        }
        self.seen.insert(slug.clone(), 0);
        Some(slug)
    }
}

// ---------------------------------------------------------------------------
// HTML: tokens

#[derive(Debug)]
enum Tok {
    Text(String),
    Start {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    End {
        name: String,
    },
}

impl Tok {
    fn attr<'t>(attrs: &'t [(String, String)], key: &str) -> Option<&'t str> {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Splits HTML into text and tags. Comments, doctypes, processing
/// instructions and the bodies of `<script>` and `<style>` are dropped; a
/// `<` that starts no tag is text; entities are decoded.
fn tokenize(src: &str) -> Vec<Tok> {
    let bytes = src.as_bytes();
    let last = |c: char| src.rfind(c);
    let limits = Limits {
        gt: last('>'),
        dquote: last('"'),
        squote: last('\''),
    };
    let mut out = Vec::new();
    let mut text_from = 0;
    let mut i = 0;
    while let Some(off) = src[i..].find('<') {
        let at = i + off;
        match markup_at(src, at, &limits) {
            None => i = at + 1,
            Some((tok, end)) => {
                if text_from < at {
                    out.push(Tok::Text(decode_entities(&src[text_from..at])));
                }
                i = end;
                if let Some(Tok::Start {
                    name,
                    self_closing: false,
                    ..
                }) = &tok
                {
                    let name = name.clone();
                    match name.as_str() {
                        "script" | "style" => {
                            i = raw_text_end(bytes, i, &name).map_or(src.len(), |(_, after)| after);
                            text_from = i;
                            continue;
                        }
                        "title" | "textarea" => {
                            let (body_end, after) =
                                raw_text_end(bytes, i, &name).unwrap_or((src.len(), src.len()));
                            out.push(tok.unwrap_or(Tok::Text(String::new())));
                            out.push(Tok::Text(decode_entities(&src[i..body_end])));
                            out.push(Tok::End { name });
                            i = after;
                            text_from = i;
                            continue;
                        }
                        _ => {}
                    }
                }
                if let Some(tok) = tok {
                    out.push(tok);
                }
                text_from = i;
            }
        }
    }
    if text_from < src.len() {
        out.push(Tok::Text(decode_entities(&src[text_from..])));
    }
    out
}

/// The last positions of the characters a tag may need to reach, so that
/// a stray `<` or an unclosed quote costs no scan to the end each time.
struct Limits {
    gt: Option<usize>,
    dquote: Option<usize>,
    squote: Option<usize>,
}

/// Where the `</name` that closes a raw-text element starts and where its
/// tag ends.
fn raw_text_end(bytes: &[u8], from: usize, name: &str) -> Option<(usize, usize)> {
    let needle_len = name.len() + 2;
    let mut at = from;
    while at + needle_len <= bytes.len() {
        if bytes[at] == b'<'
            && bytes[at + 1] == b'/'
            && bytes[at + 2..at + needle_len].eq_ignore_ascii_case(name.as_bytes())
        {
            let after = bytes[at..]
                .iter()
                .position(|b| *b == b'>')
                .map_or(bytes.len(), |p| at + p + 1);
            return Some((at, after));
        }
        at += 1;
    }
    None
}

/// The markup starting at the `<` at `at`: a token (or `None` for a comment
/// and the like) and where it ends; `None` if that `<` is just text.
fn markup_at(src: &str, at: usize, limits: &Limits) -> Option<(Option<Tok>, usize)> {
    let bytes = src.as_bytes();
    let rest = &src[at..];
    if rest.starts_with("<!--") {
        let body = at + 4;
        if src[body..].starts_with('>') {
            return Some((None, body + 1));
        }
        let end = src[body..].find("-->").map_or(src.len(), |p| body + p + 3);
        return Some((None, end));
    }
    if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
        let (text, end) = match cdata.find("]]>") {
            Some(p) => (&cdata[..p], at + 9 + p + 3),
            None => (cdata, src.len()),
        };
        return Some((Some(Tok::Text(text.to_string())), end));
    }
    if limits.gt.is_none_or(|gt| gt < at) {
        return None;
    }
    let next = *bytes.get(at + 1)?;
    if next == b'!' || next == b'?' {
        let end = src[at..].find('>')? + at + 1;
        return Some((None, end));
    }
    if next == b'/' {
        let name_start = at + 2;
        let name = tag_name(bytes, name_start);
        if name.is_empty() {
            return None;
        }
        let end = src[at..].find('>')? + at + 1;
        return Some((
            Some(Tok::End {
                name: name.to_ascii_lowercase(),
            }),
            end,
        ));
    }
    if !next.is_ascii_alphabetic() {
        return None;
    }
    let name = tag_name(bytes, at + 1);
    let mut j = at + 1 + name.len();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let c = *bytes.get(j)?;
        if c == b'>' {
            j += 1;
            break;
        }
        if c == b'/' {
            if bytes.get(j + 1) == Some(&b'>') {
                self_closing = true;
                j += 2;
                break;
            }
            j += 1;
            continue;
        }
        let key_start = j;
        while let Some(&b) = bytes.get(j) {
            if b.is_ascii_whitespace() || b == b'=' || b == b'>' {
                break;
            }
            if b == b'/' && bytes.get(j + 1) == Some(&b'>') {
                break;
            }
            j += 1;
        }
        if j == key_start {
            // A lone `=`: skip it.
            j += 1;
            continue;
        }
        let key = src[key_start..j].to_ascii_lowercase();
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let mut value = "";
        if bytes.get(j) == Some(&b'=') {
            j += 1;
            while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                j += 1;
            }
            match bytes.get(j) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let last = if q == b'"' {
                        limits.dquote
                    } else {
                        limits.squote
                    };
                    let close = if last.is_some_and(|l| l > j) {
                        src[j + 1..].find(q as char).map(|p| j + 1 + p)
                    } else {
                        None
                    };
                    match close {
                        Some(close) => {
                            value = &src[j + 1..close];
                            j = close + 1;
                        }
                        None => {
                            // An unclosed quote: the value runs to the `>`.
                            let gt = src[j..].find('>')? + j;
                            value = &src[j + 1..gt];
                            j = gt;
                        }
                    }
                }
                Some(_) => {
                    let start = j;
                    while bytes
                        .get(j)
                        .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'>')
                    {
                        j += 1;
                    }
                    value = &src[start..j];
                }
                None => return None,
            }
        }
        attrs.push((key, decode_entities(value)));
    }
    Some((
        Some(Tok::Start {
            name: name.to_ascii_lowercase(),
            attrs,
            self_closing,
        }),
        j,
    ))
}

fn tag_name(bytes: &[u8], from: usize) -> &str {
    let len = bytes[from.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'_'))
        .count();
    // ASCII only, so always a char boundary.
    std::str::from_utf8(&bytes[from..from + len]).unwrap_or_default()
}

/// `&amp;`, the other common named entities, and `&#NN;` / `&#xHH;`
/// decoded; anything else left as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let window = &rest.as_bytes()[1..rest.len().min(34)];
        let decoded = window.iter().position(|b| *b == b';').and_then(|semi| {
            let name = &rest[1..1 + semi];
            entity(name).map(|c| (c, semi + 2))
        });
        match decoded {
            Some((text, used)) => {
                out.push_str(&text);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        let c = match char::from_u32(code) {
            Some('\0') | None => '\u{FFFD}',
            Some(c) => c,
        };
        return Some(c.to_string());
    }
    let text = match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "mdash" => "—",
        "ndash" => "–",
        "hellip" => "…",
        "rsquo" => "’",
        "lsquo" => "‘",
        "rdquo" => "”",
        "ldquo" => "“",
        "laquo" => "«",
        "raquo" => "»",
        "bull" => "•",
        "middot" => "·",
        "times" => "×",
        "deg" => "°",
        "euro" => "€",
        "shy" => "",
        _ => return None,
    };
    Some(text.to_string())
}

// ---------------------------------------------------------------------------
// HTML: structure

/// Elements that end a paragraph where they start and end.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Elements with no content, never pushed on the open-element stack.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements that may sit in `<head>`; any other start tag ends it.
const HEAD_ONLY: &[&str] = &[
    "base", "link", "meta", "noscript", "script", "style", "template", "title",
];

/// Classes of navigation chrome, skipped whole (DocBook's page header and
/// footer, and its generated tables of contents).
const CHROME_CLASSES: &[&str] = &["navheader", "navfooter", "toc"];

/// Deepest open-element stack kept: broken pages that never close their
/// tags cannot make each heading's look-up slow.
const MAX_DEPTH: usize = 512;

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Whether an element is skipped with all its content.
fn is_chrome(name: &str, attrs: &[(String, String)]) -> bool {
    if matches!(name, "nav" | "svg" | "template") {
        return true;
    }
    if Tok::attr(attrs, "role") == Some("navigation") {
        return true;
    }
    Tok::attr(attrs, "class").is_some_and(|c| {
        c.split_ascii_whitespace()
            .any(|c| CHROME_CLASSES.contains(&c))
    })
}

/// The index of the end tag that closes the element started at `start`.
fn matching_end(toks: &[Tok], start: usize, name: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (k, tok) in toks.iter().enumerate().skip(start + 1) {
        match tok {
            Tok::Start {
                name: n,
                self_closing: false,
                ..
            } if n == name => depth += 1,
            Tok::End { name: n } if n == name => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

struct Open {
    name: String,
    id: Option<String>,
    /// Whether a heading has started inside it (its id then points above
    /// that heading, not at a later one).
    claimed: bool,
}

struct OpenHeading {
    level: usize,
    text: String,
    /// The heading element's own id.
    own: Option<String>,
    /// The first id (or `<a name>`) inside it.
    inner: Option<String>,
    /// An `<a id|name>` just before it, with no text between.
    before: Option<String>,
    /// The id of the innermost element around it in which no heading came
    /// before (DocBook's `<div class="sect1" id=…>`).
    enclosing: Option<String>,
}

#[derive(Default)]
struct HtmlWalk {
    out: Sections,
    para: String,
    pre: String,
    pre_depth: usize,
    /// Cells seen in the current table row.
    cells: usize,
    heading: Option<OpenHeading>,
    stack: Vec<Open>,
    last_anchor: Option<String>,
    in_head: bool,
    seen_body: bool,
    title: Option<String>,
    title_buf: Option<String>,
    first_h1: Option<String>,
}

fn parse_html(src: &str) -> (Option<String>, Vec<Section>) {
    let toks = tokenize(src);
    let mut walk = HtmlWalk::default();
    // Tags for which no matching end was found once: not looked for again,
    // so broken pages stay linear.
    let mut unmatched: HashSet<String> = HashSet::new();
    let mut k = 0;
    while k < toks.len() {
        match &toks[k] {
            Tok::Start {
                name,
                attrs,
                self_closing,
            } => {
                if !self_closing
                    && !walk.in_head
                    && is_chrome(name, attrs)
                    && !unmatched.contains(name)
                {
                    match matching_end(&toks, k, name) {
                        Some(end) => {
                            k = end + 1;
                            continue;
                        }
                        None => {
                            unmatched.insert(name.clone());
                        }
                    }
                }
                walk.start(name, attrs, *self_closing);
            }
            Tok::End { name } => walk.end(name),
            Tok::Text(text) => walk.text(text),
        }
        k += 1;
    }
    walk.finish()
}

impl HtmlWalk {
    fn start(&mut self, name: &str, attrs: &[(String, String)], self_closing: bool) {
        let id = Tok::attr(attrs, "id")
            .or_else(|| (name == "a").then(|| Tok::attr(attrs, "name")).flatten())
            .map(str::to_string);
        match name {
            "head" => {
                self.in_head = !self.seen_body;
                return;
            }
            "title" => {
                if !self.seen_body && self.title.is_none() {
                    self.title_buf = Some(String::new());
                }
                return;
            }
            "body" => {
                self.in_head = false;
                self.seen_body = true;
            }
            _ if self.in_head && !HEAD_ONLY.contains(&name) => {
                self.in_head = false;
                self.seen_body = true;
            }
            _ => {}
        }
        if self.in_head {
            return;
        }
        if !self.seen_body && !VOID.contains(&name) && name != "html" {
            self.seen_body = true;
        }
        if let Some(level) = heading_level(name) {
            self.close_heading();
            self.flush();
            let enclosing = self
                .stack
                .iter()
                .rev()
                .find(|o| o.id.is_some() && o.name != "html" && o.name != "body")
                .filter(|o| !o.claimed)
                .and_then(|o| o.id.clone());
            for open in &mut self.stack {
                open.claimed = true;
            }
            self.heading = Some(OpenHeading {
                level,
                text: String::new(),
                own: id,
                inner: None,
                before: self.last_anchor.take(),
                enclosing,
            });
            self.push(name, None);
            return;
        }
        if let Some(h) = &mut self.heading {
            if name == "br" {
                h.text.push(' ');
                return;
            }
            if BLOCKS.contains(&name) {
                self.close_heading();
            } else if h.inner.is_none() {
                h.inner = id.clone();
            }
        }
        match name {
            "br" if self.pre_depth > 0 => self.pre.push('\n'),
            "pre" => {
                self.flush();
                self.pre_depth += 1;
            }
            "tr" => {
                self.flush();
                self.cells = 0;
            }
            "td" | "th" => {
                if self.cells > 0 && self.pre_depth == 0 {
                    self.para.push_str(" | ");
                }
                self.cells += 1;
            }
            _ if BLOCKS.contains(&name) => self.flush(),
            _ => {}
        }
        if name == "a" && self.heading.is_none() && id.is_some() {
            self.last_anchor = id.clone();
        }
        if !self_closing && !VOID.contains(&name) {
            self.push(name, id);
        }
    }

    fn push(&mut self, name: &str, id: Option<String>) {
        let closes_previous = |prev: &str| match name {
            "p" | "li" | "tr" | "option" => prev == name,
            "dt" | "dd" => prev == "dt" || prev == "dd",
            "td" | "th" => prev == "td" || prev == "th",
            _ => false,
        };
        if self.stack.last().is_some_and(|o| closes_previous(&o.name)) {
            self.stack.pop();
        }
        if self.stack.len() < MAX_DEPTH {
            self.stack.push(Open {
                name: name.to_string(),
                id,
                claimed: false,
            });
        }
    }

    fn end(&mut self, name: &str) {
        match name {
            "title" => {
                if let Some(buf) = self.title_buf.take() {
                    let t = collapse(&buf);
                    if !t.is_empty() {
                        self.title = Some(t);
                    }
                }
                return;
            }
            "head" => {
                self.in_head = false;
                return;
            }
            _ if self.in_head => return,
            _ => {}
        }
        if self.heading.is_some() && (heading_level(name).is_some() || BLOCKS.contains(&name)) {
            self.close_heading();
        }
        if name == "pre" && self.pre_depth > 0 {
            self.pre_depth -= 1;
            if self.pre_depth == 0 {
                self.flush_pre();
            }
        } else if BLOCKS.contains(&name) {
            self.flush();
        }
        if let Some(pos) = self.stack.iter().rposition(|o| o.name == name) {
            self.stack.truncate(pos);
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(buf) = &mut self.title_buf {
            buf.push_str(text);
            return;
        }
        if self.in_head {
            return;
        }
        if let Some(h) = &mut self.heading {
            h.text.push_str(text);
            return;
        }
        if self.pre_depth > 0 {
            self.pre.push_str(text);
            return;
        }
        if !text.trim().is_empty() {
            self.last_anchor = None;
            if !self.seen_body {
                self.seen_body = true;
            }
        }
        self.para.push_str(text);
    }

    fn flush(&mut self) {
        if self.pre_depth > 0 {
            return;
        }
        let text = collapse(&self.para);
        self.para.clear();
        self.out.paragraph(text);
    }

    fn flush_pre(&mut self) {
        let pre = std::mem::take(&mut self.pre);
        let lines: Vec<&str> = pre.trim_end().lines().map(str::trim_end).collect();
        let first = lines
            .iter()
            .position(|l| !l.is_empty())
            .unwrap_or(lines.len());
        self.out.paragraph(lines[first..].join("\n"));
    }

    fn close_heading(&mut self) {
        let Some(h) = self.heading.take() else {
            return;
        };
        let text = collapse(&h.text);
        if text.is_empty() {
            return;
        }
        if h.level == 1 && self.first_h1.is_none() {
            self.first_h1 = Some(text.clone());
        }
        let anchor = h.own.or(h.inner).or(h.before).or(h.enclosing);
        self.out.heading(h.level, text, anchor);
    }

    fn finish(mut self) -> (Option<String>, Vec<Section>) {
        self.close_heading();
        if self.pre_depth > 0 {
            self.pre_depth = 0;
            self.flush_pre();
        }
        self.flush();
        let title = self.title.or(self.first_h1);
        (title, self.out.finish())
    }
}

// ---------------------------------------------------------------------------
// PDF

/// Tells temporary files of concurrent parses apart.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary PDF however the parse ends.
struct TempPdf(PathBuf);

impl Drop for TempPdf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn parse_pdf(bytes: &[u8], name: &str, program: &str) -> Result<Vec<Section>, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty {
            name: name.to_string(),
            kind: DocKind::Pdf,
        });
    }
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(ParseError::NotPdf {
            name: name.to_string(),
        });
    }
    let text = pdf_to_text(bytes, name, program)?;
    Ok(text
        .split('\x0c')
        .enumerate()
        .map(|(n, page)| Section {
            headings: Vec::new(),
            anchor: Some(format!("page={}", n + 1)),
            paragraphs: text_paragraphs(&clean(page)),
        })
        .filter(|s| !s.paragraphs.is_empty())
        .collect())
}

/// `program -enc UTF-8 -layout FILE -` on a private temporary copy.
fn pdf_to_text(bytes: &[u8], name: &str, program: &str) -> Result<String, ParseError> {
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path = dir.join(format!(
        "switchboard-pdf-{}-{}-{}.pdf",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    let temp_error = |source| ParseError::TempFile {
        name: name.to_string(),
        dir: dir.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(temp_error)?;
    let temp = TempPdf(path);
    file.write_all(bytes).map_err(temp_error)?;
    drop(file);
    let output = Command::new(program)
        .args(["-enc", "UTF-8", "-layout"])
        .arg(&temp.0)
        .arg("-")
        .stdin(Stdio::null())
        .output();
    drop(temp);
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ParseError::ToolMissing {
                name: name.to_string(),
            });
        }
        Err(e) => {
            return Err(ParseError::PdfTool {
                name: name.to_string(),
                message: format!("cannot run `{program}`: {e}"),
            });
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map_or_else(
                || format!("it exited with {}", output.status),
                str::to_string,
            );
        return Err(ParseError::PdfTool {
            name: name.to_string(),
            message,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(text: &str) -> ParsedDoc {
        match parse(DocKind::Markdown, text.as_bytes(), "notes.md") {
            Ok(doc) => doc,
            Err(e) => panic!("markdown did not parse: {e}"),
        }
    }

    fn html(text: &str) -> ParsedDoc {
        match parse(DocKind::Html, text.as_bytes(), "page.html") {
            Ok(doc) => doc,
            Err(e) => panic!("html did not parse: {e}"),
        }
    }

    /// (heading path joined with " > ", anchor, paragraphs) per section.
    fn outline(doc: &ParsedDoc) -> Vec<(String, Option<String>, Vec<String>)> {
        doc.sections
            .iter()
            .map(|s| {
                (
                    s.headings.join(" > "),
                    s.anchor.clone(),
                    s.paragraphs.clone(),
                )
            })
            .collect()
    }

    fn all_text(doc: &ParsedDoc) -> String {
        let mut out = String::new();
        for s in &doc.sections {
            for h in &s.headings {
                out.push_str(h);
                out.push('\n');
            }
            for p in &s.paragraphs {
                out.push_str(p);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn kinds_come_from_extensions_in_any_case() {
        let of = |p: &str| DocKind::of_path(Path::new(p));
        assert_eq!(of("a/README.md"), Some(DocKind::Markdown));
        assert_eq!(of("Guide.MARKDOWN"), Some(DocKind::Markdown));
        assert_eq!(of("notes.TXT"), Some(DocKind::Text));
        assert_eq!(of("notes.text"), Some(DocKind::Text));
        assert_eq!(of("index.Htm"), Some(DocKind::Html));
        assert_eq!(of("index.html"), Some(DocKind::Html));
        assert_eq!(of("manual.PDF"), Some(DocKind::Pdf));
        assert_eq!(of("report.docx"), None);
        assert_eq!(of("Makefile"), None);
        assert_eq!(of(".md"), None);
        assert_eq!(DocKind::Html.name(), "html");
        assert_eq!(DocKind::Pdf.name(), "pdf");
    }

    #[test]
    fn markdown_headings_give_paths_and_github_anchors() {
        let doc = md("Intro before any heading.\n\n\
             # Operations Guide\n\nWelcome.\n\n\
             ## Retries & Backoff (v2)\n\nWe retry.\n\n\
             ### Jitter\n\nAdd jitter.\n\n\
             ## Alerts ##\n\nPage someone.\n\n\
             ## Retries & Backoff (v2)\n\nAgain.\n\n\
             ## `max_retries` and [links](https://x.test)\nSet it.\n");
        assert_eq!(doc.title, "Operations Guide");
        let o = outline(&doc);
        assert_eq!(
            o[0],
            ("".into(), None, vec!["Intro before any heading.".into()])
        );
        assert_eq!(o[1].0, "Operations Guide");
        assert_eq!(o[1].1.as_deref(), Some("operations-guide"));
        assert_eq!(o[2].0, "Operations Guide > Retries & Backoff (v2)");
        assert_eq!(o[2].1.as_deref(), Some("retries--backoff-v2"));
        assert_eq!(o[3].0, "Operations Guide > Retries & Backoff (v2) > Jitter");
        assert_eq!(o[3].2, vec!["Add jitter."]);
        assert_eq!(
            o[4].0, "Operations Guide > Alerts",
            "closing #s are not text"
        );
        assert_eq!(o[4].1.as_deref(), Some("alerts"));
        assert_eq!(
            o[5].1.as_deref(),
            Some("retries--backoff-v2-1"),
            "repeats numbered"
        );
        assert_eq!(o[6].0, "Operations Guide > max_retries and links");
        assert_eq!(o[6].1.as_deref(), Some("max_retries-and-links"));
        assert_eq!(o[6].2, vec!["Set it."]);
    }

    #[test]
    fn code_fences_stay_whole_and_hide_their_hashes() {
        let doc = md("# Setup\n\nRun this:\n\
             ```bash\n# install first\napt-get   install  x\n\n## not a heading\n```\n\
             ~~~\n# also code\n~~~\n\
             After.\n");
        assert_eq!(doc.sections.len(), 1, "no heading inside a fence: {doc:?}");
        let p = &doc.sections[0].paragraphs;
        assert_eq!(p[0], "Run this:");
        assert_eq!(
            p[1], "```bash\n# install first\napt-get   install  x\n\n## not a heading\n```",
            "the fence is one paragraph, spacing and blank line kept"
        );
        assert_eq!(p[2], "~~~\n# also code\n~~~");
        assert_eq!(p[3], "After.");

        let unclosed = md("# A\n\n```\n# inside\n\nstill code");
        assert_eq!(unclosed.sections.len(), 1);
        assert_eq!(
            unclosed.sections[0].paragraphs,
            vec!["```\n# inside\n\nstill code"]
        );

        let inline = md("```not a fence``` text\n# Real\nbody");
        assert_eq!(inline.sections[1].headings, vec!["Real"]);
    }

    #[test]
    fn markdown_front_matter_setext_lists_and_spacing() {
        let doc = md("---\ntitle: ignored\n# not a heading\n---\n\
             Manual\n======\n\nSteps:\n- one\n-   two\n  1. nested\n\n\
             Details\n-------\nText   with\tspaces  \nand a second line.\n\n\
             ***\n\nAfter the rule.\n");
        assert_eq!(doc.title, "Manual");
        let o = outline(&doc);
        assert_eq!(o[0].0, "Manual");
        assert_eq!(
            o[0].2,
            vec!["Steps:\n- one\n- two\n1. nested"],
            "list kept with its lead-in"
        );
        assert_eq!(o[1].0, "Manual > Details");
        assert_eq!(o[1].1.as_deref(), Some("details"));
        assert_eq!(
            o[1].2,
            vec!["Text with spaces\nand a second line.", "After the rule."]
        );
        assert!(!all_text(&doc).contains("ignored"), "front matter skipped");

        let list_then_rule = md("- item\n---\nafter");
        assert_eq!(
            list_then_rule.sections.len(),
            1,
            "a rule after a list is no heading"
        );
        assert_eq!(
            list_then_rule.title, "notes.md",
            "no H1: the fallback title"
        );
    }

    #[test]
    fn plain_text_is_one_section_of_paragraphs() {
        let doc = match parse(
            DocKind::Text,
            b"\xEF\xBB\xBFFirst  line\r\nsecond\tline\r\n\r\n\r\nNext paragraph.\n   \n",
            "notes.txt",
        ) {
            Ok(doc) => doc,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(doc.title, "notes.txt");
        assert_eq!(doc.sections.len(), 1);
        assert!(doc.sections[0].headings.is_empty());
        assert_eq!(doc.sections[0].anchor, None);
        assert_eq!(
            doc.sections[0].paragraphs,
            vec!["First line\nsecond line", "Next paragraph."]
        );
    }

    #[test]
    fn wrong_encoding_and_empty_files_are_explained() {
        let latin1 = b"caf\xe9 au lait";
        let err = match parse(DocKind::Markdown, latin1, "menu.md") {
            Err(e) => e,
            Ok(doc) => panic!("latin-1 accepted: {doc:?}"),
        };
        assert!(
            matches!(err, ParseError::NotUtf8 { offset: 3, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("menu.md") && msg.contains("UTF-8") && msg.contains("markdown"));
        assert!(msg.contains("convert"), "{msg}");

        for (kind, bytes) in [
            (DocKind::Text, &b""[..]),
            (DocKind::Markdown, b"\n\n   \n"),
            (DocKind::Markdown, b"# Only\n## Headings\n"),
            (
                DocKind::Html,
                b"<html><head><title>T</title></head><body> </body></html>",
            ),
            (DocKind::Html, b"<script>alert(1)</script><!-- nothing -->"),
            (DocKind::Text, b"\x00\x01\x02\x7f"),
            (DocKind::Pdf, b"  "),
        ] {
            match parse(kind, bytes, "blank") {
                Err(e @ ParseError::Empty { .. }) => {
                    assert!(e.to_string().contains("no text to index"));
                }
                other => panic!("{kind:?} {bytes:?}: {other:?}"),
            }
        }

        match parse(DocKind::Html, &[0xff, 0xfe, b'<', 0, b'p', 0], "utf16.html") {
            Err(ParseError::NotUtf8 { kind, .. }) => assert_eq!(kind, DocKind::Html),
            other => panic!("{other:?}"),
        }
        match parse(DocKind::Pdf, b"<html>not a pdf</html>", "fake.pdf") {
            Err(e @ ParseError::NotPdf { .. }) => assert!(e.to_string().contains("fake.pdf")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn html_skips_head_scripts_styles_comments_and_navigation() {
        let doc = html(
            "<!DOCTYPE html><html><head><meta charset=utf-8><title>Ops &amp; You</title>\
             <style>p { color: red }</style><script>var x = '<h1>no</h1>';</script></head>\
             <body><nav><a href=/>Home</a> <h2>Menu</h2></nav>\
             <div class=\"navheader\"><table><tr><td>Prev</td><td>Next</td></tr></table></div>\
             <!-- <h2>commented</h2> -->\
             <h1>Welcome</h1><p>Read   this\n   first.</p>\
             <div class=\"navfooter\">Up</div></body></html>",
        );
        assert_eq!(doc.title, "Ops & You");
        assert_eq!(
            outline(&doc),
            vec![("Welcome".into(), None, vec!["Read this first.".into()])]
        );
        let text = all_text(&doc);
        for gone in ["color", "var x", "Menu", "Home", "Prev", "commented", "Up"] {
            assert!(!text.contains(gone), "{gone} leaked: {text}");
        }
    }

    #[test]
    fn html_blocks_pre_tables_and_entities() {
        let doc = html(
            "<h1 id=top>T&eacute;st &mdash; one</h1>\
             <p>a&nbsp;b &lt;tag&gt; &quot;q&quot; &#8217; &#x2603; &copy; &hellip; &bogus; AT&T</p>\
             <ul><li>first<li>second</ul>\
             line one<br>line two<br/>\
             <pre>\n  indented   code\n\tand tab\n</pre>\
             <table><tr><th>Key</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>\
             <dl><dt>term</dt><dd>definition</dd></dl><blockquote>quoted</blockquote>",
        );
        assert_eq!(
            doc.title, "T&eacute;st — one",
            "first h1 is the title; unknown entity kept"
        );
        let s = &doc.sections[0];
        assert_eq!(s.anchor.as_deref(), Some("top"));
        assert_eq!(
            s.paragraphs,
            vec![
                "a b <tag> \"q\" ’ ☃ © … &bogus; AT&T",
                "first",
                "second",
                "line one",
                "line two",
                "  indented   code\n\tand tab",
                "Key | Value",
                "a | 1",
                "term",
                "definition",
                "quoted",
            ]
        );
    }

    #[test]
    fn html_anchors_come_from_ids_anchors_and_sections() {
        let doc = html(
            "<h1>Guide</h1>\
             <h2 id=\"own\">Own id</h2><p>x</p>\
             <a name=\"legacy\"></a><h2>Named anchor before</h2><p>x</p>\
             <h2><a id=\"inner\"></a>Anchor inside</h2><p>x</p>\
             <section id=\"sec\"><h2>In a section</h2><p>x</p><h3>Second in section</h3><p>y</p></section>\
             <a name=\"stale\"></a><p>text between</p><h2>No anchor</h2><p>z</p>",
        );
        let anchors: Vec<(String, Option<String>)> = doc
            .sections
            .iter()
            .map(|s| (s.headings.join(" > "), s.anchor.clone()))
            .collect();
        let want = |h: &str, a: Option<&str>| (h.to_string(), a.map(str::to_string));
        assert_eq!(
            anchors,
            vec![
                want("Guide", None),
                want("Guide > Own id", Some("own")),
                want("Guide > Named anchor before", Some("legacy")),
                want("Guide > Anchor inside", Some("inner")),
                want("Guide > In a section", Some("sec")),
                want("Guide > In a section > Second in section", None),
                want("Guide > No anchor", None),
            ]
        );
    }

    #[test]
    fn docbook_pages_keep_their_section_ids() {
        // Shaped like the PostgreSQL manual (DocBook XSL output).
        let page = r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "x"><html xmlns="http://www.w3.org/1999/xhtml"><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8" /><title>20.5. Write Ahead Log</title><link rel="stylesheet" type="text/css" href="stylesheet.css" /></head><body id="docContent" class="container-fluid col-10"><div class="navheader"><table width="100%" summary="Navigation header"><tr><th colspan="5" align="center">20.5. Write Ahead Log</th></tr><tr><td width="10%" align="left"><a accesskey="p" href="runtime-config-resource.html" title="20.4. Resource Consumption">Prev</a> </td></tr></table><hr /></div><div class="sect1" id="RUNTIME-CONFIG-WAL"><div class="titlepage"><div><div><h2 class="title" style="clear: both">20.5. Write Ahead Log</h2></div></div></div><div class="toc"><dl class="toc"><dt><span class="sect2"><a href="runtime-config-wal.html#RUNTIME-CONFIG-WAL-SETTINGS">20.5.1. Settings</a></span></dt></dl></div><p>
    For additional information on tuning these settings,
    see <a class="xref" href="wal-configuration.html" title="30.5. WAL Configuration">Section 30.5</a>.
   </p><div class="sect2" id="RUNTIME-CONFIG-WAL-SETTINGS"><div class="titlepage"><div><div><h3 class="title">20.5.1. Settings</h3></div></div></div><div class="variablelist"><dl class="variablelist"><dt id="GUC-WAL-LEVEL"><span class="term"><code class="varname">wal_level</code> (<code class="type">enum</code>)
      <a id="id-1.6.7.8.3.2.1.1.3" class="indexterm"></a>
      </span></dt><dd><p>
        <code class="varname">wal_level</code> determines how much information is written to the WAL.
       </p><pre class="programlisting">wal_level = replica
fsync     = on</pre></dd></dl></div></div></div><div class="navfooter"><hr /><table width="100%" summary="Navigation footer"><tr><td width="40%" align="left"><a accesskey="p" href="runtime-config-resource.html">Prev</a> </td></tr></table></div></body></html>"#;
        let doc = html(page);
        assert_eq!(doc.title, "20.5. Write Ahead Log");
        assert_eq!(
            outline(&doc),
            vec![
                (
                    "20.5. Write Ahead Log".into(),
                    Some("RUNTIME-CONFIG-WAL".into()),
                    vec![
                        "For additional information on tuning these settings, see Section 30.5."
                            .into()
                    ]
                ),
                (
                    "20.5. Write Ahead Log > 20.5.1. Settings".into(),
                    Some("RUNTIME-CONFIG-WAL-SETTINGS".into()),
                    vec![
                        "wal_level (enum)".into(),
                        "wal_level determines how much information is written to the WAL.".into(),
                        "wal_level = replica\nfsync     = on".into(),
                    ]
                ),
            ]
        );
        assert!(!all_text(&doc).contains("Prev"), "navigation skipped");
    }

    #[test]
    fn real_postgresql_manual_page_when_installed() {
        let path = Path::new("/usr/share/doc/postgresql-doc-15/html/runtime-config-wal.html");
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!(
                "skipped: {} is not installed (apt-get install postgresql-doc-15)",
                path.display()
            );
            return;
        };
        let doc = match parse(DocKind::Html, &bytes, "runtime-config-wal.html") {
            Ok(doc) => doc,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(doc.title, "20.5. Write Ahead Log");
        let find = |h: &str| {
            doc.sections
                .iter()
                .find(|s| s.headings.last().is_some_and(|l| l == h))
        };
        let settings = find("20.5.1. Settings").map(|s| (s.headings.clone(), s.anchor.clone()));
        assert_eq!(
            settings,
            Some((
                vec![
                    "20.5. Write Ahead Log".to_string(),
                    "20.5.1. Settings".to_string()
                ],
                Some("RUNTIME-CONFIG-WAL-SETTINGS".to_string())
            ))
        );
        let text = all_text(&doc);
        assert!(text.contains("wal_level determines how much information is written to the WAL"));
        assert!(!text.contains("Prev"), "navigation header skipped");
    }

    #[test]
    fn broken_html_never_panics_and_keeps_its_text() {
        let cases = [
            "<p>unclosed <b>bold <i>italic",
            "a < b and c > d, 1<2",
            "<h2>Heading never closed<p>body text",
            "<div class=\"navheader\">unclosed chrome <p>kept text",
            "<a href=\"unterminated>link text</a> after",
            "<p>comment <!-- never ends",
            "<",
            "<<<>>>",
            "</p></div></h1>text",
            "<h1></h1><p>empty heading</p>",
            "&#xD800; &#99999999; &#; &; &amp",
            "<pre>unclosed pre\n  keeps",
            "<title>only title",
            "<x-custom data-a='1'>custom</x-custom>",
        ];
        for case in cases {
            let _ = parse(DocKind::Html, case.as_bytes(), "broken.html");
        }
        let text = |s: &str| match parse(DocKind::Html, s.as_bytes(), "b") {
            Ok(doc) => all_text(&doc),
            Err(e) => panic!("{s}: {e}"),
        };
        assert_eq!(text("a < b and c > d, 1<2"), "a < b and c > d, 1<2\n");
        assert_eq!(
            text("<p>unclosed <b>bold <i>italic"),
            "unclosed bold italic\n"
        );
        assert_eq!(
            text("<h2>Heading never closed<p>body text"),
            "Heading never closed\nbody text\n"
        );
        assert!(
            text("<div class=\"navheader\">unclosed chrome <p>kept text").contains("kept text")
        );
        assert_eq!(
            text("&#xD800; &#99999999; &#; &amp"),
            "\u{FFFD} \u{FFFD} &#; &amp\n"
        );
        assert_eq!(
            text("<pre>unclosed pre\n  keeps"),
            "unclosed pre\n  keeps\n"
        );
        // Many stray `<` and unclosed quotes stay fast.
        let big = "<a x=\"".repeat(20_000) + &"< 1 ".repeat(20_000) + "<b c='>";
        let started = std::time::Instant::now();
        let _ = parse(DocKind::Html, big.as_bytes(), "big");
        assert!(
            started.elapsed().as_secs() < 5,
            "pathological markup took {:?}",
            started.elapsed()
        );
    }

    /// A PDF with one line of Helvetica text on each page.
    fn tiny_pdf(pages: &[&str]) -> Vec<u8> {
        let n = pages.len();
        let font = 3 + 2 * n;
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count {n} >>",
                (0..n)
                    .map(|i| format!("{} 0 R", 3 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ];
        for (i, text) in pages.iter().enumerate() {
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R \
                 /Resources << /Font << /F1 {font} 0 R >> >> >>",
                4 + 2 * i
            ));
            let stream = format!("BT /F1 18 Tf 72 700 Td ({text}) Tj ET");
            objects.push(format!(
                "<< /Length {} >>\nstream\n{stream}\nendstream",
                stream.len()
            ));
        }
        objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string());
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        pdf.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for off in offsets {
            pdf.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        pdf
    }

    fn temp_leftovers() -> usize {
        let prefix = format!("switchboard-pdf-{}-", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn missing_pdftotext_is_named_with_the_package_to_install() {
        let pdf = tiny_pdf(&["Hello"]);
        match parse_pdf(&pdf, "manual.pdf", "pdftotext-that-does-not-exist") {
            Err(e @ ParseError::ToolMissing { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("manual.pdf") && msg.contains("install poppler-utils"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    // The only test that runs pdftotext (the temp-file check would race
    // with another).
    #[test]
    fn pdf_pages_become_sections_through_pdftotext() {
        let available = Command::new("pdftotext")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !available {
            if std::env::var("SWITCHBOARD_TEST_REQUIRE_PDFTOTEXT").as_deref() == Ok("1") {
                panic!(
                    "SWITCHBOARD_TEST_REQUIRE_PDFTOTEXT=1 but pdftotext is not installed (apt-get install poppler-utils)"
                );
            }
            eprintln!("skipped: pdftotext is not installed (apt-get install poppler-utils)");
            return;
        }
        let pdf = tiny_pdf(&["Hello from page one.", "Second   page text"]);
        let doc = match parse(DocKind::Pdf, &pdf, "handbook.pdf") {
            Ok(doc) => doc,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(doc.title, "handbook.pdf");
        assert_eq!(
            outline(&doc),
            vec![
                (
                    "".into(),
                    Some("page=1".into()),
                    vec!["Hello from page one.".into()]
                ),
                (
                    "".into(),
                    Some("page=2".into()),
                    vec!["Second page text".into()]
                ),
            ]
        );

        let blank_first = tiny_pdf(&["", "Only the second page"]);
        let doc = match parse(DocKind::Pdf, &blank_first, "b.pdf") {
            Ok(doc) => doc,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(doc.sections.len(), 1);
        assert_eq!(
            doc.sections[0].anchor.as_deref(),
            Some("page=2"),
            "pages keep their numbers"
        );

        match parse(
            DocKind::Pdf,
            b"%PDF-1.4\nthis is not really a pdf",
            "broken.pdf",
        ) {
            Err(e @ ParseError::PdfTool { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("broken.pdf"), "{msg}");
                assert!(!msg.contains('\n'), "only stderr's first line: {msg}");
            }
            other => panic!("{other:?}"),
        }
        match parse(DocKind::Pdf, &tiny_pdf(&[""]), "scan.pdf") {
            Err(e @ ParseError::Empty { .. }) => assert!(e.to_string().contains("OCR")),
            other => panic!("{other:?}"),
        }
        assert_eq!(temp_leftovers(), 0, "temporary PDFs are removed");
    }
}
