//! Making client- and token-supplied strings safe inside an object key.
//!
//! Two different jobs: a *filename* only has to be harmless (collisions do not matter,
//! `{uuid}` keeps keys apart), so it is cleaned lossily and stays readable; a *subject*
//! decides whose prefix a key lands in, so it is escaped injectively: two different
//! subjects can never give the same key segment.

use unicode_normalization::UnicodeNormalization as _;

/// Longest sanitised filename, in UTF-8 bytes (S3 allows 1024 for the whole key).
pub const MAX_FILENAME_BYTES: usize = 200;

/// Longest escaped subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// Longest extension kept for `{ext}`.
const MAX_EXT_CHARS: usize = 16;

/// Characters that never reach a key from a filename: path separators, the characters
/// S3 documents as needing special handling, and `$` so that no `${filename}` survives.
const REPLACED: &[char] = &[
    '/', '\\', '{', '}', '^', '%', '`', '[', ']', '"', '<', '>', '~', '#', '|', '$', '&', '?', '*',
    ':', ';', '=', '+', '@', ',', '\'',
];

/// Invisible characters that can make a name look like another: bidi overrides and
/// isolates, marks, zero-width characters and the BOM.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
        | '\u{061C}' | '\u{FEFF}' | '\u{00AD}')
}

/// A filename made safe for a key: NFC, no path separators, control or invisible
/// characters, no leading or trailing dots or spaces, no `..`, white space and awkward
/// punctuation turned into `_`, at most [`MAX_FILENAME_BYTES`] (the extension is kept
/// when cutting). `None` when nothing usable is left.
pub fn sanitize_filename(raw: &str) -> Option<String> {
    let mut cleaned = String::with_capacity(raw.len());
    for c in raw.nfc() {
        if c.is_control() || is_invisible(c) {
            continue;
        }
        let c = if c.is_whitespace() || REPLACED.contains(&c) {
            '_'
        } else {
            c
        };
        // No runs of dots (so no `..`) and no runs of underscores.
        if (c == '.' || c == '_') && cleaned.ends_with(c) {
            continue;
        }
        cleaned.push(c);
    }
    let trimmed = cleaned.trim_matches(|c| c == '.' || c == '_');
    if trimmed.is_empty() {
        return None;
    }
    Some(truncate_keeping_extension(trimmed, MAX_FILENAME_BYTES))
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let ext = extension(name);
    let keep = if ext.is_empty() {
        max
    } else {
        max - ext.len() - 1
    };
    let mut cut = keep;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = name[..cut].trim_end_matches(['.', '_']);
    if ext.is_empty() {
        stem.to_owned()
    } else {
        format!("{stem}.{ext}")
    }
}

/// The extension of a sanitised filename for `{ext}`: after the last dot, lower-case
/// ASCII letters and digits only, at most 16; empty when there is none.
pub fn extension(filename: &str) -> String {
    match filename.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && !ext.is_empty()
                && ext.len() <= MAX_EXT_CHARS
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            ext.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// A subject (the token's `sub`) as one key segment, escaped injectively: letters,
/// digits and `-_.@+` stay, a leading `.` and every other byte become `=XX` (upper-case
/// hex), and `=` itself is escaped, so decoding is unique. `None` when empty or longer
/// than [`MAX_SUBJECT_BYTES`] once escaped.
pub fn escape_subject(sub: &str) -> Option<String> {
    let mut out = String::with_capacity(sub.len());
    for (i, b) in sub.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@' | b'+' | b'.');
        if keep && !(i == 0 && b == b'.') {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('=');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    (!out.is_empty() && out.len() <= MAX_SUBJECT_BYTES).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_controls_and_tricks() {
        let s = |raw| sanitize_filename(raw);
        assert_eq!(s("holiday photo.jpg").as_deref(), Some("holiday_photo.jpg"));
        assert_eq!(s("../../etc/passwd").as_deref(), Some("etc_passwd"));
        assert_eq!(s("..\\..\\win.ini").as_deref(), Some("win.ini"));
        assert_eq!(s("a%2Fb.txt").as_deref(), Some("a_2Fb.txt"));
        assert_eq!(s("x\u{0}y\nz.png").as_deref(), Some("xyz.png"));
        assert_eq!(
            s("invoice\u{202E}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
        assert_eq!(s("${filename}").as_deref(), Some("filename"));
        assert_eq!(s("a..b...c").as_deref(), Some("a.b.c"));
        assert_eq!(s(".hidden").as_deref(), Some("hidden"));
        assert_eq!(s("  ..  "), None);
        assert_eq!(s(""), None);
        assert_eq!(s("/"), None);
        assert_eq!(s("😀 ünï.pdf").as_deref(), Some("😀_ünï.pdf"));
    }

    #[test]
    fn filenames_are_nfc() {
        let nfd = "e\u{301}te\u{301}.txt";
        assert_eq!(sanitize_filename(nfd).as_deref(), Some("\u{e9}t\u{e9}.txt"));
    }

    #[test]
    fn long_filenames_are_cut_keeping_the_extension() {
        let long = format!("{}.jpeg", "a".repeat(5000));
        let cut = sanitize_filename(&long).unwrap();
        assert!(cut.len() <= MAX_FILENAME_BYTES);
        assert!(cut.ends_with(".jpeg"));
        let wide = "é".repeat(300);
        let cut = sanitize_filename(&wide).unwrap();
        assert!(cut.len() <= MAX_FILENAME_BYTES);
    }

    #[test]
    fn extensions_are_short_lower_case_alphanumerics() {
        assert_eq!(extension("a.JPG"), "jpg");
        assert_eq!(extension("archive.tar.gz"), "gz");
        assert_eq!(extension("noext"), "");
        assert_eq!(extension("weird.ex_t"), "");
        assert_eq!(extension("a.verylongextensionname"), "");
    }

    #[test]
    fn subjects_escape_injectively() {
        assert_eq!(escape_subject("user-42").as_deref(), Some("user-42"));
        assert_eq!(escape_subject("auth0|123").as_deref(), Some("auth0=7C123"));
        assert_eq!(escape_subject("a/b").as_deref(), Some("a=2Fb"));
        assert_eq!(escape_subject("a_2Fb").as_deref(), Some("a_2Fb"));
        assert_eq!(escape_subject("a=2Fb").as_deref(), Some("a=3D2Fb"));
        assert_eq!(escape_subject("..").as_deref(), Some("=2E."));
        assert_eq!(escape_subject(".").as_deref(), Some("=2E"));
        assert_eq!(escape_subject("é").as_deref(), Some("=C3=A9"));
        assert_eq!(escape_subject(""), None);
        assert_eq!(escape_subject(&"x".repeat(129)), None);
    }
}
