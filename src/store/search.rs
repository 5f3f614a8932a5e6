//! Full-text search over the messages (SPEC §13): an FTS5 index of the
//! messages' current text, searched newest first.
//!
//! The index is kept off the event loop (version 10; version 8 kept it in
//! step by triggers, in the loop's commit): a helper thread (see
//! `indexer`) follows the events by id from a watermark and, for each
//! event after it, re-indexes the message it concerns — a message, its
//! edit, its deletion ([`index_step`]). Pruned messages leave the index
//! when the oldest stored id moves past them. A search that finds the
//! index behind the events catches it up first, in the loop's batch, so
//! what a search returns never depends on the thread's timing; the thread
//! only makes that catching up almost always nothing to do.
//!
//! The index is *contentless* with `contentless_delete`: it stores the
//! words and their positions, never a second copy of the text, and can
//! remove a row by its id alone (the text it was indexed with may have
//! been edited since). The rows a search returns are read from `events`,
//! deleted ones left out, so their current text is what is returned.
//! Only messages (kind 0) are indexed, not edit events or reactions.
//! FTS5's `secure-delete` is on, so a deleted message's words are removed
//! from the index's pages instead of being masked by a delete marker until
//! the next merge: the text is erased from the database (SPEC §10), the
//! index included.

use super::{Store, StoreError, UserId, fail};
use crate::event::Conversation;
use rusqlite::{Connection, OptionalExtension, params};

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

/// Version 10: the index leaves the loop's commit. The triggers and the
/// external-content table go; the new table is contentless (rows removed
/// by id, whatever their text was), filled with the messages stored so
/// far, and `search_state` holds the last event id the index has seen
/// (`indexed_to`) and the oldest id it knows stored (`pruned_below`).
pub(super) const MIGRATION_10_SEARCH_OFF_LOOP: &str = "
    DROP TRIGGER events_fts_insert;
    DROP TRIGGER events_fts_update;
    DROP TRIGGER events_fts_delete;
    DROP TABLE events_fts;
    CREATE VIRTUAL TABLE search_fts USING fts5(
        text, content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO search_fts (search_fts, rank) VALUES ('secure-delete', 1);
    INSERT INTO search_fts (rowid, text)
        SELECT id, text FROM events WHERE kind = 0 AND deleted = 0;
    CREATE TABLE search_state (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        indexed_to INTEGER NOT NULL,
        pruned_below INTEGER NOT NULL
    );
    INSERT INTO search_state VALUES (
        1, coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT min(id) FROM events), 0)
    );
";

const SQL_INDEX_STATE: &str = "SELECT indexed_to, pruned_below FROM search_state";
const SQL_INDEX_EVENTS: &str =
    "SELECT id, kind, target FROM events WHERE id > ?1 ORDER BY id LIMIT ?2";
const SQL_INDEX_REMOVE: &str = "DELETE FROM search_fts WHERE rowid = ?1";
const SQL_INDEX_PUT: &str = "INSERT INTO search_fts (rowid, text) \
     SELECT id, text FROM events WHERE id = ?1 AND kind = 0 AND deleted = 0";
const SQL_INDEX_OLDEST: &str = "SELECT min(id) FROM events";
const SQL_INDEX_PRUNE: &str = "DELETE FROM search_fts WHERE rowid < ?1";
const SQL_INDEX_SAVE: &str = "UPDATE search_state SET indexed_to = ?1, pruned_below = ?2";
const SQL_NEWEST_EVENT: &str = "SELECT max(id) FROM events";

/// Brings the index up to date with at most `limit` events after its
/// watermark, in the caller's write transaction; `Ok(true)` when no event
/// is left after it. A message is (re-)indexed with its current text
/// unless deleted; an edit or a deletion re-indexes its target the same
/// way (a deleted one is only removed). Re-indexing is idempotent, so an
/// edit of a message not indexed yet, or indexed already with its final
/// text, costs a little work and changes nothing. Then the rows below the
/// oldest stored event (pruned) are removed: pruning removes the oldest
/// rows first, so everything below the oldest one left is gone.
pub(super) fn index_step(conn: &Connection, limit: i64) -> rusqlite::Result<bool> {
    let (from, pruned_below): (i64, i64) = conn
        .prepare_cached(SQL_INDEX_STATE)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let events: Vec<(i64, i64, Option<i64>)> = {
        let mut stmt = conn.prepare_cached(SQL_INDEX_EVENTS)?;
        let rows = stmt.query_map(params![from, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut remove = conn.prepare_cached(SQL_INDEX_REMOVE)?;
    let mut put = conn.prepare_cached(SQL_INDEX_PUT)?;
    for &(id, kind, target) in &events {
        match (kind, target) {
            // A new message: never indexed before, since the watermark
            // moves in the same transaction as the index.
            (0, _) => {
                put.execute([id])?;
            }
            (3 | 4, Some(target)) => {
                remove.execute([target])?;
                put.execute([target])?;
            }
            _ => {}
        }
    }
    let oldest: Option<i64> = conn
        .prepare_cached(SQL_INDEX_OLDEST)?
        .query_row([], |r| r.get(0))?;
    let oldest = oldest.unwrap_or(0);
    if oldest > pruned_below {
        conn.prepare_cached(SQL_INDEX_PRUNE)?.execute([oldest])?;
    }
    let to = events.last().map_or(from, |e| e.0);
    if to != from || oldest > pruned_below {
        conn.prepare_cached(SQL_INDEX_SAVE)?
            .execute(params![to, oldest.max(pruned_below)])?;
    }
    Ok((events.len() as i64) < limit)
}

/// Most events a search indexes itself when it finds the index behind
/// (the thread stopped, or a search right after a post): enough for any
/// ordinary lag, and a bound on what one request costs the loop. Beyond
/// it the search answers from the index as it is.
const SEARCH_CATCH_UP: i64 = 2000;

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
             e.to_id, t.name FROM search_fts f CROSS JOIN events e ON e.id = f.rowid \
             JOIN users u ON u.id = e.user_id LEFT JOIN users t ON t.id = e.to_id \
             WHERE search_fts MATCH ?1 AND f.rowid < ?2 AND e.kind = 0 AND e.deleted = 0",
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
    ///
    /// Catches the index up first when it is behind the events stored (up
    /// to [`SEARCH_CATCH_UP`] events, in the turn's batch): a message
    /// stored before the search is found, an edit by its new text only.
    /// A deleted message is never returned, indexed or not.
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
        self.catch_up_index(SEARCH_CATCH_UP)?;
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

    /// Indexes up to `limit` events in the turn's batch when the index is
    /// behind the newest event; two primary-key reads when it is not.
    pub(super) fn catch_up_index(&mut self, limit: i64) -> Result<(), StoreError> {
        let behind = || -> rusqlite::Result<bool> {
            let (to, _): (i64, i64) = self
                .conn
                .prepare_cached(SQL_INDEX_STATE)?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let newest: Option<i64> = self
                .conn
                .prepare_cached(SQL_NEWEST_EVENT)?
                .query_row([], |r| r.get(0))
                .optional()?
                .flatten();
            Ok(newest.unwrap_or(0) > to)
        };
        let label = &self.label;
        if !behind().map_err(|e| fail(label, "reading the search index's state", e))? {
            return Ok(());
        }
        self.begin_batch()?;
        index_step(&self.conn, limit)
            .map(drop)
            .map_err(|e| fail(&self.label, "updating the search index", e))
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

    /// The event of an edit (3) or a deletion (4) of `target`, as the loop
    /// stores it with the message's new state.
    fn change(store: &mut Store, id: i64, kind: EventKind, target: i64, text: &str) {
        let e = NewEvent {
            id,
            kind,
            user: UserId(1),
            room: None,
            to: None,
            ts: 2000 + id,
            text,
            client_id: None,
            target: Some(target),
        };
        store.insert_event(&e).unwrap();
        match kind {
            EventKind::Edit => store.edit_message(target, text, 2000 + id).unwrap(),
            EventKind::Delete => store.erase_message(target).unwrap(),
            _ => {}
        }
    }

    #[test]
    fn messages_edits_deletions_and_prunes_keep_the_index_in_step() {
        let (mut store, ann, ben) = store_with_users();
        put(&mut store, 1, ann, None, "the rust compiler");
        put(&mut store, 2, ben, Some(ann), "Rust is café");
        put(&mut store, 3, ann, None, "nothing here");
        // Not committed yet: the search catches the index up in the batch.
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
        change(&mut store, 10, EventKind::Edit, 1, "the go compiler");
        assert_eq!(ids(&mut store, "\"rust\""), [2]);
        assert_eq!(ids(&mut store, "\"go\""), [1]);
        // A deletion erases it from the index.
        change(&mut store, 11, EventKind::Delete, 2, "");
        store.commit().unwrap();
        assert_eq!(ids(&mut store, "\"rust\""), Vec::<i64>::new());
        assert_eq!(ids(&mut store, "\"cafe\""), Vec::<i64>::new());
        // A pruned message too.
        put(&mut store, 12, ann, None, "last");
        assert_eq!(store.prune_messages(Some(3), None, 100).unwrap(), 3);
        assert_eq!(ids(&mut store, "\"compiler\""), Vec::<i64>::new());
        assert_eq!(ids(&mut store, "\"last\""), [12]);
        // Other kinds of event are never indexed.
        change(&mut store, 13, EventKind::ReactOn, 12, "hidden");
        assert_eq!(ids(&mut store, "\"hidden\""), Vec::<i64>::new());
        store.commit().unwrap();
        // The pruned rows' words are gone from the index itself.
        assert_eq!(vocabulary(&mut store), ["last"]);
        integrity(&mut store);
    }

    #[test]
    fn a_deleted_message_is_never_found_even_before_the_index_knows() {
        let (mut store, ann, _) = store_with_users();
        put(&mut store, 1, ann, None, "wombat");
        store.commit().unwrap();
        // The row erased without its event: the index still has its words.
        store.erase_message(1).unwrap();
        assert_eq!(ids(&mut store, "\"wombat\""), Vec::<i64>::new());
    }

    #[test]
    fn the_thread_catches_the_index_up_after_a_restart() {
        let dir = super::super::tests::TempDir::new();
        let path = dir.file("chat.db");
        let mut store = Store::open(&path).unwrap();
        let ann = store
            .create_user("ann", &crate::secret::sha256_hex("1"))
            .unwrap()
            .unwrap()
            .id;
        for id in 1..=300 {
            put(&mut store, id, ann, None, &format!("numbat {id}"));
        }
        store.commit().unwrap();
        store.close().unwrap();
        // As if the server had stopped with the index far behind.
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch("DELETE FROM search_fts; UPDATE search_state SET indexed_to = 0")
            .unwrap();
        drop(raw);
        let store = Store::open(&path).unwrap();
        // The thread, not a search, brings it up to date.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let indexed = || -> i64 {
            store
                .conn
                .query_row("SELECT count(*) FROM search_fts('numbat')", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        while indexed() < 300 {
            assert!(std::time::Instant::now() < deadline, "not caught up");
            std::thread::yield_now();
        }
        let mut store = store;
        assert_eq!(ids(&mut store, "\"numbat\" \"7\""), [7]);
        store.close().unwrap();
    }

    /// Every word the index holds.
    fn vocabulary(store: &mut Store) -> Vec<String> {
        store
            .conn
            .execute_batch(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab \
                 USING fts5vocab(main, search_fts, row)",
            )
            .unwrap();
        let mut stmt = store.conn.prepare("SELECT term FROM temp.vocab").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// FTS5's own check that the index matches its content.
    fn integrity(store: &mut Store) {
        store
            .conn
            .execute(
                "INSERT INTO search_fts (search_fts) VALUES ('integrity-check')",
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
        change(&mut store, 3, EventKind::Delete, 1, "");
        store.commit().unwrap();
        // The index's own vocabulary has no trace of it.
        assert_eq!(vocabulary(&mut store), ["other", "words"]);
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
