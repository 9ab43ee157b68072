//! Shell-style wildcards (`*`, `?`, `[abc]`, `[!abc]`, `[a-z]`), as
//! SkyPilot uses them for cluster names (`sky status 'dev-*'`) and
//! `.skyignore` entries.
//!
//! Matching is the greedy two-pointer algorithm: on a mismatch it only
//! ever retries from the last `*`, so it takes O(pattern × text) steps at
//! worst, whatever the pattern. (Trying every split at every `*`, as a
//! naive recursive matcher does, is exponential in the number of stars:
//! `*a*a*a*a*a*a*a*a*b` against a long name never finishes.)
//!
//! Patterns that come from a client are parsed into a [`GlobPattern`] at
//! the trust boundary, where their length and number are capped.

use crate::limits::limit_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Longest pattern accepted from a client, in characters: a cluster name
/// is at most 63, and classes (`[0-9]`) make a pattern longer than what it
/// matches.
pub const MAX_GLOB_PATTERN_CHARS: usize = 128;

/// Most patterns one request may carry (`sky status a b c …`).
pub const MAX_GLOB_PATTERNS: usize = 100;

/// Whether `text` matches `pattern` as a whole. `*` matches any run of
/// characters, `/` included: callers that match paths split them first.
pub fn matches(pattern: &str, text: &str) -> bool {
    matches_tokens(&tokenize(pattern), text)
}

/// Whether `pattern` uses any wildcard, i.e. may match more than itself.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// A wildcard pattern from a client: bounded, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobPattern {
    source: String,
    tokens: Vec<Token>,
}

/// A pattern that broke the limits. Its message names the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError(String);

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GlobError {}

impl GlobPattern {
    pub fn new(source: impl Into<String>) -> Result<Self, GlobError> {
        let source = source.into();
        let chars = source.chars().count();
        if chars > MAX_GLOB_PATTERN_CHARS {
            let shown: String = source.chars().take(40).collect();
            return Err(GlobError(limit_error(format_args!(
                "the pattern {shown:?}… is {chars} characters long; a name or glob pattern is at \
                 most {MAX_GLOB_PATTERN_CHARS} characters"
            ))));
        }
        Ok(Self {
            tokens: tokenize(&source),
            source,
        })
    }

    /// Parses a request's list of patterns, refusing more than
    /// [`MAX_GLOB_PATTERNS`].
    pub fn parse_all<S: Into<String>>(
        sources: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Self>, GlobError> {
        let mut out = Vec::new();
        for source in sources {
            if out.len() == MAX_GLOB_PATTERNS {
                return Err(too_many());
            }
            out.push(Self::new(source)?);
        }
        Ok(out)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        matches_tokens(&self.tokens, text)
    }

    /// Whether the pattern uses any wildcard.
    pub fn is_pattern(&self) -> bool {
        is_pattern(&self.source)
    }
}

fn too_many() -> GlobError {
    GlobError(limit_error(format_args!(
        "too many names or patterns; one request takes at most {MAX_GLOB_PATTERNS} (use a \
         wildcard such as 'dev-*' to name many clusters at once)"
    )))
}

impl fmt::Display for GlobPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for GlobPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for GlobPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::new(source).map_err(serde::de::Error::custom)
    }
}

/// Deserializes an optional list of patterns with the count cap checked
/// before the whole list is held: `#[serde(deserialize_with = …)]`.
pub fn deserialize_patterns<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<GlobPattern>>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Option<Vec<GlobPattern>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of cluster names or glob patterns, or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pattern) = seq.next_element::<GlobPattern>()? {
                if out.len() == MAX_GLOB_PATTERNS {
                    return Err(serde::de::Error::custom(too_many()));
                }
                out.push(pattern);
            }
            Ok(Some(out))
        }
    }
    deserializer.deserialize_option(Bounded)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: any one character.
    Any,
    Literal(char),
    Class(Class),
}

/// A `[...]` class.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Token {
    /// Whether this one-character token matches `c` (never for `*`).
    fn matches_char(&self, c: char) -> bool {
        match self {
            Self::Star => false,
            Self::Any => true,
            Self::Literal(l) => *l == c,
            Self::Class(class) => {
                class.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != class.negated
            }
        }
    }
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            // Consecutive stars match what one does.
            '*' if tokens.last() == Some(&Token::Star) => i += 1,
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            '?' => {
                tokens.push(Token::Any);
                i += 1;
            }
            '[' => match class(&chars[i + 1..]) {
                Some((class, used)) => {
                    tokens.push(Token::Class(class));
                    i += 1 + used;
                }
                // An unclosed `[` is a literal, as in fnmatch.
                None => {
                    tokens.push(Token::Literal('['));
                    i += 1;
                }
            },
            c => {
                tokens.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    tokens
}

/// The class that starts after a `[`, and how many characters it used
/// (its closing `]` included); `None` when it is never closed.
fn class(after_bracket: &[char]) -> Option<(Class, usize)> {
    let negated = after_bracket.first() == Some(&'!');
    let body = if negated {
        &after_bracket[1..]
    } else {
        after_bracket
    };
    // A `]` right after the opening bracket is a member, not the end.
    let close = body.iter().skip(1).position(|c| *c == ']')? + 1;
    let members = &body[..close];
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            ranges.push((members[i], members[i + 2]));
            i += 3;
        } else {
            ranges.push((members[i], members[i]));
            i += 1;
        }
    }
    Some((Class { negated, ranges }, usize::from(negated) + close + 1))
}

/// The greedy two-pointer match: advance on a one-character match; at a
/// `*`, remember where it was and let it match nothing; on a mismatch, let
/// the last `*` swallow one more character and resume after it. Earlier
/// stars never need revisiting, since the last one can absorb anything
/// they could have.
fn matches_tokens(tokens: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Pattern position after the last `*`, and text position it resumed at.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                resume = Some((p + 1, t));
                p += 1;
            }
            Some(token) if token.matches_char(text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((after_star, from)) => {
                    resume = Some((after_star, from + 1));
                    p = after_star;
                    t = from + 1;
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards_match_like_fnmatch() {
        assert!(matches("dev-*", "dev-1"));
        assert!(matches("dev-*", "dev-"));
        assert!(!matches("dev-*", "prod-1"));
        assert!(matches("c?", "c1"));
        assert!(!matches("c?", "c12"));
        assert!(matches("*.py[co]", "a.pyc"));
        assert!(!matches("*.py[!co]", "a.pyc"));
        assert!(matches("run[0-9]", "run7"));
        assert!(matches("exact", "exact"));
        assert!(matches("a[", "a["));
        assert!(matches("[]]", "]"));
        assert!(matches("[!]]", "a"));
        assert!(matches("**", ""));
        assert!(!matches("?", ""));
        assert!(matches("*a*b", "xaxxb"));
        assert!(!matches("*a*b", "xaxxbc"));
    }

    #[test]
    fn only_wildcards_make_a_pattern() {
        assert!(is_pattern("dev-*"));
        assert!(!is_pattern("dev-1"));
    }

    #[test]
    fn a_pathological_pattern_on_a_long_name_answers() {
        // Exponential for a backtracking matcher: 2^16 splits and more per
        // try. Linear here; the test only has to finish.
        let pattern = GlobPattern::new("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b").unwrap();
        let name = "a".repeat(63);
        for _ in 0..1000 {
            assert!(!pattern.matches(&name));
        }
        assert!(pattern.matches(&format!("{name}b")));
    }

    #[test]
    fn client_patterns_are_bounded() {
        let long = "a".repeat(MAX_GLOB_PATTERN_CHARS + 1);
        let err = GlobPattern::new(long).unwrap_err().to_string();
        assert!(err.contains("at most 128 characters"), "{err}");
        assert!(crate::limits::is_limit_error(&err), "{err}");
        let many = vec!["a"; MAX_GLOB_PATTERNS + 1];
        let err = GlobPattern::parse_all(many.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 100"), "{err}");
        assert!(GlobPattern::parse_all(many[1..].to_vec()).is_ok());

        #[derive(Debug, Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "deserialize_patterns")]
            names: Option<Vec<GlobPattern>>,
        }
        let body: Body = serde_json::from_str(r#"{"names": ["dev-*", "c1"]}"#).unwrap();
        assert_eq!(body.names.unwrap()[0].as_str(), "dev-*");
        let body: Body = serde_json::from_str(r#"{"names": null}"#).unwrap();
        assert!(body.names.is_none());
        let too_many = serde_json::json!({ "names": many }).to_string();
        let err = serde_json::from_str::<Body>(&too_many).unwrap_err();
        assert!(err.to_string().contains("at most 100"), "{err}");
    }

    /// The obvious matcher: tries every split at every `*`. Exponential in
    /// the number of stars, so only for short inputs.
    fn reference(pattern: &[char], text: &[char]) -> bool {
        match pattern.first() {
            None => text.is_empty(),
            Some('*') => (0..=text.len()).any(|skip| reference(&pattern[1..], &text[skip..])),
            Some('?') => !text.is_empty() && reference(&pattern[1..], &text[1..]),
            Some('[') => match (class(&pattern[1..]), text.first()) {
                (Some((class, used)), Some(c)) => {
                    Token::Class(class).matches_char(*c)
                        && reference(&pattern[1 + used..], &text[1..])
                }
                (None, Some('[')) => reference(&pattern[1..], &text[1..]),
                _ => false,
            },
            Some(c) => text.first() == Some(c) && reference(&pattern[1..], &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn greedy_matching_agrees_with_backtracking(
            pattern in "[ab*?\\[\\]!-]{0,10}",
            text in "[ab\\[\\]!-]{0,12}",
        ) {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(matches(&pattern, &text), reference(&p, &t));
        }

        #[test]
        fn a_name_matches_itself_and_a_star_matches_all(name in "[a-z][-a-z0-9._]{0,62}") {
            prop_assert!(matches(&name, &name));
            prop_assert!(matches("*", &name));
            let prefix: String = name.chars().take(3).collect();
            let starred = format!("{prefix}*");
            prop_assert!(matches(&starred, &name));
        }
    }
}
