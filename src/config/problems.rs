//! Configuration problems as the person who wrote the file reads them: each once, with
//! the file and line (or the environment variable) it came from, the key as written, and
//! what was expected. Syntax errors are all reported at once; a value the loader cannot
//! take stops it at the first (serde reads one value at a time).

use std::fmt;

use figment::error::{Actual, Kind};
use toml::de::{DeTable, DeValue};

use super::ENV_PREFIX;

/// One problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it was written: `config.toml:12`, `config.toml`, or the environment variable.
    pub place: Option<String>,
    /// The setting, as a dotted path (`tenants.acme.max_size`), if one is to blame.
    pub key: Option<String>,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(place) = &self.place {
            write!(f, "{place}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in the order met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "configuration: {one}"),
            many => {
                write!(f, "configuration: {} problems", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// A configuration file's name and text: where each key was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file as the operator named it.
    pub name: String,
    /// Its text.
    pub text: String,
}

impl Written {
    /// Every syntax error of the file, each at its line; the first of a line only (what
    /// follows it there is the parser losing its way).
    pub fn syntax_errors(&self) -> Vec<Problem> {
        let (_, errors) = DeTable::parse_recoverable(&self.text);
        let mut problems: Vec<Problem> = Vec::new();
        for error in errors {
            let place = Some(match error.span() {
                Some(span) => format!("{}:{}", self.name, self.line(span.start)),
                None => self.name.clone(),
            });
            if problems.iter().any(|p| p.place == place) {
                continue;
            }
            problems.push(Problem {
                place,
                key: None,
                message: error.message().trim().to_owned(),
            });
        }
        problems
    }

    /// `name:line` of the key at `path` (its value's line), or of the nearest table above
    /// it that is written; the file's name when none is.
    pub fn place_of(&self, path: &[&str]) -> String {
        let Ok(root) = DeTable::parse(&self.text) else {
            return self.name.clone();
        };
        let mut table = root.get_ref();
        let mut found = None;
        for key in path {
            let Some(value) = table.get(*key) else { break };
            found = Some(value.span().start);
            match value.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => break,
            }
        }
        match found {
            Some(at) => format!("{}:{}", self.name, self.line(at)),
            None => self.name.clone(),
        }
    }

    fn line(&self, at: usize) -> usize {
        self.text
            .get(..at)
            .map_or(1, |before| before.matches('\n').count() + 1)
    }
}

/// The environment variable that sets `path` (`UPLOAD_TICKETS__SERVER__LISTEN`).
pub fn variable_of(path: &[&str]) -> String {
    let keys: Vec<String> = path.iter().map(|k| k.to_ascii_uppercase()).collect();
    format!("{ENV_PREFIX}{}", keys.join("__"))
}

/// The loader's errors as problems: `from_env` says whether an error's value came from the
/// environment (else from `file`).
pub fn from_figment(
    error: figment::Error,
    file: Option<&Written>,
    from_env: &dyn Fn(&figment::Metadata) -> bool,
) -> Problems {
    let mut problems: Vec<Problem> = Vec::new();
    for error in error {
        let mut path: Vec<&str> = error.path.iter().map(String::as_str).collect();
        let message = match &error.kind {
            // The loader's path names the unknown key itself, but not a missing one.
            Kind::UnknownField(name, known) => unknown(name, known),
            Kind::MissingField(name) => {
                path.push(name);
                "missing: this setting is required".to_owned()
            }
            Kind::InvalidType(actual, expected) => {
                format!(
                    "expected {}, found {}",
                    expected_in_words(expected),
                    found(actual)
                )
            }
            Kind::InvalidValue(actual, expected) => {
                format!(
                    "expected {}, found {}",
                    expected_in_words(expected),
                    found(actual)
                )
            }
            Kind::Message(message) => in_words(message),
            other => other.to_string(),
        };
        let env = error.metadata.as_ref().is_some_and(from_env);
        let place = if env {
            Some(variable_of(&path))
        } else {
            file.map(|file| file.place_of(&path))
        };
        let problem = Problem {
            place,
            key: (!path.is_empty()).then(|| path.join(".")),
            message,
        };
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    Problems(problems)
}

/// An unknown key, with the known one it is closest to.
fn unknown(name: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(distance, k)| *distance <= 3.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((_, k)) => format!("unknown setting (did you mean {k}?)"),
        None if known.is_empty() => "unknown setting".to_owned(),
        None => format!("unknown setting; this section has: {}", known.join(", ")),
    }
}

/// serde's name of an expected type, as an operator says it.
fn expected_in_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" | "bool" => "true or false".to_owned(),
        "a sequence" => "a list, like [\"a\", \"b\"]".to_owned(),
        "a map" => "a table".to_owned(),
        "socket address" => "an address and port, like \"0.0.0.0:8080\"".to_owned(),
        other => other.to_owned(),
    }
}

fn found(actual: &Actual) -> String {
    match actual {
        Actual::Str(text) => format!("\"{text}\""),
        Actual::Bool(value) => value.to_string(),
        Actual::Signed(value) => value.to_string(),
        Actual::Unsigned(value) => value.to_string(),
        Actual::Float(value) => value.to_string(),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}

/// A deserializer's own message, with what was expected where it says too little.
fn in_words(message: &str) -> String {
    match message {
        "invalid socket address syntax" => {
            "expected an address and port, like \"0.0.0.0:8080\" or \"127.0.0.1:9090\"".to_owned()
        }
        other => other.to_owned(),
    }
}
