//! The hand-rolled HTTP/1.1 layer: parsers (head, chunked, multipart, range, query) are
//! sans-IO and fuzzed; `conn` drives them over a glommio TcpStream; `response` serializes.

pub mod chunked;
pub mod conn;
pub mod content;
pub mod disposition;
pub mod head;
pub mod multipart;
pub mod params;
pub mod query;
pub mod range;
pub mod response;
pub mod sendfile;

pub use conn::{BodyError, Request};
pub use response::{Body, Response};
