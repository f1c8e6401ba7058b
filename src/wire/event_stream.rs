//! Server-sent events (`text/event-stream`): the framing of what an SSE reader receives, both
//! in the reply that opens its stream and in every publish (the `http-stream` format).

/// One server-sent event carrying `data` (JSON: one line), named `name` if given.
pub fn event(name: Option<&str>, data: &str) -> String {
    match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_its_name_then_its_data_then_a_blank_line() {
        assert_eq!(event(None, "{}"), "data: {}\n\n");
        assert_eq!(event(Some("session"), "x"), "event: session\ndata: x\n\n");
    }
}
