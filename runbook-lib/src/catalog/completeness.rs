//! Every registered family declares all it must: controls with en/ja texts and a
//! sandbox evaluation, a tool entry per plan step, and for every step its
//! permissions (in the shipped IAM policy), an inverse or the reason it has none,
//! CLI and Python, and en/ja descriptions. The README's catalog table lists
//! exactly the registered families and their controls.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::cloud::Sandbox;
use crate::resources::IngressRule;

fn target() -> Target {
    Target {
        account: "111122223333".parse().expect("account id"),
        region: "us-east-1".to_string(),
    }
}

/// What an apply that changed something may report, with every id filled in.
fn rich_applied() -> Applied {
    Applied {
        created_detector: Some("12abc34d567e8fa901bc2d34e56789f0".to_string()),
        enabled_detector: Some("12abc34d567e8fa901bc2d34e56789f0".to_string()),
        rules: vec![IngressRule {
            rule_id: "sgr-0123456789abcdef0".to_string(),
            protocol: "tcp".to_string(),
            from_port: 22,
            to_port: 22,
            cidr_ipv4: Some("0.0.0.0/0".to_string()),
            cidr_ipv6: None,
            description: None,
        }],
        ..Applied::changed("changed")
    }
}

fn shipped_remediation_policy() -> BTreeSet<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../iam/runbook-remediation.json");
    let text = std::fs::read_to_string(&path).expect("iam/runbook-remediation.json");
    let doc: Value = serde_json::from_str(&text).expect("policy JSON");
    let mut out = BTreeSet::new();
    for statement in doc["Statement"].as_array().expect("Statement") {
        if statement["Effect"] != "Allow" {
            continue;
        }
        match &statement["Action"] {
            Value::String(a) => {
                out.insert(a.clone());
            }
            Value::Array(list) => {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    out
}

/// Whether the sandbox has resources for a control: every typed family's, and
/// those of the table's controls it has always evaluated (its trails).
fn sandbox_models(control: &str) -> bool {
    !super::automation::rows()
        .iter()
        .any(|r| r.control == control)
        || crate::cloud::sandbox::controls::EVALUATED_HERE
            .iter()
            .any(|c| c.id == control)
}

#[test]
fn every_document_the_sandbox_simulates_fixes_a_control_it_evaluates() {
    for document in crate::cloud::sandbox::automation::SIMULATED {
        assert!(
            super::automation::rows()
                .iter()
                .any(|r| r.document == *document && sandbox_models(&r.control)),
            "{document}"
        );
    }
}

#[test]
fn every_family_declares_everything() {
    let policy = shipped_remediation_policy();
    let sandbox_evaluations = crate::cloud::sandbox::controls::evaluate(&Sandbox::new().state());
    let mut family_names = BTreeSet::new();
    let mut all_controls = BTreeSet::new();
    for entry in CATALOG {
        let family = entry.family;
        let name = family.name();
        assert!(family_names.insert(name), "two families are named {name}");
        for lang in [Lang::En, Lang::Ja] {
            assert!(!family.title(lang).is_empty(), "{name}: no {lang:?} title");
        }
        assert_ne!(
            family.title(Lang::En),
            family.title(Lang::Ja),
            "{name}: title not translated"
        );

        // Controls: described, each in one family only, evaluated by the sandbox.
        assert!(!family.controls().is_empty(), "{name}: no controls");
        for control in family.controls() {
            assert!(
                all_controls.insert(control.id),
                "{}: in two families",
                control.id
            );
            assert!(!control.title.is_empty() && !control.description.is_empty());
            assert!(!control.standards.is_empty() && !control.config_rule.is_empty());
            assert!(
                !sandbox_models(control.id)
                    || sandbox_evaluations
                        .iter()
                        .any(|e| e.control.id == control.id),
                "{name}: the sandbox never evaluates {}",
                control.id
            );
        }

        // One tool entry per plan step, none for undo-only steps.
        let tools: BTreeSet<&str> = family.tools().iter().map(|t| t.step).collect();
        let plan_steps: BTreeSet<&str> = entry.actions.iter().copied().collect();
        assert_eq!(
            tools, plan_steps,
            "{name}: tool entries and plan steps differ"
        );
        assert!(family.tools().iter().all(|t| !t.description.is_empty()));

        // Every registered step, through its example.
        let examples = family.examples();
        let shown: BTreeSet<&str> = examples.iter().map(Action::name).collect();
        let registered: BTreeSet<&str> = entry
            .actions
            .iter()
            .chain(entry.undo_only)
            .copied()
            .collect();
        assert_eq!(shown, registered, "{name}: examples must show every step");
        let at = target();
        for action in &examples {
            let step = action.name();
            let json = serde_json::to_value(action).expect("serialises");
            assert_eq!(json["action"], tool_name(step), "{step}: JSON tag");
            assert_eq!(
                &serde_json::from_value::<Action>(json).expect("parses"),
                action
            );
            assert_eq!(action.is_inverse_only(), entry.undo_only.contains(&step));

            let permissions = action.permissions();
            assert!(!permissions.is_empty(), "{step}: no permissions");
            for p in &permissions {
                assert!(
                    p.split_once(':')
                        .is_some_and(|(s, a)| !s.is_empty() && !a.is_empty()),
                    "{step}: {p} is not service:Action"
                );
                // What an Automation runbook's steps call is the member role's
                // (tests/test_iam_policies.py checks iam/member-role.yaml grants it).
                let runbook_step = super::automation::rows()
                    .iter()
                    .any(|r| r.permissions.iter().any(|x| x == p));
                assert!(
                    policy.contains(*p) || runbook_step,
                    "{step}: iam/runbook-remediation.json does not allow {p}"
                );
            }

            let undo = action
                .inverse(None)
                .or_else(|| action.inverse(Some(&rich_applied())));
            match (&undo, action.no_inverse()) {
                (Some(inverse), None) => {
                    let owner = CATALOG.iter().find(|e| {
                        e.actions.contains(&inverse.name()) || e.undo_only.contains(&inverse.name())
                    });
                    assert!(
                        owner.is_some_and(|e| std::ptr::eq(e, entry)),
                        "{step}: its inverse {} belongs to another family",
                        inverse.name()
                    );
                }
                (None, Some(reason)) => {
                    assert!(!reason.is_empty(), "{step}: empty reason for no inverse");
                    // Only the AWS-owned runbooks, whose documents have no inverse,
                    // may be a plan step without one.
                    assert!(
                        !entry.actions.contains(&step) || step == "RunAutomation",
                        "{step}: a plan step must be undoable"
                    );
                }
                (Some(_), Some(_)) => panic!("{step}: has an inverse and says it has none"),
                (None, None) => panic!("{step}: no inverse and no reason why"),
            }

            let cli = action.cli(&at);
            assert!(cli.starts_with("aws "), "{step}: {cli}");
            assert!(cli.contains("--region us-east-1"), "{step}: {cli}");
            let python = action.python(&at);
            assert!(
                python.contains("import boto3") && python.contains("us-east-1"),
                "{step}: {python}"
            );
            let (en, ja) = (action.describe(Lang::En), action.describe(Lang::Ja));
            assert!(
                !en.is_empty() && !ja.is_empty() && en != ja,
                "{step}: describe"
            );
            assert!(
                !ja.is_ascii(),
                "{step}: the Japanese text is not Japanese: {ja}"
            );
        }
    }
}

#[test]
fn every_control_is_explained_in_both_languages_from_a_sandbox_finding() {
    let findings = Sandbox::new().all_findings().expect("sandbox findings");
    for entry in CATALOG {
        for control in entry
            .family
            .controls()
            .iter()
            .filter(|c| sandbox_models(c.id))
        {
            let Some(finding) = findings.iter().find(|f| {
                f.control_id
                    .as_ref()
                    .is_some_and(|c| c.as_str() == control.id)
            }) else {
                panic!("{}: the sandbox has no finding for it", control.id);
            };
            for lang in [Lang::En, Lang::Ja] {
                let e = explain(finding, lang);
                assert!(e.covered, "{}", control.id);
                assert!(!e.what.is_empty() && !e.why.is_empty() && !e.next_steps.is_empty());
            }
        }
    }
}

/// The README's catalog table: `| `family` | controls | ... |` rows.
fn readme_table() -> BTreeMap<String, BTreeSet<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&path).expect("README.md");
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| Family | Controls |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("| ---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let family = cells.get(1).copied().unwrap_or_default().trim_matches('`');
        let controls = cells
            .get(2)
            .copied()
            .unwrap_or_default()
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        rows.insert(family.to_string(), controls);
    }
    rows
}

#[test]
fn the_readme_catalog_table_lists_exactly_the_registry() {
    let registry: BTreeMap<String, BTreeSet<String>> = CATALOG
        .iter()
        .map(|e| {
            (
                e.family.name().to_string(),
                e.controls().map(str::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        readme_table(),
        registry,
        "README.md's catalog table (| Family | Controls | ...) must list every registered family with exactly its controls"
    );
}

#[test]
fn the_catalog_never_imports_plans() {
    // plan.rs and planner/ build on the catalog; an import back would be a cycle.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog");
    for entry in std::fs::read_dir(&dir).expect("src/catalog") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue; // the table and the documents/ folder
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for forbidden in ["crate::plan", "super::super::plan"] {
            assert!(
                !text
                    .lines()
                    .any(|l| l.trim_start().starts_with("use") && l.contains(forbidden)),
                "{} imports {forbidden}",
                path.display()
            );
        }
    }
}
