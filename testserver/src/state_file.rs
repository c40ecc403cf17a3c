//! The coordinators' state files in `data_dir`, stand-ins for Kafka's compacted internal
//! topics (`__transaction_state`, `__consumer_offsets`): line-oriented text, rewritten whole
//! through a temporary file and a rename, so a crash mid-write leaves the previous version.
//! Strings that may hold any character (group and transactional ids, metadata) are written
//! hex-encoded behind an `x`.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// `s` hex-encoded behind an `x` (`""` is `"x"`).
pub(crate) fn hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2 + 1);
    out.push('x');
    for b in s.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The string `hex` wrote; `None` when `s` is not one.
pub(crate) fn unhex(s: &str) -> Option<String> {
    let s = s.strip_prefix('x')?;
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Replaces `file` with `text`: written to `<file>.tmp`, then renamed over `file`.
pub(crate) fn write_atomic(file: &Path, text: &str) -> io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

/// The lines of `file` that `parse` accepts (none when there is no file). A line that does
/// not parse (or is not UTF-8) is skipped with a warning naming `what`: a damaged line loses
/// one entry, never the others. A file that cannot be read at all is an error naming it.
pub(crate) fn read_lines<T>(
    file: &Path,
    what: &str,
    mut parse: impl FnMut(&str) -> Option<T>,
) -> io::Result<Vec<T>> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot read the {what} in {}: {e}", file.display()),
            ))
        }
    };
    let mut out = Vec::new();
    for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match std::str::from_utf8(raw).ok().and_then(&mut parse) {
            Some(v) => out.push(v),
            None => tracing::warn!(
                file = %file.display(),
                line = %String::from_utf8_lossy(raw),
                reason = "does not parse",
                "skipping a line of the {what}"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_damage() {
        for s in ["", "a b,c:d\n", "ü"] {
            assert_eq!(unhex(&hex(s)).as_deref(), Some(s));
        }
        for bad in ["", "61", "x6", "xzz", "xff"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
    }

    #[test]
    fn atomic_write_replaces_and_damaged_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("kp-state-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state");
        assert!(read_lines(&file, "test state", |l| Some(l.to_owned()))
            .unwrap()
            .is_empty());
        write_atomic(&file, "old\n").unwrap();
        write_atomic(&file, "1\n").unwrap();
        assert!(!file.with_extension("tmp").exists());
        let mut text = b"1\nnot a number\n\xff\xfe\n2\n".to_vec();
        text.extend_from_slice(b"3");
        std::fs::write(&file, text).unwrap();
        let got = read_lines(&file, "test state", |l| l.parse::<i32>().ok()).unwrap();
        assert_eq!(got, vec![1, 2, 3]);
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        let e = read_lines(&file, "test state", |l| Some(l.to_owned())).unwrap_err();
        assert!(
            e.to_string().contains("cannot read the test state in"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
