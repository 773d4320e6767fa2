//! Cursor pagination, newest first, shaped like Stripe's: `starting_after` walks to older
//! items with a page's `next_cursor`, `ending_before` walks back to newer ones with its
//! `previous_cursor`. Stores fetch `limit + 1` rows in the direction of travel; `Page::cut`
//! turns them into a page and its cursors, so every list in the API pages the same way.

use crate::error::Rejection;

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The newest items.
    Start,
    /// Items older than (ids below) this one.
    StartingAfter(i64),
    /// Items newer than (ids above) this one.
    EndingBefore(i64),
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Cursor,
}

impl PageRequest {
    /// Validates the raw query values: limit 1..=100 (default 25), cursors positive
    /// integers, never both.
    pub fn parse(
        limit: Option<&str>,
        starting_after: Option<&str>,
        ending_before: Option<&str>,
    ) -> Result<Self, Rejection> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => crate::number::within(text, 1..=MAX_LIMIT)
                .ok_or_else(|| Rejection::invalid(format!("limit must be an integer from 1 to {MAX_LIMIT}")))?,
        };
        let id = |name: &str, text: &str| {
            crate::number::positive_id(text)
                .ok_or_else(|| Rejection::invalid(format!("{name} must be a positive integer id")))
        };
        let cursor = match (starting_after, ending_before) {
            (Some(_), Some(_)) => {
                return Err(Rejection::invalid("send either starting_after or ending_before, not both"));
            }
            (Some(s), None) => Cursor::StartingAfter(id("starting_after", s)?),
            (None, Some(e)) => Cursor::EndingBefore(id("ending_before", e)?),
            (None, None) => Cursor::Start,
        };
        Ok(Self { limit, cursor })
    }

    /// Rows the store should fetch: one more than the page, to learn whether more exist.
    pub fn fetch_limit(&self) -> u32 {
        self.limit + 1
    }

    /// How a SQL store walks ids for this page: the comparison against the cursor id, the
    /// order to fetch in, and the cursor id itself (`i64::MAX` for the first page).
    pub fn id_bounds(&self) -> (&'static str, &'static str, i64) {
        match self.cursor {
            Cursor::Start => ("<", "DESC", i64::MAX),
            Cursor::StartingAfter(id) => ("<", "DESC", id),
            Cursor::EndingBefore(id) => (">", "ASC", id),
        }
    }

    /// Whether the store must fetch in ascending id order (walking back toward newer items).
    pub fn fetches_ascending(&self) -> bool {
        matches!(self.cursor, Cursor::EndingBefore(_))
    }
}

/// One page, newest first, with the cursors to move on from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub limit: u32,
    pub has_more: bool,
    pub next_cursor: Option<i64>,
    pub previous_cursor: Option<i64>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched in the direction of travel (descending ids, or
    /// ascending for `ending_before`), at most `fetch_limit()` of them.
    pub fn cut(request: &PageRequest, mut rows: Vec<T>, id_of: impl Fn(&T) -> i64) -> Self {
        let more_in_direction = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        if request.fetches_ascending() {
            rows.reverse();
        }
        let first = rows.first().map(&id_of);
        let last = rows.last().map(&id_of);
        let (older_exist, newer_exist) = match request.cursor {
            Cursor::Start => (more_in_direction, false),
            Cursor::StartingAfter(_) => (more_in_direction, true),
            Cursor::EndingBefore(_) => (true, more_in_direction),
        };
        Self {
            items: rows,
            limit: request.limit,
            has_more: more_in_direction,
            next_cursor: if older_exist { last } else { None },
            previous_cursor: if newer_exist { first } else { None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a store does, over a sorted in-memory list of ids.
    fn fetch(ids: &[i64], request: &PageRequest) -> Page<i64> {
        let n = request.fetch_limit() as usize;
        let rows: Vec<i64> = match request.cursor {
            Cursor::Start => ids.iter().rev().take(n).copied().collect(),
            Cursor::StartingAfter(c) => ids.iter().rev().filter(|&&i| i < c).take(n).copied().collect(),
            Cursor::EndingBefore(c) => ids.iter().filter(|&&i| i > c).take(n).copied().collect(),
        };
        Page::cut(request, rows, |i| *i)
    }

    #[test]
    fn parse_rules() {
        assert_eq!(PageRequest::parse(None, None, None).unwrap(), PageRequest { limit: 25, cursor: Cursor::Start });
        assert_eq!(PageRequest::parse(Some("100"), Some("7"), None).unwrap().cursor, Cursor::StartingAfter(7));
        for bad in ["0", "101", "-1", "abc", "", "2.5"] {
            assert!(PageRequest::parse(Some(bad), None, None).is_err(), "{bad}");
        }
        assert!(PageRequest::parse(None, Some("1"), Some("2")).is_err());
        assert!(PageRequest::parse(None, Some("x"), None).is_err());
        assert!(PageRequest::parse(None, None, Some("0")).is_err());
    }

    proptest! {
        #[test]
        fn walking_forward_sees_each_item_once_and_back_retraces(
            raw in prop::collection::btree_set(1i64..10_000, 0..120),
            limit in 1u32..12,
        ) {
            let ids: Vec<i64> = raw.into_iter().collect();
            let mut pages = vec![];
            let mut request = PageRequest { limit, cursor: Cursor::Start };
            loop {
                let page = fetch(&ids, &request);
                prop_assert!(page.items.len() <= limit as usize);
                prop_assert!(page.items.windows(2).all(|w| w[0] > w[1]), "newest first");
                let next = page.next_cursor;
                pages.push(page);
                match next {
                    Some(c) => request = PageRequest { limit, cursor: Cursor::StartingAfter(c) },
                    None => break,
                }
            }
            let seen: Vec<i64> = pages.iter().flat_map(|p| p.items.clone()).collect();
            let mut expected = ids.clone();
            expected.reverse();
            prop_assert_eq!(seen, expected);
            prop_assert!(pages[0].previous_cursor.is_none());
            // Walking back from each page with its previous_cursor lands on the page before.
            for pair in pages.windows(2) {
                let back = fetch(&ids, &PageRequest { limit, cursor: Cursor::EndingBefore(pair[1].previous_cursor.unwrap()) });
                prop_assert_eq!(&back.items, &pair[0].items);
            }
        }
    }
}
