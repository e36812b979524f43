//! Capability URLs kept out of errors and logs: a presigned storage URL (`X-Amz-Signature`),
//! a signed CDN URL or an upload session's state carry their secret in the query, and both
//! reqwest and docker name the URL they were sending to (after redirects) in their errors.
//! Every text that may hold a URL passes through [`redact`] before it becomes an error or an
//! event. Pure.

use std::borrow::Cow;

/// What stands for a query (and fragment) that was left out.
const REDACTED: &str = "?[redacted]";

/// `text` with the query and fragment of every `http://` or `https://` URL in it replaced by
/// `?[redacted]`; the scheme, host and path stay, to say where a request went.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut redacted = String::new();
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some(after_scheme) = url_start(bytes, at) else {
            at += 1;
            continue;
        };
        let mut end = after_scheme;
        while end < bytes.len() && !ends_url(bytes, end) && !matches!(bytes[end], b'?' | b'#') {
            end += 1;
        }
        if end < bytes.len() && matches!(bytes[end], b'?' | b'#') {
            let query = end;
            end += 1;
            while end < bytes.len() && !ends_url(bytes, end) {
                end += 1;
            }
            redacted.push_str(&text[copied..query]);
            redacted.push_str(REDACTED);
            copied = end;
        }
        at = end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    redacted.push_str(&text[copied..]);
    Cow::Owned(redacted)
}

/// Where the URL starting at `at` goes on after its `scheme://`, if one starts there.
fn url_start(bytes: &[u8], at: usize) -> Option<usize> {
    ["https://", "http://"].iter().find_map(|scheme| {
        bytes
            .get(at..at + scheme.len())
            .filter(|candidate| candidate.eq_ignore_ascii_case(scheme.as_bytes()))
            .map(|_| at + scheme.len())
    })
}

/// Whether the byte at `at` ends a URL in running text: a space, a quote, an angle bracket,
/// or a closing parenthesis that closes the text around it (reqwest writes `for url (URL)`).
fn ends_url(bytes: &[u8], at: usize) -> bool {
    match bytes[at] {
        byte if byte.is_ascii_whitespace() => true,
        b'"' | b'\'' | b'<' | b'>' | b'`' | b'\\' => true,
        b')' => bytes
            .get(at + 1)
            .is_none_or(|next| !(next.is_ascii_alphanumeric() || b"%&=-_~+(".contains(next))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_of_urls_are_left_out_and_everything_else_kept() {
        let cases = [
            ("no url here", "no url here"),
            (
                "https://r.example/v2/a/blobs/sha256:1",
                "https://r.example/v2/a/blobs/sha256:1",
            ),
            (
                "https://bucket.s3.amazonaws.com/x?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA",
                "https://bucket.s3.amazonaws.com/x?[redacted]",
            ),
            (
                "error sending request for url (https://cdn.example/x?sig=s3cr3t): connection refused",
                "error sending request for url (https://cdn.example/x?[redacted]): connection refused",
            ),
            (
                "for url (https://cdn.example/x?sig=a)b(c))",
                "for url (https://cdn.example/x?[redacted]))",
            ),
            (
                "GET HTTP://h/v2/a/blobs/uploads/u?_state=s3cr3t and https://b/p#frag",
                "GET HTTP://h/v2/a/blobs/uploads/u?[redacted] and https://b/p?[redacted]",
            ),
            (
                "url \"https://h/p?token=s3cr3t\" and 'http://h/?k=s3cr3t'",
                "url \"https://h/p?[redacted]\" and 'http://h/?[redacted]'",
            ),
            ("https://h/p?[redacted]", "https://h/p?[redacted]"),
            ("a ? b https:// c", "a ? b https:// c"),
            (
                "ünïcode https://h/é?x=s3cr3t é",
                "ünïcode https://h/é?[redacted] é",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(redact(text), expected, "{text}");
            assert!(!redact(text).contains("s3cr3t"), "{text}");
        }
    }
}
