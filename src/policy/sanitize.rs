//! Making client- and token-supplied strings safe inside an object key.
//!
//! Two different jobs: a *filename* only has to be harmless (collisions do not matter,
//! `{uuid}` keeps keys apart), so it is cleaned lossily and stays readable; a *subject*
//! decides whose prefix a key lands in, so it is escaped injectively: two different
//! subjects can never give the same key segment.

use std::borrow::Cow;

use unicode_normalization::{IsNormalized, UnicodeNormalization as _, is_nfc_quick};

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
    // Most names are NFC already (ASCII always is): the quick check spares them the
    // normaliser's decomposition and recomposition.
    match is_nfc_quick(raw.chars()) {
        IsNormalized::Yes => clean_filename(raw.chars(), raw.len()),
        IsNormalized::No | IsNormalized::Maybe => clean_filename(raw.nfc(), raw.len()),
    }
}

/// [`sanitize_filename`] of the characters of a name in NFC.
fn clean_filename(chars: impl Iterator<Item = char>, len: usize) -> Option<String> {
    let mut cleaned = String::with_capacity(len);
    for c in chars {
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
    // Trimmed in place: the common name is returned in the buffer it was cleaned into.
    cleaned.truncate(cleaned.trim_end_matches(['.', '_']).len());
    let leading = cleaned.len() - cleaned.trim_start_matches(['.', '_']).len();
    cleaned.drain(..leading);
    if cleaned.is_empty() {
        return None;
    }
    if cleaned.len() <= MAX_FILENAME_BYTES {
        return Some(cleaned);
    }
    Some(truncate_keeping_extension(&cleaned, MAX_FILENAME_BYTES))
}

/// `name`, longer than `max` bytes, cut to fit with its extension kept.
fn truncate_keeping_extension(name: &str, max: usize) -> String {
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
/// ASCII letters and digits only, at most 16; empty when there is none. Borrowed from
/// `filename` unless it had to be lower-cased.
pub fn extension(filename: &str) -> Cow<'_, str> {
    match filename.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && !ext.is_empty()
                && ext.len() <= MAX_EXT_CHARS
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            if ext.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(ext.to_ascii_lowercase())
            } else {
                Cow::Borrowed(ext)
            }
        }
        _ => Cow::Borrowed(""),
    }
}

/// A subject (the token's `sub`) as one key segment, escaped injectively: letters,
/// digits and `-_.@+` stay, a leading `.` and every other byte become `=XX` (upper-case
/// hex), and `=` itself is escaped, so decoding is unique. `None` when empty or longer
/// than [`MAX_SUBJECT_BYTES`] once escaped.
pub fn escape_subject(sub: &str) -> Option<Cow<'_, str>> {
    let kept = |(i, b): (usize, u8)| {
        (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@' | b'+' | b'.'))
            && !(i == 0 && b == b'.')
    };
    if sub.bytes().enumerate().all(kept) {
        // The common subject needs no escape: borrowed as it is.
        return (!sub.is_empty() && sub.len() <= MAX_SUBJECT_BYTES).then_some(Cow::Borrowed(sub));
    }
    let mut out = String::with_capacity(sub.len());
    for (i, b) in sub.bytes().enumerate() {
        if kept((i, b)) {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('=');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    (!out.is_empty() && out.len() <= MAX_SUBJECT_BYTES).then_some(Cow::Owned(out))
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

    proptest::proptest! {
        /// The quick check only skips work: every name comes out as through the normaliser.
        #[test]
        fn the_nfc_quick_check_changes_no_name(raw in "(\\PC|[\u{300}-\u{36f}\u{1100}-\u{11ff}\u{ac00}-\u{ac10}. _])*") {
            proptest::prop_assert_eq!(sanitize_filename(&raw), clean_filename(raw.nfc(), raw.len()));
        }
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
