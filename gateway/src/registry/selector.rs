//! How a caller names a version: a [`Selector`] is a label or a version number, written `v3`.

/// Which version of a prompt to use: through a label, or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A label (`production`, `staging`, `latest`, …).
    Label(String),
    /// A version number.
    Version(i64),
}

impl Selector {
    /// Parses `3`, `v3` or a label name.
    pub fn parse(s: &str) -> Selector {
        let digits = s.strip_prefix('v').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(v) if !digits.is_empty() => Selector::Version(v),
            _ => Selector::Label(s.to_string()),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Label(l) => f.write_str(l),
            Selector::Version(v) => write!(f, "v{v}"),
        }
    }
}
