//! Splitting JSON arrays and NDJSON streams: a validating scanner on the fast path,
//! `serde_json` (Meilisearch's own parser) for errors and unusual input.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::scan::{Invalid, Scanner};
use super::{
    canonical_id, infer_primary_key, valid_string_id, Assembler, Batch, DocumentError, KeyChoice,
    PayloadError, Placement, SplitError,
};
use crate::routing::shard_of;
use crate::shard_tag;

/// The gateway's own fields, which a client's document must not carry.
const RESERVED: &[&str] = &[shard_tag::FIELD, shard_tag::order::FIELD];

pub(super) fn split(
    input: &[u8],
    ndjson: bool,
    key: KeyChoice<'_>,
    place: Placement<'_>,
) -> Result<Batch, SplitError> {
    let nested_key = matches!(key, KeyChoice::Known(k) if k.contains('.'));
    if !nested_key && utf8_ok(input) {
        if let Ok(result) = fast(input, ndjson, key, place) {
            return result;
        }
    }
    slow(input, ndjson, key, place)
}

/// UTF-8 validation of the whole payload; SIMD, as it is a third of the work otherwise.
fn utf8_ok(input: &[u8]) -> bool {
    simdutf8::basic::from_utf8(input).is_ok()
}

/// The state shared by both paths while documents go by.
struct Walk<'p> {
    asm: Assembler<'p>,
    key: Option<String>,
    /// The first document error; later documents are still checked for syntax.
    error: Option<DocumentError>,
    documents: usize,
    infer: bool,
}

impl<'p> Walk<'p> {
    fn new(input_len: usize, ndjson: bool, key: KeyChoice<'_>, place: Placement<'p>) -> Self {
        Walk {
            asm: Assembler::new(place, input_len, ndjson),
            key: match key {
                KeyChoice::Known(k) => Some(k.to_string()),
                KeyChoice::Infer => None,
            },
            error: None,
            documents: 0,
            infer: key == KeyChoice::Infer,
        }
    }

    /// Settles the primary key from the first document's member names.
    fn infer_from(&mut self, keys: Option<&[String]>) {
        if self.infer {
            self.infer = false;
            match infer_primary_key(keys) {
                Ok(k) => self.key = Some(k),
                Err(e) => self.error = Some(e),
            }
        }
    }

    fn accept(
        &mut self,
        id_or_error: Result<Cow<'_, str>, DocumentError>,
        object: &[u8],
        empty: bool,
    ) {
        self.documents += 1;
        if self.error.is_some() {
            return;
        }
        match id_or_error {
            Ok(id) => {
                let shard = shard_of(id.as_bytes(), self.asm.place.shards);
                self.asm.push_object(shard, &id, object, empty)
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn finish(mut self) -> Result<Batch, SplitError> {
        if self.infer {
            // No document at all: Meilisearch cannot infer a key either.
            self.infer_from(None);
        }
        if let Some(e) = self.error {
            return Err(SplitError::Document(e));
        }
        let key = self.key.unwrap_or_default();
        Ok(self.asm.finish_json(key, self.documents))
    }
}

/// The canonical id of a document whose id is the raw JSON value `raw`, or the node's error.
/// Borrowed from `raw` in the usual cases (no allocation per document).
fn id_of_raw(raw: &[u8]) -> Result<Cow<'_, str>, DocumentError> {
    match raw.first() {
        Some(b'"') if !raw.contains(&b'\\') => {
            // Valid ids are ASCII, so the bytes are the canonical string.
            match std::str::from_utf8(&raw[1..raw.len() - 1]) {
                Ok(id) if valid_string_id(id) => Ok(Cow::Borrowed(id)),
                _ => Err(invalid_id(raw)),
            }
        }
        Some(b'-' | b'0'..=b'9') if Scanner::is_integer_literal(raw) => {
            let text = std::str::from_utf8(raw).map_err(|_| invalid_id(raw))?;
            // A JSON integer is already written canonically, but for `-0`.
            match (text.parse::<i64>(), text.parse::<u64>()) {
                (Ok(0), _) => Ok(Cow::Borrowed("0")),
                (Ok(_), _) | (_, Ok(_)) => Ok(Cow::Borrowed(text)),
                _ => Err(invalid_id(raw)),
            }
        }
        _ => {
            let value: Value = serde_json::from_slice(raw).map_err(|_| invalid_id(raw))?;
            canonical_id(&value).map(Cow::Owned)
        }
    }
}

fn invalid_id(raw: &[u8]) -> DocumentError {
    let shown = serde_json::from_slice::<Value>(raw)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned());
    DocumentError::InvalidId(shown)
}

fn missing_id(key: &str, object: &[u8]) -> DocumentError {
    let document = serde_json::from_slice::<Value>(object)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| String::from_utf8_lossy(object).into_owned());
    DocumentError::MissingId {
        key: key.to_string(),
        document,
    }
}

/// The scanner's pass; `Err(Invalid)` hands the whole payload to [`slow`].
fn fast(
    input: &[u8],
    ndjson: bool,
    key: KeyChoice<'_>,
    place: Placement<'_>,
) -> Result<Result<Batch, SplitError>, Invalid> {
    let mut walk = Walk::new(input.len(), ndjson, key, place);
    let mut sc = Scanner::new(input);
    let one = |sc: &mut Scanner<'_>, walk: &mut Walk<'_>| -> Result<(), Invalid> {
        if walk.infer {
            let mut peek = Scanner {
                buf: sc.buf,
                pos: sc.pos,
            };
            let keys = peek.object_keys()?;
            walk.infer_from(Some(&keys));
        }
        let span = sc.object(walk.key.as_deref(), RESERVED)?;
        let object = &input[span.start..span.end];
        let outcome = if span.has_reserved {
            Err(DocumentError::ReservedField)
        } else {
            match (span.value, walk.key.as_deref()) {
                (_, None) => Ok(Cow::Borrowed("")),
                (Some((vs, ve)), Some(_)) => id_of_raw(&input[vs..ve]),
                (None, Some(k)) => Err(missing_id(k, object)),
            }
        };
        walk.accept(outcome, object, span.empty);
        Ok(())
    };
    sc.skip_ws();
    if ndjson {
        loop {
            sc.skip_ws();
            match sc.peek() {
                None => break,
                Some(b'{') => one(&mut sc, &mut walk)?,
                Some(_) => return Err(Invalid),
            }
        }
    } else {
        match sc.peek() {
            Some(b'[') => {
                sc.pos += 1;
                sc.skip_ws();
                if sc.peek() != Some(b']') {
                    loop {
                        sc.skip_ws();
                        if sc.peek() != Some(b'{') {
                            return Err(Invalid);
                        }
                        one(&mut sc, &mut walk)?;
                        sc.skip_ws();
                        match sc.peek() {
                            Some(b',') => sc.pos += 1,
                            Some(b']') => break,
                            _ => return Err(Invalid),
                        }
                    }
                }
                // Like Meilisearch, whatever follows the array is not read.
            }
            Some(b'{') => {
                one(&mut sc, &mut walk)?;
                sc.skip_ws();
                if sc.pos != input.len() {
                    return Err(Invalid);
                }
            }
            _ => return Err(Invalid),
        }
    }
    Ok(walk.finish())
}

/// Meilisearch's malformed-payload message for a `serde_json` error.
fn malformed(format: &str, e: &serde_json::Error) -> PayloadError {
    let message = match e.classify() {
        serde_json::error::Category::Data => {
            "data are neither an object nor a list of objects".to_string()
        }
        _ => e.to_string(),
    };
    malformed_text(format, message)
}

/// Meilisearch's malformed-payload message around `serde_json`'s text.
fn malformed_text(format: &str, mut message: String) -> PayloadError {
    // Meilisearch truncates long messages the same way (its issue #2107).
    let (prefix, suffix, ellipsis) = (50, 85, "...");
    if message.len() > prefix + suffix + ellipsis.len() {
        let end = message.len() - suffix;
        if message.is_char_boundary(prefix) && message.is_char_boundary(end) {
            message.replace_range(prefix..end, ellipsis);
        }
    }
    PayloadError::Malformed(format!(
        "The `{format}` payload provided is malformed. `Couldn't serialize document value: {message}`."
    ))
}

/// `serde_json`'s pass: Meilisearch's exact errors, and input the scanner would not vouch for.
fn slow(
    input: &[u8],
    ndjson: bool,
    key: KeyChoice<'_>,
    place: Placement<'_>,
) -> Result<Batch, SplitError> {
    let fail = |e: PayloadError| Err(SplitError::Payload(e));
    let format = if ndjson { "ndjson" } else { "json" };
    let mut objects: Vec<&RawValue> = Vec::new();
    if ndjson {
        for item in serde_json::Deserializer::from_slice(input).into_iter::<&RawValue>() {
            match item {
                Ok(raw) => objects.push(raw),
                Err(e) if e.classify() == serde_json::error::Category::Data => {
                    return fail(PayloadError::Internal(e.to_string()))
                }
                Err(e) => return fail(malformed(format, &e)),
            }
        }
    } else {
        let mut de = serde_json::Deserializer::from_slice(input);
        match Vec::<&RawValue>::deserialize(&mut de) {
            Ok(all) => objects = all,
            Err(e) if e.classify() != serde_json::error::Category::Data => {
                return fail(malformed(format, &e))
            }
            Err(_) => {
                if let Err(e) = serde_json::from_slice::<Map<String, Value>>(input) {
                    return fail(malformed(format, &e));
                }
                match serde_json::from_slice::<&RawValue>(input) {
                    Ok(raw) => objects.push(raw),
                    Err(e) => return fail(malformed(format, &e)),
                }
            }
        }
    }
    let mut maps = Vec::with_capacity(objects.len());
    for (i, raw) in objects.iter().enumerate() {
        match serde_json::from_str::<Map<String, Value>>(raw.get()) {
            Ok(map) => maps.push(Ok(map)),
            // A document whose fields a node only fails on while indexing: the task fails.
            Err(e) if top_level_fields(raw.get()).is_some() => {
                maps.push(Err(unparsable_field(raw.get()).unwrap_or(e.to_string())))
            }
            // Not an object: Meilisearch stops reading the array there. Its parser then
            // finds the next element where the array should end (a malformed payload), or
            // the end (and answers the element's own error as a bare 500).
            Err(e) => {
                return fail(match objects.get(i + 1).filter(|_| !ndjson) {
                    Some(next) => {
                        let (line, column) = line_column(input, next.get().as_ptr());
                        malformed_text(
                            format,
                            format!("trailing characters at line {line} column {column}"),
                        )
                    }
                    None => PayloadError::Internal(e.to_string()),
                })
            }
        }
    }
    let mut walk = Walk::new(input.len(), ndjson, key, place);
    for (raw, map) in objects.iter().zip(&maps) {
        let map = match map {
            Ok(map) => map,
            Err(e) => {
                walk.accept(Err(DocumentError::Unparsable(e.clone())), b"", false);
                continue;
            }
        };
        if walk.infer {
            let keys: Vec<String> = map.keys().cloned().collect();
            walk.infer_from(Some(&keys));
        }
        let object = raw.get().as_bytes();
        let outcome = if RESERVED.iter().any(|r| map.contains_key(*r)) {
            Err(DocumentError::ReservedField)
        } else if let Some(k) = walk.key.clone() {
            let mut found = Vec::new();
            matching_values(map, &k, "", &mut found);
            match found.as_slice() {
                [] => Err(missing_id(&k, object)),
                [one] => canonical_id(one).map(Cow::Owned),
                _ => Err(DocumentError::TooManyIds {
                    key: k.clone(),
                    document: Value::Object(map.clone()).to_string(),
                }),
            }
        } else {
            Ok(Cow::Borrowed(""))
        };
        walk.accept(outcome, object, map.is_empty());
    }
    walk.finish()
}

/// The error of the first field value of `object` that `serde_json` cannot parse, as a node
/// reports it when indexing (positions within the value).
fn unparsable_field(object: &str) -> Option<String> {
    top_level_fields(object)?
        .iter()
        .find_map(|v| serde_json::from_str::<Value>(v.get()).err())
        .map(|e| e.to_string())
}

/// The raw values of an object's fields, read at the top level only.
fn top_level_fields(object: &str) -> Option<Vec<&RawValue>> {
    let fields: std::collections::BTreeMap<String, &RawValue> =
        serde_json::from_str(object).ok()?;
    Some(fields.into_values().collect())
}

/// `serde_json`'s line and column (1-based) of the byte at `at` within `input`.
fn line_column(input: &[u8], at: *const u8) -> (usize, usize) {
    let offset = (at as usize)
        .saturating_sub(input.as_ptr() as usize)
        .min(input.len());
    let before = &input[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, column)
}

/// Meilisearch's primary-key lookup, which follows `.` into nested objects
/// (`milli/src/documents/primary_key.rs`).
fn matching_values<'v>(
    object: &'v Map<String, Value>,
    selector: &str,
    base: &str,
    out: &mut Vec<&'v Value>,
) {
    for (key, value) in object {
        let full = if base.is_empty() {
            key.clone()
        } else {
            format!("{base}.{key}")
        };
        let prefix_ok = selector
            .strip_prefix(full.as_str())
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('.'));
        if prefix_ok {
            match value {
                Value::Object(inner) => matching_values(inner, selector, &full, out),
                other => out.push(other),
            }
        }
    }
}
