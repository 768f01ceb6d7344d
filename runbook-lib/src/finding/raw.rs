//! A finding's JSON exactly as Security Hub sent it, kept compact: compressed
//! text, parsed again only when shown or sent to a model. Held as a
//! `serde_json::Value` it cost about 13 KB a finding (1.3 GB for 100,000); as
//! deflated text, under 1 KB.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct RawJson(Box<[u8]>);

impl RawJson {
    pub fn new(value: &Value) -> RawJson {
        // Null is the empty default, so it round-trips to an equal value.
        if value.is_null() {
            return RawJson::default();
        }
        // Serialising a Value cannot fail: its keys are strings.
        let text = serde_json::to_vec(value).unwrap_or_default();
        // Level 1: most of the saving for a fraction of the time.
        RawJson(miniz_oxide::deflate::compress_to_vec(&text, 1).into_boxed_slice())
    }

    /// The JSON as received (Null if the stored bytes were somehow damaged).
    pub fn value(&self) -> Value {
        if self.0.is_empty() {
            return Value::Null;
        }
        miniz_oxide::inflate::decompress_to_vec(&self.0)
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or(Value::Null)
    }

    /// Bytes held, for memory accounting.
    pub fn stored_len(&self) -> usize {
        self.0.len()
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> RawJson {
        RawJson::new(&value)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.value())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(RawJson::from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_is_smaller_than_the_text() {
        let v = json!({"Id": "x", "Resources": [{"Type": "AwsEc2SecurityGroup", "Id": "arn:aws:ec2:us-east-1:1:sg/sg-1"}],
                       "Description": "repeated text ".repeat(40), "日本語": "説明"});
        let raw = RawJson::new(&v);
        assert_eq!(raw.value(), v);
        assert!(raw.stored_len() < v.to_string().len());
        let back: RawJson = serde_json::from_value(serde_json::to_value(&raw).unwrap()).unwrap();
        assert_eq!(back, raw);
        assert_eq!(RawJson::default().value(), Value::Null);
    }
}
