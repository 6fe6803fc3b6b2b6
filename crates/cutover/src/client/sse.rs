//! Server-Sent Events framing, as the WHATWG HTML standard defines the `text/event-stream`
//! format: lines end in CRLF, LF or CR; `data`, `event`, `id` and `retry` fields; lines that
//! start with `:` are comments (keep-alives); a blank line dispatches the event. Bytes go in
//! as they arrive, in chunks of any size; whole events come out. It knows nothing of HTTP or
//! of what the events mean.

use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` field, `message` when the event named none.
    pub kind: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The stream's last event id when this event was dispatched.
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    kind: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream; answers the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &byte in bytes {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                // the LF of a CRLF: the line already ended at the CR
                continue;
            }
            match byte {
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                b'\n' => self.end_line(&mut events),
                _ => self.line.push(byte),
            }
        }
        events
    }

    /// The reconnection time the server asked for with `retry`, if it did.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The last event id seen, to send back as `Last-Event-ID` when reconnecting.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    fn end_line(&mut self, events: &mut Vec<Event>) {
        let raw = std::mem::take(&mut self.line);
        // line ends are ASCII, so a line never splits a UTF-8 sequence
        let decoded = String::from_utf8_lossy(&raw);
        let mut line: &str = &decoded;
        if !std::mem::replace(&mut self.started, true) {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.kind = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let kind = std::mem::take(&mut self.kind);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let kind = if kind.is_empty() { "message".to_owned() } else { kind };
        events.push(Event { kind, data, id: self.last_id.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str, id: Option<&str>) -> Event {
        Event { kind: kind.to_owned(), data: data.to_owned(), id: id.map(str::to_owned) }
    }

    #[test]
    fn named_events_with_ids_and_multi_line_data() {
        let mut parser = Parser::new();
        let events = parser.feed(b"event: task\ndata: {\"a\":1}\n\nid: 7\nevent: event\ndata: one\ndata: two\n\n");
        assert_eq!(events, vec![event("task", "{\"a\":1}", None), event("event", "one\ntwo", Some("7"))]);
        assert_eq!(parser.last_id(), Some("7"));
    }

    #[test]
    fn every_line_ending_and_any_chunking() {
        let stream = "data: a\r\n\r\ndata: b\r\rdata: c\n\n: keep-alive\n\nevent: end\ndata:d\n\n";
        let expected = vec![
            event("message", "a", None),
            event("message", "b", None),
            event("message", "c", None),
            event("end", "d", None),
        ];
        assert_eq!(Parser::new().feed(stream.as_bytes()), expected);
        // one byte at a time, so CRLF and every field is split across chunks
        let mut parser = Parser::new();
        let bytes: Vec<Event> = stream.as_bytes().iter().flat_map(|b| parser.feed(&[*b])).collect();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn comments_and_empty_events_dispatch_nothing_and_an_unfinished_event_waits() {
        let mut parser = Parser::new();
        assert!(parser.feed(b": ping\n\nevent: task\n\n").is_empty());
        // the event name was reset by the blank line
        assert_eq!(parser.feed(b"data: x\n\n"), vec![event("message", "x", None)]);
        assert!(parser.feed(b"data: half").is_empty());
        assert_eq!(parser.feed(b"\n\n"), vec![event("message", "half", None)]);
    }

    #[test]
    fn field_rules_of_the_standard() {
        let mut parser = Parser::new();
        // BOM at the start; only one leading space is stripped; a field without a colon has
        // an empty value; unknown fields are ignored; ids with NUL are ignored
        let events = parser.feed("\u{feff}data:  two spaces\ndata\nfoo: bar\nid: a\0b\n\n".as_bytes());
        assert_eq!(events, vec![event("message", " two spaces\n", None)]);
        parser.feed(b"retry: 2500\n\nretry: soon\n\n");
        assert_eq!(parser.retry(), Some(Duration::from_millis(2500)));
        // an empty id resets the last id
        parser.feed(b"id: 3\n\nid\ndata: x\n\n");
        assert_eq!(parser.last_id(), Some(""));
    }

    #[test]
    fn multi_byte_characters_split_across_chunks() {
        let mut parser = Parser::new();
        let bytes = "data: héllo → ok\n\n".as_bytes();
        let mut events = parser.feed(&bytes[..8]);
        events.extend(parser.feed(&bytes[8..]));
        assert_eq!(events, vec![event("message", "héllo → ok", None)]);
    }
}
