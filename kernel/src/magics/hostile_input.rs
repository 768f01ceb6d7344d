//! Cell text is whatever a user (or a shared notebook) typed: splitting it into
//! magics and parsing their arguments gives a call or a clear error, never a panic.

use proptest::prelude::*;

use super::*;

fn magic_name() -> impl Strategy<Value = String> {
    let known: Vec<String> = MAGICS.iter().map(|m| m.name.to_string()).collect();
    prop_oneof![proptest::sample::select(known), "[a-z%]{0,8}"]
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "--[a-z-]{1,12}",
        "-[a-z]",
        "[0-9]{1,12}",
        "-[0-9]{1,5}",
        "'[^']{0,10}",
        "\"[^\"]{0,10}\"",
        ".{0,12}",
        Just("\\".to_string()),
        Just("$HOME".to_string()),
        Just("=".to_string()),
    ]
}

fn cell() -> impl Strategy<Value = String> {
    let line = (
        prop_oneof![Just("%"), Just("%%"), Just(""), Just("  %")],
        magic_name(),
        proptest::collection::vec(word(), 0..6),
    )
        .prop_map(|(p, n, ws)| format!("{p}{n} {}", ws.join(" ")));
    prop_oneof![
        proptest::collection::vec(line, 0..4).prop_map(|ls| ls.join("\n")),
        ".{0,200}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_cell_splits_and_parses_or_says_why(code in cell()) {
        if let Ok(invocations) = split_cell(&code) {
            for inv in &invocations {
                if let Err(e) = parse_call(inv) {
                    prop_assert!(!e.traceback().is_empty());
                }
            }
        }
    }

    #[test]
    fn findings_limit_round_trips(n in 1u32..=findings::MAX_LIMIT) {
        let inv = split_cell(&format!("%findings --limit {n}")).unwrap_or_default();
        prop_assert_eq!(inv.len(), 1);
        match parse_call(&inv[0]) {
            Ok(Parsed::Call(call)) => match *call {
                MagicCall::Findings(args) => prop_assert_eq!(args.limit, Some(n)),
                other => prop_assert!(false, "parsed as {other:?}"),
            },
            other => prop_assert!(false, "not a call: {other:?}"),
        }
    }

    #[test]
    fn findings_limit_out_of_range_is_a_usage_error(n in (findings::MAX_LIMIT as u64 + 1)..u64::MAX) {
        let inv = split_cell(&format!("%findings --limit {n}")).unwrap_or_default();
        let err = parse_call(&inv[0]).err();
        prop_assert!(err.is_some_and(|e| e.kind == crate::error::ErrorKind::Usage));
    }
}
