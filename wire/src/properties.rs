//! Java-style `.properties` text (`key=value` lines), the format Kafka clients read their
//! settings from: [`parse`] turns it into the pairs that
//! [`ClientConfig::with_property`](crate::ClientConfig::with_property) takes, and
//! [`ClientConfig::with_properties_text`](crate::ClientConfig::with_properties_text) applies
//! them.
//!
//! Supported: one `key=value` or `key: value` per line, whitespace around key and value
//! trimmed, blank lines and lines starting with `#` or `!` ignored, a value may contain `=`.
//! Skipped: backslash escapes and line continuations (no Kafka client setting needs them;
//! a PEM is given by file, `ssl.ca.location`, or through the builder).

/// Parses properties text into `(key, value)` pairs, in order. An error names the line
/// number, never its content (it may hold a password).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']);
        let Some(at) = split else {
            return Err(format!("properties line {}: no '=' after the key", i + 1));
        };
        let key = line[..at].trim();
        if key.is_empty() {
            return Err(format!("properties line {}: empty key", i + 1));
        }
        out.push((key.to_owned(), line[at + 1..].trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_separators() {
        let text = "# a comment\n! another\n\nsecurity.protocol = SASL_SSL\n\
                    sasl.password=pa=ss:word\nssl.ca.location: /tmp/ca.pem\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
                ("sasl.password".to_owned(), "pa=ss:word".to_owned()),
                ("ssl.ca.location".to_owned(), "/tmp/ca.pem".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_name_the_line_not_the_content() {
        let e = parse("a=1\nhunter2-secret\n").unwrap_err();
        assert!(e.contains("line 2") && !e.contains("hunter2"), "{e}");
        assert!(parse("=x").unwrap_err().contains("empty key"));
    }
}
