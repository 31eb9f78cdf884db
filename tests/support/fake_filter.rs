//! The test node's filters: Meilisearch's filter grammar as far as the tests need it, its
//! error messages and positions, and matching against stored documents.

use serde_json::{Map, Value};

/// A filter as the fake understands it: `=`, `!=`, `>`, `>=`, `<`, `<=`, `TO`, `IN`, `NOT IN`,
/// `EXISTS`, `NOT EXISTS`, `IS [NOT] NULL`, `IS [NOT] EMPTY`, joined with `AND`, `OR`, `NOT`
/// and parentheses, or Meilisearch's array form; shaped as Meilisearch's parser shapes it
/// (`NOT NOT x` is `x`, `!=` is its own operator). Strings compare case-insensitively.
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Cond(Field, Cond),
}

/// A field a filter names, with the filter text it stands in and its place there (character
/// positions, quotes excluded, as Meilisearch's error spans count them).
pub struct Field {
    name: String,
    src: String,
    start: usize,
    end: usize,
}

impl Field {
    /// The `invalid_document_filter` message for this field when it is not filterable.
    pub fn not_filterable(&self, filterable: &Value) -> String {
        format!(
            "{}\n{}:{} {}",
            not_filterable(&self.name, filterable),
            self.start + 1,
            self.end + 1,
            self.src
        )
    }
}

pub enum Cond {
    Eq(String),
    Ne(String),
    Cmp(&'static str, String),
    Range(String, String),
    In(Vec<String>),
    Exists,
    IsNull,
    IsEmpty,
}

struct Token {
    text: String,
    quoted: bool,
    /// Character positions of the text (inside the quotes of a quoted value).
    start: usize,
    end: usize,
}

/// Splits a filter string into words, quoted values and the signs `()[],` `=` `!=` `<` `<=`
/// `>` `>=`. In a quoted value only `\` before the quote escapes (as in Meilisearch).
fn tokens(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "Expression `{}` is missing the following closing delimiter: `{c}`.\n{}:{} {src}",
                            chars[start..].iter().collect::<String>().escape_debug(),
                            start + 1,
                            chars.len() + 1
                        ))
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        if chars[i + 1] != c {
                            text.push('\\');
                        }
                        text.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&x) => {
                        text.push(x);
                        i += 1;
                    }
                }
            }
            out.push(Token {
                text,
                quoted: true,
                start: start + 1,
                end: i - 1,
            });
        } else if "()[],=!<>".contains(c) {
            i += if c != '=' && chars.get(i + 1) == Some(&'=') {
                2
            } else {
                1
            };
            out.push(Token {
                text: chars[start..i].iter().collect(),
                quoted: false,
                start,
                end: i,
            });
        } else {
            while i < chars.len() && !chars[i].is_whitespace() && !"()[],=!<>\"'".contains(chars[i])
            {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                quoted: false,
                start,
                end: i,
            });
        }
    }
    Ok(out)
}

struct FilterParser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

impl FilterParser<'_> {
    fn keyword(&mut self, word: &str) -> bool {
        let hit = self
            .tokens
            .get(self.at)
            .is_some_and(|t| !t.quoted && t.text.eq_ignore_ascii_case(word));
        self.at += usize::from(hit);
        hit
    }

    fn sign(&mut self, sign: &str) -> bool {
        self.keyword(sign)
    }

    /// The error at the current token (or the end of the filter).
    fn fail(&self, what: &str) -> String {
        let (s, e) = match self.tokens.get(self.at) {
            Some(t) => (t.start + 1, t.end + 1),
            None => {
                let n = self.src.chars().count() + 1;
                (n, n)
            }
        };
        format!("{what}\n{s}:{e} {}", self.src)
    }

    /// Where token `i` begins (its opening quote included), or the end of the filter.
    fn begin(&self, i: usize) -> usize {
        self.tokens.get(i).map_or(self.src.chars().count(), |t| {
            t.start - usize::from(t.quoted)
        })
    }

    /// An error whose context runs from token `i` to the end of the filter; `what` gets that
    /// text, escaped as Meilisearch shows it.
    fn fail_from(&self, i: usize, what: impl FnOnce(&str) -> String) -> String {
        let start = self.begin(i);
        let rest: String = self.src.chars().skip(start).collect();
        let end = self.src.chars().count();
        format!(
            "{}\n{}:{} {}",
            what(&rest.escape_debug().to_string()),
            start + 1,
            end + 1,
            self.src
        )
    }

    /// Meilisearch's error for what is not a condition, from token `i`.
    fn not_a_condition(&self, i: usize) -> String {
        self.fail_from(i, |rest| {
            let text = if rest.trim().is_empty() {
                "but instead got nothing.".to_string()
            } else {
                format!("at `{rest}`.")
            };
            format!("Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, `_geoBoundingBox` or `_geoPolygon` {text}")
        })
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.and()?];
        while self.keyword("OR") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Filter::Any(parts)
        })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.not()?];
        while self.keyword("AND") {
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Filter::All(parts)
        })
    }

    fn not(&mut self) -> Result<Filter, String> {
        if self.keyword("NOT") {
            return Ok(match self.not()? {
                Filter::Not(inner) => *inner,
                f => Filter::Not(Box::new(f)),
            });
        }
        let open = self.at;
        if self.sign("(") {
            let inner = self.or()?;
            if !self.sign(")") {
                return Err(self.fail_from(open, |rest| {
                    format!("Expression `{rest}` is missing the following closing delimiter: `)`.")
                }));
            }
            return Ok(inner);
        }
        self.condition()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at) {
            Some(t) if t.quoted || !"()[],=!=<<=>>=".contains(t.text.as_str()) => {
                self.at += 1;
                Ok(t.text.clone())
            }
            _ => Err(self.fail("Was expecting a value but instead got nothing.")),
        }
    }

    fn condition(&mut self) -> Result<Filter, String> {
        let first = self.at;
        let Some(t) = self
            .tokens
            .get(self.at)
            .filter(|t| t.quoted || !"()[],=!=<<=>>=".contains(t.text.as_str()))
        else {
            return Err(self.not_a_condition(first));
        };
        let field = Field {
            name: t.text.clone(),
            src: self.src.to_string(),
            start: t.start,
            end: t.end,
        };
        self.at += 1;
        let cond = if self.sign("=") {
            Cond::Eq(self.value()?)
        } else if self.sign("!=") {
            Cond::Ne(self.value()?)
        } else if let Some(op) = [">=", ">", "<=", "<"].into_iter().find(|op| self.sign(op)) {
            Cond::Cmp(op, self.value()?)
        } else if self.keyword("IN") {
            Cond::In(self.list()?)
        } else if self.keyword("EXISTS") {
            Cond::Exists
        } else if self.keyword("NOT") {
            let cond = if self.keyword("IN") {
                Cond::In(self.list()?)
            } else if self.keyword("EXISTS") {
                Cond::Exists
            } else {
                return Err(self.not_a_condition(first));
            };
            return Ok(Filter::Not(Box::new(Filter::Cond(field, cond))));
        } else if self.keyword("IS") {
            let negated = self.keyword("NOT");
            let cond = if self.keyword("NULL") {
                Cond::IsNull
            } else if self.keyword("EMPTY") {
                Cond::IsEmpty
            } else {
                return Err(self.not_a_condition(first));
            };
            let f = Filter::Cond(field, cond);
            return Ok(if negated { Filter::Not(Box::new(f)) } else { f });
        } else if self.tokens.get(self.at + 1).is_some_and(|t| t.text == "TO") {
            let from = self.value()?;
            self.at += 1;
            Cond::Range(from, self.value()?)
        } else {
            return Err(self.not_a_condition(first));
        };
        Ok(Filter::Cond(field, cond))
    }

    fn list(&mut self) -> Result<Vec<String>, String> {
        if !self.sign("[") {
            return Err(self.fail("Expected `[` after `IN` keyword."));
        }
        let mut values = Vec::new();
        while !self.sign("]") {
            values.push(self.value()?);
            if !self.sign(",") && !self.sign("]") {
                return Err(
                    self.fail("Expected matching `]` after the list of field names given to `IN[`")
                );
            } else if self.tokens[self.at - 1].text == "]" {
                break;
            }
        }
        Ok(values)
    }
}

/// The message of a filter that is not a string or an array (or an array of those).
pub fn filter_syntax(expected: &str, found: &Value) -> String {
    format!("Invalid syntax for the filter parameter: `expected {expected}, found: {found}`.")
}

impl Filter {
    /// Parses a filter as Meilisearch does before looking at the index: `None` for no filter
    /// (`null`, a blank string, an array of nothing else); the error message otherwise (the
    /// caller picks the code).
    pub fn parse(filter: &Value) -> Result<Option<Filter>, String> {
        fn one(src: &str) -> Result<Option<Filter>, String> {
            if src.trim().is_empty() {
                return Ok(None);
            }
            let mut p = FilterParser {
                src,
                tokens: tokens(src)?,
                at: 0,
            };
            let f = p.or()?;
            if p.at < p.tokens.len() {
                return Err(p.fail_from(p.at, |rest| format!("Found unexpected characters at the end of the filter: `{rest}`. You probably forgot an `OR` or an `AND` rule.")));
            }
            Ok(Some(f))
        }
        match filter {
            Value::Null => Ok(None),
            Value::String(s) => one(s),
            Value::Array(items) => {
                // Every item's type is checked before any is parsed.
                for item in items {
                    match item {
                        Value::String(_) => {}
                        Value::Array(inner) => {
                            if let Some(x) = inner.iter().find(|x| !x.is_string()) {
                                return Err(filter_syntax("String", x));
                            }
                        }
                        other => return Err(filter_syntax("String, [String]", other)),
                    }
                }
                let mut all = Vec::new();
                for item in items {
                    match item {
                        Value::Array(inner) => {
                            let mut any = Vec::new();
                            for x in inner {
                                any.extend(one(x.as_str().unwrap_or_default())?);
                            }
                            match any.len() {
                                0 => {}
                                1 => all.push(any.pop().unwrap()),
                                _ => all.push(Filter::Any(any)),
                            }
                        }
                        s => all.extend(one(s.as_str().unwrap_or_default())?),
                    }
                }
                Ok(match all.len() {
                    0 => None,
                    1 => all.pop(),
                    _ => Some(Filter::All(all)),
                })
            }
            other => Err(filter_syntax("String, Array", other)),
        }
    }

    /// The field Meilisearch reports as not filterable, if any: it walks the fields from a
    /// stack, so the last operand of `AND`/`OR` is checked first.
    pub fn unfilterable(&self, filterable: &Value) -> Option<&Field> {
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::All(parts) | Filter::Any(parts) => stack.extend(parts),
                Filter::Not(inner) => stack.push(inner),
                Filter::Cond(field, _) if !is_filterable(&field.name, filterable) => {
                    return Some(field)
                }
                Filter::Cond(..) => {}
            }
        }
        None
    }

    /// The filter as search writes it back before evaluating it (fields and values quoted,
    /// every operand of `AND`/`OR` parenthesized), with the span there of `at`.
    fn write_back(&self, out: &mut String, at: &Field, span: &mut (usize, usize)) {
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        match self {
            Filter::All(parts) | Filter::Any(parts) => {
                let sep = if matches!(self, Filter::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    out.push('(');
                    p.write_back(out, at, span);
                    out.push(')');
                }
            }
            Filter::Not(inner) => {
                out.push_str("NOT (");
                inner.write_back(out, at, span);
                out.push(')');
            }
            Filter::Cond(field, cond) => {
                let name = quote(&field.name);
                if std::ptr::eq(field, at) {
                    let start = out.chars().count() + 1;
                    *span = (start, start + name.chars().count() - 2);
                }
                out.push_str(&name);
                let text = match cond {
                    Cond::Eq(v) => format!(" = {}", quote(v)),
                    Cond::Ne(v) => format!(" != {}", quote(v)),
                    Cond::Cmp(op, v) => format!(" {op} {}", quote(v)),
                    Cond::Range(a, b) => format!(" {} TO {}", quote(a), quote(b)),
                    Cond::In(list) => format!(
                        " IN [{}]",
                        list.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
                    ),
                    Cond::Exists => " EXISTS".to_string(),
                    Cond::IsNull => " IS NULL".to_string(),
                    Cond::IsEmpty => " IS EMPTY".to_string(),
                };
                out.push_str(&text);
            }
        }
    }

    /// The `invalid_search_filter` message for a field that is not filterable: search reports
    /// it in the filter as written back, after the index uid.
    pub fn search_not_filterable(&self, uid: &str, field: &Field, filterable: &Value) -> String {
        let mut text = String::new();
        let mut span = (0, 0);
        self.write_back(&mut text, field, &mut span);
        format!(
            "Index `{uid}`: {}\n{}:{} {text}",
            not_filterable(&field.name, filterable),
            span.0 + 1,
            span.1 + 1
        )
    }

    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Filter::All(parts) => parts.iter().all(|f| f.matches(doc)),
            Filter::Any(parts) => parts.iter().any(|f| f.matches(doc)),
            Filter::Not(f) => !f.matches(doc),
            Filter::Cond(field, cond) => {
                let values = lookup(doc, &field.name);
                // Array values match through their elements.
                let leaves: Vec<&Value> = values
                    .iter()
                    .flatten()
                    .flat_map(|v| match v {
                        Value::Array(a) => a.iter().collect::<Vec<_>>(),
                        v => vec![*v],
                    })
                    .collect();
                let any = |f: &dyn Fn(&Value) -> bool| leaves.iter().any(|v| f(v));
                match cond {
                    Cond::Eq(s) => any(&|v| equals(v, s)),
                    // Every document without an equal value, the field's absence included.
                    Cond::Ne(s) => !any(&|v| equals(v, s)),
                    Cond::In(list) => any(&|v| list.iter().any(|s| equals(v, s))),
                    Cond::Cmp(op, x) => any(&|v| {
                        compare(v, x).is_some_and(|o| match *op {
                            ">" => o.is_gt(),
                            ">=" => o.is_ge(),
                            "<" => o.is_lt(),
                            _ => o.is_le(),
                        })
                    }),
                    Cond::Range(a, b) => any(&|v| {
                        compare(v, a).is_some_and(|o| o.is_ge())
                            && compare(v, b).is_some_and(|o| o.is_le())
                    }),
                    Cond::Exists => values.is_some(),
                    Cond::IsNull => values.iter().flatten().any(|v| v.is_null()),
                    Cond::IsEmpty => values.iter().flatten().any(|v| {
                        v.as_str() == Some("")
                            || v.as_array().is_some_and(Vec::is_empty)
                            || v.as_object().is_some_and(Map::is_empty)
                    }),
                }
            }
        }
    }
}

/// The values at a dotted `path` of a document (through arrays of objects); `None` when the
/// field is absent.
fn lookup<'a>(doc: &'a Value, path: &str) -> Option<Vec<&'a Value>> {
    if let Some(v) = doc.get(path) {
        return Some(vec![v]);
    }
    let mut current = vec![doc];
    for part in path.split('.') {
        current = current
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                v => vec![v],
            })
            .filter_map(|v| v.get(part))
            .collect();
    }
    (!current.is_empty()).then_some(current)
}

fn equals(v: &Value, s: &str) -> bool {
    match v {
        Value::String(x) => x.to_lowercase() == s.to_lowercase(),
        Value::Number(n) => s.parse::<f64>().ok() == n.as_f64(),
        Value::Bool(b) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        _ => false,
    }
}

/// How a value compares with a filter's bound: numbers with a numeric bound, strings
/// (lowercased) with any other bound, as Meilisearch's facet ranges do.
fn compare(v: &Value, bound: &str) -> Option<std::cmp::Ordering> {
    match (v, bound.trim().parse::<f64>()) {
        (Value::Number(n), Ok(x)) => n.as_f64()?.partial_cmp(&x),
        (Value::String(s), Err(_)) => Some(s.to_lowercase().cmp(&bound.to_lowercase())),
        _ => None,
    }
}

/// The patterns of a `filterableAttributes` setting (plain or granular).
fn filterable_patterns(filterable: &Value) -> Vec<String> {
    let mut out: Vec<String> = filterable
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| match p {
            Value::String(s) => vec![s.clone()],
            p => p["attributePatterns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn is_filterable(field: &str, filterable: &Value) -> bool {
    filterable_patterns(filterable).iter().any(|p| {
        p == "*"
            || p == field
            || field.starts_with(&format!("{p}."))
            || p.strip_suffix('*')
                .is_some_and(|pre| field.starts_with(pre))
            || p.strip_prefix('*').is_some_and(|suf| field.ends_with(suf))
    })
}

fn not_filterable(field: &str, filterable: &Value) -> String {
    let patterns = filterable_patterns(filterable);
    if patterns.is_empty() {
        format!("Attribute `{field}` is not filterable. This index does not have configured filterable attributes.")
    } else {
        let list: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
        format!(
            "Attribute `{field}` is not filterable. Available filterable attribute patterns are: {}.",
            list.join(", ")
        )
    }
}
