//! Small serde helpers of the format: values that are either a word or a
//! mapping (`xen: none`, `boot: finished`), and regular expressions checked at load.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A value written either as a word or as a strict mapping.
pub trait StrOrMap: Sized {
    const EXPECTING: &'static str;
    type Map: for<'de> Deserialize<'de>;
    fn from_str(s: &str) -> Option<Self>;
    fn from_map(m: Self::Map) -> Self;
}

/// Deserialize a [`StrOrMap`]. The mapping goes through the derived (strict)
/// impl of `T::Map` via `MapAccessDeserializer`, so unknown-field errors and
/// their paths still come out of the YAML layer.
pub fn deserialize_str_or_map<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: StrOrMap,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: StrOrMap> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            T::from_str(s).ok_or_else(|| E::custom(format!("`{s}`: expected {}", T::EXPECTING)))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::Map::deserialize(MapAccessDeserializer::new(map)).map(T::from_map)
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A regular expression, compiled when the scenario loads so a bad pattern
/// is a load error with a line number, not a verdict-time surprise.
#[derive(Clone)]
pub struct Pattern(pub regex::Regex);

impl Pattern {
    pub fn new(re: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(re).map(Pattern)
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.0.as_str())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.0.as_str())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(|e| de::Error::custom(format!("bad regular expression: {e}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A regular expression (Rust regex syntax), searched anywhere in the text",
            "type": "string",
            "format": "regex"
        })
    }
}
