//! HTTP/1.x request framing over `httparse` and response writing. Pure: bytes
//! in, values out, no sockets, no clock.
//!
//! - [`parse_request`] is a stateless push parser: call it with everything
//!   received so far; it answers [`Parsed::Complete`] with the bytes used,
//!   [`Parsed::Partial`] (nothing used) or an [`HttpError`] that says what
//!   the peer gets.
//! - [`Response::write_to`] serializes a response for a given request.
//! - [`percent_decode`], [`query_param`] and [`cookie_value`] pick apart the
//!   target and headers for the routes.

mod chunked;
mod limits;
mod percent;
mod request;
mod response;

pub use limits::{CHUNK_FRAMING_SLACK, HttpError, Limits};
pub use percent::{percent_decode, query_param};
pub use request::{Method, Parsed, Request, Version, parse_request};
pub use response::{CONTINUE, Response, cookie_value, set_cookie, status_reason};
