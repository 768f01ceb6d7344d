//! Severity labels, the one type for them everywhere (ASFF `Severity.Label`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An ASFF severity label. The derived order is the severity order,
/// so `Severity::Critical > Severity::High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every label, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The upper-case ASFF label, e.g. "CRITICAL".
    pub fn label(self) -> &'static str {
        match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// Maps `Severity.Normalized` (0..=100) to a label with the ASFF ranges.
    pub fn from_normalized(score: i64) -> Severity {
        match score {
            i64::MIN..=0 => Severity::Informational,
            1..=39 => Severity::Low,
            40..=69 => Severity::Medium,
            70..=89 => Severity::High,
            _ => Severity::Critical,
        }
    }

    /// A representative `Severity.Normalized` score for the label.
    pub fn normalized(self) -> u8 {
        match self {
            Severity::Informational => 0,
            Severity::Low => 1,
            Severity::Medium => 40,
            Severity::High => 70,
            Severity::Critical => 90,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A label that is not one of the five ASFF severities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown severity {given:?}: expected one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL (any case)"
)]
pub struct ParseSeverityError {
    pub given: String,
}

impl FromStr for Severity {
    type Err = ParseSeverityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Severity::ALL
            .into_iter()
            .find(|sev| sev.label().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseSeverityError {
                given: s.to_string(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_trims() {
        assert_eq!("critical".parse::<Severity>().unwrap(), Severity::Critical);
        assert_eq!(" High ".parse::<Severity>().unwrap(), Severity::High);
        assert_eq!(
            "InFoRmAtIoNaL".parse::<Severity>().unwrap(),
            Severity::Informational
        );
    }

    #[test]
    fn error_lists_accepted_labels() {
        let err = "severe".parse::<Severity>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"severe\""), "{msg}");
        for sev in Severity::ALL {
            assert!(msg.contains(sev.label()), "{msg}");
        }
    }

    #[test]
    fn order_is_severity_order() {
        let mut v = vec![
            Severity::Medium,
            Severity::Critical,
            Severity::Informational,
            Severity::High,
            Severity::Low,
        ];
        v.sort();
        assert_eq!(v, Severity::ALL.to_vec());
        assert!(Severity::Critical > Severity::High);
    }

    #[test]
    fn display_and_serde_use_the_label() {
        assert_eq!(Severity::Medium.to_string(), "MEDIUM");
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"CRITICAL\""
        );
        let s: Severity = serde_json::from_str("\"LOW\"").unwrap();
        assert_eq!(s, Severity::Low);
    }

    #[test]
    fn normalized_ranges() {
        assert_eq!(Severity::from_normalized(0), Severity::Informational);
        assert_eq!(Severity::from_normalized(39), Severity::Low);
        assert_eq!(Severity::from_normalized(40), Severity::Medium);
        assert_eq!(Severity::from_normalized(70), Severity::High);
        assert_eq!(Severity::from_normalized(90), Severity::Critical);
        assert_eq!(Severity::from_normalized(100), Severity::Critical);
        for sev in Severity::ALL {
            assert_eq!(Severity::from_normalized(sev.normalized().into()), sev);
        }
    }
}
