//! Full-text search over the messages (SPEC §13): an FTS5 index whose
//! content is the `events` table, kept in step with it by triggers, so
//! that a message, its edit and its deletion change the index in the same
//! transaction (the turn's batch) as the row itself: a message is
//! searchable exactly when it is stored, an edit is found by its new text
//! only, and a deleted message (its text erased) or a pruned one is gone
//! from the index at once.
//!
//! The index is *external content*: it stores the words and their
//! positions, never a second copy of the text, and the rows a search
//! returns are read from `events`. Only messages (kind 0) are indexed, not
//! edit events or reactions, whose rows have text too. FTS5's
//! `secure-delete` is on, so a deleted message's words are removed from
//! the index's pages instead of being masked by a delete marker until the
//! next merge: the text is erased from the database (SPEC §10), the index
//! included.

use super::{Store, StoreError, UserId, fail};
use crate::event::Conversation;
use rusqlite::params;

/// Version 8: the message search index, filled with the messages stored
/// so far. `columnsize=0` leaves out the table of per-row token counts,
/// which only ranking by relevance (bm25) reads: results come newest
/// first, and every message insert would otherwise write one more B-tree
/// row. `remove_diacritics 2` lets `cafe` find `café`.
pub(super) const MIGRATION_8_SEARCH: &str = "
    CREATE VIRTUAL TABLE events_fts USING fts5(
        text, content = 'events', content_rowid = 'id', columnsize = 0,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO events_fts (events_fts, rank) VALUES ('secure-delete', 1);
    INSERT INTO events_fts (rowid, text) SELECT id, text FROM events WHERE kind = 0;
    CREATE TRIGGER events_fts_insert AFTER INSERT ON events WHEN new.kind = 0 BEGIN
        INSERT INTO events_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER events_fts_update AFTER UPDATE OF text ON events WHEN old.kind = 0 BEGIN
        INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO events_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER events_fts_delete AFTER DELETE ON events WHEN old.kind = 0 BEGIN
        INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
";

/// A search statement: the columns of a hit, then `$tail` (the
/// conversation's terms and the order). The index yields rowids newest
/// first (FTS5 walks its doclists backwards for `ORDER BY rowid DESC`),
/// each joined to its row by primary key: no sort, and the caller stops
/// reading when the page is full. `CROSS JOIN` keeps the index outermost:
/// left to itself, SQLite walks a direct conversation's whole index and
/// sorts, which costs the conversation's length however few words match.
macro_rules! search_sql {
    ($tail:literal) => {
        concat!(
            "SELECT e.id, u.name, e.text, e.ts, e.edited, e.room_id, e.user_id, \
             e.to_id, t.name FROM events_fts f CROSS JOIN events e ON e.id = f.rowid \
             JOIN users u ON u.id = e.user_id LEFT JOIN users t ON t.id = e.to_id \
             WHERE events_fts MATCH ?1 AND f.rowid < ?2 AND e.kind = 0 AND e.deleted = 0",
            $tail,
            " ORDER BY f.rowid DESC"
        )
    };
}
const SQL_SEARCH_ALL: &str = search_sql!("");
const SQL_SEARCH_GENERAL: &str = search_sql!(" AND e.room_id IS NULL AND e.to_id IS NULL");
const SQL_SEARCH_ROOM: &str = search_sql!(" AND e.room_id = ?3");
/// The expressions and the `to_id IS NOT NULL` term as in the history's
/// direct page.
const SQL_SEARCH_DIRECT: &str = search_sql!(
    " AND e.to_id IS NOT NULL AND min(e.user_id, e.to_id) = ?3 AND max(e.user_id, e.to_id) = ?4"
);

/// A message that matched a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Message id.
    pub id: i64,
    /// The author's name as registered.
    pub author: String,
    /// The text (its current, edited state).
    pub text: String,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// When it was last edited, Unix milliseconds.
    pub edited: Option<i64>,
    /// Its room (`None`: general or direct).
    pub room: Option<i64>,
    /// Its author.
    pub user: UserId,
    /// The recipient of a direct message, with the name as registered.
    pub to: Option<(UserId, String)>,
}

/// A page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The hits the caller kept, newest first.
    pub hits: Vec<SearchHit>,
    /// Where the next page starts (its `before`), when the search stopped
    /// before running out of matches: the page was full, or `scan` matches
    /// were read.
    pub next: Option<i64>,
}

impl Store {
    /// Up to `limit` messages matching the FTS5 query `query` with ids
    /// below `before`, newest first, in `conv` or (`None`) anywhere, that
    /// `keep` accepts (what the user may see). Reads at most `scan`
    /// matches, so a search whose matches the user mostly may not see
    /// costs a bounded amount of work; the page then ends early and says
    /// where to go on. `query` must be valid FTS5 syntax (see
    /// `api::search::fts_query`).
    pub fn search(
        &mut self,
        query: &str,
        conv: Option<Conversation>,
        before: i64,
        (limit, scan): (usize, usize),
        mut keep: impl FnMut(&SearchHit) -> bool,
    ) -> Result<SearchPage, StoreError> {
        let (sql, a, b) = match conv {
            None => (SQL_SEARCH_ALL, None, None),
            Some(Conversation::General) => (SQL_SEARCH_GENERAL, None, None),
            Some(Conversation::Room(room)) => (SQL_SEARCH_ROOM, Some(room), None),
            Some(Conversation::Direct(x, y)) => {
                (SQL_SEARCH_DIRECT, Some(x.0.min(y.0)), Some(x.0.max(y.0)))
            }
        };
        let mut run = || {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = match (a, b) {
                (None, _) => stmt.query(params![query, before])?,
                (Some(a), None) => stmt.query(params![query, before, a])?,
                (Some(a), Some(b)) => stmt.query(params![query, before, a, b])?,
            };
            let mut page = SearchPage {
                hits: Vec::new(),
                next: None,
            };
            let mut read = 0;
            while let Some(row) = rows.next()? {
                let hit = hit_from_row(row)?;
                read += 1;
                let id = hit.id;
                if keep(&hit) {
                    page.hits.push(hit);
                }
                if page.hits.len() >= limit || read >= scan {
                    page.next = Some(id);
                    break;
                }
            }
            Ok::<_, rusqlite::Error>(page)
        };
        run().map_err(|e| fail(&self.label, "searching messages", e))
    }
}

fn hit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SearchHit> {
    let to: Option<i64> = r.get(7)?;
    Ok(SearchHit {
        id: r.get(0)?,
        author: r.get(1)?,
        text: r.get(2)?,
        ts: r.get(3)?,
        edited: r.get(4)?,
        room: r.get(5)?,
        user: UserId(r.get(6)?),
        to: match to {
            Some(id) => Some((UserId(id), r.get(8)?)),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, NewEvent};

    fn store_with_users() -> (Store, UserId, UserId) {
        let mut store = Store::open_in_memory().unwrap();
        let ann = store
            .create_user("ann", &crate::secret::sha256_hex("1"))
            .unwrap()
            .unwrap()
            .id;
        let ben = store
            .create_user("ben", &crate::secret::sha256_hex("2"))
            .unwrap()
            .unwrap()
            .id;
        store.commit().unwrap();
        (store, ann, ben)
    }

    fn put(store: &mut Store, id: i64, user: UserId, to: Option<UserId>, text: &str) {
        let e = NewEvent {
            id,
            kind: EventKind::Message,
            user,
            room: None,
            to,
            ts: 1000 + id,
            text,
            client_id: None,
            target: None,
        };
        store.insert_event(&e).unwrap();
    }

    /// The ids of every hit of `q`, newest first.
    fn ids(store: &mut Store, q: &str) -> Vec<i64> {
        let page = store
            .search(q, None, i64::MAX, (100, 1000), |_| true)
            .unwrap();
        page.hits.iter().map(|h| h.id).collect()
    }

    #[test]
    fn messages_edits_deletions_and_prunes_keep_the_index_in_step() {
        let (mut store, ann, ben) = store_with_users();
        put(&mut store, 1, ann, None, "the rust compiler");
        put(&mut store, 2, ben, Some(ann), "Rust is café");
        put(&mut store, 3, ann, None, "nothing here");
        // Not committed yet: the batch's own connection finds them.
        assert_eq!(ids(&mut store, "\"rust\""), [2, 1]);
        store.commit().unwrap();
        assert_eq!(ids(&mut store, "\"cafe\""), [2]);
        let hit = &store
            .search("\"cafe\"", None, i64::MAX, (5, 5), |_| true)
            .unwrap()
            .hits[0];
        assert_eq!(hit.to, Some((ann, "ann".to_string())));
        assert_eq!((hit.user, hit.text.as_str()), (ben, "Rust is café"));
        // An edit is found by its new words only.
        store.edit_message(1, "the go compiler", 1100).unwrap();
        assert_eq!(ids(&mut store, "\"rust\""), [2]);
        assert_eq!(ids(&mut store, "\"go\""), [1]);
        // A deletion erases it from the index.
        store.erase_message(2).unwrap();
        store.commit().unwrap();
        assert_eq!(ids(&mut store, "\"rust\""), Vec::<i64>::new());
        assert_eq!(ids(&mut store, "\"cafe\""), Vec::<i64>::new());
        // A pruned message too.
        put(&mut store, 4, ann, None, "last");
        assert_eq!(store.prune_messages(Some(3), None, 100).unwrap(), 3);
        assert_eq!(ids(&mut store, "\"compiler\""), Vec::<i64>::new());
        assert_eq!(ids(&mut store, "\"last\""), [4]);
        // Other kinds of event are never indexed.
        let edit = NewEvent {
            id: 5,
            kind: EventKind::Edit,
            user: ann,
            room: None,
            to: None,
            ts: 2000,
            text: "hidden",
            client_id: None,
            target: Some(4),
        };
        store.insert_event(&edit).unwrap();
        assert_eq!(ids(&mut store, "\"hidden\""), Vec::<i64>::new());
        store.commit().unwrap();
        integrity(&mut store);
    }

    /// FTS5's own check that the index matches its content.
    fn integrity(store: &mut Store) {
        store
            .conn
            .execute(
                "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')",
                [],
            )
            .unwrap();
    }

    #[test]
    fn a_deleted_message_leaves_no_word_in_the_index() {
        let (mut store, ann, _) = store_with_users();
        put(&mut store, 1, ann, None, "xylophonist secret");
        put(&mut store, 2, ann, None, "other words");
        store.commit().unwrap();
        store.erase_message(1).unwrap();
        store.commit().unwrap();
        // The index's own vocabulary has no trace of it.
        store
            .conn
            .execute_batch("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_fts, row)")
            .unwrap();
        let words: Vec<String> = {
            let mut stmt = store.conn.prepare("SELECT term FROM temp.vocab").unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert_eq!(words, ["other", "words"]);
        integrity(&mut store);
    }

    #[test]
    fn pages_go_back_from_before_and_stop_at_the_scan_limit() {
        let (mut store, ann, ben) = store_with_users();
        for id in 1..=10 {
            put(
                &mut store,
                id,
                if id % 2 == 0 { ann } else { ben },
                None,
                "word",
            );
        }
        store.commit().unwrap();
        let page = store
            .search("\"word\"", None, 9, (3, 100), |_| true)
            .unwrap();
        let got: Vec<i64> = page.hits.iter().map(|h| h.id).collect();
        assert_eq!((got, page.next), (vec![8, 7, 6], Some(6)));
        // Only ann's, reading at most 4 matches: 10, 9, 8, 7.
        let page = store
            .search("\"word\"", None, i64::MAX, (3, 4), |h| h.user == ann)
            .unwrap();
        let got: Vec<i64> = page.hits.iter().map(|h| h.id).collect();
        assert_eq!((got, page.next), (vec![10, 8], Some(7)));
        // Run out: no next page.
        let page = store
            .search("\"word\"", None, 3, (5, 100), |_| true)
            .unwrap();
        assert_eq!((page.hits.len(), page.next), (2, None));
        // A conversation of its own.
        let page = store
            .search(
                "\"word\"",
                Some(Conversation::Room(7)),
                i64::MAX,
                (5, 100),
                |_| true,
            )
            .unwrap();
        assert!(page.hits.is_empty());
        let page = store
            .search(
                "\"word\"",
                Some(Conversation::General),
                i64::MAX,
                (5, 100),
                |_| true,
            )
            .unwrap();
        assert_eq!(page.hits.len(), 5);
    }

    #[test]
    fn search_reads_the_index_newest_first_without_sorting() {
        let (store, _, _) = store_with_users();
        for sql in [
            SQL_SEARCH_ALL,
            SQL_SEARCH_GENERAL,
            SQL_SEARCH_ROOM,
            SQL_SEARCH_DIRECT,
        ] {
            let sql = sql
                .replace("?1", "'x'")
                .replace("?2", "1")
                .replace("?3", "1")
                .replace("?4", "2");
            let plan = store.plan(&sql);
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
            assert!(plan.contains("VIRTUAL TABLE INDEX"), "{sql}: {plan}");
        }
    }

    #[test]
    fn the_migration_indexes_the_messages_stored_before_it() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for step in &super::super::MIGRATIONS[..6] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, name, name_fold, key_hash) VALUES (1, 'ann', 'ann', 'h');
             INSERT INTO events (id, user_id, ts, text) VALUES (1, 1, 1, 'old words');
             INSERT INTO events (id, kind, user_id, ts, text, target) VALUES (2, 3, 1, 2, 'edit words', 1);",
        )
        .unwrap();
        let mut store = Store::init(conn, ":memory:".into(), false).unwrap();
        assert_eq!(ids(&mut store, "\"words\""), [1]);
        integrity(&mut store);
    }
}
