//! Request parameters as go-fastdfs reads them (Go's FormValue): the fields of an
//! urlencoded or small multipart body first, then the query string; the first value wins.

use super::{query, BodyError, Request};

/// Why the parameters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A form body that does not parse.
    #[error("{0}")]
    Form(String),
}

/// Largest urlencoded body accepted by non-upload routes.
pub const FORM_BYTES_MAX: u64 = 1 << 20;

/// Request parameters: body fields first, then the query string.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value, or "" when absent.
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn push_query(&mut self, q: &str) {
        self.0.extend(query::parse_urlencoded(q.as_bytes()));
    }
}

/// Query parameters plus an `application/x-www-form-urlencoded` body (bounded).
pub async fn read_params(req: &mut Request<'_>) -> Result<Params, ParamsError> {
    let mut p = Params::default();
    let is_form = req
        .head
        .header_str("content-type")
        .map(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if is_form {
        let body = req.read_to_end(FORM_BYTES_MAX).await?;
        p.0.extend(query::parse_urlencoded(&body));
    } else if super::multipart::boundary_from_content_type(
        req.head.header("content-type").unwrap_or(b""),
    )
    .is_some()
    {
        read_multipart_fields(req, &mut p).await?;
    }
    p.push_query(req.head.query());
    Ok(p)
}

/// Text fields of a small multipart body (peers and scripts post forms this way too).
async fn read_multipart_fields(req: &mut Request<'_>, p: &mut Params) -> Result<(), ParamsError> {
    use super::multipart::{boundary_from_content_type, Event, Limits, Parser};
    let boundary = boundary_from_content_type(req.head.header("content-type").unwrap_or(b""))
        .ok_or(ParamsError::Form("bad multipart boundary".into()))?;
    let body = req.read_to_end(FORM_BYTES_MAX).await?;
    let mut buf = bytes::BytesMut::from(&body[..]);
    let mut parser = Parser::new(&boundary, Limits::default());
    let mut current: Option<(String, Vec<u8>)> = None;
    loop {
        match parser
            .next_event(&mut buf)
            .map_err(|e| ParamsError::Form(e.to_string()))?
        {
            Some(Event::PartStart(h)) => current = Some((h.name, Vec::new())),
            Some(Event::Data(d)) => {
                if let Some((_, v)) = current.as_mut() {
                    v.extend_from_slice(&d);
                }
            }
            Some(Event::PartEnd) => {
                if let Some((k, v)) = current.take() {
                    p.0.push((k, String::from_utf8_lossy(&v).into_owned()));
                }
            }
            Some(Event::End) | None => break,
        }
    }
    Ok(())
}
