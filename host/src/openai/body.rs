//! A client's JSON body as it arrived: the bytes, and where each top-level field's
//! value lies in them. The gateway reads the few fields it interprets from their
//! spans and forwards the body byte for byte with only `model` replaced, so whatever
//! it does not interpret reaches the upstream exactly as sent: key order, number
//! spelling (integers wider than 64 bits, `1e3`, `0.10`) and whitespace included.

use bytes::Bytes;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::ops::Range;

/// A JSON object body and its top-level fields, in the order they appear.
#[derive(Debug, Clone)]
pub struct JsonBody {
    bytes: Bytes,
    /// Each top-level key and the byte range of its value.
    fields: Vec<(String, Range<usize>)>,
}

/// Why a body is not a usable JSON object.
#[derive(Debug)]
pub enum BodyError {
    /// Valid JSON, but not an object.
    NotObject,
    /// Not JSON.
    Syntax(serde_json::Error),
}

impl JsonBody {
    /// Reads the top level of `bytes`; nested values are checked but not built.
    ///
    /// Checked as serde_json reads a value tree (numbers within range, string escapes
    /// that are characters, nesting at most 128 deep), not only skipped over: so what
    /// is accepted here can always be read again as a whole ([`to_value`]) or field
    /// by field, and a body no later reading could use is refused at once.
    ///
    /// [`to_value`]: JsonBody::to_value
    pub fn parse(bytes: Bytes) -> Result<JsonBody, BodyError> {
        let fields = {
            let top: TopLevel<'_> = serde_json::from_slice(&bytes).map_err(|e| {
                if e.is_data() {
                    BodyError::NotObject
                } else {
                    BodyError::Syntax(e)
                }
            })?;
            // Each raw value borrows from `bytes`: its offset is where it lies. (The
            // parser never copies a raw value; if it ever did, refuse rather than
            // forward the wrong bytes.)
            let base = bytes.as_ptr() as usize;
            let span = |text: &str| {
                let start = (text.as_ptr() as usize).checked_sub(base)?;
                let end = start.checked_add(text.len())?;
                (end <= bytes.len()).then_some(start..end)
            };
            // Skipping a raw value accepts `1e400`, `"\ud800"` and any depth, which
            // reading the value fails on: check the whole body as a value tree is
            // read, without building it.
            serde_json::from_slice::<Checked>(&bytes).map_err(BodyError::Syntax)?;
            top.0
                .into_iter()
                .map(|(key, raw)| match span(raw.get()) {
                    Some(range) => Ok((key, range)),
                    None => Err(BodyError::Syntax(serde::de::Error::custom(
                        "a value outside the body",
                    ))),
                })
                .collect::<Result<_, _>>()?
        };
        Ok(JsonBody { bytes, fields })
    }

    /// The JSON text of a top-level field. When a key repeats, the last one counts, as
    /// in most JSON parsers.
    pub fn raw(&self, key: &str) -> Option<&str> {
        let (_, range) = self.fields.iter().rev().find(|(k, _)| k == key)?;
        // The parser checked these bytes are UTF-8; a failure here would be a bug, and
        // reads as an absent field rather than a panic.
        std::str::from_utf8(&self.bytes[range.clone()]).ok()
    }

    /// A top-level field read as `T`: `None` when absent, an error when it has another
    /// shape.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, serde_json::Error>> {
        self.raw(key).map(serde_json::from_str)
    }

    /// The body with every top-level `model` set to `model`; every other byte as
    /// received.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        let quoted = serde_json::Value::from(model).to_string();
        let mut out = Vec::with_capacity(self.bytes.len() + quoted.len());
        let mut copied = 0;
        for (key, range) in &self.fields {
            if key == "model" {
                out.extend_from_slice(&self.bytes[copied..range.start]);
                out.extend_from_slice(quoted.as_bytes());
                copied = range.end;
            }
        }
        out.extend_from_slice(&self.bytes[copied..]);
        out
    }

    /// [`with_model`](Self::with_model), and `"key": value` (`value` JSON text) added at
    /// the end when the body has no `key` (one it has is left as the client set it).
    pub fn with_model_and(&self, model: &str, key: &str, value: &str) -> Vec<u8> {
        let mut out = self.with_model(model);
        if self.fields.iter().any(|(k, _)| k == key) {
            return out;
        }
        // The body is one object (checked at parse): its last `}` closes it.
        let Some(end) = out.iter().rposition(|&b| b == b'}') else {
            return out;
        };
        let field = format!(
            "{}{}:{value}",
            if self.fields.is_empty() { "" } else { "," },
            serde_json::Value::from(key)
        );
        out.splice(end..end, field.into_bytes());
        out
    }

    /// The whole body as a value tree, for adapters that translate it to another API.
    pub fn to_value(&self) -> serde_json::Value {
        // Parsed once already, so this cannot fail; `Null` keeps the signature simple.
        serde_json::from_slice(&self.bytes).unwrap_or_default()
    }
}

/// The top-level object, its values left as raw JSON.
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(field) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(field);
                }
                Ok(TopLevel(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// Any JSON value, read as serde_json reads a value tree (so with its checks) but not
/// kept: strings are borrowed or decoded into the parser's scratch space, numbers
/// parsed and dropped.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Checked)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> JsonBody {
        JsonBody::parse(Bytes::from(text.to_owned())).unwrap()
    }

    #[test]
    fn only_the_top_level_model_changes() {
        let sent = r#"{ "seed": 123456789012345678901234567890, "model" :"auto",
            "temperature": 0.10, "n": 1e0, "metadata": {"model": "inner"},
            "messages": [{"role": "user", "content": "say \"model\": x"}] }"#;
        let out = String::from_utf8(body(sent).with_model("gpt-4o \"mini\"")).unwrap();
        assert_eq!(
            out,
            sent.replace(r#""auto""#, r#""gpt-4o \"mini\"""#),
            "every byte but the model value is kept"
        );
    }

    #[test]
    fn repeated_keys_are_all_rewritten_and_the_last_is_read() {
        let b = body(r#"{"model":"a","x":1,"model":"b"}"#);
        assert_eq!(b.raw("model"), Some(r#""b""#));
        assert_eq!(b.with_model("m"), br#"{"model":"m","x":1,"model":"m"}"#);
        assert_eq!(
            b.with_model_and("m", "logprobs", "true"),
            br#"{"model":"m","x":1,"model":"m","logprobs":true}"#
        );
        assert_eq!(
            b.with_model_and("m", "x", "2"),
            br#"{"model":"m","x":1,"model":"m"}"#,
            "a field the client set is left alone"
        );
    }

    #[test]
    fn fields_read_as_types() {
        let b = body(r#"{"stream": true, "max_tokens": 7, "tools": [{}, {}]}"#);
        assert!(b.get::<bool>("stream").unwrap().unwrap());
        assert_eq!(b.get::<u64>("max_tokens").unwrap().unwrap(), 7);
        assert!(b.get::<u64>("stream").unwrap().is_err());
        assert!(b.get::<bool>("absent").is_none());
        assert_eq!(b.to_value()["tools"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn non_objects_and_bad_json_are_told_apart() {
        let parse = |t: &'static str| JsonBody::parse(Bytes::from_static(t.as_bytes()));
        assert!(matches!(parse("[1]"), Err(BodyError::NotObject)));
        assert!(matches!(parse("\"text\""), Err(BodyError::NotObject)));
        assert!(matches!(parse("{not json"), Err(BodyError::Syntax(_))));
        assert!(matches!(parse(""), Err(BodyError::Syntax(_))));
        assert!(matches!(parse("{} trailing"), Err(BodyError::Syntax(_))));
    }

    #[test]
    fn what_a_value_tree_cannot_hold_is_refused() {
        // Found by the request body fuzz target: skipping over these as raw values
        // accepted them, and the body's value tree (which the Anthropic adapter
        // translates) then read as empty.
        let deep = format!("{{\"m\":{}{}}}", "[".repeat(130), "]".repeat(130));
        for text in [r#"{"t":1e400}"#, r#"{"m":"\ud800"}"#, deep.as_str()] {
            let e = JsonBody::parse(Bytes::from(text.to_owned())).unwrap_err();
            assert!(matches!(e, BodyError::Syntax(_)), "{text}");
        }
        let shallow = format!("{{\"m\":{}{}}}", "[".repeat(120), "]".repeat(120));
        assert!(JsonBody::parse(Bytes::from(shallow)).is_ok());
    }
}
