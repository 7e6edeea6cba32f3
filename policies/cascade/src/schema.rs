//! A small JSON Schema validator: the keywords structured-output schemas use, and
//! nothing that needs a regular expression engine or a network.
//!
//! The `jsonschema` crate (0.61, `default-features = false`) builds for
//! `wasm32-wasip2`, but a policy component using it weighs about 3 MB (it brings
//! `regex` and `fancy-regex`, format checkers and a reference resolver), against about
//! 250 KB for this whole policy; a cascade checks a handful of keywords on answers, so
//! it validates with this instead.
//!
//! Checked keywords:
//!
//! - `type` (a name or a list of names; `integer` accepts `1.0`), `enum`, `const`
//!   (numbers compare by value: `1` equals `1.0`);
//! - objects: `properties`, `required`, `additionalProperties` (`false` or a schema;
//!   not checked when `patternProperties` is present, which this validator ignores);
//! - arrays: `items` (a schema for every item, or the older list form, one schema per
//!   position), `prefixItems`, `minItems`, `maxItems`;
//! - strings: `minLength`, `maxLength` (in characters, i.e. Unicode scalar values);
//! - numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers,
//!   or draft 4's booleans);
//! - `allOf`, `anyOf`, `oneOf`, and `$ref` to a place in the same schema (`#`,
//!   `#/$defs/item`, `#/definitions/item`: what Pydantic and Zod generate);
//! - `true` and `false` as schemas.
//!
//! Every other keyword (`pattern`, `format`, `multipleOf`, `uniqueItems`,
//! `patternProperties`, `dependentRequired`, `if`/`then`/`else`, `not`,
//! `minProperties`, remote `$ref`s, …) is not checked, and a keyword whose value is
//! malformed (an unknown type name, a non-numeric bound) is skipped: the validator may
//! accept an answer a full validator would refuse, never the other way round. For the
//! same reason a validation that would take more than [`STEP_BUDGET`] steps, or nest
//! deeper than [`MAX_DEPTH`] (a `$ref` cycle), stops and counts as a match.

use serde_json::{Map, Number, Value};
use std::fmt;

/// The most schema-against-value checks one validation may make before it stops and
/// counts the answer as matching: it runs under the review's deadline, and a
/// client's schema may be built to explode (nested `anyOf`s through `$ref`s).
pub const STEP_BUDGET: u32 = 50_000;

/// The deepest nesting of checks followed (each `$ref` and each level of the value
/// is one); deeper means a `$ref` cycle.
pub const MAX_DEPTH: u32 = 256;

/// Where and why a value does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// A JSON Pointer to the offending part of the value (`/items/0/name`); empty
    /// for the whole value.
    pub at: String,
    /// What is wrong, in a few words (`expected integer`, `missing "name"`).
    pub why: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.why)
        } else {
            write!(f, "{} at {}", self.why, self.at)
        }
    }
}

/// Checks `instance` against `schema` (see the module documentation for what is
/// checked); the first mismatch found, if any.
///
/// ```
/// use serde_json::json;
/// use signalbox_policy_cascade::schema::validate;
/// let schema = json!({"type": "object", "required": ["name"],
///                     "properties": {"age": {"type": "integer", "minimum": 0}}});
/// assert!(validate(&schema, &json!({"name": "Ada", "age": 36})).is_ok());
/// let wrong = validate(&schema, &json!({"name": "Ada", "age": "old"})).unwrap_err();
/// assert_eq!(wrong.to_string(), "expected integer at /age");
/// ```
pub fn validate(schema: &Value, instance: &Value) -> Result<(), Mismatch> {
    let mut validator = Validator {
        root: schema,
        steps: 0,
        gave_up: false,
    };
    let mut path = Vec::new();
    match validator.check(schema, instance, &mut path, 0) {
        // Out of budget or depth: no verdict, so no escalation.
        Err(_) if validator.gave_up => Ok(()),
        result => result,
    }
}

/// One step of the path from the whole value to the part being checked.
#[derive(Debug, Clone, Copy)]
enum Step<'i> {
    Key(&'i str),
    Index(usize),
}

/// The longest property name quoted in full in a [`Mismatch`].
const MAX_QUOTED: usize = 40;

fn pointer(path: &[Step<'_>]) -> String {
    let mut at = String::new();
    for step in path {
        at.push('/');
        match step {
            Step::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => at.push_str("~0"),
                        '/' => at.push_str("~1"),
                        c => at.push(c),
                    }
                }
            }
            Step::Index(i) => at.push_str(&i.to_string()),
        }
    }
    at
}

fn mismatch(path: &[Step<'_>], why: impl Into<String>) -> Mismatch {
    Mismatch {
        at: pointer(path),
        why: why.into(),
    }
}

/// A property name for a message: quoted, and cut when long.
fn quoted(name: &str) -> String {
    match name.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("\"{}…\"", &name[..end]),
        None => format!("\"{name}\""),
    }
}

struct Validator<'s> {
    root: &'s Value,
    steps: u32,
    /// Set when the budget or the depth ran out: the result means nothing.
    gave_up: bool,
}

impl<'s> Validator<'s> {
    fn check<'i>(
        &mut self,
        schema: &'s Value,
        instance: &'i Value,
        path: &mut Vec<Step<'i>>,
        depth: u32,
    ) -> Result<(), Mismatch> {
        self.steps = self.steps.saturating_add(1);
        if self.gave_up || self.steps > STEP_BUDGET || depth > MAX_DEPTH {
            self.gave_up = true;
            return Err(mismatch(path, "too complex to check"));
        }
        let keywords = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(mismatch(path, "not allowed")),
            Value::Object(keywords) => keywords,
            // Not a schema: nothing to check.
            _ => return Ok(()),
        };

        if let Some(Value::String(reference)) = keywords.get("$ref")
            && let Some(target) = self.resolve(reference)
        {
            self.check(target, instance, path, depth + 1)?;
        }
        if let Some(names) = keywords.get("type").and_then(type_names)
            && !names.iter().any(|name| type_matches(name, instance))
        {
            return Err(mismatch(path, format!("expected {}", names.join(" or "))));
        }
        if let Some(Value::Array(allowed)) = keywords.get("enum")
            && !allowed.iter().any(|a| equal(a, instance))
        {
            return Err(mismatch(path, "not one of the allowed values"));
        }
        if let Some(required) = keywords.get("const")
            && !equal(required, instance)
        {
            return Err(mismatch(path, "not the required value"));
        }

        match instance {
            Value::String(text) => check_string(keywords, text, path)?,
            Value::Number(number) => check_number(keywords, number, path)?,
            Value::Array(items) => self.check_array(keywords, items, path, depth)?,
            Value::Object(members) => self.check_object(keywords, members, path, depth)?,
            Value::Null | Value::Bool(_) => {}
        }

        if let Some(Value::Array(all)) = keywords.get("allOf") {
            for sub in all {
                self.check(sub, instance, path, depth + 1)?;
            }
        }
        if let Some(Value::Array(any)) = keywords.get("anyOf")
            && !any
                .iter()
                .any(|sub| self.check(sub, instance, path, depth + 1).is_ok())
        {
            return Err(mismatch(path, "matches no schema of anyOf"));
        }
        if let Some(Value::Array(one)) = keywords.get("oneOf") {
            let mut matched = 0;
            for sub in one {
                if self.check(sub, instance, path, depth + 1).is_ok() {
                    matched += 1;
                    if matched > 1 {
                        return Err(mismatch(path, "matches more than one schema of oneOf"));
                    }
                }
            }
            if matched == 0 {
                return Err(mismatch(path, "matches no schema of oneOf"));
            }
        }
        // A give-up inside a combinator above may have been read as a mismatch and
        // swallowed; `validate` discards the result then.
        Ok(())
    }

    /// A `$ref` within the schema itself (`#` or `#/json/pointer`); `None` for any
    /// other reference, which is then not checked.
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            Some(self.root)
        } else {
            self.root.pointer(pointer)
        }
    }

    fn check_array<'i>(
        &mut self,
        keywords: &'s Map<String, Value>,
        items: &'i [Value],
        path: &mut Vec<Step<'i>>,
        depth: u32,
    ) -> Result<(), Mismatch> {
        if let Some(min) = keywords.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            return Err(mismatch(path, format!("fewer than {min} items")));
        }
        if let Some(max) = keywords.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            return Err(mismatch(path, format!("more than {max} items")));
        }
        let prefix: &'s [Value] = match keywords.get("prefixItems") {
            Some(Value::Array(prefix)) => prefix,
            _ => &[],
        };
        // `items` as a list is the pre-2020 spelling of `prefixItems`.
        let (prefix, rest): (&'s [Value], Option<&'s Value>) = match keywords.get("items") {
            Some(Value::Array(positional)) => (positional, None),
            Some(every) => (prefix, Some(every)),
            None => (prefix, None),
        };
        for (i, item) in items.iter().enumerate() {
            let Some(schema) = prefix.get(i).or(rest) else {
                break;
            };
            path.push(Step::Index(i));
            let checked = self.check(schema, item, path, depth + 1);
            path.pop();
            checked?;
        }
        Ok(())
    }

    fn check_object<'i>(
        &mut self,
        keywords: &'s Map<String, Value>,
        members: &'i Map<String, Value>,
        path: &mut Vec<Step<'i>>,
        depth: u32,
    ) -> Result<(), Mismatch> {
        if let Some(Value::Array(required)) = keywords.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !members.contains_key(name) {
                    return Err(mismatch(path, format!("missing {}", quoted(name))));
                }
            }
        }
        let properties = match keywords.get("properties") {
            Some(Value::Object(properties)) => Some(properties),
            _ => None,
        };
        if let Some(properties) = properties {
            for (name, schema) in properties {
                if let Some((name, member)) = members.get_key_value(name) {
                    path.push(Step::Key(name));
                    let checked = self.check(schema, member, path, depth + 1);
                    path.pop();
                    checked?;
                }
            }
        }
        // With `patternProperties` (not checked here), which members are "additional"
        // depends on regular expressions: better not to judge them at all.
        if let Some(additional) = keywords.get("additionalProperties")
            && additional != &Value::Bool(true)
            && !keywords.contains_key("patternProperties")
        {
            let declared = |name: &str| properties.is_some_and(|p| p.contains_key(name));
            for (name, member) in members {
                if declared(name) {
                    continue;
                }
                if additional == &Value::Bool(false) {
                    return Err(mismatch(
                        path,
                        format!("unexpected property {}", quoted(name)),
                    ));
                }
                path.push(Step::Key(name));
                let checked = self.check(additional, member, path, depth + 1);
                path.pop();
                checked?;
            }
        }
        Ok(())
    }
}

fn check_string(
    keywords: &Map<String, Value>,
    text: &str,
    path: &[Step<'_>],
) -> Result<(), Mismatch> {
    let min = keywords.get("minLength").and_then(Value::as_u64);
    let max = keywords.get("maxLength").and_then(Value::as_u64);
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let length = text.chars().count() as u64;
    if let Some(min) = min
        && length < min
    {
        return Err(mismatch(path, format!("shorter than {min} characters")));
    }
    if let Some(max) = max
        && length > max
    {
        return Err(mismatch(path, format!("longer than {max} characters")));
    }
    Ok(())
}

fn check_number(
    keywords: &Map<String, Value>,
    number: &Number,
    path: &[Step<'_>],
) -> Result<(), Mismatch> {
    let Some(value) = number.as_f64() else {
        return Ok(());
    };
    let bound = |key: &str| match keywords.get(key) {
        Some(Value::Number(n)) => n.as_f64().map(|b| (b, n)),
        _ => None,
    };
    // Draft 4 spells exclusive bounds as a boolean next to `minimum`/`maximum`.
    let draft4_exclusive = |key: &str| keywords.get(key) == Some(&Value::Bool(true));
    if let Some((min, shown)) = bound("minimum") {
        if draft4_exclusive("exclusiveMinimum") {
            if value <= min {
                return Err(mismatch(path, format!("not above {shown}")));
            }
        } else if value < min {
            return Err(mismatch(path, format!("below the minimum {shown}")));
        }
    }
    if let Some((max, shown)) = bound("maximum") {
        if draft4_exclusive("exclusiveMaximum") {
            if value >= max {
                return Err(mismatch(path, format!("not below {shown}")));
            }
        } else if value > max {
            return Err(mismatch(path, format!("above the maximum {shown}")));
        }
    }
    if let Some((min, shown)) = bound("exclusiveMinimum")
        && value <= min
    {
        return Err(mismatch(path, format!("not above {shown}")));
    }
    if let Some((max, shown)) = bound("exclusiveMaximum")
        && value >= max
    {
        return Err(mismatch(path, format!("not below {shown}")));
    }
    Ok(())
}

/// The type names of a `type` keyword; `None` (not checked) when it is malformed or
/// names a type JSON Schema does not have.
fn type_names(keyword: &Value) -> Option<Vec<&str>> {
    const KNOWN: [&str; 7] = [
        "null", "boolean", "object", "array", "number", "integer", "string",
    ];
    let names: Vec<&str> = match keyword {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().map(Value::as_str).collect::<Option<_>>()?,
        _ => return None,
    };
    (!names.is_empty() && names.iter().all(|n| KNOWN.contains(n))).then_some(names)
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64()
                    || n.is_u64()
                    || n.as_f64()
                        .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
            }
            _ => false,
        },
        _ => false,
    }
}

/// JSON Schema's equality: numbers by value (`1` equals `1.0`), objects regardless of
/// member order.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}
