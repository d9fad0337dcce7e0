//! Plain HTTP/1.1 requests to the local pages, beside the browser: the
//! requests a browser would never make (no cookie, a foreign `Origin`, a form
//! without its CSRF token, a 10 MB body), with every header under the test's
//! control.
//!
//! A small client over `std::net::TcpStream` (one request per connection,
//! `Connection: close`), so that what is sent is exactly what the test
//! wrote.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bound on one request (connect, send, receive), on an idle machine; scaled
/// by [`crate::deadline`].
pub const HTTP_WAIT: Duration = Duration::from_secs(30);

/// Largest response read (the pages are a few tens of KB).
pub const MAX_RESPONSE: usize = 4 << 20;

/// A response: status, headers (names lower-cased) and body as text.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// Path and query (`/`, `/certify?x=1`).
    pub path: &'a str,
    /// Headers; `Host` defaults to the server's address when not given.
    pub headers: Vec<(&'a str, String)>,
    /// The body (a `Content-Length` is added when it is not empty).
    pub body: Vec<u8>,
}

impl<'a> Request<'a> {
    /// A `GET` of `path`.
    pub fn get(path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            path,
            ..Request::default()
        }
    }

    /// A `POST` of an `application/x-www-form-urlencoded` form.
    pub fn form(path: &'a str, fields: &[(&str, &str)]) -> Request<'a> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        Request {
            method: "POST",
            path,
            headers: vec![(
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: body.into_bytes(),
        }
    }

    /// A `POST` of a `multipart/form-data` form: text fields and at most one
    /// file (`name`, file name, bytes).
    pub fn multipart(
        path: &'a str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, &[u8])>,
    ) -> Request<'a> {
        const BOUNDARY: &str = "meshtrace-test-boundary-7d1f9c";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        if let Some((name, filename, bytes)) = file {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                     filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        Request {
            method: "POST",
            path,
            headers: vec![(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )],
            body,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Request<'a> {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends it to `addr` and reads the whole response. The body is written
    /// from another thread while the response is read, so that a server
    /// that answers early (413 to a large upload) and closes is still heard.
    pub fn send(&self, addr: SocketAddr) -> Response {
        let limit = crate::deadline(HTTP_WAIT);
        let mut s = TcpStream::connect_timeout(&addr, limit)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        s.set_read_timeout(Some(limit)).expect("read timeout");
        s.set_write_timeout(Some(limit)).expect("write timeout");
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).expect("send the request head");
        let mut w = s.try_clone().expect("clone the socket");
        let body = self.body.clone();
        let writer = std::thread::spawn(move || {
            // A server that refuses early closes the connection: a failed
            // write is then expected, and the response says why.
            let _ = w.write_all(&body);
        });
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    assert!(
                        raw.len() <= MAX_RESPONSE,
                        "response over {MAX_RESPONSE} bytes"
                    );
                }
                // A reset after the whole response arrived (the server
                // closed with our body unread) ends the response too.
                Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    break;
                }
                Err(e) => panic!("reading the response from {addr}: {e}"),
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
        parse(&raw).unwrap_or_else(|why| {
            panic!(
                "not an HTTP response ({why}): {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(300)])
            )
        })
    }
}

fn parse(raw: &[u8]) -> Result<Response, &'static str> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line")?;
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or("a chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            return Err("a cut chunk");
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// Percent-encodes a form field (`application/x-www-form-urlencoded`).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The value of the hidden form field `name` in an HTML page (e.g. the CSRF
/// token), if present.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = html.find(&needle)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let len = tag[v..].find('"')?;
    Some(html_unescape(&tag[v..v + len]))
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        let r = parse(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "abcde");
        assert_eq!(r.set_cookies(), ["a=1"]);
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab").is_err());
    }

    #[test]
    fn hidden_fields_are_found_by_name() {
        let html = r#"<form><input type="hidden" name="csrf" value="a&amp;b"><input name="x" value="y"></form>"#;
        assert_eq!(hidden_field(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(hidden_field(html, "x").as_deref(), Some("y"));
        assert_eq!(hidden_field(html, "z"), None);
        assert_eq!(urlencode("a b&é"), "a+b%26%C3%A9");
    }
}
