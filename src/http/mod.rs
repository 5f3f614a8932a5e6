//! HTTP/1.x request framing over `httparse` and response writing. Pure: bytes
//! in, values out, no sockets.

mod request;
mod response;

pub use request::{HttpError, Limits, Method, Parsed, Request, Version, parse_request};
pub use response::{Response, cookie_value, status_reason};
