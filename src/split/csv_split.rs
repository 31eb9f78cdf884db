//! Splitting CSV: each record's raw bytes are copied with a quoted tag column appended, so
//! nodes parse exactly the client's text. Typed columns are checked here, with Meilisearch's
//! messages and line numbers, because a node would only see its own lines.

use serde_json::{Map, Value};

use super::{
    canonical_id, infer_primary_key, Batch, DocumentError, KeyChoice, PayloadError, Placement,
    SplitError,
};
use crate::routing::shard_of;
use crate::shard_tag;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Boolean,
    Number,
}

/// Meilisearch's header rule: a recognized `:type` suffix after the last colon.
fn parse_header(header: &str) -> (&str, Kind) {
    match header.rsplit_once(':') {
        Some((name, "string")) => (name, Kind::String),
        Some((name, "boolean")) => (name, Kind::Boolean),
        Some((name, "number")) => (name, Kind::Number),
        _ => (header, Kind::String),
    }
}

fn malformed(message: impl std::fmt::Display) -> SplitError {
    SplitError::Payload(PayloadError::Malformed(format!(
        "The `csv` payload provided is malformed: `{message}`."
    )))
}

/// A cell as Meilisearch turns it into JSON, or its parse error message.
fn typed(value: &str, kind: Kind, line: usize) -> Result<Value, String> {
    let trimmed = value.trim();
    Ok(match kind {
        Kind::Number if trimmed.is_empty() => Value::Null,
        Kind::Number => match trimmed.parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => match trimmed.parse::<f64>() {
                Ok(f) => Value::from(f),
                Err(e) => {
                    return Err(format!(
                        "Error parsing number {value:?} at line {line}: {e}"
                    ))
                }
            },
        },
        Kind::Boolean if trimmed.is_empty() => Value::Null,
        Kind::Boolean => match trimmed.parse::<bool>() {
            Ok(b) => Value::from(b),
            Err(e) => {
                return Err(format!(
                    "Error parsing boolean {value:?} at line {line}: {e}"
                ))
            }
        },
        Kind::String if value.is_empty() => Value::Null,
        Kind::String => Value::from(value),
    })
}

/// A cell as text (records are valid UTF-8 by the time cells are read).
fn cell(record: &csv::ByteRecord, i: usize) -> &str {
    record
        .get(i)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

/// Strips one line terminator from a raw record.
fn without_terminator(raw: &[u8]) -> &[u8] {
    if raw.ends_with(b"\r\n") {
        &raw[..raw.len() - 2]
    } else if raw.ends_with(b"\n") || raw.ends_with(b"\r") {
        &raw[..raw.len() - 1]
    } else {
        raw
    }
}

pub(super) fn split(
    input: &[u8],
    delimiter: u8,
    key: KeyChoice<'_>,
    place: Placement<'_>,
) -> Result<Batch, SplitError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(input);
    let headers = reader.headers().map_err(malformed)?.clone();
    let columns: Vec<(String, Kind)> = headers
        .iter()
        .map(|h| {
            let (name, kind) = parse_header(h);
            (name.to_string(), kind)
        })
        .collect();
    let header_end = reader.position().byte() as usize;
    let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
    let mut error: Option<DocumentError> = None;
    let primary_key = match key {
        KeyChoice::Known(k) => k.to_string(),
        // Meilisearch infers from the first document, which has every column.
        KeyChoice::Infer => {
            let first = reader.position().byte() < input.len() as u64;
            match infer_primary_key(first.then_some(names.as_slice())) {
                Ok(k) => k,
                Err(e) => {
                    error = Some(e);
                    String::new()
                }
            }
        }
    };
    let reserved = names
        .iter()
        .any(|n| n == shard_tag::FIELD || n == shard_tag::order::FIELD);
    if reserved && error.is_none() {
        error = Some(DocumentError::ReservedField);
    }
    let key_column = names.iter().position(|n| *n == primary_key);

    let header = without_terminator(&input[..header_end]);
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new(); place.nodes];
    let mut counts = vec![0usize; place.nodes];
    let mut touched = vec![false; place.shards as usize];
    let (mut ids, mut slots) = (super::Ids::default(), Vec::new());
    // Valid UTF-8 throughout lets records skip per-field validation; otherwise the csv crate's
    // own UTF-8 error (the one Meilisearch reports) comes from reading `StringRecord`s.
    let utf8 = simdutf8::basic::from_utf8(input).is_ok();
    let mut record = csv::ByteRecord::new();
    let mut checked = csv::StringRecord::new();
    let mut start = header_end;
    let mut line = 0;
    let mut documents = 0;
    let (mut tag_buf, delim) = (Vec::with_capacity(16), delimiter);
    loop {
        let more = if utf8 {
            reader.read_byte_record(&mut record).map_err(malformed)?
        } else {
            let more = reader.read_record(&mut checked).map_err(malformed)?;
            record = checked.as_byte_record().clone();
            more
        };
        if !more {
            break;
        }
        line += 1;
        documents += 1;
        let end = reader.position().byte() as usize;
        let raw = without_terminator(&input[start..end]);
        start = end;
        // Every typed cell is checked, as Meilisearch does before accepting the payload.
        for (i, (_, kind)) in columns.iter().enumerate() {
            if *kind != Kind::String {
                typed(cell(&record, i), *kind, line).map_err(malformed)?;
            }
        }
        if error.is_some() {
            continue;
        }
        let (shard, id) = match key_column {
            None => {
                error = Some(DocumentError::MissingId {
                    key: primary_key.clone(),
                    document: document_json(&columns, &record, line),
                });
                continue;
            }
            Some(i) => {
                let value = typed(cell(&record, i), columns[i].1, line).unwrap_or(Value::Null);
                match canonical_id(&value) {
                    Ok(id) => (shard_of(id.as_bytes(), place.shards), id),
                    Err(e) => {
                        error = Some(e);
                        continue;
                    }
                }
            }
        };
        tag_buf.clear();
        tag_buf.push(delim);
        tag_buf.push(b'"');
        let (tag, len) = shard_tag::encode(shard);
        tag_buf.extend_from_slice(&tag[..len]);
        tag_buf.push(b'"');
        tag_buf.push(delim);
        tag_buf.push(b'"');
        let placeholder = tag_buf.len();
        tag_buf.extend_from_slice(&shard_tag::order::PLACEHOLDER);
        tag_buf.extend_from_slice(b"\"\n");
        if let Some(t) = touched.get_mut(shard as usize) {
            *t = true;
        }
        let doc = ids.len();
        ids.push(&id);
        for &n in place.owners(shard).iter().filter(|&&n| n != super::NOBODY) {
            let body = &mut bodies[n];
            if counts[n] == 0 {
                body.extend_from_slice(header);
                body.push(delim);
                body.extend_from_slice(shard_tag::FIELD.as_bytes());
                body.push(delim);
                body.extend_from_slice(shard_tag::order::FIELD.as_bytes());
                body.push(b'\n');
            }
            body.extend_from_slice(raw);
            slots.push(super::Slot {
                node: n,
                at: body.len() + placeholder,
                doc,
            });
            body.extend_from_slice(&tag_buf);
            counts[n] += 1;
        }
    }
    if let Some(e) = error {
        return Err(SplitError::Document(e));
    }
    Ok(Batch {
        primary_key,
        documents,
        bodies,
        counts,
        shards: super::touched_shards(&touched),
        ids,
        slots,
    })
}

/// The document Meilisearch would build from a record, as compact JSON (for messages).
fn document_json(columns: &[(String, Kind)], record: &csv::ByteRecord, line: usize) -> String {
    let mut object = Map::new();
    for (i, (name, kind)) in columns.iter().enumerate() {
        let value = typed(cell(record, i), *kind, line).unwrap_or(Value::Null);
        object.insert(name.clone(), value);
    }
    Value::Object(object).to_string()
}
