//! Mutations and shrinking steps for the fuzz targets: byte-level (bit flips, inserts, deletes,
//! splices, truncation, repeated chunks, dictionary tokens) and JSON-level (values replaced by
//! other types or boundary values, keys added and removed, subtrees spliced from other inputs,
//! deep nesting), plus the smaller variants the minimiser tries.

use std::rc::Rc;

use serde_json::{Map, Value, json};

use super::engine::Rng;

/// Inputs never grow past this many bytes (keeps one execution cheap).
pub const MAX_BYTES: usize = 256 << 10;

/// Bytes that matter to line-based and JSON parsers.
const INTERESTING_BYTES: &[u8] = b"\n\r: {}[]\",\\\x00\x7f\x80\xbf\xc3\xe2\xf0\xff ";

/// One byte-level mutation of `bytes`; `donors` are other inputs to splice from, `tokens`
/// a dictionary of meaningful byte strings.
pub fn mutate_bytes(rng: &mut Rng, bytes: &[u8], donors: &[&[u8]], tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let len = out.len();
    match rng.below(10) {
        0 if len > 0 => {
            let at = rng.below(len);
            out[at] ^= 1 << rng.below(8);
        }
        1 => {
            let byte = match rng.pick(INTERESTING_BYTES) {
                Some(byte) if rng.one_in(2) => *byte,
                _ => rng.next() as u8,
            };
            out.insert(rng.below(len + 1), byte);
        }
        2 if len > 0 => {
            let at = rng.below(len);
            let span = if rng.one_in(4) {
                rng.range(1, len - at)
            } else {
                rng.range(1, 8.min(len - at))
            };
            out.drain(at..at + span);
        }
        3 => {
            if let Some(donor) = rng.pick(donors).filter(|d| !d.is_empty()) {
                let from = rng.below(donor.len());
                let to = rng.range(from + 1, donor.len());
                let at = rng.below(len + 1);
                if rng.one_in(2) {
                    out.truncate(at);
                }
                let tail = out.split_off(at.min(out.len()));
                out.extend_from_slice(&donor[from..to]);
                out.extend_from_slice(&tail);
            }
        }
        4 if len > 0 => out.truncate(rng.below(len)),
        5 if len > 0 => {
            let from = rng.below(len);
            let to = rng.range(from + 1, (from + 64).min(len));
            let times = if rng.one_in(8) {
                rng.range(100, 4000)
            } else {
                rng.range(2, 16)
            };
            let chunk = out[from..to].to_vec();
            let at = rng.range(from, len);
            let mut repeated = Vec::with_capacity(chunk.len() * times);
            for _ in 0..times {
                repeated.extend_from_slice(&chunk);
            }
            out.splice(at..at, repeated);
        }
        6 => {
            if let Some(token) = rng.pick(tokens) {
                let at = rng.below(len + 1);
                let end = if rng.one_in(3) {
                    (at + token.len()).min(len)
                } else {
                    at
                };
                out.splice(at..end, token.iter().copied());
            }
        }
        7 if len > 0 => {
            let at = rng.below(len);
            out[at] = *rng.pick(INTERESTING_BYTES).unwrap_or(&b'\n');
        }
        8 if len > 1 => {
            let a = rng.below(len);
            let b = rng.below(len);
            out.swap(a, b);
        }
        _ => {
            let at = rng.below(len + 1);
            out.insert(at, b'\n');
        }
    }
    out.truncate(MAX_BYTES);
    out
}

/// Smaller variants of `bytes`, lazily: halves, then shorter and shorter chunks removed.
pub fn shrink_bytes(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + 'static {
    let len = bytes.len();
    let bytes = Rc::new(bytes.to_vec());
    std::iter::successors(Some(len / 2), |size| (*size > 1).then_some(size / 2))
        .filter(|size| *size > 0)
        .flat_map(move |size| {
            let bytes = bytes.clone();
            (0..len).step_by(size).map(move |at| {
                let end = (at + size).min(len);
                let mut smaller = bytes[..at].to_vec();
                smaller.extend_from_slice(&bytes[end..]);
                smaller
            })
        })
}

/// Keys and strings seen in the corpus, reused by the JSON mutations.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    /// Object keys.
    pub keys: Vec<String>,
    /// String values (event types, roles, ids…).
    pub strings: Vec<String>,
}

impl Dictionary {
    /// Collects every key and every short string of `values`.
    pub fn harvest<'a>(values: impl IntoIterator<Item = &'a Value>) -> Dictionary {
        let mut dictionary = Dictionary::default();
        for value in values {
            collect(value, &mut dictionary);
        }
        dictionary.keys.sort();
        dictionary.keys.dedup();
        dictionary.strings.sort();
        dictionary.strings.dedup();
        dictionary
    }
}

fn collect(value: &Value, dictionary: &mut Dictionary) {
    match value {
        Value::String(text) if text.len() <= 64 => dictionary.strings.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect(item, dictionary)),
        Value::Object(fields) => {
            for (key, item) in fields {
                dictionary.keys.push(key.clone());
                collect(item, dictionary);
            }
        }
        _ => {}
    }
}

/// Values that tend to break assumptions: boundary numbers, control characters, SSE framing
/// inside strings, empty containers.
fn interesting_value(rng: &mut Rng) -> Value {
    match rng.below(24) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(false),
        3 => json!(0),
        4 => json!(-1),
        5 => json!(u64::MAX),
        6 => json!(i64::MIN),
        7 => json!(u64::MAX - 1),
        8 => json!(9_007_199_254_740_993u64),
        9 => json!(1.5),
        10 => json!(-0.0),
        11 => json!(1e308),
        12 => json!(""),
        13 => json!("\n"),
        14 => json!("\r"),
        15 => json!("a\r\n\r\ndata: {\"injected\":true}\n\n"),
        16 => json!("\u{0}\u{7f}\u{2028}é😀"),
        17 => json!("x".repeat(rng.range(100, 5000))),
        18 => json!([]),
        19 => json!({}),
        20 => json!([null]),
        21 => json!({"": null}),
        22 => json!(u32::MAX),
        _ => json!(rng.next() % 1000),
    }
}

/// A random value: interesting, from the dictionary, or a donor's subtree.
fn random_value(rng: &mut Rng, donors: &[&Value], dictionary: &Dictionary) -> Value {
    match rng.below(4) {
        0 => dictionary
            .strings
            .get(rng.below(dictionary.strings.len()))
            .map_or(Value::Null, |s| json!(s)),
        1 => rng
            .pick(donors)
            .map_or(Value::Null, |donor| random_node(rng, donor).clone()),
        _ => interesting_value(rng),
    }
}

/// A random node of `value` (a random walk from the root).
fn random_node<'a>(rng: &mut Rng, value: &'a Value) -> &'a Value {
    let mut node = value;
    loop {
        let children: Vec<&Value> = match node {
            Value::Array(items) => items.iter().collect(),
            Value::Object(fields) => fields.values().collect(),
            _ => return node,
        };
        if children.is_empty() || rng.one_in(3) {
            return node;
        }
        node = children[rng.below(children.len())];
    }
}

/// The path of a random node of `value`: half the time uniform over all nodes (reaches deep
/// fields such as `response.usage.input_tokens`), otherwise a random walk from the root
/// (favours the structure near the top).
fn random_path(rng: &mut Rng, value: &Value) -> Vec<Step> {
    if rng.one_in(2) {
        let mut all = Vec::new();
        paths(value, &mut Vec::new(), &mut all);
        let at = rng.below(all.len());
        return all.swap_remove(at);
    }
    let mut path = Vec::new();
    let mut node = value;
    loop {
        if rng.one_in(3) {
            return path;
        }
        match node {
            Value::Array(items) if !items.is_empty() => {
                let at = rng.below(items.len());
                path.push(Step::Index(at));
                node = &items[at];
            }
            Value::Object(fields) if !fields.is_empty() => {
                let at = rng.below(fields.len());
                let Some((key, child)) = fields.iter().nth(at) else {
                    return path;
                };
                path.push(Step::Key(key.clone()));
                node = child;
            }
            _ => return path,
        }
    }
}

/// Integers at the edges of the types the code reads them into.
const BOUNDARY_NUMBERS: &[u64] = &[
    0,
    1,
    u64::MAX,
    u64::MAX - 1,
    u64::MAX / 2,
    i64::MAX as u64,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    1 << 53,
];

/// Sets about half the numbers of `value` to one boundary value (sums and increments of
/// several fields overflow only when more than one is large).
fn blast_numbers(rng: &mut Rng, value: &mut Value, boundary: u64) {
    match value {
        Value::Number(_) if rng.one_in(2) => *value = json!(boundary),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| blast_numbers(rng, item, boundary)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|item| blast_numbers(rng, item, boundary)),
        _ => {}
    }
}

/// One JSON-level mutation of `value` in place.
pub fn mutate_json(rng: &mut Rng, value: &mut Value, donors: &[&Value], dictionary: &Dictionary) {
    let replacement = random_value(rng, donors, dictionary);
    let key = dictionary
        .keys
        .get(rng.below(dictionary.keys.len()))
        .cloned()
        .unwrap_or_else(|| "type".to_string());
    if rng.one_in(10) {
        let boundary = *rng.pick(BOUNDARY_NUMBERS).unwrap_or(&u64::MAX);
        blast_numbers(rng, value, boundary);
        return;
    }
    let path = random_path(rng, value);
    let Some(node) = node_mut(value, &path) else {
        return;
    };
    match rng.below(9) {
        0 | 1 => *node = replacement,
        2 => match node {
            Value::Object(fields) if !fields.is_empty() => {
                let at = rng.below(fields.len());
                if let Some(name) = fields.keys().nth(at).cloned() {
                    fields.remove(&name);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            other => *other = Value::Null,
        },
        3 => match node {
            Value::Object(fields) => {
                fields.insert(key, replacement);
            }
            Value::Array(items) => {
                let element = match rng.pick(items) {
                    Some(existing) if rng.one_in(2) => existing.clone(),
                    _ => replacement,
                };
                items.insert(rng.below(items.len() + 1), element);
            }
            other => *other = replacement,
        },
        4 => {
            let depth = if rng.one_in(16) {
                rng.range(100, 300)
            } else {
                rng.range(1, 6)
            };
            let mut nested = std::mem::take(node);
            for _ in 0..depth {
                nested = if rng.one_in(2) {
                    Value::Array(vec![nested])
                } else {
                    let mut wrapper = Map::new();
                    wrapper.insert(key.clone(), nested);
                    Value::Object(wrapper)
                };
            }
            *node = nested;
        }
        5 => match node {
            Value::String(text) => mutate_string(rng, text, dictionary),
            Value::Number(number) => {
                let n = number.as_u64().unwrap_or(0);
                *node = match rng.below(6) {
                    0 => json!(n.wrapping_add(1)),
                    1 if rng.one_in(2) => json!(*rng.pick(BOUNDARY_NUMBERS).unwrap_or(&0)),
                    1 => json!(n.wrapping_sub(1)),
                    2 => json!(n.wrapping_mul(2)),
                    3 => json!(-(n as i128).min(i64::MAX as i128) as i64),
                    _ => json!(n as f64 + 0.5),
                };
            }
            Value::Bool(flag) => *flag = !*flag,
            other => *other = replacement,
        },
        6 => match node {
            Value::Array(items) if items.len() > 1 => {
                let (a, b) = (rng.below(items.len()), rng.below(items.len()));
                items.swap(a, b);
            }
            Value::Array(items) if !items.is_empty() => {
                let copy = items[0].clone();
                items.push(copy);
            }
            Value::Object(fields) if !fields.is_empty() => {
                let at = rng.below(fields.len());
                if let Some(child) = fields.values().nth(at).cloned() {
                    fields.insert(key, child);
                }
            }
            other => *other = replacement,
        },
        7 => {
            // The node's type keeps its name but changes kind: "5" for 5, [x] for x, …
            let current = std::mem::take(node);
            *node = match current {
                Value::String(text) => text
                    .parse::<i64>()
                    .map_or(Value::Array(vec![Value::String(text)]), |n| json!(n)),
                Value::Number(n) => json!(n.to_string()),
                Value::Array(mut items) if items.len() == 1 => items.remove(0),
                Value::Array(items) => Value::Object(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (i.to_string(), v))
                        .collect(),
                ),
                Value::Object(fields) => Value::Array(fields.into_iter().map(|(_, v)| v).collect()),
                other => Value::String(other.to_string()),
            };
        }
        _ => {
            if let Some(text) = dictionary.strings.get(rng.below(dictionary.strings.len())) {
                *node = json!(text);
            }
        }
    }
}

fn mutate_string(rng: &mut Rng, text: &mut String, dictionary: &Dictionary) {
    let extra = match rng.below(6) {
        0 => "\n".to_string(),
        1 => "\r".to_string(),
        2 => "\n\ndata: x\n\n".to_string(),
        3 => "\u{0}".to_string(),
        4 => "é😀".to_string(),
        _ => dictionary
            .strings
            .get(rng.below(dictionary.strings.len()))
            .cloned()
            .unwrap_or_default(),
    };
    match rng.below(5) {
        0 => text.push_str(&extra),
        1 => text.insert_str(0, &extra),
        2 => {
            let mut cut = rng.below(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        3 if text.len() < 4096 => *text = text.repeat(rng.range(2, 64)),
        _ => *text = extra,
    }
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Step::Index(i));
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                prefix.push(Step::Key(key.clone()));
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let child = match (first, value) {
        (Step::Key(key), Value::Object(fields)) => fields.get_mut(key)?,
        (Step::Index(i), Value::Array(items)) => items.get_mut(*i)?,
        _ => return None,
    };
    node_mut(child, rest)
}

/// Smaller variants of `value`, lazily: subtrees removed, then hoisted or shortened.
pub fn shrink_json(value: &Value) -> impl Iterator<Item = Value> + 'static {
    let mut all = Vec::new();
    paths(value, &mut Vec::new(), &mut all);
    let all = Rc::new(all);
    let value = Rc::new(value.clone());
    let removals = {
        let (all, value) = (all.clone(), value.clone());
        (0..all.len()).filter_map(move |i| removed_at(&value, &all[i]))
    };
    let reductions = (0..all.len()).filter_map(move |i| reduced_at(&value, &all[i]));
    removals.chain(reductions)
}

/// `value` without the node at `path` (`None` for the root).
fn removed_at(value: &Value, path: &[Step]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    let mut removed = value.clone();
    match (node_mut(&mut removed, parent)?, last) {
        (Value::Object(fields), Step::Key(key)) => {
            fields.remove(key);
        }
        (Value::Array(items), Step::Index(i)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => return None,
    }
    Some(removed)
}

/// `value` with the node at `path` replaced by its first child or half its text.
fn reduced_at(value: &Value, path: &[Step]) -> Option<Value> {
    let mut changed = value.clone();
    let node = node_mut(&mut changed, path)?;
    let smaller = match node {
        Value::Array(items) => items.first().cloned()?,
        Value::Object(fields) => fields.values().next().cloned()?,
        Value::String(text) if text.len() > 1 => {
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            json!(text[..cut].to_string())
        }
        _ => return None,
    };
    *node = smaller;
    Some(changed)
}
