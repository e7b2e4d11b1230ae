//! Deterministic checks of one answer, the part of an evaluation that
//! needs no judge: text it must or must not contain, a regular expression,
//! a length limit, no refusal, valid JSON, JSON valid against a schema.
//! Each is written on the command line as `NAME` or `NAME:ARGUMENT`.

use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;

/// A deterministic check of one answer.
#[derive(Debug, Clone)]
pub enum Check {
    /// The answer contains this text (case-insensitive).
    Contains(String),
    /// The answer does not contain this text (case-insensitive).
    NotContains(String),
    /// The answer matches this regular expression somewhere.
    Regex(regex::Regex),
    /// The answer is at most this many characters.
    MaxChars(usize),
    /// The answer is not a refusal ("I can't help with that").
    NoRefusal,
    /// The answer is valid JSON.
    Json,
    /// The answer is JSON that the JSON Schema in this file accepts.
    JsonSchema(JsonSchema),
}

/// A compiled JSON Schema (drafts 4 to 2020-12) and the file it came from.
#[derive(Clone)]
pub struct JsonSchema {
    path: String,
    schemas: Arc<boon::Schemas>,
    index: boon::SchemaIndex,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonSchema({})", self.path)
    }
}

impl JsonSchema {
    /// Reads and compiles the schema in `path`. Its `$ref`s may point at
    /// other local files; nothing is fetched from the network.
    pub fn load(path: &str) -> Result<JsonSchema, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the JSON Schema `{path}` ({e})"))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the JSON Schema `{path}` is not JSON ({e})"))?;
        let absolute = std::fs::canonicalize(path)
            .map_err(|e| format!("cannot resolve the JSON Schema path `{path}` ({e})"))?;
        let url = format!("file://{}", absolute.display());
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource(&url, value)
            .map_err(|e| format!("the JSON Schema `{path}` is not usable: {e:#}"))?;
        let index = compiler
            .compile(&url, &mut schemas)
            .map_err(|e| format!("the JSON Schema `{path}` is not usable: {e:#}"))?;
        Ok(JsonSchema {
            path: path.to_string(),
            schemas: Arc::new(schemas),
            index,
        })
    }

    fn accepts(&self, value: &Value) -> bool {
        self.schemas.validate(value, self.index).is_ok()
    }
}

impl FromStr for Check {
    type Err = String;

    fn from_str(s: &str) -> Result<Check, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        match name {
            "contains" if !arg.is_empty() => Ok(Check::Contains(arg.to_string())),
            "not-contains" if !arg.is_empty() => Ok(Check::NotContains(arg.to_string())),
            "regex" if !arg.is_empty() => regex::Regex::new(arg)
                .map(Check::Regex)
                .map_err(|e| format!("`{s}`: the regular expression does not compile: {e}")),
            "max-chars" => arg
                .parse()
                .map(Check::MaxChars)
                .map_err(|_| format!("`{s}`: write max-chars:N with a whole number")),
            "no-refusal" => Ok(Check::NoRefusal),
            "json" => Ok(Check::Json),
            "json-schema" if !arg.is_empty() => JsonSchema::load(arg).map(Check::JsonSchema),
            "contains" | "not-contains" => Err(format!("`{s}`: write {name}:TEXT")),
            "regex" => Err(format!("`{s}`: write regex:PATTERN")),
            "json-schema" => Err(format!(
                "`{s}`: write json-schema:FILE, naming a JSON Schema file"
            )),
            _ => Err(format!(
                "`{s}` is not a check; use contains:TEXT, not-contains:TEXT, regex:PATTERN, \
                 max-chars:N, no-refusal, json or json-schema:FILE"
            )),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Contains(t) => write!(f, "contains:{t}"),
            Check::NotContains(t) => write!(f, "not-contains:{t}"),
            Check::Regex(r) => write!(f, "regex:{}", r.as_str()),
            Check::MaxChars(n) => write!(f, "max-chars:{n}"),
            Check::NoRefusal => f.write_str("no-refusal"),
            Check::Json => f.write_str("json"),
            Check::JsonSchema(s) => write!(f, "json-schema:{}", s.path),
        }
    }
}

impl Check {
    /// Whether `answer` passes.
    pub fn passes(&self, answer: &str) -> bool {
        let lower = answer.to_lowercase();
        match self {
            Check::Contains(t) => lower.contains(&t.to_lowercase()),
            Check::NotContains(t) => !lower.contains(&t.to_lowercase()),
            Check::Regex(r) => r.is_match(answer),
            Check::MaxChars(n) => answer.chars().count() <= *n,
            Check::NoRefusal => !is_refusal(&lower),
            Check::Json => json_of(answer).is_some(),
            Check::JsonSchema(s) => json_of(answer).is_some_and(|v| s.accepts(&v)),
        }
    }
}

/// The JSON an answer holds: the whole answer, or the inside of one
/// fenced code block that is the whole answer (chat models often fence).
fn json_of(answer: &str) -> Option<Value> {
    let t = answer.trim();
    let inner = t
        .strip_prefix("```")
        .and_then(|rest| rest.strip_suffix("```"))
        .map(|body| body.strip_prefix("json").unwrap_or(body));
    serde_json::from_str(inner.unwrap_or(t).trim()).ok()
}

/// A conservative refusal detector: the answer opens by declining.
fn is_refusal(lower: &str) -> bool {
    let start: String = lower.trim_start().chars().take(80).collect();
    [
        "i can't help",
        "i cannot help",
        "i can’t help",
        "i'm sorry, but i can",
        "i’m sorry, but i can",
        "i am unable to",
        "i'm unable to",
        "i won't be able to",
        "as an ai",
    ]
    .iter()
    .any(|p| start.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_their_names_parse() {
        let c: Check = "contains:Paris".parse().unwrap();
        assert!(c.passes("It is paris.") && !c.passes("Lyon"));
        assert!(Check::MaxChars(5).passes("12345") && !Check::MaxChars(5).passes("123456"));
        assert!(!Check::NoRefusal.passes("I'm sorry, but I can't help with that."));
        assert!(Check::NoRefusal.passes("Sure: here it is."));
        assert!(Check::Json.passes(" {\"a\": 1} ") && !Check::Json.passes("{a:1}"));
        assert!(Check::Json.passes("```json\n{\"a\": 1}\n```"));
        assert!(
            "max-chars:x"
                .parse::<Check>()
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            "frob"
                .parse::<Check>()
                .unwrap_err()
                .contains("is not a check")
        );
        // A check that needs an argument says so.
        for (given, hint) in [
            ("contains", "write contains:TEXT"),
            ("not-contains:", "write not-contains:TEXT"),
            ("regex", "write regex:PATTERN"),
            ("json-schema", "write json-schema:FILE"),
        ] {
            let err = given.parse::<Check>().unwrap_err();
            assert!(err.contains(hint), "{given}: {err}");
        }
        for name in [
            "contains:a",
            "regex:^a+$",
            "max-chars:3",
            "no-refusal",
            "json",
        ] {
            assert_eq!(name.parse::<Check>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn a_regex_check_matches_anywhere_and_a_bad_pattern_is_named() {
        let c: Check = r"regex:\bTICKET-\d+\b".parse().unwrap();
        assert!(c.passes("Filed as TICKET-42, thanks."));
        assert!(!c.passes("Filed as TICKET-, thanks."));
        let err = "regex:(unclosed".parse::<Check>().unwrap_err();
        assert!(
            err.contains("regex:(unclosed") && err.contains("does not compile"),
            "{err}"
        );
    }

    #[test]
    fn a_json_schema_check_validates_answers_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answer.schema.json");
        std::fs::write(
            &path,
            r#"{"type": "object", "required": ["city"],
                "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
                "additionalProperties": false}"#,
        )
        .unwrap();
        let c: Check = format!("json-schema:{}", path.display()).parse().unwrap();
        assert!(c.passes(r#"{"city": "Paris", "population": 2100000}"#));
        assert!(c.passes("```json\n{\"city\": \"Paris\"}\n```"));
        assert!(!c.passes(r#"{"population": 2100000}"#), "missing city");
        assert!(!c.passes(r#"{"city": "Paris", "population": -1}"#));
        assert!(!c.passes(r#"{"city": "Paris", "mayor": "x"}"#));
        assert!(!c.passes("Paris"), "not JSON at all");
        assert_eq!(c.to_string(), format!("json-schema:{}", path.display()));

        let missing = "json-schema:/nonexistent/s.json"
            .parse::<Check>()
            .unwrap_err();
        assert!(
            missing.contains("cannot read the JSON Schema `/nonexistent/s.json`"),
            "{missing}"
        );
        std::fs::write(&path, r#"{"type": "no-such-type"}"#).unwrap();
        let bad = format!("json-schema:{}", path.display())
            .parse::<Check>()
            .unwrap_err();
        assert!(bad.contains("is not usable"), "{bad}");
    }
}
