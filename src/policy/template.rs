//! Key templates: `{tenant}/{sub}/{uuid}/{filename}` and friends.

use std::fmt;

/// One placeholder of a key template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The tenant id (from configuration: fixed per tenant).
    Tenant,
    /// The token's subject, escaped injectively.
    Sub,
    /// A random UUID v4 per ticket.
    Uuid,
    /// The signing date, `YYYY/MM/DD` (UTC).
    Date,
    /// The sanitised filename.
    Filename,
    /// The filename's extension, lower case, without the dot; empty if none.
    Ext,
}

impl Placeholder {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "tenant" => Self::Tenant,
            "sub" => Self::Sub,
            "uuid" => Self::Uuid,
            "date" => Self::Date,
            "filename" => Self::Filename,
            "ext" => Self::Ext,
            _ => return None,
        })
    }

    /// The most bytes a value can have, to bound key length at start-up.
    fn max_len(self) -> usize {
        match self {
            Self::Tenant => super::MAX_TENANT_ID_LEN,
            Self::Sub => super::sanitize::MAX_SUBJECT_BYTES,
            Self::Uuid => 36,
            Self::Date => 10,
            Self::Filename => super::sanitize::MAX_FILENAME_BYTES,
            Self::Ext => 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed key template.
///
/// Rules, checked at start-up: placeholders are the six above; literal text has no
/// control characters, no `$`, `{` or `}`, no `//` and no `..` segment; the key does
/// not start with `/`; `{uuid}` or `{filename}` appears (else uploads overwrite each
/// other); and the longest possible key fits S3's 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// The values a template is rendered with; every one already safe for a key segment.
#[derive(Debug, Clone, Copy)]
pub struct TemplateValues<'a> {
    /// `{tenant}`.
    pub tenant: &'a str,
    /// `{sub}`, escaped.
    pub sub: &'a str,
    /// `{uuid}`.
    pub uuid: &'a str,
    /// `{date}`.
    pub date: &'a str,
    /// `{filename}`, sanitised.
    pub filename: &'a str,
    /// `{ext}`.
    pub ext: &'a str,
}

impl KeyTemplate {
    /// Parses and checks `source`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let err = |why: &str| Err(TemplateError(format!("key template {source:?}: {why}")));
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(0) if rest.starts_with('{') => {
                    let Some(end) = rest.find('}') else {
                        return err("a '{' is not closed");
                    };
                    let name = &rest[1..end];
                    match Placeholder::parse(name) {
                        Some(p) => parts.push(Part::Placeholder(p)),
                        None => {
                            return err(&format!(
                                "unknown placeholder {{{name}}}; use {{tenant}}, {{sub}}, {{uuid}}, {{date}}, {{filename}} or {{ext}}"
                            ));
                        }
                    }
                    rest = &rest[end + 1..];
                }
                Some(0) => return err("a '}' has no '{'"),
                Some(at) => {
                    parts.push(Part::Literal(rest[..at].to_owned()));
                    rest = &rest[at..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        let literal: String = parts
            .iter()
            .filter_map(|p| match p {
                Part::Literal(text) => Some(text.as_str()),
                Part::Placeholder(_) => None,
            })
            .collect();
        if source.is_empty() {
            return err("empty");
        }
        if source.starts_with('/') {
            return err("a key must not start with '/'");
        }
        if literal.chars().any(char::is_control) || literal.contains('$') {
            return err("control characters and '$' are not allowed");
        }
        if source.contains("//")
            || source
                .split('/')
                .any(|segment| segment == ".." || segment == ".")
        {
            return err("empty, '.' and '..' path segments are not allowed");
        }
        let has = |p| parts.contains(&Part::Placeholder(p));
        if !has(Placeholder::Uuid) && !has(Placeholder::Filename) {
            return err("needs {uuid} or {filename}, or every upload would overwrite the last");
        }
        let longest: usize = parts
            .iter()
            .map(|p| match p {
                Part::Literal(text) => text.len(),
                Part::Placeholder(p) => p.max_len(),
            })
            .sum();
        if longest > s3_presigned_post::names::MAX_KEY_BYTES {
            return err(&format!(
                "the longest key it can make is {longest} bytes; S3 allows 1024"
            ));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The key for `values`.
    pub fn render(&self, values: &TemplateValues<'_>) -> String {
        let mut key = String::with_capacity(128);
        for part in &self.parts {
            key.push_str(match part {
                Part::Literal(text) => text,
                Part::Placeholder(Placeholder::Tenant) => values.tenant,
                Part::Placeholder(Placeholder::Sub) => values.sub,
                Part::Placeholder(Placeholder::Uuid) => values.uuid,
                Part::Placeholder(Placeholder::Date) => values.date,
                Part::Placeholder(Placeholder::Filename) => values.filename,
                Part::Placeholder(Placeholder::Ext) => values.ext,
            });
        }
        key
    }

    /// The part of every key that depends on the tenant alone: the text up to the first
    /// placeholder other than `{tenant}`. Keys of a tenant always start with it.
    pub fn tenant_prefix(&self, tenant: &str) -> String {
        let mut prefix = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => prefix.push_str(text),
                Part::Placeholder(Placeholder::Tenant) => prefix.push_str(tenant),
                Part::Placeholder(_) => break,
            }
        }
        prefix
    }

    /// The part every key of one subject starts with (`sub` already escaped): the
    /// rendering up to the first per-upload placeholder, cut after its last `/`.
    /// Escaped subjects never hold a `/`, so when `{sub}` lies before that cut the
    /// prefix names exactly one subject; otherwise it is the tenant's.
    pub fn owner_prefix(&self, tenant: &str, sub: &str) -> String {
        let mut prefix = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => prefix.push_str(text),
                Part::Placeholder(Placeholder::Tenant) => prefix.push_str(tenant),
                Part::Placeholder(Placeholder::Sub) => prefix.push_str(sub),
                Part::Placeholder(_) => break,
            }
        }
        match prefix.rfind('/') {
            Some(at) => prefix.truncate(at + 1),
            None => prefix.clear(),
        }
        let tenant_prefix = self.tenant_prefix(tenant);
        if prefix.len() < tenant_prefix.len() {
            return tenant_prefix;
        }
        prefix
    }

    /// Whether the template uses `p`.
    pub fn uses(&self, p: Placeholder) -> bool {
        self.parts.contains(&Part::Placeholder(p))
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: TemplateValues<'static> = TemplateValues {
        tenant: "acme",
        sub: "user-42",
        uuid: "0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f",
        date: "2026/11/25",
        filename: "holiday_photo.jpg",
        ext: "jpg",
    };

    #[test]
    fn templates_render_every_placeholder() {
        let t = KeyTemplate::parse("{tenant}/{sub}/{date}/{uuid}/{filename}").unwrap();
        assert_eq!(
            t.render(&VALUES),
            "acme/user-42/2026/11/25/0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f/holiday_photo.jpg"
        );
        let t = KeyTemplate::parse("uploads/{tenant}/{uuid}.{ext}").unwrap();
        assert_eq!(
            t.render(&VALUES),
            "uploads/acme/0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f.jpg"
        );
        assert_eq!(t.tenant_prefix("acme"), "uploads/acme/");
    }

    #[test]
    fn the_tenant_prefix_stops_at_the_first_other_placeholder() {
        let t = KeyTemplate::parse("{tenant}/{sub}/{uuid}/{filename}").unwrap();
        assert_eq!(t.tenant_prefix("acme"), "acme/");
        let t = KeyTemplate::parse("{uuid}").unwrap();
        assert_eq!(t.tenant_prefix("acme"), "");
    }

    #[test]
    fn bad_templates_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("{tenant}/{user}/{uuid}", "unknown placeholder {user}"),
            ("{tenant}/{uuid", "not closed"),
            ("{tenant}}/{uuid}", "has no '{'"),
            ("/{tenant}/{uuid}", "start with '/'"),
            ("{tenant}//{uuid}", "segments"),
            ("{tenant}/../{uuid}", "segments"),
            ("{tenant}/${uuid}", "'$'"),
            ("{tenant}/{sub}", "needs {uuid} or {filename}"),
            (&format!("{}/{{uuid}}", "x".repeat(1000)), "1024"),
        ] {
            let error = KeyTemplate::parse(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }
}
