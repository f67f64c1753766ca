//! Config errors a user can cause, each with the place in the file that caused it.

use std::fmt;

/// One problem found in a config, at a 1-based line and column (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Issue {
    pub fn at(loc: serde_saphyr::Location, message: impl Into<String>) -> Self {
        Issue {
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        }
    }

    /// A problem with no position (a missing top-level key, say): reported at 1:1.
    pub fn top(message: impl Into<String>) -> Self {
        Issue {
            line: 1,
            column: 1,
            message: message.into(),
        }
    }
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read the config file: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Rendered { origin, issues })]
    Invalid { origin: String, issues: Vec<Issue> },
}

impl ConfigError {
    /// The individual problems, for callers (the admin API, tests) that want them apart.
    pub fn issues(&self) -> &[Issue] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { issues, .. } => issues,
        }
    }
}

/// Renders issues the way compilers do, one per line: `file:line:column: message`,
/// so editors and CI logs can jump to them.
struct Rendered<'a> {
    origin: &'a str,
    issues: &'a [Issue],
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin, issue.line, issue.column, issue.message
            )?;
        }
        Ok(())
    }
}
