//! The shard tag: a reserved field every stored document carries, naming its shard, so nodes
//! can filter by shard (replica dedup, migration, cleanup).
//!
//! The tag must not change search results. Meilisearch indexes the words of every searchable
//! field, and a numeric or alphanumeric tag would make queries such as `1` or `12` match
//! documents by shard. The tag's value is therefore written only with characters Meilisearch's
//! tokenizer treats as separators (ASCII punctuation plus `§`): it yields no word at all, so
//! no query can match it, and under the default `searchableAttributes: ["*"]` every field has
//! the same weight, so an extra wordless field leaves `_rankingScore` unchanged. Filters
//! compare the raw string, so `_miroir_shard = "!!!("` still selects a shard. Verified against
//! Meilisearch v1.50 by `tests/real_meilisearch.rs`.

pub mod guard;
pub mod messages;
pub mod order;
pub mod settings;

/// The reserved field name.
pub const FIELD: &str = "_miroir_shard";

/// Whether a JSON key is the tag.
pub fn is_tag(key: &[u8]) -> bool {
    key == FIELD.as_bytes()
}

/// Whether a JSON key is one of the gateway's own fields (the merges drop them from
/// everything they copy).
pub fn is_reserved(key: &[u8]) -> bool {
    key == FIELD.as_bytes() || key == order::FIELD.as_bytes()
}

/// Sixteen separator characters, one per hexadecimal digit of the shard number. None is a
/// quote, a backslash, a query operator (`-`) or a character users commonly declare in
/// `nonSeparatorTokens` (`#`, `@`, `&`).
const DIGITS: [char; 16] = [
    '!', '%', '*', ',', '.', '/', ':', ';', '?', '(', ')', '[', ']', '{', '}', '§',
];

/// The tag value of `shard`: four separator characters (shards < 65536).
pub fn value(shard: u32) -> String {
    let (bytes, len) = encode(shard);
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

/// The tag value of `shard` as UTF-8 bytes, without allocating (for the per-document path).
pub fn encode(shard: u32) -> ([u8; 8], usize) {
    let mut out = [0u8; 8];
    let mut len = 0;
    for i in (0..4).rev() {
        let c = DIGITS[((shard >> (4 * i)) & 0xf) as usize];
        len += c.encode_utf8(&mut out[len..]).len();
    }
    (out, len)
}

/// The shard a tag value names, if it is one.
pub fn parse(value: &str) -> Option<u32> {
    let mut shard = 0u32;
    let mut n = 0;
    for c in value.chars() {
        let digit = DIGITS.iter().position(|d| *d == c)? as u32;
        shard = shard << 4 | digit;
        n += 1;
    }
    (n == 4).then_some(shard)
}

/// The JSON member spliced at the start of a document: `"_miroir_shard":"....",`.
pub fn json_member(shard: u32) -> String {
    format!("\"{FIELD}\":\"{}\",", value(shard))
}

/// A Meilisearch filter selecting the documents of `shards`.
pub fn filter(shards: &[u32]) -> String {
    let values: Vec<String> = shards
        .iter()
        .map(|s| format!("\"{}\"", value(*s)))
        .collect();
    format!("{FIELD} IN [{}]", values.join(", "))
}

/// The client's `filter` (string, array or absent) ANDed with a shard filter.
pub fn and_filter(client: Option<&serde_json::Value>, shard_filter: &str) -> serde_json::Value {
    use serde_json::Value;
    let tag = Value::from(shard_filter);
    match client {
        None | Some(Value::Null) => tag,
        Some(Value::Array(items)) => {
            let mut items = items.clone();
            items.push(tag);
            Value::Array(items)
        }
        Some(other) => Value::Array(vec![other.clone(), tag]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_hold_no_word_character() {
        for shard in [0, 1, 12, 63, 255, 4096, 65_535] {
            let v = value(shard);
            assert_eq!(v.chars().count(), 4);
            assert!(
                v.chars()
                    .all(|c| !c.is_alphanumeric() && c != '"' && c != '\\'),
                "{v}"
            );
            assert_eq!(parse(&v), Some(shard));
        }
        assert_eq!(value(0), "!!!!");
        assert_eq!(value(12), "!!!]");
        assert_eq!(parse("12"), None);
        assert_eq!(parse("!!!"), None);
    }

    #[test]
    fn members_and_filters_are_valid_json_and_syntax() {
        let member = json_member(5);
        let doc = format!("{{{member}\"id\":1}}");
        let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(parsed[FIELD], value(5));
        assert_eq!(filter(&[0, 1]), "_miroir_shard IN [\"!!!!\", \"!!!%\"]");
    }
}
