//! Just enough HTTP/1.1 for the test fakes: requests with Content-Length or chunked bodies,
//! `Expect: 100-continue`, and responses with a Content-Length (so keep-alive works).
//! Written by hand to keep test dependencies at zero.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
pub async fn read_request(
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
            request.body.resize(start + size, 0);
            read.read_exact(&mut request.body[start..]).await?;
            line.clear();
            read.read_line(&mut line).await?;
        }
    } else if let Some(len) = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
    {
        request.body.resize(len, 0);
        read.read_exact(&mut request.body).await?;
    }
    Ok(Some(request))
}

/// Writes one response with a Content-Length; `head_only` leaves the body out (HEAD).
pub async fn write_response(
    write: &mut OwnedWriteHalf,
    status: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         request-id: req_fake\r\n\r\n",
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
