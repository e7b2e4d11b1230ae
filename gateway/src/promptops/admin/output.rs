//! What a command answers: a platform-neutral [`Output`] (a summary and [`Section`]s of text,
//! code or tables) that each front end renders its own way, its plain-text form, and how
//! values are written in it (split arms as `v2:90,v3:10`, times in UTC).

use prompts::Arm;

/// A platform-neutral result: a one-line summary and sections to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// One line saying what happened.
    pub summary: String,
    /// Details.
    pub sections: Vec<Section>,
}

/// One part of an [`Output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    /// Plain text.
    Text(String),
    /// Preformatted text (`toml`, `diff`, or none).
    Code {
        /// A language hint for highlighting.
        language: Option<String>,
        /// The text.
        text: String,
    },
    /// A table.
    Table {
        /// Column names.
        columns: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
    },
}

impl Output {
    pub(super) fn new(summary: impl Into<String>) -> Output {
        Output {
            summary: summary.into(),
            sections: Vec::new(),
        }
    }

    pub(super) fn with(mut self, section: Section) -> Output {
        self.sections.push(section);
        self
    }

    /// Plain text, for terminals and logs.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.summary);
        for section in &self.sections {
            out.push('\n');
            match section {
                Section::Text(t) => {
                    out.push_str(t);
                    out.push('\n');
                }
                Section::Code { text, .. } => {
                    out.push_str(text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Section::Table { columns, rows } => {
                    let mut widths: Vec<usize> =
                        columns.iter().map(|c| c.chars().count()).collect();
                    for row in rows {
                        for (i, cell) in row.iter().enumerate() {
                            if let Some(w) = widths.get_mut(i) {
                                *w = (*w).max(cell.chars().count());
                            }
                        }
                    }
                    let line = |cells: &[String]| {
                        let mut l = cells
                            .iter()
                            .zip(&widths)
                            .map(|(c, w)| format!("{c:<w$}"))
                            .collect::<Vec<_>>()
                            .join("  ");
                        l.truncate(l.trim_end().len());
                        l.push('\n');
                        l
                    };
                    out.push_str(&line(columns));
                    for row in rows {
                        out.push_str(&line(row));
                    }
                }
            }
        }
        out
    }
}

pub(super) fn arms_text(arms: &[Arm]) -> String {
    if let [one] = arms {
        return format!("v{}", one.version);
    }
    arms.iter()
        .map(|a| format!("v{}:{}", a.version, a.weight))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn stored_arms_text(json: &str) -> String {
    serde_json::from_str::<Vec<Arm>>(json)
        .map(|a| arms_text(&a))
        .unwrap_or_else(|_| json.to_string())
}

/// Audit values as people read them: arms as `v3` or `v2:90,v3:10`.
pub(super) fn readable(value: &str) -> String {
    if value.starts_with('[') {
        stored_arms_text(value)
    } else {
        value.to_string()
    }
}

/// Unix milliseconds as `2026-11-28 14:05:09 UTC`.
pub(super) fn format_ms(ms: i64) -> String {
    crate::domain::Utc::from_ms(ms).to_string()
}
