//! piratchat: a real-time chat server that speaks the Piratchat HTTP and
//! WebSocket API, built as one `mio` event loop over a sans-IO chat core.
//!
//! Layers (arrows point down only; a lower module never imports a higher one):
//!
//! ```text
//! admin_cli `piratchat admin ...`: an HTTP client of a running server
//! server/   the only code that touches mio, sockets, signals or the clock;
//!           the loop turn itself is generic over the socket (server::turn)
//! api/      (request, session) -> response; WebSocket text -> chat calls
//! metrics   counters and gauges, the /metrics text
//! chat/     the domain, sans-IO: sessions, presence, broadcast, acks, limits
//! store     the only code that imports rusqlite
//! http/     request framing over httparse, responses, cookies
//! log       the logger (levels, one escaped line per event)
//! config    every setting with its default
//! wheel     the timer wheel: pure data, `now` passed in
//! protocol  serde types for every JSON body and frame
//! secret    random keys and tokens, SHA-256
//! event     the event log's records, shared by chat and store
//! ids       UserId, ConnId, Millis: the ids and time every layer shares
//! ```
//!
//! (`metrics` reads the chat's counters; `log` reads the log level from
//! `config`; `chat` reads its part of `config`, and imports nothing from
//! `store` or `server`.) Inside a layer no module imports one that imports
//! it back: types several parts share sit in a leaf (`chat::outbox`,
//! `store::error`, `config::values`, `server::core`, `server::link`), and
//! a child reaches into its parent only for the type whose methods it
//! holds (`Chat`, `Store`, `Server`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin_cli;
pub mod api;
pub mod chat;
pub mod config;
pub mod event;
pub mod http;
pub mod ids;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod secret;
pub mod server;
pub mod store;
pub mod wheel;
