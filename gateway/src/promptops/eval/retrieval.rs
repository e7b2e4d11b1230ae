//! Retrieval metrics: how well a prompt version's `[retrieval]` finds what
//! answers a question, on a labelled file (one JSON object a line:
//! `{"question": "...", "documents": ["retry.md"]}` or `"chunks": [12, 40]`;
//! `pages` is read as `documents`). A question is found when a labelled
//! document (a document key, or its last path segments) or chunk is among
//! the `top_k` chunks the version's settings retrieve; recall@k is the share
//! found, MRR the mean of 1 / the rank of the first match (0 when missed).

use serde::Deserialize;

use crate::knowledge::{Knowledge, KnowledgeError, SearchQuery, Viewer};

/// One labelled question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Labelled {
    /// The question.
    pub question: String,
    /// Documents that answer it: keys (`handbook/retry.md`) or their ends
    /// (`retry.md`).
    #[serde(default, alias = "pages")]
    pub documents: Vec<String>,
    /// Chunk ids that answer it.
    #[serde(default)]
    pub chunks: Vec<i64>,
}

/// Reads a labelled file; `name` names it in errors.
pub fn labelled_from_jsonl(name: &str, text: &str) -> Result<Vec<Labelled>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Labelled = serde_json::from_str(line).map_err(|e| {
            format!(
                "{name}, line {}: not a labelled question ({e}); write {{\"question\": \"...\", \"documents\": [\"file.md\"]}}",
                i + 1
            )
        })?;
        if l.question.trim().is_empty() || (l.documents.is_empty() && l.chunks.is_empty()) {
            return Err(format!(
                "{name}, line {}: give a question and at least one of `documents` or `chunks`",
                i + 1
            ));
        }
        out.push(l);
    }
    if out.is_empty() {
        return Err(format!("{name}: no labelled questions in it"));
    }
    Ok(out)
}

/// How one configuration did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrievalScore {
    /// Questions asked.
    pub questions: usize,
    /// The k of recall@k (the settings' `top_k`).
    pub k: usize,
    /// Share of questions with a match in the top k.
    pub recall: f64,
    /// Mean reciprocal rank of the first match.
    pub mrr: f64,
    /// Questions with no match.
    pub missed: Vec<String>,
    /// Warnings from the searches (lexical only, missing sources), once each.
    pub warnings: Vec<String>,
    /// Mean search time, ms, embedding of the question excluded.
    pub search_ms: f64,
}

/// Whether a document key matches a label: equal, or ending in `/label`.
fn matches(doc_key: &str, label: &str) -> bool {
    doc_key == label || doc_key.ends_with(&format!("/{label}"))
}

/// Scores `query`'s settings (its text is replaced by each question) on
/// `labelled`, searching as the operator (every source).
pub async fn score(
    knowledge: &Knowledge,
    query: &SearchQuery,
    labelled: &[Labelled],
) -> Result<RetrievalScore, KnowledgeError> {
    let mut s = RetrievalScore {
        questions: labelled.len(),
        k: query.top_k,
        ..RetrievalScore::default()
    };
    let (mut found, mut rr, mut ms) = (0usize, 0f64, 0f64);
    for l in labelled {
        let q = SearchQuery {
            text: l.question.clone(),
            ..query.clone()
        };
        let result = knowledge.search(&q, &Viewer::operator()).await?;
        ms += result.search_ms;
        for w in result.warnings {
            if !s.warnings.contains(&w) {
                s.warnings.push(w);
            }
        }
        let rank = result.hits.iter().position(|h| {
            l.chunks.contains(&h.chunk.id)
                || l.documents.iter().any(|d| matches(&h.chunk.doc_key, d))
        });
        match rank {
            Some(r) => {
                found += 1;
                rr += 1.0 / (r as f64 + 1.0);
            }
            None => s.missed.push(l.question.clone()),
        }
    }
    let n = labelled.len().max(1) as f64;
    s.recall = found as f64 / n;
    s.mrr = rr / n;
    s.search_ms = ms / n;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_a_document_by_its_key_or_its_end() {
        assert!(matches("html/sql-vacuum.html", "sql-vacuum.html"));
        assert!(matches("handbook/team/oncall.md", "team/oncall.md"));
        assert!(!matches("handbook/oncall.md.bak", "oncall.md"));
        assert!(!matches("handbook/xoncall.md", "oncall.md"));
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let ok = "{\"question\": \"q\", \"pages\": [\"a.html\"]}\n\n{\"question\": \"r\", \"chunks\": [3]}\n";
        let l = labelled_from_jsonl("f", ok).expect("parses");
        assert_eq!(l[0].documents, ["a.html"]);
        assert_eq!(l[1].chunks, [3]);
        let err = labelled_from_jsonl("f", "{\"question\": \"q\", \"documents\": [\"a\"]}\n{oops")
            .unwrap_err();
        assert!(err.starts_with("f, line 2:"), "{err}");
        let err = labelled_from_jsonl("f", "{\"question\": \"q\"}").unwrap_err();
        assert!(err.contains("at least one of"), "{err}");
    }
}
