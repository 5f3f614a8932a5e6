//! piratchat: a real-time chat server that speaks the Piratchat HTTP and
//! WebSocket API, built as one `mio` event loop over a sans-IO chat core.
//!
//! Layers (arrows point down only; a lower module never imports a higher one):
//!
//! ```text
//! server/   the only code that touches mio, sockets, signals or the clock
//! api/      (request, session) -> response; WebSocket text -> chat calls
//! chat/     the domain, sans-IO: sessions, presence, broadcast, acks, limits
//! store     the only code that imports rusqlite
//! http/     request framing over httparse, responses, cookies
//! wheel     the timer wheel: pure data, `now` passed in
//! protocol  serde types for every JSON body and frame
//! config    every setting with its default
//! secret    random keys and tokens, SHA-256
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

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
