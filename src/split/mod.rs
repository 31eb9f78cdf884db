//! From a client's document batch (bytes in) to one body per node (bytes out): each document
//! is tagged with its shard and copied to the nodes that own that shard, byte for byte but for
//! the spliced tag. Plain code, no Pingora: the proxy calls [`split`].
//!
//! Errors follow a single node's timing: a malformed payload is refused at once (Meilisearch
//! parses the payload before answering), while a document Meilisearch would accept and then
//! fail on (missing or invalid id, no primary key to infer) becomes a [`DocumentError`] the
//! caller reports as a failed task.

mod csv_split;
mod json_split;
pub mod scan;

use crate::shard_tag;

/// The payload formats of `POST/PUT /indexes/{uid}/documents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv { delimiter: u8 },
}

impl Format {
    /// The name Meilisearch uses in its messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv { .. } => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv { .. } => "text/csv",
        }
    }
}

/// A payload Meilisearch refuses synchronously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// `missing_payload` (400).
    Missing(Format),
    /// `malformed_payload` (400) with Meilisearch's full message.
    Malformed(String),
    /// What Meilisearch answers as `500 internal` (e.g. an array element that is not an object).
    Internal(String),
}

/// A document that makes a single node fail the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// `index_primary_key_no_candidate_found`.
    NoPrimaryKeyCandidate,
    /// `index_primary_key_multiple_candidates_found`, with every candidate sorted.
    MultiplePrimaryKeyCandidates(Vec<String>),
    /// `missing_document_id`: the key and the document as compact JSON.
    MissingId { key: String, document: String },
    /// `invalid_document_id`: the id as JSON.
    InvalidId(String),
    /// `invalid_document_id`: a nested key matched several values.
    TooManyIds { key: String, document: String },
    /// The document carries one of the gateway's reserved fields.
    ReservedField,
    /// A field's value a node cannot parse when it indexes the document (nested too deep, a
    /// lone surrogate ...): the task fails with `internal` and `serde_json`'s message.
    Unparsable(String),
}

impl DocumentError {
    /// Meilisearch's error code.
    pub fn code(&self) -> &'static str {
        match self {
            DocumentError::NoPrimaryKeyCandidate => "index_primary_key_no_candidate_found",
            DocumentError::MultiplePrimaryKeyCandidates(_) => {
                "index_primary_key_multiple_candidates_found"
            }
            DocumentError::MissingId { .. } => "missing_document_id",
            DocumentError::InvalidId(_) | DocumentError::TooManyIds { .. } => "invalid_document_id",
            DocumentError::ReservedField => "miroir_reserved_field",
            DocumentError::Unparsable(_) => "internal",
        }
    }

    /// Meilisearch's error `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            DocumentError::Unparsable(_) => "internal",
            _ => "invalid_request",
        }
    }

    /// Meilisearch's message.
    pub fn message(&self) -> String {
        match self {
            DocumentError::NoPrimaryKeyCandidate => "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.".into(),
            DocumentError::MultiplePrimaryKeyCandidates(c) => format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{}' and '{}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                c.len(),
                c[0],
                c[1]
            ),
            DocumentError::MissingId { key, document } => {
                format!("Document doesn't have a `{key}` attribute: `{document}`.")
            }
            DocumentError::InvalidId(id) => format!(
                "Document identifier `{id}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
            ),
            DocumentError::TooManyIds { key, document } => {
                format!("Document have too many matching `{key}` attribute: `{document}`.")
            }
            DocumentError::ReservedField => format!(
                "Documents cannot contain the `{}` or `{}` attribute: Miroir reserves them to route documents to their shard and keep their insertion order.",
                shard_tag::FIELD,
                shard_tag::order::FIELD
            ),
            DocumentError::Unparsable(e) => format!("internal: {e}."),
        }
    }
}

/// Why a batch cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    Payload(PayloadError),
    Document(DocumentError),
}

/// The primary key to route by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice<'a> {
    Known(&'a str),
    /// Infer it from the first document, as Meilisearch does for an index without one.
    Infer,
}

/// A placement table entry naming no node (padding of a shard with fewer copies).
pub const NOBODY: usize = usize::MAX;

/// Where each shard's documents go: `table[shard * copies..][..copies]` are its owners.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub shards: u32,
    pub nodes: usize,
    /// Owners per shard (replica groups times replication factor).
    pub copies: usize,
    pub table: &'a [usize],
}

impl<'a> Placement<'a> {
    /// The nodes owning `shard` (indexes below `nodes`).
    #[inline]
    pub fn owners(&self, shard: u32) -> &'a [usize] {
        let start = shard as usize * self.copies;
        &self.table[start..start + self.copies]
    }
}

/// A batch split into one body per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The primary key the documents were routed by.
    pub primary_key: String,
    /// Documents in the client's batch.
    pub documents: usize,
    /// One body per node, in the client's format; empty for a node that gets no document.
    pub bodies: Vec<Vec<u8>>,
    /// Documents in each node's body.
    pub counts: Vec<usize>,
    /// The shards that got at least one document, in order.
    pub shards: Vec<u32>,
    /// Each document's canonical id, in the client's order.
    pub ids: Ids,
    /// Where each copy of a document holds its order placeholder.
    pub slots: Vec<Slot>,
}

/// Document ids in one buffer (a batch may hold millions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    text: String,
    ends: Vec<usize>,
}

impl Ids {
    pub fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of document `i`.
    pub fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.text[start..self.ends[i]]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// A document copy's order placeholder: `bodies[node][at..at + order::WIDTH]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub node: usize,
    pub at: usize,
    /// The document, an index into [`Batch::ids`].
    pub doc: usize,
}

impl Batch {
    /// Writes each document's order number (`orders[doc]`) over its placeholders.
    pub fn stamp(&mut self, orders: &[u64]) {
        for slot in &self.slots {
            let value = shard_tag::order::encode(orders[slot.doc]);
            self.bodies[slot.node][slot.at..slot.at + value.len()].copy_from_slice(&value);
        }
    }
}

/// The shards marked in `touched`, in order.
fn touched_shards(touched: &[bool]) -> Vec<u32> {
    (0..touched.len() as u32)
        .filter(|&s| touched[s as usize])
        .collect()
}

/// Splits `input` by shard. Syntax is checked over the whole payload first, as Meilisearch
/// does, so a malformed payload always wins over a bad document.
pub fn split(
    input: &[u8],
    format: Format,
    key: KeyChoice<'_>,
    place: Placement<'_>,
) -> Result<Batch, SplitError> {
    if input.is_empty() {
        return Err(SplitError::Payload(PayloadError::Missing(format)));
    }
    match format {
        Format::Json | Format::Ndjson => {
            json_split::split(input, format == Format::Ndjson, key, place)
        }
        Format::Csv { delimiter } => csv_split::split(input, delimiter, key, place),
    }
}

/// A node's body cut into parts of at most `max` bytes, at document boundaries (a document
/// larger than `max` gets a part of its own), with their document counts: what a node would
/// refuse as one payload goes as several, in order.
pub fn parts(body: Vec<u8>, count: usize, format: Format, max: usize) -> Vec<(Vec<u8>, usize)> {
    if body.len() <= max || count <= 1 {
        return vec![(body, count)];
    }
    // Each document's bytes, then what every part starts and ends with.
    match format {
        Format::Json => match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body) {
            Ok(docs) => {
                let docs: Vec<&[u8]> = docs.iter().map(|d| d.get().as_bytes()).collect();
                pack(&docs, b"[", b",", b"]", max)
            }
            Err(_) => vec![(body, count)],
        },
        Format::Ndjson => {
            let docs: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
            pack(&docs, b"", b"", b"", max)
        }
        Format::Csv { delimiter } => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .from_reader(&body[..]);
            if reader.byte_headers().is_err() {
                return vec![(body.clone(), count)];
            }
            let header_end = reader.position().byte() as usize;
            let mut record = csv::ByteRecord::new();
            let mut docs = Vec::new();
            let mut start = header_end;
            while let Ok(true) = reader.read_byte_record(&mut record) {
                let end = reader.position().byte() as usize;
                docs.push(&body[start..end]);
                start = end;
            }
            pack(&docs, &body[..header_end], b"", b"", max)
        }
    }
}

/// Packs documents into parts of at most `max` bytes: `head doc sep doc ... tail`.
fn pack(docs: &[&[u8]], head: &[u8], sep: &[u8], tail: &[u8], max: usize) -> Vec<(Vec<u8>, usize)> {
    let mut parts: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut n = 0;
    for doc in docs {
        let grown = current.len() + sep.len() + doc.len() + tail.len();
        if n > 0 && grown > max {
            current.extend_from_slice(tail);
            parts.push((std::mem::take(&mut current), n));
            n = 0;
        }
        if n == 0 {
            current.extend_from_slice(head);
        } else {
            current.extend_from_slice(sep);
        }
        current.extend_from_slice(doc);
        n += 1;
    }
    if n > 0 {
        current.extend_from_slice(tail);
        parts.push((current, n));
    }
    parts
}

/// Meilisearch's primary-key inference: the one top-level field of the first document whose
/// lowercased name ends with `id`.
pub fn infer_primary_key(first_document_keys: Option<&[String]>) -> Result<String, DocumentError> {
    let Some(keys) = first_document_keys else {
        return Err(DocumentError::NoPrimaryKeyCandidate);
    };
    let mut candidates: Vec<&String> = keys
        .iter()
        .filter(|k| k.to_lowercase().ends_with("id"))
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [] => Err(DocumentError::NoPrimaryKeyCandidate),
        [one] => Ok((*one).clone()),
        many => Err(DocumentError::MultiplePrimaryKeyCandidates(
            many.iter().map(|s| (*s).clone()).collect(),
        )),
    }
}

/// Checks a string id the way Meilisearch does.
pub fn valid_string_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() < 512
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The canonical id of a JSON value, or the error a node would give for it.
pub fn canonical_id(value: &serde_json::Value) -> Result<String, DocumentError> {
    match value {
        serde_json::Value::String(s) if valid_string_id(s) => Ok(s.clone()),
        serde_json::Value::Number(n) if !n.is_f64() => Ok(n.to_string()),
        other => Err(DocumentError::InvalidId(other.to_string())),
    }
}

/// Collects the nodes' bodies while documents stream by.
struct Assembler<'p> {
    place: Placement<'p>,
    bodies: Vec<Vec<u8>>,
    counts: Vec<usize>,
    touched: Vec<bool>,
    ids: Ids,
    slots: Vec<Slot>,
    ndjson: bool,
}

impl<'p> Assembler<'p> {
    fn new(place: Placement<'p>, input_len: usize, ndjson: bool) -> Self {
        // Each node gets about its share of the input, times the copies per shard.
        let guess = input_len * place.copies.max(1) / place.nodes.max(1) + input_len / 16 + 64;
        Assembler {
            place,
            bodies: (0..place.nodes)
                .map(|_| Vec::with_capacity(guess))
                .collect(),
            counts: vec![0; place.nodes],
            touched: vec![false; place.shards as usize],
            ids: Ids::default(),
            slots: Vec::new(),
            ndjson,
        }
    }

    /// Appends a JSON object (`{...}`), tagged, to the bodies of its shard's owners.
    fn push_object(&mut self, shard: u32, id: &str, object: &[u8], empty: bool) {
        let mut member = [0u8; 64];
        let (len, placeholder) = write_members(&mut member, shard, empty);
        if let Some(t) = self.touched.get_mut(shard as usize) {
            *t = true;
        }
        let doc = self.ids.len();
        self.ids.push(id);
        for &n in self.place.owners(shard).iter().filter(|&&n| n != NOBODY) {
            let body = &mut self.bodies[n];
            if !self.ndjson {
                body.push(if self.counts[n] == 0 { b'[' } else { b',' });
            }
            body.push(b'{');
            self.slots.push(Slot {
                node: n,
                at: body.len() + placeholder,
                doc,
            });
            body.extend_from_slice(&member[..len]);
            body.extend_from_slice(&object[1..]);
            if self.ndjson {
                body.push(b'\n');
            }
            self.counts[n] += 1;
        }
    }

    fn finish_json(mut self, primary_key: String, documents: usize) -> Batch {
        if !self.ndjson {
            for (body, &count) in self.bodies.iter_mut().zip(&self.counts) {
                if count > 0 {
                    body.push(b']');
                }
            }
        }
        Batch {
            primary_key,
            documents,
            bodies: self.bodies,
            counts: self.counts,
            shards: touched_shards(&self.touched),
            ids: self.ids,
            slots: self.slots,
        }
    }
}

/// Writes `"_miroir_shard":"<tag>","_miroir_order":"<placeholder>"` (plus a comma unless the
/// object is empty) into `out`; returns its length and where the placeholder starts.
fn write_members(out: &mut [u8; 64], shard: u32, empty: bool) -> (usize, usize) {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        out[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
        n
    };
    put(b"\"");
    put(shard_tag::FIELD.as_bytes());
    put(b"\":\"");
    let (tag, tag_len) = shard_tag::encode(shard);
    put(&tag[..tag_len]);
    put(b"\",\"");
    put(shard_tag::order::FIELD.as_bytes());
    let placeholder = put(b"\":\"");
    put(&shard_tag::order::PLACEHOLDER);
    let mut len = put(b"\"");
    if !empty {
        len = put(b",");
    }
    (len, placeholder)
}

#[cfg(test)]
mod tests;
