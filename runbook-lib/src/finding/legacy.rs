//! Standard-specific control ids (CIS AWS Foundations 1.2.0, 1.4.0 and 3.0.0,
//! PCI DSS 3.2.1) and the consolidated security control each maps to, from
//! AWS's published table (`legacy_control_ids.csv`, sources at its top).
//! Accounts without consolidated control findings still send findings that
//! name only the standard's own id, such as CIS 1.2.0 rule 1.9 for IAM.15.

use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ControlId;

/// A standard whose findings may carry only their own control ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standard {
    #[serde(rename = "cis-1.2.0")]
    Cis120,
    #[serde(rename = "cis-1.4.0")]
    Cis140,
    #[serde(rename = "cis-3.0.0")]
    Cis300,
    #[serde(rename = "pci-dss-3.2.1")]
    PciDss321,
}

impl Standard {
    pub const ALL: [Standard; 4] = [
        Standard::Cis120,
        Standard::Cis140,
        Standard::Cis300,
        Standard::PciDss321,
    ];

    /// The key used in the CSV table.
    fn key(self) -> &'static str {
        match self {
            Standard::Cis120 => "cis-1.2.0",
            Standard::Cis140 => "cis-1.4.0",
            Standard::Cis300 => "cis-3.0.0",
            Standard::PciDss321 => "pci-dss-3.2.1",
        }
    }

    /// The name people use, e.g. "CIS 1.2.0".
    pub fn title(self) -> &'static str {
        match self {
            Standard::Cis120 => "CIS 1.2.0",
            Standard::Cis140 => "CIS 1.4.0",
            Standard::Cis300 => "CIS 3.0.0",
            Standard::PciDss321 => "PCI DSS 3.2.1",
        }
    }

    /// The GeneratorId Security Hub gives this standard's findings for `id`.
    pub fn generator_id(self, id: &str) -> String {
        match self {
            Standard::Cis120 => format!(
                "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/{id}"
            ),
            Standard::Cis140 => format!("cis-aws-foundations-benchmark/v/1.4.0/{id}"),
            Standard::Cis300 => format!("cis-aws-foundations-benchmark/v/3.0.0/{id}"),
            Standard::PciDss321 => format!("pci-dss/v/3.2.1/{id}"),
        }
    }

    /// The part of a GeneratorId or StandardsControlArn that names this
    /// standard, before the control's own id.
    fn marker(self) -> &'static str {
        match self {
            Standard::Cis120 => "cis-aws-foundations-benchmark/v/1.2.0/",
            Standard::Cis140 => "cis-aws-foundations-benchmark/v/1.4.0/",
            Standard::Cis300 => "cis-aws-foundations-benchmark/v/3.0.0/",
            Standard::PciDss321 => "pci-dss/v/3.2.1/",
        }
    }
}

impl fmt::Display for Standard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// A finding's standard-specific control, kept visible beside the consolidated id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandardControl {
    pub standard: Standard,
    /// As the standard writes it, e.g. "1.9" or "PCI.IAM.7".
    pub id: String,
}

impl fmt::Display for StandardControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.standard, self.id)
    }
}

struct Row {
    standard: Standard,
    id: String,
    control: ControlId,
}

static TABLE: LazyLock<Vec<Row>> = LazyLock::new(|| parse_table(TABLE_CSV));

const TABLE_CSV: &str = include_str!("legacy_control_ids.csv");

/// Rows that do not parse are skipped; a unit test requires that none do.
fn parse_table(csv: &str) -> Vec<Row> {
    csv.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split(',').map(str::trim);
            let standard = cells.next()?;
            let standard = Standard::ALL.into_iter().find(|s| s.key() == standard)?;
            let id = cells.next()?.to_string();
            let control = cells.next()?.parse().ok()?;
            Some(Row {
                standard,
                id,
                control,
            })
        })
        .collect()
}

/// Reads a standard-specific control out of a GeneratorId or a
/// StandardsControlArn, e.g. `.../cis-aws-foundations-benchmark/v/1.2.0/rule/1.9`.
pub fn standard_control_in(text: &str) -> Option<StandardControl> {
    Standard::ALL.into_iter().find_map(|standard| {
        let (_, rest) = text.split_once(standard.marker())?;
        let id = rest.strip_prefix("rule/").unwrap_or(rest);
        let id = id.rsplit('/').next()?.trim();
        (!id.is_empty()).then(|| StandardControl {
            standard,
            id: id.to_string(),
        })
    })
}

/// The consolidated security control of a standard-specific one, if AWS maps it.
pub fn consolidated(control: &StandardControl) -> Option<ControlId> {
    TABLE
        .iter()
        .find(|r| r.standard == control.standard && r.id.eq_ignore_ascii_case(&control.id))
        .map(|r| r.control.clone())
}

/// Every standard-specific control that maps to `control`.
pub fn standard_controls_for(control: &ControlId) -> Vec<StandardControl> {
    TABLE
        .iter()
        .filter(|r| r.control.eq_ignore_case(control))
        .map(|r| StandardControl {
            standard: r.standard,
            id: r.id.clone(),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn control(s: &str) -> ControlId {
        s.parse().unwrap()
    }

    #[test]
    fn every_row_of_the_table_parses() {
        let rows = TABLE_CSV
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count()
            - 1;
        assert_eq!(
            TABLE.len(),
            rows,
            "a row of legacy_control_ids.csv is malformed"
        );
        for standard in Standard::ALL {
            assert!(
                TABLE.iter().filter(|r| r.standard == standard).count() >= 20,
                "{standard} has too few rows"
            );
        }
    }

    #[test]
    fn published_examples_map() {
        let cases = [
            (
                "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/1.9",
                "IAM.15",
            ),
            (
                "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/4.1",
                "EC2.13",
            ),
            ("pci-dss/v/3.2.1/PCI.IAM.7", "IAM.8"),
        ];
        for (generator, expected) in cases {
            let sc = standard_control_in(generator).unwrap();
            assert_eq!(consolidated(&sc), Some(control(expected)), "{generator}");
        }
        let arn = "arn:aws:securityhub:us-east-1:111111111111:control/cis-aws-foundations-benchmark/v/1.4.0/1.10";
        let sc = standard_control_in(arn).unwrap();
        assert_eq!((sc.standard, sc.id.as_str()), (Standard::Cis140, "1.10"));
        assert!(standard_control_in("security-control/EC2.19").is_none());
    }

    #[test]
    fn reverse_lookup_gives_generator_ids() {
        let all = standard_controls_for(&control("IAM.15"));
        assert!(
            all.iter()
                .any(|s| s.standard == Standard::Cis120 && s.id == "1.9")
        );
        let generators: Vec<String> = all.iter().map(|s| s.standard.generator_id(&s.id)).collect();
        for g in &generators {
            let back = standard_control_in(g).unwrap();
            assert_eq!(consolidated(&back), Some(control("IAM.15")), "{g}");
        }
    }
}
