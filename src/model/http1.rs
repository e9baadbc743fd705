//! Just enough HTTP/1.1 for the scripted model: requests with Content-Length or chunked
//! bodies, `Expect: 100-continue`, and responses with a Content-Length (so keep-alive works).
//! Written by hand: the server only ever talks to the `claude` CLI on 127.0.0.1, and a whole
//! HTTP stack would be a large dependency for these hundred lines.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The largest request body accepted. The CLI's requests carry the whole conversation, a few
/// hundred KiB at most; the cap keeps a broken client from making the daemon allocate without
/// bound.
const MAX_BODY: usize = 64 << 20;

fn too_large(len: usize) -> std::io::Error {
    std::io::Error::other(format!(
        "request body of {len} bytes is over the {MAX_BODY}-byte limit"
    ))
}

pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
pub(crate) async fn read_request(
    read: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate stray blank lines between requests (RFC 9112 §2.2).
    while line.trim().is_empty() {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    if request
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            line.clear();
            read.read_line(&mut line).await?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = request.body.len();
            if start.saturating_add(size) > MAX_BODY {
                return Err(too_large(start.saturating_add(size)));
            }
            request.body.resize(start + size, 0);
            read.read_exact(&mut request.body[start..]).await?;
            line.clear();
            read.read_line(&mut line).await?;
        }
    } else if let Some(len) = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
    {
        if len > MAX_BODY {
            return Err(too_large(len));
        }
        request.body.resize(len, 0);
        read.read_exact(&mut request.body).await?;
    }
    Ok(Some(request))
}

/// Writes one response with a Content-Length; `head_only` leaves the body out (HEAD).
pub(crate) async fn write_response(
    write: &mut OwnedWriteHalf,
    status: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         request-id: req_scripted\r\nserver: borg-scripted-model\r\n\r\n",
        reason(status),
        body.len()
    );
    write.write_all(head.as_bytes()).await?;
    if !head_only {
        write.write_all(body.as_bytes()).await?;
    }
    Ok(())
}

/// Clients ignore the reason phrase; it only has to be there.
fn reason(status: u16) -> &'static str {
    if status == 200 { "OK" } else { "Scripted" }
}
