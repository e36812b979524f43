//! An in-process fake registry for unit tests: a plain-HTTP/1.1 server on loopback (where
//! ecrcp speaks HTTP without TLS) that answers from a script and records every request. A
//! route is a method and a path pattern with a queue of answers (the last one repeats), so a
//! test says "503, then 201" and then asserts on the requests as they arrived: their order,
//! their headers, the bytes of their bodies. One connection per request (`Connection:
//! close`), served on a thread of its own, outside the test's async runtime, so a test that
//! blocks or sleeps holds up no answer.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0: no answer at all ([`Answer::hang_up`]).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many bytes of `body` (under its full Content-Length), then drop the
    /// connection: a read that breaks off midway.
    pub cut: Option<usize>,
    /// No Content-Length: the body ends with the connection.
    pub close_delimited: bool,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut: None,
            close_delimited: false,
        }
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// No answer at all: the request is read whole, then the connection dropped, as when a
    /// registry or the network between fails after the last byte of an upload.
    pub fn hang_up() -> Self {
        Answer::status(0)
    }

    /// Sends the body without a Content-Length, ending it with the connection.
    #[must_use]
    pub fn close_delimited(mut self) -> Self {
        self.close_delimited = true;
        self
    }

    /// Sends the first `bytes` of the body only, then drops the connection.
    #[must_use]
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.cut = Some(bytes);
        self
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path with its query, as sent.
    pub target: String,
    /// Names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
    /// As much of the body as came.
    pub body: Vec<u8>,
    /// Whether the body came whole; a request whose body broke off gets no answer.
    pub complete: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(path, _)| path)
    }

    /// `METHOD TARGET`, the way tests compare sequences of requests.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

struct Route {
    method: String,
    pattern: String,
    answers: VecDeque<Answer>,
}

#[derive(Default)]
struct Script {
    routes: Vec<Route>,
    requests: Vec<Recorded>,
}

/// The fake; it serves until the test process ends.
pub struct FakeRegistry {
    port: u16,
    script: Arc<Mutex<Script>>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let script = Arc::new(Mutex::new(Script::default()));
        let serving = Arc::clone(&script);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let script = Arc::clone(&serving);
                std::thread::spawn(move || {
                    // A client that hangs up early is the client's business.
                    let _ = serve(stream, &script);
                });
            }
        });
        FakeRegistry { port, script }
    }

    /// `127.0.0.1:PORT`: the registry part of a reference to it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Answers `method` requests whose path (with the query when `pattern` has a `?`) matches
    /// `pattern`, where `*` stands for any run of characters, with `answers` in turn; the
    /// last repeats. Routes are tried in the order given.
    pub fn route(&self, method: &str, pattern: &str, answers: impl IntoIterator<Item = Answer>) {
        let answers: VecDeque<Answer> = answers.into_iter().collect();
        assert!(!answers.is_empty(), "a route answers something");
        self.script.lock().expect("script poisoned").routes.push(Route {
            method: method.to_owned(),
            pattern: pattern.to_owned(),
            answers,
        });
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().expect("script poisoned").requests.clone()
    }

    /// `METHOD TARGET` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    /// The requests so far of `method` whose path matches `pattern`.
    pub fn matching(&self, method: &str, pattern: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == method && matches(pattern, target_for(pattern, request)))
            .collect()
    }
}

fn target_for<'r>(pattern: &str, request: &'r Recorded) -> &'r str {
    if pattern.contains('?') {
        &request.target
    } else {
        request.path()
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&at| rest.is_char_boundary(at))
                .any(|at| matches(tail, &rest[at..]))
        }
    }
}

/// Reads one request, records it, answers it from the script and closes the connection.
fn serve(stream: TcpStream, script: &Mutex<Script>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default().to_owned(),
        words.next().unwrap_or_default().to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let named = |name: &str| {
        headers
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.clone())
    };
    let mut body = Vec::new();
    let read = if named("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader, &mut body)
    } else {
        let length = named("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        read_sized(&mut reader, length, &mut body)
    };
    let recorded = Recorded {
        method,
        target,
        headers,
        body,
        complete: read.is_ok(),
    };
    if let Err(error) = read {
        script.lock().expect("script poisoned").requests.push(recorded);
        return Err(error);
    }
    let answer = {
        let mut script = script.lock().expect("script poisoned");
        let answer = script
            .routes
            .iter_mut()
            .find(|route| {
                route.method == recorded.method
                    && matches(&route.pattern, target_for(&route.pattern, &recorded))
            })
            .map_or_else(
                || Answer::status(404),
                |route| {
                    if route.answers.len() > 1 {
                        route.answers.pop_front().expect("answers left")
                    } else {
                        route.answers[0].clone()
                    }
                },
            );
        script.requests.push(recorded.clone());
        answer
    };
    let mut stream = stream;
    if answer.status == 0 {
        return stream.shutdown(Shutdown::Both);
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\n",
        answer.status,
        reason(answer.status)
    );
    if !answer.close_delimited {
        head = head + "Content-Length: " + &answer.body.len().to_string() + "\r\n";
    }
    for (name, value) in &answer.headers {
        head = head + name + ": " + value + "\r\n";
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if recorded.method != "HEAD" {
        let end = answer.cut.unwrap_or(answer.body.len()).min(answer.body.len());
        stream.write_all(&answer.body[..end])?;
    }
    stream.flush()?;
    // A cut body ends with the connection: the reader sees it drop.
    stream.shutdown(Shutdown::Both)
}

/// Reads `length` bytes of body into `body`, keeping what came when the connection breaks.
fn read_sized(reader: &mut impl std::io::Read, length: usize, body: &mut Vec<u8>) -> std::io::Result<()> {
    let got = reader.take(length as u64).read_to_end(body)?;
    if got < length {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn read_chunked(reader: &mut impl std::io::BufRead, body: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
        if size == 0 {
            // The trailer section: lines up to an empty one.
            let mut trailer = String::new();
            while reader.read_line(&mut trailer)? > 2 {
                trailer.clear();
            }
            return Ok(());
        }
        read_sized(reader, size, body)?;
        let mut end = String::new();
        reader.read_line(&mut end)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_whole_paths_with_stars_for_any_run() {
        for (pattern, text, expected) in [
            ("/v2/", "/v2/", true),
            ("/v2/", "/v2/x", false),
            ("/v2/*/blobs/*", "/v2/team/app/blobs/sha256:ab", true),
            ("/v2/*/blobs/*", "/v2/team/app/manifests/1", false),
            ("*?mount=*", "/v2/a/blobs/uploads/?mount=sha256:1&from=b", true),
            ("/upload/*", "/upload/", true),
            ("*/manifests/1", "/v2/a/manifests/10", false),
        ] {
            assert_eq!(matches(pattern, text), expected, "{pattern} vs {text}");
        }
    }
}
