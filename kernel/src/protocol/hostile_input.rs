//! Signed frames still come from a peer we do not control: any parts, any bytes, any
//! JSON must decode to a message or an error, never a panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const TYPES: &[&str] = &[
    "kernel_info_request",
    "execute_request",
    "complete_request",
    "inspect_request",
    "history_request",
    "is_complete_request",
    "comm_open",
    "comm_msg",
    "comm_info_request",
    "shutdown_request",
    "interrupt_request",
    "input_reply",
    "debug_request",
    "no_such_type",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{0,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn header(msg_type: &str, odd: Option<(String, Value)>) -> Vec<u8> {
    let mut h = json!({
        "msg_id": "m1", "username": "u", "session": "s",
        "date": "2026-11-28T10:00:00.123456Z", "msg_type": msg_type, "version": "5.3"
    });
    if let Some((k, v)) = odd {
        h[k] = v;
    }
    serde_json::to_vec(&h).unwrap_or_default()
}

fn part() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_parts_never_panic(parts in proptest::collection::vec(part(), 0..7)) {
        let _ = decode(RawMessage {
            zmq_identities: vec![],
            jparts: parts.into_iter().map(Into::into).collect(),
        });
    }

    #[test]
    fn a_good_header_with_any_content_never_panics(
        msg_type in proptest::sample::select(TYPES),
        odd in proptest::option::of((
            proptest::sample::select(vec!["msg_id", "date", "version", "msg_type", "session"]),
            json_value(),
        )),
        content in json_value(),
        metadata in part(),
        parent in part(),
    ) {
        let odd = odd.map(|(k, v)| (k.to_string(), v));
        let result = decode(RawMessage {
            zmq_identities: vec![],
            jparts: vec![
                header(msg_type, odd.clone()).into(),
                parent.into(),
                metadata.into(),
                serde_json::to_vec(&content).unwrap_or_default().into(),
            ],
        });
        // A message whose header is intact is always read; only its content may be unreadable.
        if odd.is_none() {
            prop_assert!(result.is_ok());
        }
    }
}
