//! Scope values (RFC 6749 §3.3): space-delimited, case-sensitive tokens of `NQCHAR`.

use std::collections::BTreeSet;
use std::fmt;

/// A set of scope tokens, kept sorted so equal sets print equally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope(BTreeSet<String>);

/// A scope string that is not RFC 6749 §3.3 syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope must be space-separated tokens of printable ASCII without '\"' or '\\\\'")]
pub struct ScopeError;

fn is_nqchar(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

impl Scope {
    /// Parses `scope-token *( SP scope-token )`. Empty input is the empty set. Runs of spaces are tolerated, as
    /// many clients send them; any other whitespace or a non-NQCHAR is refused.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !token.chars().all(is_nqchar) {
                return Err(ScopeError);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Builds a scope from tokens that are already known to be valid (from configuration checked at start).
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for t in tokens {
            let t = t.as_ref();
            if t.is_empty() || !t.chars().all(is_nqchar) {
                return Err(ScopeError);
            }
            set.insert(t.to_owned());
        }
        Ok(Self(set))
    }

    /// Whether no token is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `token` is present.
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Whether every token of `other` is in `self`.
    pub fn includes(&self, other: &Scope) -> bool {
        other.0.is_subset(&self.0)
    }

    /// Tokens in both.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// Tokens in either.
    pub fn union(&self, other: &Scope) -> Scope {
        Scope(self.0.union(&other.0).cloned().collect())
    }

    /// Tokens of `self` not in `other`.
    pub fn difference(&self, other: &Scope) -> Scope {
        Scope(self.0.difference(&other.0).cloned().collect())
    }

    /// The tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sorted() {
        let s = Scope::parse("write:jira-work  read:jira-work").unwrap();
        assert_eq!(s.to_string(), "read:jira-work write:jira-work");
        assert!(Scope::parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_non_nqchar() {
        assert_eq!(Scope::parse("a\"b"), Err(ScopeError));
        assert_eq!(Scope::parse("a\\b"), Err(ScopeError));
        assert_eq!(Scope::parse("a\tb"), Err(ScopeError));
        assert_eq!(Scope::parse("é"), Err(ScopeError));
        assert_eq!(Scope::parse("a\0"), Err(ScopeError));
    }

    #[test]
    fn set_operations() {
        let a = Scope::parse("x y").unwrap();
        let b = Scope::parse("y z").unwrap();
        assert_eq!(a.intersection(&b).to_string(), "y");
        assert_eq!(a.union(&b).to_string(), "x y z");
        assert_eq!(a.difference(&b).to_string(), "x");
        assert!(a.union(&b).includes(&a));
        assert!(!a.includes(&b));
    }
}
