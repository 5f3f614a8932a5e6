//! Percent-decoding (RFC 3986 §2.1) of path segments and query values, and
//! looking up a query parameter. Kept apart from the parser: the parser
//! hands the target on still encoded, and each route decodes only the parts
//! it uses.

/// Decodes the `%XX` escapes of a path segment or query value.
///
/// `None` when an escape is malformed (`%`, `%4`, `%zz`) or the decoded
/// bytes are not UTF-8. `+` stays `+`: it only means a space in HTML form
/// bodies, and our clients encode spaces as `%20`.
pub fn percent_decode(s: &str) -> Option<String> {
    let mut bytes = s.bytes();
    let mut out = Vec::with_capacity(s.len());
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let high = hex_value(bytes.next()?)?;
            let low = hex_value(bytes.next()?)?;
            out.push((high << 4) | low);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The value of one hex digit.
fn hex_value(b: u8) -> Option<u8> {
    // to_digit(16) is at most 15, so the cast cannot truncate.
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The raw (still encoded) value of the first `name=value` pair in `query`
/// (the part after `?`, pairs separated by `&`).
///
/// A pair without `=` does not match: `?name` has no value to return.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            ("alice", Some("alice")),
            ("a%20b", Some("a b")),
            ("a+b", Some("a+b")),
            ("%41%62%63", Some("Abc")),
            ("%e2%82%AC", Some("\u{20ac}")),
            ("100%25", Some("100%")),
            ("%2F", Some("/")),
            ("%", None),
            ("%4", None),
            ("abc%", None),
            ("%zz", None),
            ("%+1", None),
            ("%-1", None),
            ("%ff", None),
            ("%c3", None),
            ("%c3%a9", Some("\u{e9}")),
            ("\u{e9}", Some("\u{e9}")),
        ];
        for &(input, want) in cases {
            assert_eq!(percent_decode(input).as_deref(), want, "input {input:?}");
        }
    }

    #[test]
    fn query_param_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("", "a", None),
            ("a=1", "a", Some("1")),
            ("a=1&b=2", "b", Some("2")),
            ("a=1&a=2", "a", Some("1")),
            ("a=", "a", Some("")),
            ("a", "a", None),
            ("a&a=3", "a", Some("3")),
            ("ab=1", "a", None),
            ("a=x%20y", "a", Some("x%20y")),
            ("a=b=c", "a", Some("b=c")),
            ("&&a=1", "a", Some("1")),
            ("A=1", "a", None),
        ];
        for &(query, name, want) in cases {
            assert_eq!(query_param(query, name), want, "{query:?} {name:?}");
        }
    }
}
