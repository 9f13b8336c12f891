//! What an object's first bytes are, against what was declared: a file-signature check
//! (the `infer` crate's matchers, which follow the WHATWG MIME sniffing rules for
//! markup), and the types a browser runs when it opens them (HTML, SVG, XML,
//! JavaScript), which only a tenant that names them may take: a bucket served from the
//! tenant's origin would otherwise serve script (OWASP: validate the content, not the
//! header).

use mime::Mime;

use super::TenantRules;

/// How many leading bytes the check reads: enough for every signature `infer` knows.
pub const SNIFF_BYTES: u64 = 8192;

/// Whether a browser opening an object of this type runs what it holds: markup (HTML,
/// XHTML, SVG, any XML, which may carry XSLT or XHTML) and script.
pub fn runs_in_browser(mime: &Mime) -> bool {
    let (ty, sub) = (mime.type_().as_str(), mime.subtype().as_str());
    let suffix = mime.suffix().map(|s| s.as_str());
    matches!(
        (ty, sub),
        (
            "text",
            "html" | "xml" | "xsl" | "javascript" | "ecmascript" | "jscript"
        ) | (
            "application",
            "xml" | "javascript" | "ecmascript" | "x-javascript"
        )
    ) || suffix == Some("xml")
}

/// Why the leading bytes `head` do not agree with the `declared` type (or, none
/// declared, with the tenant's rules), in words; `None` when they agree.
pub fn mismatch(rules: &TenantRules, declared: Option<&str>, head: &[u8]) -> Option<String> {
    let declared: Option<Mime> = declared.and_then(|t| t.parse().ok());
    let essence = declared.as_ref().map(Mime::essence_str);
    if let Some(markup) = markup(head) {
        let named = |t: &str| rules.names_type(t);
        let agrees = match (markup, &declared) {
            (Markup::Html, Some(d)) => d.essence_str() == "text/html",
            (Markup::Xml, Some(d)) => runs_in_browser(d) && d.essence_str() != "text/html",
            (_, None) => false,
        };
        return match essence {
            Some(e) if agrees && named(e) => None,
            _ => Some(format!(
                "the content is {} (a browser runs it), declared {}: only a tenant that lists the declared type by name takes it",
                markup.words(),
                essence.unwrap_or("no type")
            )),
        };
    }
    let declared = essence?;
    // Any bytes may be `application/octet-stream`, or S3's default `binary/octet-stream`.
    if matches!(declared, "application/octet-stream" | "binary/octet-stream") {
        return None;
    }
    if infer::is_mime_supported(declared) {
        if infer::is_mime(head, declared) {
            return None;
        }
        return Some(match infer::get(head) {
            Some(found) => format!(
                "the content is {}, not the declared {declared}",
                found.mime_type()
            ),
            None => format!("the content does not start as {declared} does"),
        });
    }
    // A type no signature tells: only another known type is a mismatch.
    match infer::get(head) {
        Some(found) if found.mime_type() != declared => Some(format!(
            "the content is {}, not the declared {declared}",
            found.mime_type()
        )),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Markup {
    Html,
    Xml,
}

impl Markup {
    fn words(self) -> &'static str {
        match self {
            Self::Html => "HTML",
            Self::Xml => "XML",
        }
    }
}

fn markup(head: &[u8]) -> Option<Markup> {
    if infer::text::is_html(head) {
        Some(Markup::Html)
    } else if infer::text::is_xml(head) || starts_svg(head) {
        Some(Markup::Xml)
    } else {
        None
    }
}

/// An SVG document without an XML declaration: `infer` knows SVG only by the
/// declaration, browsers run it without.
fn starts_svg(head: &[u8]) -> bool {
    let text = head.trim_ascii_start();
    let text = text
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(text);
    text.len() > 4
        && text[..4].eq_ignore_ascii_case(b"<svg")
        && matches!(text[4], b' ' | b'>' | b'\n' | b'\t' | b'\r' | b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TenantSettings;

    fn rules(types: &str) -> TenantRules {
        let settings: TenantSettings = toml::from_str(&format!(
            "bucket = \"acme-uploads\"\nmax_size = 100\ncontent_types = {types}"
        ))
        .unwrap();
        TenantRules::from_settings("acme", &settings).unwrap()
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";

    #[test]
    fn the_bytes_must_be_what_was_declared() {
        let images = rules(r#"["image/*"]"#);
        assert_eq!(mismatch(&images, Some("image/png"), PNG), None);
        assert_eq!(mismatch(&images, Some("image/jpeg"), JPEG), None);
        let wrong = mismatch(&images, Some("image/png"), JPEG).unwrap();
        assert!(wrong.contains("image/jpeg"), "{wrong}");
        let text = mismatch(&images, Some("image/png"), b"hello").unwrap();
        assert!(text.contains("does not start as image/png"), "{text}");
    }

    #[test]
    fn markup_passes_only_when_named_and_declared() {
        let images = rules(r#"["image/*"]"#);
        for html in [
            &b"<!DOCTYPE html><html>"[..],
            b"  <script>alert(1)</script>",
            b"<html>",
        ] {
            let why = mismatch(&images, Some("image/png"), html).unwrap();
            assert!(why.contains("HTML"), "{why}");
        }
        let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>";
        assert!(mismatch(&images, Some("image/svg+xml"), svg).is_some());
        assert!(mismatch(&images, Some("image/png"), b"<?xml version=\"1.0\"?><svg/>").is_some());
        let named = rules(r#"["image/png", "image/svg+xml", "text/html"]"#);
        assert_eq!(mismatch(&named, Some("image/svg+xml"), svg), None);
        assert_eq!(
            mismatch(&named, Some("text/html"), b"<html><p>hi</p></html>"),
            None
        );
        assert!(mismatch(&named, Some("image/svg+xml"), b"<html>").is_some());
        assert!(mismatch(&named, None, b"<html>").is_some());
    }

    #[test]
    fn types_no_signature_tells_take_any_bytes_but_known_others() {
        let any = rules("[]");
        assert_eq!(mismatch(&any, Some("text/plain"), b"just words"), None);
        assert_eq!(mismatch(&any, Some("application/octet-stream"), PNG), None);
        assert_eq!(mismatch(&any, None, PNG), None);
        assert!(mismatch(&any, Some("text/csv"), PNG).is_some());
    }

    #[test]
    fn markup_and_script_types_are_told_apart() {
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "text/javascript",
            "application/javascript",
        ] {
            assert!(runs_in_browser(&t.parse().unwrap()), "{t}");
        }
        for t in [
            "image/png",
            "application/pdf",
            "text/plain",
            "application/json",
            "text/csv",
        ] {
            assert!(!runs_in_browser(&t.parse().unwrap()), "{t}");
        }
    }
}
