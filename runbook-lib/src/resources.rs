//! The account resources that remediation actions read and change, as plain values
//! shared by every backend (field names follow the AWS APIs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// IPv4 and IPv6 "anywhere".
pub const ANY_IPV4: &str = "0.0.0.0/0";
pub const ANY_IPV6: &str = "::/0";

/// The IAM account password policy (field names follow GetAccountPasswordPolicy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    pub minimum_password_length: u8,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase_characters: bool,
    pub require_lowercase_characters: bool,
    pub allow_users_to_change_password: bool,
    /// Days; None: passwords never expire.
    pub max_password_age: Option<u16>,
    /// How many previous passwords are remembered; None: reuse allowed.
    pub password_reuse_prevention: Option<u8>,
    pub hard_expiry: bool,
}

impl PasswordPolicy {
    /// A policy that passes every IAM password control (IAM.7, IAM.11-17).
    pub fn strong() -> PasswordPolicy {
        PasswordPolicy {
            minimum_password_length: 14,
            require_symbols: true,
            require_numbers: true,
            require_uppercase_characters: true,
            require_lowercase_characters: true,
            allow_users_to_change_password: true,
            max_password_age: Some(90),
            password_reuse_prevention: Some(24),
            hard_expiry: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL_ON: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };

    pub fn all_on(&self) -> bool {
        *self == Self::ALL_ON
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub group_id: String,
    pub group_name: String,
    pub description: String,
    pub vpc_id: String,
    pub ingress: Vec<IngressRule>,
    /// Network interfaces (ENIs) the group is attached to; empty if unused.
    pub network_interfaces: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// One security group rule (a `sgr-` id, one protocol, port range and CIDR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRule {
    pub rule_id: String,
    /// "tcp", "udp", "icmp" or "-1" (all traffic).
    pub protocol: String,
    /// Port range, inclusive; -1 for all traffic.
    pub from_port: i32,
    pub to_port: i32,
    pub cidr_ipv4: Option<String>,
    pub cidr_ipv6: Option<String>,
    pub description: Option<String>,
}

impl IngressRule {
    /// Open to the whole internet (0.0.0.0/0 or ::/0).
    pub fn is_open_to_world(&self) -> bool {
        self.cidr_ipv4.as_deref() == Some(ANY_IPV4) || self.cidr_ipv6.as_deref() == Some(ANY_IPV6)
    }

    pub fn is_all_traffic(&self) -> bool {
        self.protocol == "-1"
    }

    /// Whether the rule lets TCP traffic reach `port`.
    pub fn allows_tcp_port(&self, port: i32) -> bool {
        self.is_all_traffic()
            || (self.protocol.eq_ignore_ascii_case("tcp")
                && self.from_port <= port
                && port <= self.to_port)
    }

    /// The source in words: the CIDR.
    pub fn source(&self) -> &str {
        self.cidr_ipv4
            .as_deref()
            .or(self.cidr_ipv6.as_deref())
            .unwrap_or("(no CIDR)")
    }

    /// "tcp 22" / "tcp 1000-2000" / "all traffic".
    pub fn ports(&self) -> String {
        if self.is_all_traffic() {
            "all traffic".to_string()
        } else if self.from_port == self.to_port {
            format!("{} {}", self.protocol, self.from_port)
        } else {
            format!("{} {}-{}", self.protocol, self.from_port, self.to_port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DetectorStatus {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardDutyDetector {
    pub detector_id: String,
    pub status: DetectorStatus,
    pub finding_publishing_frequency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeyManager {
    Customer,
    Aws,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsKey {
    pub key_id: String,
    pub description: String,
    pub key_manager: KeyManager,
    /// e.g. "SYMMETRIC_DEFAULT", "RSA_2048".
    pub key_spec: String,
    /// e.g. "Enabled", "Disabled", "PendingDeletion".
    pub key_state: String,
    pub rotation_enabled: bool,
    /// RFC 3339.
    pub creation_date: String,
}

impl KmsKey {
    /// KMS.4 applies to enabled, customer-managed symmetric keys only.
    pub fn rotation_applies(&self) -> bool {
        self.key_manager == KeyManager::Customer
            && self.key_spec == "SYMMETRIC_DEFAULT"
            && self.key_state == "Enabled"
    }
}
