//! Model tool input is attacker-steerable: whatever it holds, a plan comes out only
//! for the finding's own account, region and resources, with parameters in range.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::cloud::Sandbox;
use crate::plan::validate;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// One sandbox finding per action kind the model can ask for.
fn targets(sb: &Sandbox) -> Vec<Finding> {
    let findings = sb.all_findings().unwrap_or_default();
    ["EC2.19", "GuardDuty.1", "IAM.7", "S3.1", "EC2.7", "KMS.4"]
        .iter()
        .filter_map(|c| {
            findings
                .iter()
                .find(|f| f.control_id.as_ref().is_some_and(|id| id.as_str() == *c))
                .cloned()
        })
        .collect()
}

/// Identifiers an attacker might name: the finding's own, and others that look alike.
fn identifier(finding: &Finding) -> impl Strategy<Value = String> + use<> {
    let own: Vec<String> = finding.resources.iter().map(|r| r.id.clone()).collect();
    let own = if own.is_empty() {
        vec!["none".to_string()]
    } else {
        own
    };
    prop_oneof![
        proptest::sample::select(own),
        "sg-[0-9a-f]{8,17}",
        "sgr-[0-9a-f]{8,17}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "arn:aws:kms:us-east-1:[0-9]{12}:key/[a-z0-9-]{1,40}",
        ".{0,30}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0i64..200).prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ]
}

fn action(finding: &Finding) -> impl Strategy<Value = Value> + use<> {
    let names = proptest::sample::select(vec![
        "revoke_ingress",
        "authorize_ingress",
        "enable_guard_duty",
        "disable_guard_duty",
        "set_password_policy",
        "delete_password_policy",
        "block_s3_public_access",
        "enable_ebs_encryption_by_default",
        "enable_kms_key_rotation",
        "disable_kms_key_rotation",
        "run_shell",
    ]);
    let params = proptest::sample::select(vec![
        "group_id",
        "rule_ids",
        "key_id",
        "minimum_password_length",
        "max_password_age",
        "password_reuse_prevention",
        "require_symbols",
        "account_id",
        "bucket",
    ]);
    let value = prop_oneof![
        identifier(finding).prop_map(Value::String),
        proptest::collection::vec(identifier(finding).prop_map(Value::String), 0..3)
            .prop_map(Value::Array),
        leaf(),
    ];
    (names, proptest::collection::vec((params, value), 0..4)).prop_map(|(name, params)| {
        let mut obj = serde_json::Map::new();
        obj.insert("action".into(), json!(name));
        for (k, v) in params {
            obj.insert(k.to_string(), v);
        }
        Value::Object(obj)
    })
}

fn tool_input(finding: &Finding) -> impl Strategy<Value = Value> + use<> {
    let account = prop_oneof![Just(finding.account.to_string()), "[0-9]{12}", ".{0,14}"];
    let region = prop_oneof![
        Just(finding.region.clone()),
        "(us|eu|ap)-(east|west|north)-[1-3]"
    ];
    (
        proptest::option::of(account),
        proptest::option::of(region),
        proptest::collection::vec(action(finding), 0..10),
        proptest::option::of(leaf()),
    )
        .prop_map(|(account, region, actions, extra)| {
            let mut input = json!({"actions": actions, "rationale": "fix it"});
            if let Some(a) = account {
                input["account_id"] = json!(a);
            }
            if let Some(r) = region {
                input["region"] = json!(r);
            }
            if let Some(x) = extra {
                input["extra"] = x;
            }
            input
        })
}

/// Every string the input names, anywhere below `actions`.
fn named_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| named_strings(i, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "action")
            .for_each(|(_, i)| named_strings(i, out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn nothing_outside_the_finding_is_accepted(
        (finding, input) in {
            let sb = Sandbox::new();
            let findings = targets(&sb);
            proptest::sample::select(findings).prop_flat_map(|f| (Just(f.clone()), tool_input(&f)))
        }
    ) {
        let sb = Sandbox::new();
        let result = block_on(plan_from_model(&input, &finding, &sb, Lang::En, "test-model", &PolicyValues::new()));
        if let Ok(plan) = result {
            prop_assert_eq!(plan.account.as_str(), finding.account.as_str());
            prop_assert_eq!(&plan.region, &finding.region);
            prop_assert!(validate(&plan, &finding).is_ok());
            prop_assert!(plan.actions.iter().all(|a| !a.is_inverse_only()));
            prop_assert!(input.get("extra").is_none(), "an unknown field was accepted");
            // Every identifier the input named belongs to the finding.
            let finding_text = finding.raw.value().to_string();
            let mut named = Vec::new();
            if let Some(actions) = input.get("actions") {
                named_strings(actions, &mut named);
            }
            for s in named {
                prop_assert!(
                    finding_text.contains(&s) || finding.resources.iter().any(|r| r.id.contains(&s)),
                    "accepted {s:?}, which is not in the finding"
                );
            }
        }
    }
}
