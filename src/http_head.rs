//! Response heads the proxy writes itself, for sized answers and event streams alike. Pure:
//! bytes out, no socket.
//!
//! tiny_http's `Response::respond` built a `Header` (two allocated ASCII strings) for every
//! header, formatted the `Date` for every answer and wrote the head through `write!` a piece at
//! a time: about 19,500 instructions and 23 frees per aggregated request, for a head of 300
//! bytes. Here the head is one buffer, and the date comes formatted from the caller (see
//! `exchange`, which formats it once a second per thread).
//!
//! The framing is the proxy's alone: headers that would frame the body a second way
//! (`Content-Length`, `Transfer-Encoding`) or change the connection (`Connection` other than
//! `close`, `Upgrade`, `Trailer`) are never copied from a caller's list, which is what
//! tiny_http's `add_header` refused too; and a name or value that is not plain visible ASCII
//! (a line break above all) is left out, so no header can inject another.

use std::io::Write;

use crate::config::is_header_safe;

/// How the body after the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: a sized answer.
    Length(usize),
    /// `Transfer-Encoding: chunked`: a stream to an HTTP/1.1 client.
    Chunked,
    /// `Connection: close`: a stream to an HTTP/1.0 client ends when the connection does.
    UntilClose,
}

/// The head of an answer: status line, `Date`, the given headers (those that may be sent),
/// the framing header, and the blank line.
pub fn response_head<'a>(
    status: u16,
    date: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    framing: Framing,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"HTTP/1.1 ");
    push_number(&mut head, status as usize);
    head.push(b' ');
    head.extend_from_slice(reason(status).as_bytes());
    head.extend_from_slice(b"\r\nDate: ");
    head.extend_from_slice(date.as_bytes());
    head.extend_from_slice(b"\r\n");
    let mut closes = false;
    for (name, value) in headers {
        if !may_send(name, value) {
            continue;
        }
        if name.eq_ignore_ascii_case("connection") {
            if closes {
                continue;
            }
            closes = true;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(length) => {
            head.extend_from_slice(b"Content-Length: ");
            push_number(&mut head, length);
            head.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::UntilClose if !closes => head.extend_from_slice(b"Connection: close\r\n"),
        Framing::UntilClose => {}
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The bytes a header name (an RFC 9110 token) may hold, indexed by byte: a lookup instead of
/// a search of the 15 symbols for every `-` in a name.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        byte += 1;
    }
    table
};

/// Whether a header from a caller's list may go into the head.
fn may_send(name: &str, value: &str) -> bool {
    let token = !name.is_empty() && name.bytes().all(|b| TCHAR[usize::from(b)]);
    if !token || !is_header_safe(value) {
        return false;
    }
    let is = |other: &str| name.eq_ignore_ascii_case(other);
    if is("connection") {
        return value.trim().eq_ignore_ascii_case("close");
    }
    !(is("content-length")
        || is("transfer-encoding")
        || is("upgrade")
        || is("trailer")
        || is("date"))
}

/// The reason phrase for a status: tiny_http's table, as its `respond` wrote (`Unknown` for a
/// status it does not name; clients read the code, not the phrase).
fn reason(status: u16) -> &'static str {
    tiny_http::StatusCode(status).default_reason_phrase()
}

fn push_number(out: &mut Vec<u8>, number: usize) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{number}");
}

/// An HTTP date (IMF-fixdate, RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_seconds / 86_400;
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = crate::rfc3339::civil_from_days(days as i64);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month as usize).saturating_sub(1) % 12],
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(head: Vec<u8>) -> String {
        String::from_utf8(head).expect("ASCII head")
    }

    #[test]
    fn a_sized_answer_has_status_date_headers_and_length() {
        let head = response_head(
            200,
            "Thu, 01 Jan 1970 00:00:00 GMT",
            [
                ("Content-Type", "application/json"),
                ("x-request-id", "req_1"),
            ],
            Framing::Length(1037),
        );
        assert_eq!(
            text(head),
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Type: application/json\r\nx-request-id: req_1\r\n\
             Content-Length: 1037\r\n\r\n"
        );
    }

    #[test]
    fn streams_are_chunked_or_closed() {
        let chunked = text(response_head(200, "d", [], Framing::Chunked));
        assert!(chunked.ends_with("\r\nTransfer-Encoding: chunked\r\n\r\n"));
        let closed = text(response_head(200, "d", [], Framing::UntilClose));
        assert!(closed.ends_with("\r\nConnection: close\r\n\r\n"));
        let asked = text(response_head(
            503,
            "d",
            [("Connection", "close")],
            Framing::UntilClose,
        ));
        assert_eq!(asked.matches("Connection: close").count(), 1, "{asked}");
        assert!(asked.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }

    #[test]
    fn framing_and_unsafe_headers_from_a_list_are_left_out() {
        let head = text(response_head(
            413,
            "d",
            [
                ("Content-Length", "5"),
                ("transfer-encoding", "chunked"),
                ("Connection", "keep-alive"),
                ("Connection", "close"),
                ("Upgrade", "h2c"),
                ("Date", "yesterday"),
                ("x-injected", "a\r\nSet-Cookie: b"),
                ("bad name", "v"),
                ("bad:name", "v"),
                ("", "v"),
                ("Retry-After", "1"),
            ],
            Framing::Length(0),
        ));
        assert_eq!(
            head,
            "HTTP/1.1 413 Payload Too Large\r\nDate: d\r\nConnection: close\r\n\
             Retry-After: 1\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn the_token_table_holds_exactly_the_rfc_9110_tchars() {
        let symbols = b"!#$%&'*+-.^_`|~";
        for byte in 0..=255u8 {
            let expected = byte.is_ascii_alphanumeric() || symbols.contains(&byte);
            assert_eq!(TCHAR[usize::from(byte)], expected, "byte {byte:#04x}");
        }
    }

    #[test]
    fn an_unnamed_status_keeps_its_code() {
        let head = text(response_head(599, "d", [], Framing::Length(0)));
        assert!(head.starts_with("HTTP/1.1 599 Unknown\r\n"), "{head}");
    }

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(http_date(1_796_515_199), "Sat, 05 Dec 2026 23:59:59 GMT");
    }
}
