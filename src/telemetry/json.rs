//! JSON log lines, written straight into the line buffer.
//!
//! The shape is that of `tracing-subscriber`'s JSON format with flattened events and the
//! current span: `{"timestamp","level", event fields…, "target", "span":{"name", span
//! fields…}}`. That formatter stores a span's fields as JSON text and parses it back
//! into a map for every event, and goes through `serde` for each field: a tenth of a
//! request's CPU under load (`bench/RESULTS.md`). Here span fields are kept as a JSON
//! fragment that is copied, and values are escaped as they are written. Measured again
//! on 2026-12-01 (`bench/RESULTS.md`): the crate's format costs about 10 % more CPU per
//! request, so this stays, and a test holds its lines to the crate's.

use std::fmt::{self, Write as _};

use time::OffsetDateTime;

use s3_presigned_post::condition::write_json_escaped;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats span fields as a JSON fragment: `,"name":value` for each field.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

/// Formats events as one JSON object per line; needs [`JsonFields`] for span fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut staged = Staged::new(writer);
        let mut visitor = Fields::new(Writer::new(&mut staged));
        fields.record(&mut visitor);
        let result = visitor.result;
        staged.flush()?;
        result
    }

    /// Fields recorded after the span was made replace earlier values of the same name,
    /// so that a line never repeats a name. Rare (the access log records nothing late),
    /// so done the slow way.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.format_fields(Writer::new(&mut added), fields)?;
        let object = |fragment: &str| {
            let inner = fragment.strip_prefix(',').unwrap_or(fragment);
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&format!(
                "{{{inner}}}"
            ))
            .map_err(|_| fmt::Error)
        };
        let mut merged = object(&current.fields)?;
        merged.extend(object(&added)?);
        current.fields.clear();
        for (name, value) in merged {
            current.fields.push(',');
            write_string(&mut current.fields, &name)?;
            write!(current.fields, ":{value}")?;
        }
        Ok(())
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, OffsetDateTime::now_utc())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(metadata.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields::new(writer.by_ref());
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_string(&mut writer, metadata.target())?;
        if super::traces::on()
            && let Some((trace_id, span_id)) = super::traces::current_ids()
        {
            write!(
                writer,
                ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\""
            )?;
        }
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{\"name\":")?;
            write_string(&mut writer, span.name())?;
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                writer.write_str(&fields.fields)?;
            }
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// A human-readable format with the trace id first, where a span is exported.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct WithTraceId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some((trace_id, _)) = super::traces::current_ids() {
            write!(writer, "trace_id={trace_id} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// Gathers small writes on the stack and passes them on in one piece: a span's fields go
/// into a new `String` that would otherwise grow, and move, a few times per request.
struct Staged<'a> {
    out: Writer<'a>,
    buffer: [u8; 128],
    len: usize,
}

impl<'a> Staged<'a> {
    fn new(out: Writer<'a>) -> Self {
        Self {
            out,
            buffer: [0; 128],
            len: 0,
        }
    }

    fn flush(&mut self) -> fmt::Result {
        // Whole `str`s only were copied in: the bytes are UTF-8.
        let staged = std::str::from_utf8(&self.buffer[..self.len]).map_err(|_| fmt::Error)?;
        self.len = 0;
        self.out.write_str(staged)
    }
}

impl fmt::Write for Staged<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > self.buffer.len() {
            self.flush()?;
            if s.len() > self.buffer.len() {
                return self.out.write_str(s);
            }
        }
        self.buffer[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// Writes each recorded field as `,"name":value`.
struct Fields<'a> {
    writer: Writer<'a>,
    result: fmt::Result,
}

impl<'a> Fields<'a> {
    fn new(writer: Writer<'a>) -> Self {
        Self {
            writer,
            result: Ok(()),
        }
    }

    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'a>) -> fmt::Result) {
        // `otel.*` fields name a span for the trace exporter, not for the log.
        if self.result.is_err() || field.name().starts_with("otel.") {
            return;
        }
        self.result = (|| {
            self.writer.write_char(',')?;
            write_string(&mut self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(&mut self.writer)
        })();
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| write_string(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinities: those are written as strings.
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.field(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string.
fn write_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what passes through for the inside of a JSON string, as the policy documents
/// are escaped: `"`, `\` and control characters, so a value can neither end the string
/// nor smuggle in a line break or a terminal escape.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_json_escaped(&mut self.0, s)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, by hand: `time`'s formatter costs more than the rest
/// of the line.
fn write_timestamp(w: &mut impl fmt::Write, t: OffsetDateTime) -> fmt::Result {
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, t.year().unsigned_abs());
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    put(20, 6, t.microsecond());
    // Only ASCII digits were written into an ASCII template.
    w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    thread_local! {
        /// The text of the last `logged` call.
        static RAW: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    fn logged(body: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_max_level(tracing::Level::TRACE)
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'));
        RAW.set(text.clone());
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn events_are_flat_json_objects_with_the_current_span() {
        let lines = logged(|| {
            let span = tracing::info_span!("request", request_id = "r-1", attempt = 2u64);
            span.record("attempt", 3u64);
            let _entered = span.enter();
            tracing::info!(method = %"POST", status = 201u16, latency_us = 12u64, ok = true, ratio = 0.5, tenant = Some("acme"), code = None::<&str>, "request");
        });
        let [line] = &lines[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(
            RAW.with_borrow(|raw| raw.matches("\"attempt\"").count()),
            1,
            "a recorded field replaces its earlier value"
        );
        let object = line.as_object().unwrap();
        let timestamp = object["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{timestamp}"
        );
        assert_eq!(timestamp.len(), 27);
        assert_eq!(object["level"], "INFO");
        assert_eq!(object["message"], "request");
        assert_eq!(object["method"], "POST");
        assert_eq!(object["status"], 201);
        assert_eq!(object["latency_us"], 12);
        assert_eq!(object["ok"], true);
        assert_eq!(object["ratio"], 0.5);
        assert_eq!(object["tenant"], "acme");
        assert!(
            !object.contains_key("code"),
            "absent values are not written"
        );
        assert_eq!(object["target"], module_path!());
        assert_eq!(
            object["span"],
            json!({"name": "request", "request_id": "r-1", "attempt": 3})
        );
    }

    #[test]
    fn values_cannot_break_out_of_their_string_or_line() {
        let nasty = "a\"b\\c\nd\re\tf\u{1b}[31mg\u{0}h\u{7f}i é 🦀";
        let lines = logged(|| {
            let _entered = tracing::info_span!("s", v = nasty).entered();
            tracing::warn!(text = nasty, debug = ?nasty, number = f64::NAN, "m {}", nasty);
        });
        let [line] = &lines[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(line["text"], nasty);
        assert_eq!(line["debug"], format!("{nasty:?}"));
        assert_eq!(line["number"], "NaN");
        assert_eq!(line["message"], format!("m {nasty}"));
        assert_eq!(line["span"]["v"], nasty);
    }

    /// The same events through `tracing-subscriber`'s own JSON format, configured as
    /// this one claims to write: flat events, the current span, no span list.
    fn logged_by_the_crate(body: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_max_level(tracing::Level::TRACE)
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn lines_say_what_tracing_subscribers_json_says() {
        // Kept after an A/B (`bench/RESULTS.md`, 2026-12-01): the crate's format cost
        // about 10 % more CPU per request. This holds the two to the same lines.
        let events = || {
            // Span fields longer than the stack buffer they are gathered in.
            let long = "é\"x".repeat(70);
            let span =
                tracing::info_span!("request", request_id = "r-1", long = &*long, after = 7u64);
            let _entered = span.enter();
            tracing::info!(method = %"POST", path = "/uploads", status = 201u16, latency_us = 12u64, tenant = Some("acme"), code = None::<&str>, key = "a/\"b\"\n\u{7f}é", "request");
            tracing::warn!(code = "internal", error = %"disk full", "request failed");
            tracing::debug!(reason = ?"bad signature", "token refused");
        };
        let without_time = |mut lines: Vec<Value>| {
            for line in &mut lines {
                let time = line.as_object_mut().unwrap().remove("timestamp");
                assert!(time.is_some_and(|t| t.is_string()), "{line}");
            }
            lines
        };
        let ours = without_time(logged(events));
        let theirs = without_time(logged_by_the_crate(events));
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn events_outside_spans_have_no_span() {
        let lines = logged(|| tracing::error!(answer = -42i64, "plain"));
        assert_eq!(lines[0]["answer"], -42);
        assert_eq!(lines[0]["level"], "ERROR");
        assert!(lines[0].get("span").is_none());
    }

    #[test]
    fn timestamps_are_padded() {
        let t = time::Date::from_calendar_date(987, time::Month::January, 2)
            .unwrap()
            .with_hms_micro(3, 4, 5, 678)
            .unwrap()
            .assume_utc();
        let mut out = String::new();
        write_timestamp(&mut out, t).unwrap();
        assert_eq!(out, "0987-01-02T03:04:05.000678Z");
    }
}
