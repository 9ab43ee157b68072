//! Shell-style wildcards (`*`, `?`, `[abc]`, `[!abc]`), as SkyPilot uses
//! them for cluster names (`sky stop 'dev-*'`) and `.skyignore` entries.

/// Whether `text` matches `pattern` as a whole. `*` matches any run of
/// characters, `/` included: callers that match paths split them first.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    matches_from(&pattern, &text)
}

/// Whether `pattern` uses any wildcard, i.e. may match more than itself.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn matches_from(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => {
            // Trying every split is quadratic at worst; names and path
            // components are short.
            (0..=text.len()).any(|skip| matches_from(&pattern[1..], &text[skip..]))
        }
        Some('?') => !text.is_empty() && matches_from(&pattern[1..], &text[1..]),
        Some('[') => match (class(&pattern[1..]), text.first()) {
            (Some((set, rest)), Some(c)) => set.contains(*c) && matches_from(rest, &text[1..]),
            // An unclosed `[` is a literal, as in fnmatch.
            (None, Some('[')) => matches_from(&pattern[1..], &text[1..]),
            _ => false,
        },
        Some(c) => text.first() == Some(c) && matches_from(&pattern[1..], &text[1..]),
    }
}

/// A `[...]` class: its members and the pattern after the closing `]`.
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != self.negated
    }
}

fn class(pattern: &[char]) -> Option<(Class, &[char])> {
    let negated = pattern.first() == Some(&'!');
    let body = if negated { &pattern[1..] } else { pattern };
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
    Some((Class { negated, ranges }, &body[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn only_wildcards_make_a_pattern() {
        assert!(is_pattern("dev-*"));
        assert!(!is_pattern("dev-1"));
    }
}
