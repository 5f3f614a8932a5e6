//! `GET /api/search?q=&room=&with=&limit=&before=` (SPEC §13): the
//! messages a user may see that match, newest first, through the store's
//! FTS5 index. This module turns the user's words into an FTS5 query that
//! cannot be a syntax error, checks the parameters, and shapes the hits
//! like history page entries.

use super::{Ctx, authenticate};
use crate::chat::{Outbox, Paged, found_on_wire};
use crate::http::{Request, Response, percent_decode};
use crate::protocol::{PageMessage, Place};
use crate::store::{SearchHit, SearchPage, StoreError};
use serde::Serialize;

/// Default and largest page.
const PAGE: (usize, usize) = (20, 100);
/// Most matches one request reads, visible or not: a search whose matches
/// are mostly in conversations the user may not see stops there (and says
/// where to go on) instead of holding the loop.
const SCAN: usize = 1000;
/// Longest query, in characters.
const MAX_QUERY_CHARS: usize = 256;
/// Most words in a query.
const MAX_WORDS: usize = 16;
/// Shortest word (in characters of its last token) searched as a prefix
/// (`rus*`): a shorter prefix matches so many words that FTS5 would merge
/// a large part of the index for it.
const MIN_PREFIX_CHARS: usize = 3;

/// Why a query cannot be searched; each says what the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// No `q`, or one without a letter or digit: 400 `empty_query`.
    Empty,
    /// Over [`MAX_QUERY_CHARS`] or [`MAX_WORDS`]: 400 `query_too_long`.
    TooLong,
}

/// The FTS5 query for the user's words: every whitespace-separated word
/// must occur (in any order), each as a quoted phrase of its letters and
/// digits, so no character the user types is FTS5 syntax (quotes, `NEAR`,
/// `OR`, `-`, `:`, parentheses, `^` are all just separators, as the
/// tokenizer treats them in the messages). A word ending in `*` is a
/// prefix when its last part has at least [`MIN_PREFIX_CHARS`] characters
/// (`rus*` finds `rust`). Letters and digits are Rust's `is_alphanumeric`,
/// close to the `unicode61` tokenizer's token characters.
pub fn fts_query(q: &str) -> Result<String, QueryError> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong);
    }
    let mut out = String::new();
    let mut words = 0;
    for word in q.split_whitespace() {
        let cleaned: String = word
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let tokens: Vec<&str> = cleaned.split_whitespace().collect();
        let Some(last) = tokens.last() else {
            continue;
        };
        words += 1;
        if words > MAX_WORDS {
            return Err(QueryError::TooLong);
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        out.push_str(&tokens.join(" "));
        out.push('"');
        if word.ends_with('*') && last.chars().count() >= MIN_PREFIX_CHARS {
            out.push('*');
        }
    }
    if out.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(out)
}

/// The parameters of a search.
#[derive(Debug, PartialEq, Eq)]
pub struct SearchQuery {
    /// The FTS5 query (see [`fts_query`]).
    pub fts: String,
    /// Ids below this (default: after the newest).
    pub before: i64,
    /// Page size.
    pub limit: usize,
    /// Only this room.
    pub room: Option<String>,
    /// Only the direct conversation with this user.
    pub with: Option<String>,
}

/// A refused search: the status, code and what was wrong.
type Refusal = (u16, &'static str, String);

fn invalid(detail: impl Into<String>) -> Refusal {
    (422, "invalid_request", detail.into())
}

/// Parses the query string of `GET /api/search`.
pub fn search_params(query: &str) -> Result<SearchQuery, Refusal> {
    let mut q: Option<String> = None;
    let mut s = SearchQuery {
        fts: String::new(),
        before: i64::MAX,
        limit: PAGE.0,
        room: None,
        with: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // `+` is a space in a query string (HTML forms send it).
        let decoded = percent_decode(&value.replace('+', " "));
        match name {
            "q" if q.is_none() => {
                q = Some(decoded.ok_or_else(|| invalid("q is not valid percent-encoded UTF-8"))?)
            }
            "before" => {
                s.before = value
                    .parse()
                    .ok()
                    .filter(|&b: &i64| b > 0)
                    .ok_or_else(|| invalid("before must be a message id, an integer from 1"))?
            }
            "limit" => {
                s.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=PAGE.1).contains(l))
                    .ok_or_else(|| {
                        invalid(format!("limit must be an integer from 1 to {}", PAGE.1))
                    })?
            }
            "room" | "with" => {
                let rule = format!("{name} must be given once, a non-empty name");
                let slot = if name == "room" {
                    &mut s.room
                } else {
                    &mut s.with
                };
                if slot.is_some() {
                    return Err(invalid(rule));
                }
                *slot = Some(
                    decoded
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| invalid(rule))?,
                );
            }
            "q" => return Err(invalid("q must be given once")),
            _ => {
                let name: String = name.chars().take(32).collect();
                return Err(invalid(format!(
                    "unknown parameter \"{name}\" (known: q, room, with, limit, before)"
                )));
            }
        }
    }
    if s.room.is_some() && s.with.is_some() {
        return Err(invalid(
            "room and with name different conversations; give one",
        ));
    }
    s.fts = fts_query(q.as_deref().unwrap_or("")).map_err(|e| match e {
        QueryError::Empty => (
            400,
            "empty_query",
            "q must hold a word to search for (letters or digits)".to_string(),
        ),
        QueryError::TooLong => (
            400,
            "query_too_long",
            format!("q may hold at most {MAX_WORDS} words and {MAX_QUERY_CHARS} characters"),
        ),
    })?;
    Ok(s)
}

/// The body of a search: history page entries, newest first, and where
/// the next page starts when there may be one.
#[derive(Debug, Serialize)]
struct Found<'a> {
    messages: Vec<PageMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// `GET /api/search`.
pub fn search<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    let q = match search_params(req.query().unwrap_or("")) {
        Ok(q) => q,
        Err((status, code, detail)) => return Ok(Response::error_detail(status, code, &detail)),
    };
    // A named conversation is searched when its history may be read (a
    // public room without joining it too); without one, every
    // conversation the user is in.
    let conv = match (&q.room, &q.with) {
        (None, None) => None,
        (room, with) => match ctx
            .chat
            .conversation(me.user, room.as_deref(), with.as_deref())
        {
            Ok(Paged { conv, .. }) => Some(conv),
            Err(e) => {
                let (status, code) = e.status();
                return Ok(Response::error(status, code));
            }
        },
    };
    let chat = &*ctx.chat;
    let keep = |h: &SearchHit| {
        conv.is_some() || chat.may_find(me.user, h.room, h.user, h.to.as_ref().map(|t| t.0))
    };
    let SearchPage { hits, next } =
        ctx.store
            .search(&q.fts, conv, q.before, (q.limit, SCAN), keep)?;
    let mut reactions = Vec::with_capacity(hits.len());
    for h in &hits {
        reactions.push(ctx.store.reactions_between(h.id, h.id)?);
    }
    let rooms: Vec<Option<std::rc::Rc<str>>> = hits
        .iter()
        .map(|h| h.room.and_then(|r| ctx.chat.room_name(r)))
        .collect();
    let messages = hits
        .iter()
        .zip(&reactions)
        .zip(&rooms)
        .map(|((h, r), room)| {
            let place = Place {
                room: room.as_deref(),
                to: h.to.as_ref().map(|t| t.1.as_str()),
            };
            found_on_wire(&h.text, &h.author, (h.id, h.ts, h.edited), place, r)
        })
        .collect();
    Ok(Response::json(
        200,
        &Found {
            messages,
            next_before: next,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_quoted_phrases() {
        let long = "a ".repeat(17);
        let cases: &[(&str, Result<&str, QueryError>)] = &[
            ("rust", Ok("\"rust\"")),
            ("  rust   loop ", Ok("\"rust\" \"loop\"")),
            ("don't", Ok("\"don t\"")),
            ("rus*", Ok("\"rus\"*")),
            ("ru*", Ok("\"ru\"")),
            ("*", Err(QueryError::Empty)),
            ("\"a\" OR b", Ok("\"a\" \"OR\" \"b\"")),
            ("NEAR(a b)", Ok("\"NEAR a\" \"b\"")),
            ("-x ^y col:z", Ok("\"x\" \"y\" \"col z\"")),
            ("a\0b", Ok("\"a b\"")),
            ("café", Ok("\"café\"")),
            ("😀 !!", Err(QueryError::Empty)),
            ("", Err(QueryError::Empty)),
            ("   ", Err(QueryError::Empty)),
            (&long, Err(QueryError::TooLong)),
        ];
        for (q, want) in cases {
            assert_eq!(fts_query(q).as_deref(), want.as_deref(), "{q:?}");
        }
        assert_eq!(fts_query(&"x".repeat(257)), Err(QueryError::TooLong));
    }

    #[test]
    fn no_query_is_an_fts_syntax_error() {
        use crate::event::{EventKind, NewEvent};
        let mut store = crate::store::Store::open_in_memory().unwrap();
        let hash = crate::secret::sha256_hex("k");
        let user = store.create_user("ann", &hash).unwrap().unwrap().id;
        let text = "a b c don t rust ﬁ İ e\u{301} 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 x y z";
        let e = NewEvent {
            id: 1,
            kind: EventKind::Message,
            user,
            room: None,
            to: None,
            ts: 1,
            text,
            client_id: None,
            target: None,
        };
        store.insert_event(&e).unwrap();
        let odd = [
            "\"",
            "\"\"",
            "'",
            "*",
            "**",
            "a*b",
            "(",
            ")",
            "a AND",
            "OR",
            "NOT a",
            "a:b",
            "{a}",
            "^",
            "+",
            "-",
            "NEAR",
            "NEAR/2",
            "\u{0}",
            "\u{301}",
            "e\u{301}*",
            "\u{fffd}",
            "ﬁ*",
            "İ",
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢*",
            "a\"b*c",
            "x y* z**",
        ];
        for q in odd {
            if let Ok(fts) = fts_query(q) {
                let r = store.search(&fts, None, i64::MAX, (5, 5), |_| true);
                assert!(r.is_ok(), "{q:?} as {fts}: {r:?}");
            }
        }
    }

    #[test]
    fn search_parameters() {
        let ok = |q: &str| search_params(q).map_err(|e| e.2);
        let p = ok("q=rust+lang&limit=5&before=9&room=dev").unwrap();
        assert_eq!(
            p,
            SearchQuery {
                fts: "\"rust\" \"lang\"".into(),
                before: 9,
                limit: 5,
                room: Some("dev".into()),
                with: None,
            }
        );
        assert_eq!(ok("q=a%20b").unwrap().fts, "\"a\" \"b\"");
        assert_eq!(ok("q=x&with=ben").unwrap().with.as_deref(), Some("ben"));
        let refusals = [
            ("", 400, "empty_query"),
            ("q=", 400, "empty_query"),
            ("q=%21%21", 400, "empty_query"),
            ("limit=5", 400, "empty_query"),
            ("q=a&q=b", 422, "invalid_request"),
            ("q=a&limit=0", 422, "invalid_request"),
            ("q=a&limit=101", 422, "invalid_request"),
            ("q=a&before=0", 422, "invalid_request"),
            ("q=a&room=x&with=y", 422, "invalid_request"),
            ("q=a&room=", 422, "invalid_request"),
            ("q=a&sort=new", 422, "invalid_request"),
            ("q=%ff", 422, "invalid_request"),
        ];
        for (query, status, code) in refusals {
            let got = search_params(query).map(|_| ()).map_err(|e| (e.0, e.1));
            assert_eq!(got, Err((status, code)), "{query}");
        }
    }
}
