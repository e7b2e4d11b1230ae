//! What retrieval hands the rest of the crate: the chunks an answer was
//! given ([`Retrieved`]), the numbered references a front end shows under
//! the answer ([`Citation`]) and what the inference row keeps of them
//! ([`RetrievalRecord`]). Here on the ground floor so that the store can
//! record them and adapters can render them without knowing how search works.

use serde::{Deserialize, Serialize};

/// One chunk given to the model for an answer, numbered as the prompt shows
/// it (`[1]`, `[2]`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedChunk {
    /// The reference number the model saw.
    pub number: u32,
    /// The chunk's id in the knowledge store.
    pub chunk_id: i64,
    /// The knowledge source it came from.
    pub source: String,
    /// The document's title.
    pub title: String,
    /// The heading path inside the document (`Retries › Backoff`), or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub heading: String,
    /// Where a reader finds it: a file path with its heading's anchor, a
    /// Slack permalink, a Discord jump link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The fused rank score (reciprocal rank fusion).
    pub score: f64,
    /// The cosine similarity to the question, when dense search ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// Whether the answer cited it (`[n]` in the answer's text).
    #[serde(default)]
    pub cited: bool,
}

/// What an inference retrieved, as recorded on its row (`retrieval`, JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalRecord {
    /// The sources searched.
    pub sources: Vec<String>,
    /// The chunks given to the model, best first.
    pub chunks: Vec<RetrievedChunk>,
    /// Why the search was less than it should have been (the embedding
    /// model was down and only lexical search ran, a source is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl RetrievalRecord {
    /// Marks the chunks whose `[n]` the answer contains as cited.
    pub fn mark_cited(&mut self, answer: &str) {
        let cited = cited_numbers(answer);
        for chunk in &mut self.chunks {
            chunk.cited = cited.contains(&chunk.number);
        }
    }

    /// The references to show under an answer: the cited chunks, one per
    /// document and heading, in number order.
    pub fn citations(&self) -> Vec<Citation> {
        let mut out: Vec<Citation> = Vec::new();
        for chunk in self.chunks.iter().filter(|c| c.cited) {
            if out
                .iter()
                .any(|c| c.title == chunk.title && c.link == chunk.link)
            {
                continue;
            }
            out.push(Citation {
                number: chunk.number,
                title: chunk.title.clone(),
                heading: chunk.heading.clone(),
                link: chunk.link.clone(),
                source: chunk.source.clone(),
            });
        }
        out
    }
}

impl RetrievalRecord {
    /// One line per chunk given to the model, for previews: number, title,
    /// scores and whether the answer cited it; then the warning, if any.
    pub fn describe(&self) -> String {
        let mut out = format!("retrieved from {}:", self.sources.join(", "));
        if self.chunks.is_empty() {
            out.push_str(" nothing");
        }
        for c in &self.chunks {
            let mut line = format!("\n[{}] {}", c.number, c.title);
            if !c.heading.is_empty() {
                line.push_str(&format!(" › {}", c.heading));
            }
            line.push_str(&format!(" (score {:.4}", c.score));
            if let Some(s) = c.similarity {
                line.push_str(&format!(", similarity {s:.3}"));
            }
            line.push(')');
            if c.cited {
                line.push_str(" cited");
            }
            out.push_str(&line);
        }
        if let Some(w) = &self.warning {
            out.push_str(&format!("\nwarning: {w}"));
        }
        out
    }
}

/// A numbered reference under an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// The number the answer uses (`[2]`).
    pub number: u32,
    /// The document's title.
    pub title: String,
    /// The heading inside it, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub heading: String,
    /// Where to read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The knowledge source.
    pub source: String,
}

impl Citation {
    /// `Title › Heading`, or the title alone.
    pub fn label(&self) -> String {
        if self.heading.is_empty() {
            self.title.clone()
        } else {
            format!("{} › {}", self.title, self.heading)
        }
    }
}

/// The reference numbers an answer cites: `[1]`, `[2, 3]`, `[1][4]`.
pub fn cited_numbers(answer: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        if !inside.is_empty()
            && inside
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
        {
            for n in inside
                .split(',')
                .filter_map(|n| n.trim().parse::<u32>().ok())
            {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        rest = &rest[close + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(number: u32, title: &str) -> RetrievedChunk {
        RetrievedChunk {
            number,
            chunk_id: i64::from(number),
            source: "handbook".into(),
            title: title.into(),
            heading: String::new(),
            link: Some(format!("{title}.md")),
            score: 0.1,
            similarity: None,
            cited: false,
        }
    }

    #[test]
    fn numbers_in_brackets_are_citations_and_other_brackets_are_not() {
        assert_eq!(
            cited_numbers("Retry three times [1]. See [2, 3][1]."),
            [1, 2, 3]
        );
        assert_eq!(
            cited_numbers("an array [a] or [ ] or [x1] or [1"),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn only_cited_chunks_become_references_once_per_document() {
        let mut record = RetrievalRecord {
            sources: vec!["handbook".into()],
            chunks: vec![chunk(1, "retries"), chunk(2, "oncall"), chunk(3, "retries")],
            warning: None,
        };
        record.mark_cited("Back off exponentially [3] and page on-call [2] [3].");
        let refs = record.citations();
        assert_eq!(
            refs.iter()
                .map(|c| (c.number, c.title.as_str()))
                .collect::<Vec<_>>(),
            [(2, "oncall"), (3, "retries")]
        );
        assert!(!record.chunks[0].cited);
    }
}
