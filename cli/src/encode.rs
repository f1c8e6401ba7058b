//! Percent-encoding of one URL path segment or query value.

/// `text` with everything but unreserved characters percent-encoded.
pub fn component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reserved_characters_are_encoded() {
        assert_eq!(
            super::component("site/p/1 2?a=b"),
            "site%2Fp%2F1%202%3Fa%3Db"
        );
        assert_eq!(super::component("a-b_c.d~"), "a-b_c.d~");
    }
}
