//! Environment: the request for the target's environment variables, filtered by include and exclude
//! patterns, and the variables that come back.

use serde::{Deserialize, Serialize};

/// Asks for the target's environment variables.
///
/// Patterns are matched against the whole variable name, case-sensitively; `*` matches any run of characters
/// (also none) and `?` exactly one. A variable is returned when `include` is empty or one of its patterns
/// matches, and no `exclude` pattern matches. [`GetEnvRequest::selects`] is that rule, so every side agrees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEnvRequest {
    /// Only these variables (all when empty).
    pub include: Vec<String>,
    /// Never these variables.
    pub exclude: Vec<String>,
}

impl GetEnvRequest {
    /// Whether a variable with this name is part of the answer.
    pub fn selects(&self, name: &str) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|pattern| glob_matches(pattern, name));
        included
            && !self
                .exclude
                .iter()
                .any(|pattern| glob_matches(pattern, name))
    }
}

/// One environment variable of the target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvVar {
    /// The name.
    pub name: String,
    /// The value (invalid UTF-8 is replaced by the agent).
    pub value: String,
}

/// Matches `*` and `?` wildcards, in time linear in `pattern.len() * name.len()` at worst (no backtracking
/// blow-up on patterns like `a*a*a*b`).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the position in `name` it is currently taken to extend to.
    let mut last_star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                last_star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match last_star {
                // Let the last `*` swallow one more character and try again after it.
                Some((star, star_n)) => {
                    last_star = Some((star, star_n + 1));
                    p = star + 1;
                    n = star_n + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, name: &str, expected: bool) {
        assert_eq!(
            glob_matches(pattern, name),
            expected,
            "{pattern:?} vs {name:?}"
        );
    }

    #[test]
    fn glob_patterns() {
        check("PATH", "PATH", true);
        check("PATH", "PATHS", false);
        check("DB_*", "DB_HOST", true);
        check("DB_*", "DB_", true);
        check("DB_*", "XDB_HOST", false);
        check("*_URL", "REDIS_URL", true);
        check("*", "", true);
        check("", "", true);
        check("", "A", false);
        check("A?C", "ABC", true);
        check("A?C", "AC", false);
        check("a*b*c", "aXXbYYc", true);
        check("a*b*c", "aXXbYY", false);
        check("*a*a*a*a*b", &"a".repeat(200), false);
        check("ÄÖ*", "ÄÖÜ", true);
        check("db_*", "DB_HOST", false);
    }

    #[test]
    fn include_then_exclude() {
        let request = GetEnvRequest {
            include: vec!["DB_*".into(), "HOME".into()],
            exclude: vec!["DB_PASSWORD".into()],
        };
        assert!(request.selects("DB_HOST"));
        assert!(request.selects("HOME"));
        assert!(!request.selects("DB_PASSWORD"));
        assert!(!request.selects("PATH"));
        let everything_but = GetEnvRequest {
            include: vec![],
            exclude: vec!["LD_*".into()],
        };
        assert!(everything_but.selects("PATH"));
        assert!(!everything_but.selects("LD_PRELOAD"));
    }
}
