//! The LLM judge, in its two roles:
//!
//! - pairwise preference: shown the question and both answers, it picks
//!   A, B or a tie; it is asked twice with the answers swapped, and only
//!   agreement counts, which cancels position bias;
//! - rubric scoring: shown the rubric, the question and one answer, it
//!   gives a score from 1 to 5 with its reason;
//! - groundedness: shown the documents an answer cited (or, when it cited
//!   none, every document it was given) and the answer, it lists each
//!   claim as supported by them or not.
//!
//! The judge is any model alias; its calls are recorded as tests.

use serde::Serialize;

use super::collect;
use crate::domain::{ChatMessage, Origin, Params, Role};
use crate::domain::{Input, Purpose, Request};
use crate::pipeline::Pipeline;

/// The judge's decision on one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The candidate's answer is better.
    Candidate,
    /// The baseline's answer is better.
    Baseline,
    /// No preference, or the two orders disagreed.
    Tie,
}

/// Combines the judge's two readings: `first` with the candidate shown as
/// answer A, `second` with it shown as B. Only agreement counts.
pub fn combine(first: Option<char>, second: Option<char>) -> Verdict {
    match (first, second) {
        (Some('A'), Some('B')) => Verdict::Candidate,
        (Some('B'), Some('A')) => Verdict::Baseline,
        _ => Verdict::Tie,
    }
}

/// Reads `A`, `B` or a tie (`None`) from the judge's reply.
pub fn parse_choice(reply: &str) -> Option<char> {
    let t = reply
        .trim()
        .trim_start_matches(['*', '"', '\'', '('])
        .to_uppercase();
    if t.starts_with("TIE") {
        return None;
    }
    match t.chars().next() {
        Some(c @ ('A' | 'B')) if !t.chars().nth(1).is_some_and(char::is_alphanumeric) => Some(c),
        _ => None,
    }
}

/// Asks the judge which answer is better; returns its raw reply.
pub(super) async fn prefer(
    pipeline: &Pipeline,
    judge: &str,
    question: &str,
    a: &str,
    b: &str,
) -> String {
    let system = "You are an impartial judge of answers in a team chat. Compare two answers to the \
                  user's question for correctness, helpfulness and concision. Ignore their order \
                  and length as such. Reply with exactly one word: A, B or TIE.";
    let user = format!(
        "Question:\n{question}\n\n[Answer A]\n{a}\n[End of answer A]\n\n[Answer B]\n{b}\n[End of answer B]\n\nWhich answer is better? Reply A, B or TIE."
    );
    ask(pipeline, judge, system, user, 8).await
}

/// A rubric score of one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// 1 (fails the rubric) to 5 (meets it fully); `None` when the judge's
    /// reply held no score.
    pub score: Option<u8>,
    /// The judge's reason (or its whole reply when it gave no reason).
    pub reason: String,
}

/// Reads `SCORE: N` (or a reply that opens with the digit) and the
/// `REASON:` that follows.
pub fn parse_score(reply: &str) -> Score {
    let digit_at = |rest: &str| {
        let rest = rest.trim_start_matches([' ', ':', '*', '=', '\t']);
        let mut chars = rest.chars();
        match (chars.next(), chars.next()) {
            (Some(c @ '1'..='5'), next) if !next.is_some_and(|n| n.is_ascii_digit()) => {
                Some(c as u8 - b'0')
            }
            _ => None,
        }
    };
    let score = match find_word(reply, "score") {
        Some(at) => digit_at(&reply[at + "score".len()..]),
        None => digit_at(reply.trim_start()),
    };
    let reason = match find_word(reply, "reason") {
        Some(at) => reply[at + "reason".len()..].trim_start_matches([':', ' ', '*']),
        None => reply,
    };
    Score {
        score,
        reason: reason.trim().chars().take(500).collect(),
    }
}

/// The byte offset of ASCII `word` in `text`, ignoring case.
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.as_bytes()
        .windows(word.len())
        .position(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// Asks the judge to score `answer` against `rubric`.
pub(super) async fn score(
    pipeline: &Pipeline,
    judge: &str,
    rubric: &str,
    question: &str,
    answer: &str,
) -> Score {
    let system = "You are a strict grader of answers in a team chat. Score the answer against the \
                  rubric from 1 (fails it) to 5 (meets it fully). Reply with two lines: \
                  `SCORE: N`, then `REASON: ` and one sentence.";
    let user = format!(
        "Rubric:\n{rubric}\n\nQuestion:\n{question}\n\n[Answer]\n{answer}\n[End of answer]\n\nScore the answer against the rubric."
    );
    parse_score(&ask(pipeline, judge, system, user, 200).await)
}

/// How well an answer's claims are supported by its documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Groundedness {
    /// Claims the documents support.
    pub supported: usize,
    /// Claims they do not.
    pub unsupported: Vec<String>,
    /// `cited` (the documents the answer cited) or `retrieved` (it cited
    /// none, so every document it was given).
    pub against: &'static str,
}

impl Groundedness {
    /// The share of claims supported; `None` when the answer made none.
    pub fn rate(&self) -> Option<f64> {
        let all = self.supported + self.unsupported.len();
        (all > 0).then(|| self.supported as f64 / all as f64)
    }
}

/// Reads the judge's `SUPPORTED: claim` / `UNSUPPORTED: claim` lines
/// (bullets, numbers and emphasis around them allowed); other lines are
/// ignored.
pub fn parse_grounded(reply: &str, against: &'static str) -> Groundedness {
    let mut g = Groundedness {
        supported: 0,
        unsupported: Vec::new(),
        against,
    };
    for line in reply.lines() {
        let l = line.trim().trim_start_matches(|c: char| {
            c == '-'
                || c == '*'
                || c == '•'
                || c.is_ascii_digit()
                || c == '.'
                || c == ')'
                || c == ' '
        });
        let upper = l.to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix("UNSUPPORTED") {
            let claim = l[l.len() - rest.len()..]
                .trim_start_matches([':', '*', ' ', '-'])
                .trim();
            g.unsupported.push(claim.chars().take(300).collect());
        } else if upper.starts_with("SUPPORTED") {
            g.supported += 1;
        }
    }
    g
}

/// Asks the judge whether each claim of `answer` is supported by
/// `documents` (numbered as the model saw them).
pub(super) async fn grounded(
    pipeline: &Pipeline,
    judge: &str,
    question: &str,
    answer: &str,
    documents: &str,
    against: &'static str,
) -> Groundedness {
    let system = "You check whether an answer is grounded in documents. Split the answer into its                   factual claims (ignore greetings, hedges and citations themselves). For each                   claim write one line: `SUPPORTED: <claim>` when the documents state or directly                   imply it, otherwise `UNSUPPORTED: <claim>`. Judge only against the documents,                   not what you know. Write nothing else.";
    let user = format!(
        "Documents:
{documents}

Question:
{question}

[Answer]
{answer}
[End of answer]

List each claim of the answer as SUPPORTED or UNSUPPORTED."
    );
    parse_grounded(&ask(pipeline, judge, system, user, 400).await, against)
}

async fn ask(
    pipeline: &Pipeline,
    judge: &str,
    system: &str,
    user: String,
    max_tokens: u32,
) -> String {
    let mut request = Request::new(
        Origin {
            platform: "eval".into(),
            user: Some(crate::domain::User::new("eval", "eval-judge")),
            ..Origin::default()
        },
        Input::Messages {
            alias: judge.to_string(),
            messages: vec![
                ChatMessage::new(Role::System, system),
                ChatMessage::new(Role::User, user),
            ],
        },
    );
    request.purpose = Purpose::Test;
    request.params = Params {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Params::default()
    };
    let out = collect(pipeline, request).await;
    out.error
        .map_or(out.text, |e| format!("(judge failed: {e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_agreeing_orders_decide_and_ties_absorb_position_bias() {
        // The candidate was A first, then B: it won both times.
        assert_eq!(combine(Some('A'), Some('B')), Verdict::Candidate);
        assert_eq!(combine(Some('B'), Some('A')), Verdict::Baseline);
        // A judge that always picks the first answer decides nothing.
        assert_eq!(combine(Some('A'), Some('A')), Verdict::Tie);
        assert_eq!(combine(Some('B'), Some('B')), Verdict::Tie);
        assert_eq!(combine(None, Some('B')), Verdict::Tie);
        assert_eq!(parse_choice(" **A**"), Some('A'));
        assert_eq!(parse_choice("B."), Some('B'));
        assert_eq!(parse_choice("TIE"), None);
        assert_eq!(parse_choice("Both are fine"), None);
    }

    #[test]
    fn grounded_replies_count_supported_claims_and_keep_the_unsupported() {
        let g = parse_grounded(
            "1. SUPPORTED: Calls are retried three times.\n- **UNSUPPORTED**: The backoff is 5 s.\nSome preamble\nsupported: it is exponential",
            "cited",
        );
        assert_eq!(g.supported, 2);
        assert_eq!(g.unsupported, vec!["The backoff is 5 s.".to_string()]);
        assert!((g.rate().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(parse_grounded("No claims here.", "cited").rate(), None);
    }

    #[test]
    fn rubric_replies_give_a_score_and_a_reason() {
        let s = parse_score("SCORE: 4\nREASON: Correct, but it rambles.");
        assert_eq!(s.score, Some(4));
        assert_eq!(s.reason, "Correct, but it rambles.");
        assert_eq!(parse_score("**Score**: 2 — wrong city").score, Some(2));
        assert_eq!(parse_score("5. It is exactly right.").score, Some(5));
        // Out of range or absent: no score, and the reply is kept as the reason.
        let s = parse_score("Score: 10");
        assert_eq!(s.score, None);
        let s = parse_score("I would rather not grade this.");
        assert_eq!(
            (s.score, s.reason.as_str()),
            (None, "I would rather not grade this.")
        );
    }
}
