//! ASFF comes from AWS and from whoever wrote the finding: any JSON, deeply nested or
//! huge, must parse to a finding or a clear error, never a panic, and keep `raw`.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "Id",
    "ProductArn",
    "AwsAccountId",
    "Region",
    "Title",
    "Description",
    "Severity",
    "Compliance",
    "Workflow",
    "Resources",
    "ProductFields",
    "GeneratorId",
    "RecordState",
    "UpdatedAt",
];

fn base() -> Value {
    json!({
        "Id": "arn:aws:securityhub:us-east-1:123456789012:finding/1",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
        "AwsAccountId": "123456789012",
        "Region": "us-east-1",
        "Title": "t",
        "Description": "d",
        "Severity": {"Label": "HIGH"},
        "Compliance": {"Status": "FAILED", "SecurityControlId": "EC2.19"},
        "Workflow": {"Status": "NEW"},
        "Resources": [{"Type": "AwsEc2SecurityGroup", "Id": "sg-1"}],
    })
}

/// A plausible finding with some fields replaced by arbitrary JSON.
fn finding_like() -> impl Strategy<Value = Value> {
    proptest::collection::vec((proptest::sample::select(FIELDS), any_json()), 0..8).prop_map(
        |replacements| {
            let mut f = base();
            for (k, v) in replacements {
                f[k] = v;
            }
            f
        },
    )
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("bottom"), |v, _| json!({"Details": [v]}))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        let _ = Finding::from_asff(v);
    }

    #[test]
    fn a_finding_with_odd_fields_keeps_its_raw_json(v in finding_like()) {
        if let Ok(f) = Finding::from_asff(v.clone()) {
            prop_assert_eq!(f.raw.value(), v);
        }
    }
}

#[test]
fn the_base_finding_parses() {
    let f = Finding::from_asff(base()).unwrap();
    assert_eq!(f.control_id.map(|c| c.to_string()).as_deref(), Some("EC2.19"));
}

#[test]
fn deep_nesting_and_huge_strings_are_kept() {
    let mut f = base();
    f["Title"] = json!("タイトル".repeat(100_000));
    f["Description"] = json!("x".repeat(1_000_000));
    f["Resources"][0]["Details"] = nested(120);
    let parsed = Finding::from_asff(f.clone()).unwrap();
    assert_eq!(parsed.title.chars().count(), 400_000);
    assert_eq!(parsed.raw.value(), f);
    f["Resources"] = json!("not a list");
    let _ = Finding::from_asff(f);
}
