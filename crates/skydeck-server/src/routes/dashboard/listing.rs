//! What every list page shares: a text filter, page numbers, the pager,
//! and escaping names into links.

use maud::{Markup, html};
use serde::{Deserialize, Deserializer};

/// Rows on one page of a list.
pub const PAGE_SIZE: usize = 50;
/// The longest text filter: a name or a part of one.
const MAX_FILTER: usize = 128;

/// A case-insensitive text filter from the address, at most
/// [`MAX_FILTER`] characters (a longer one is refused, not cut).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter(String);

impl Filter {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any of `fields` contains the filter (an empty one matches).
    pub fn matches(&self, fields: &[&str]) -> bool {
        let wanted = self.0.to_lowercase();
        wanted.is_empty()
            || fields
                .iter()
                .any(|field| field.to_lowercase().contains(&wanted))
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let text = text.trim();
        if text.chars().count() > MAX_FILTER || text.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(format!(
                "a filter is up to {MAX_FILTER} characters of text"
            )));
        }
        Ok(Self(text.to_owned()))
    }
}

/// A page number from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct PageNumber(u32);

impl PageNumber {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageNumber {
    fn default() -> Self {
        Self(1)
    }
}

impl TryFrom<u32> for PageNumber {
    type Error = &'static str;

    fn try_from(number: u32) -> Result<Self, Self::Error> {
        if number == 0 {
            Err("pages are numbered from 1")
        } else {
            Ok(Self(number))
        }
    }
}

/// One page of a list.
pub struct Page<'a, T> {
    pub items: &'a [T],
    pub number: u32,
    pub pages: u32,
}

/// Page `number` of `items` (the last page when `number` is past it).
pub fn page<T>(items: &[T], number: PageNumber) -> Page<'_, T> {
    let pages = items.len().div_ceil(PAGE_SIZE).max(1);
    let number = (number.0 as usize).min(pages);
    let start = (number - 1) * PAGE_SIZE;
    let end = (start + PAGE_SIZE).min(items.len());
    Page {
        items: &items[start..end],
        number: u32::try_from(number).unwrap_or(u32::MAX),
        pages: u32::try_from(pages).unwrap_or(u32::MAX),
    }
}

/// Links to the previous and next pages of `path`, keeping the filter
/// and the page's other settings (`kept`: name and value, unescaped).
pub fn pager(path: &str, kept: &[(&str, &str)], number: u32, pages: u32) -> Markup {
    let link = |to: u32| {
        let mut link = format!("{path}?page={to}");
        for (name, value) in kept.iter().filter(|(_, value)| !value.is_empty()) {
            link.push_str(&format!("&{name}={}", query_escape(value)));
        }
        link
    };
    html! {
        @if pages > 1 {
            div.pager {
                @if number > 1 { a href=(link(number - 1)) { "← Previous" } }
                span.muted { "Page " (number) " of " (pages) }
                @if number < pages { a href=(link(number + 1)) { "Next →" } }
            }
        }
    }
}

/// `text` as one path segment of a link.
pub fn path_segment(text: &str) -> String {
    escape(text, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `text` as a query-string value.
pub fn query_escape(text: &str) -> String {
    escape(text, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn escape(text: &str, keep: impl Fn(u8) -> bool) -> String {
    text.bytes()
        .map(|b| {
            if keep(b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_fifty_and_a_page_past_the_end_is_the_last() {
        let items: Vec<u32> = (0..120).collect();
        let first = page(&items, PageNumber(1));
        assert_eq!((first.items.len(), first.pages), (50, 3));
        let last = page(&items, PageNumber(9));
        assert_eq!((last.number, last.items), (3, &items[100..]));
        let none: Vec<u32> = Vec::new();
        assert_eq!(page(&none, PageNumber(1)).pages, 1);
        assert!(PageNumber::try_from(0).is_err());
    }

    #[test]
    fn filters_are_bounded_text() {
        let parse = |text: &str| serde_json::from_value::<Filter>(serde_json::json!(text));
        assert!(parse(&"x".repeat(129)).is_err());
        assert!(parse("a\u{7}b").is_err());
        let filter = parse("  Dev ").unwrap();
        assert!(filter.matches(&["my-dev-box"]) && !filter.matches(&["prod"]));
    }

    #[test]
    fn the_pager_keeps_the_pages_settings() {
        let html = pager(
            "requests",
            &[("q", "a&b"), ("all", "true"), ("status", "")],
            2,
            3,
        )
        .into_string();
        assert!(
            html.contains("href=\"requests?page=1&amp;q=a%26b&amp;all=true\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"requests?page=3&amp;q=a%26b&amp;all=true\""),
            "{html}"
        );
        assert!(pager("requests", &[], 1, 1).into_string().is_empty());
    }

    #[test]
    fn names_are_escaped_into_links() {
        assert_eq!(path_segment("dev-1.a"), "dev-1.a");
        assert_eq!(path_segment("a/../b c"), "a%2F..%2Fb%20c");
        assert_eq!(query_escape("x&y=z"), "x%26y%3Dz");
    }
}
