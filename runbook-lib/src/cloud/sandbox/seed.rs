//! The default simulated organisation. The caller is the security account
//! (111111111111, Security Hub's delegated administrator), which has findings of
//! its own; the members are a workload account (222222222222), a data platform
//! (333333333333) and a legacy account where the runbook's member role was never
//! deployed (444444444444); the organisation also has its management account
//! (999999999999, where StackSets does not deploy the role) and a suspended
//! account (555555555555). Settings are a realistic mix of good and bad.

use std::collections::BTreeMap;

use super::state::{
    ANY_IPV4, ANY_IPV6, AccountState, DetectorStatus, GuardDutyDetector, IngressRule, KeyManager,
    KmsKey, OrgState, PasswordPolicy, PublicAccessBlock, RegionState, SecurityGroup, Trail,
};
use crate::cloud::OrgAccount;
use crate::cloud::member::AccountStatus;
use crate::finding::AccountId;

pub const SECURITY_ACCOUNT: &str = "111111111111";
pub const WORKLOAD_ACCOUNT: &str = "222222222222";
pub const DATA_ACCOUNT: &str = "333333333333";
/// A member without the runbook's role: acting there fails, visibly, offline.
pub const LEGACY_ACCOUNT: &str = "444444444444";
pub const SUSPENDED_ACCOUNT: &str = "555555555555";
pub const MANAGEMENT_ACCOUNT: &str = "999999999999";
pub const US_EAST_1: &str = "us-east-1";
pub const AP_NORTHEAST_1: &str = "ap-northeast-1";

/// Text an attacker could put in resource names and tags; renderers must escape it.
pub const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>";
pub const HOSTILE_DESCRIPTION: &str = "</td><script>alert(1)</script>";

fn account_id(s: &'static str) -> AccountId {
    // Only called with the constants above, which a test checks.
    AccountId::from_static(s)
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rule(id: &str, proto: &str, from: i32, to: i32, cidr: &str, desc: Option<&str>) -> IngressRule {
    let (v4, v6) = if cidr.contains(':') {
        (None, Some(cidr.to_string()))
    } else {
        (Some(cidr.to_string()), None)
    };
    IngressRule {
        rule_id: id.to_string(),
        protocol: proto.to_string(),
        from_port: from,
        to_port: to,
        cidr_ipv4: v4,
        cidr_ipv6: v6,
        description: desc.map(str::to_string),
    }
}

struct Sg<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    vpc: &'a str,
    enis: &'a [&'a str],
    tags: &'a [(&'a str, &'a str)],
}

fn sg(s: Sg<'_>, ingress: Vec<IngressRule>) -> SecurityGroup {
    SecurityGroup {
        group_id: s.id.to_string(),
        group_name: s.name.to_string(),
        description: s.description.to_string(),
        vpc_id: s.vpc.to_string(),
        ingress,
        network_interfaces: s.enis.iter().map(|e| e.to_string()).collect(),
        tags: tags(s.tags),
    }
}

fn detector(id: &str, status: DetectorStatus) -> Option<GuardDutyDetector> {
    Some(GuardDutyDetector {
        detector_id: id.to_string(),
        status,
        finding_publishing_frequency: "SIX_HOURS".to_string(),
    })
}

fn key(id: &str, description: &str, spec: &str, state: &str, rotation: bool) -> KmsKey {
    KmsKey {
        key_id: id.to_string(),
        description: description.to_string(),
        key_manager: KeyManager::Customer,
        key_spec: spec.to_string(),
        key_state: state.to_string(),
        rotation_enabled: rotation,
        creation_date: "2024-03-14T08:21:05Z".to_string(),
    }
}

fn security_account() -> AccountState {
    let us = RegionState {
        region: US_EAST_1.to_string(),
        security_groups: vec![
            sg(
                Sg {
                    id: "sg-0a1b2c3d4e5f60701",
                    name: "ops-client-vpn",
                    description: "OpenVPN endpoint for the operations team",
                    vpc: "vpc-0ops0000000000001",
                    enis: &["eni-0f1e2d3c4b5a69801"],
                    tags: &[("Name", "ops-client-vpn"), ("Team", "platform")],
                },
                vec![
                    rule(
                        "sgr-0bfcf590fcfe14c5c",
                        "udp",
                        1194,
                        1194,
                        ANY_IPV4,
                        Some("OpenVPN"),
                    ),
                    rule(
                        "sgr-0cf25cc2aabbba8c9",
                        "tcp",
                        443,
                        443,
                        ANY_IPV4,
                        Some("VPN portal"),
                    ),
                ],
            ),
            sg(
                Sg {
                    id: "sg-0a1b2c3d4e5f60702",
                    name: "ops-admin-ssh",
                    description: "SSH from the office range only",
                    vpc: "vpc-0ops0000000000001",
                    enis: &["eni-0f1e2d3c4b5a69802"],
                    tags: &[("Name", "ops-admin-ssh"), ("Team", "platform")],
                },
                vec![rule(
                    "sgr-08dfdc22ef47124b9",
                    "tcp",
                    22,
                    22,
                    "198.51.100.0/24",
                    Some("Office"),
                )],
            ),
        ],
        guardduty: detector("c2b6a8f0e4d1f3a5b7c9d1e3f5a7b9c1", DetectorStatus::Enabled),
        ebs_encryption_by_default: true,
        kms_keys: vec![
            key(
                "0b7f3c1e-5a2d-4e8f-9c6b-1d3e5f7a9b01",
                "Audit log bucket encryption",
                "SYMMETRIC_DEFAULT",
                "Enabled",
                true,
            ),
            KmsKey {
                key_manager: KeyManager::Aws,
                ..key(
                    "5e2a9d4c-7b1f-4a3e-8d6c-2f4a6b8c0d02",
                    "Default key that protects my EBS volumes when no other key is defined",
                    "SYMMETRIC_DEFAULT",
                    "Enabled",
                    true,
                )
            },
        ],
        trails: vec![Trail {
            name: "org-management-events".to_string(),
            is_multi_region: true,
            is_logging: true,
            include_management_events: true,
            s3_bucket: "ops-cloudtrail-111111111111".to_string(),
            kms_key_id: Some("0b7f3c1e-5a2d-4e8f-9c6b-1d3e5f7a9b01".to_string()),
            log_file_validation: true,
        }],
        config_recording: true,
    };
    let tokyo = RegionState {
        region: AP_NORTHEAST_1.to_string(),
        security_groups: vec![sg(
            Sg {
                id: "sg-0a1b2c3d4e5f60703",
                name: "ops-tokyo-internal",
                description: "Internal traffic within the Tokyo VPC",
                vpc: "vpc-0ops0000000000002",
                enis: &[],
                tags: &[("Name", "ops-tokyo-internal")],
            },
            vec![rule(
                "sgr-0c407fff86486080c",
                "-1",
                -1,
                -1,
                "10.20.0.0/16",
                None,
            )],
        )],
        guardduty: detector("d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4", DetectorStatus::Enabled),
        ebs_encryption_by_default: false,
        kms_keys: Vec::new(),
        trails: Vec::new(),
        config_recording: true,
    };
    well_run_account(SECURITY_ACCOUNT, "security", true, vec![us, tokyo])
}

fn workload_account() -> AccountState {
    let us = RegionState {
        region: US_EAST_1.to_string(),
        security_groups: vec![
            sg(
                Sg {
                    id: "sg-0123456789abcdef0",
                    name: "bastion-ssh",
                    description: "Bastion host SSH access",
                    vpc: "vpc-0wl00000000000001",
                    enis: &["eni-0aa11bb22cc33dd44"],
                    tags: &[
                        ("Name", "bastion-ssh"),
                        ("Environment", "production"),
                        ("Owner", "app-team"),
                    ],
                },
                vec![
                    rule(
                        "sgr-0b1a5714a1b2c3d01",
                        "tcp",
                        22,
                        22,
                        ANY_IPV4,
                        Some("SSH from anywhere"),
                    ),
                    rule(
                        "sgr-0b1a5714a1b2c3d02",
                        "tcp",
                        22,
                        22,
                        ANY_IPV6,
                        Some("SSH from anywhere (IPv6)"),
                    ),
                    rule(
                        "sgr-0b1a5714a1b2c3d03",
                        "tcp",
                        22,
                        22,
                        "203.0.113.0/24",
                        Some("Partner"),
                    ),
                ],
            ),
            sg(
                Sg {
                    id: "sg-0fedcba9876543210",
                    name: "web-alb",
                    description: "Public load balancer",
                    vpc: "vpc-0wl00000000000001",
                    enis: &["eni-0aa11bb22cc33dd55", "eni-0aa11bb22cc33dd66"],
                    tags: &[("Name", "web-alb"), ("Environment", "production")],
                },
                vec![
                    rule("sgr-0fa77ff38869434a5", "tcp", 80, 80, ANY_IPV4, None),
                    rule("sgr-022493baca784b4a7", "tcp", 80, 80, ANY_IPV6, None),
                    rule("sgr-00271035740b5cddf", "tcp", 443, 443, ANY_IPV4, None),
                    rule("sgr-09c2e27a6fe04f77b", "tcp", 443, 443, ANY_IPV6, None),
                ],
            ),
            sg(
                Sg {
                    id: "sg-0c0ffee0ddba11000",
                    name: &format!("ci-runner {HOSTILE_NAME}"),
                    description: HOSTILE_DESCRIPTION,
                    vpc: "vpc-0wl00000000000001",
                    enis: &[],
                    tags: &[("Name", HOSTILE_NAME), ("Owner", HOSTILE_DESCRIPTION)],
                },
                vec![rule(
                    "sgr-0c0ffee0000000001",
                    "tcp",
                    22,
                    22,
                    ANY_IPV4,
                    Some(HOSTILE_NAME),
                )],
            ),
            sg(
                Sg {
                    id: "sg-00ee3d1d18fdd0e72",
                    name: "orders-db",
                    description: "PostgreSQL from the application subnets",
                    vpc: "vpc-0wl00000000000001",
                    enis: &["eni-0aa11bb22cc33dd77"],
                    tags: &[("Name", "orders-db"), ("Environment", "production")],
                },
                vec![rule(
                    "sgr-040cc6fe6dab0ae28",
                    "tcp",
                    5432,
                    5432,
                    "10.0.0.0/16",
                    Some("App subnets"),
                )],
            ),
        ],
        guardduty: None,
        ebs_encryption_by_default: false,
        kms_keys: vec![
            key(
                "3c9e1a7b-2d4f-4b6a-8e0c-5f7a9b1d3e03",
                "orders-app data key",
                "SYMMETRIC_DEFAULT",
                "Enabled",
                false,
            ),
            key(
                "8a2c4e6f-0b1d-4f3a-9c5e-7b9d1f3a5c04",
                "Code signing",
                "RSA_2048",
                "Enabled",
                false,
            ),
            key(
                "6f8a0c2e-4b6d-4e8f-a0b2-c4d6e8f0a205",
                "Old migration key",
                "SYMMETRIC_DEFAULT",
                "PendingDeletion",
                false,
            ),
        ],
        trails: vec![Trail {
            name: "workload-trail".to_string(),
            is_multi_region: false,
            is_logging: true,
            include_management_events: true,
            s3_bucket: "workload-cloudtrail-222222222222".to_string(),
            kms_key_id: None,
            log_file_validation: false,
        }],
        config_recording: true,
    };
    let tokyo = RegionState {
        region: AP_NORTHEAST_1.to_string(),
        security_groups: vec![
            sg(
                Sg {
                    id: "sg-0beef1234abcd5678",
                    name: "legacy-admin",
                    description: "Legacy Windows and Linux administration",
                    vpc: "vpc-0wl00000000000002",
                    enis: &["eni-0bb22cc33dd44ee55"],
                    tags: &[("Name", "legacy-admin"), ("Environment", "staging")],
                },
                vec![
                    rule(
                        "sgr-08bcebf07a6ffb528",
                        "tcp",
                        3389,
                        3389,
                        ANY_IPV4,
                        Some("RDP"),
                    ),
                    rule(
                        "sgr-07b35548ee682916f",
                        "tcp",
                        22,
                        22,
                        ANY_IPV6,
                        Some("SSH over IPv6"),
                    ),
                ],
            ),
            sg(
                Sg {
                    id: "sg-0f758b7ead083fa15",
                    name: "batch-workers",
                    description: "Batch workers, no inbound from outside the VPC",
                    vpc: "vpc-0wl00000000000002",
                    enis: &["eni-0bb22cc33dd44ee66"],
                    tags: &[("Name", "batch-workers")],
                },
                vec![rule(
                    "sgr-0c270790b77d0385f",
                    "tcp",
                    8080,
                    8080,
                    "10.30.0.0/16",
                    None,
                )],
            ),
        ],
        guardduty: detector("e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8", DetectorStatus::Disabled),
        ebs_encryption_by_default: false,
        kms_keys: vec![key(
            "9d1f3a5c-7e9b-4d2f-b4a6-c8e0a2c4e606",
            "Tokyo replica data key",
            "SYMMETRIC_DEFAULT",
            "Enabled",
            false,
        )],
        trails: Vec::new(),
        config_recording: false,
    };
    AccountState {
        id: account_id(WORKLOAD_ACCOUNT),
        alias: "workload".to_string(),
        member_role: true,
        // Nobody set a security contact: Account.1, which no runbook fixes.
        security_contact: false,
        password_policy: Some(PasswordPolicy {
            minimum_password_length: 8,
            require_symbols: false,
            require_numbers: true,
            require_uppercase_characters: true,
            require_lowercase_characters: true,
            allow_users_to_change_password: true,
            max_password_age: Some(90),
            password_reuse_prevention: None,
            hard_expiry: true,
        }),
        s3_public_access_block: PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: false,
            restrict_public_buckets: false,
        },
        regions: vec![us, tokyo],
    }
}

/// A member account whose account-wide settings pass every control, so only
/// what its region states get wrong shows as findings.
fn well_run_account(
    id: &'static str,
    alias: &str,
    member_role: bool,
    regions: Vec<RegionState>,
) -> AccountState {
    AccountState {
        id: account_id(id),
        alias: alias.to_string(),
        member_role,
        security_contact: true,
        password_policy: Some(PasswordPolicy::strong()),
        s3_public_access_block: PublicAccessBlock::ALL_ON,
        regions,
    }
}

/// A region with GuardDuty, a validated and encrypted multi-region trail and
/// Config recording; the caller adds what is wrong.
fn well_run_region(account: &str, detector_id: &str) -> RegionState {
    RegionState {
        region: US_EAST_1.to_string(),
        security_groups: Vec::new(),
        guardduty: detector(detector_id, DetectorStatus::Enabled),
        ebs_encryption_by_default: true,
        kms_keys: Vec::new(),
        trails: vec![Trail {
            name: "org-trail".to_string(),
            is_multi_region: true,
            is_logging: true,
            include_management_events: true,
            s3_bucket: format!("org-cloudtrail-{account}"),
            kms_key_id: Some("alias/cloudtrail".to_string()),
            log_file_validation: true,
        }],
        config_recording: true,
    }
}

fn data_account() -> AccountState {
    let mut us = well_run_region(DATA_ACCOUNT, "d1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6");
    us.ebs_encryption_by_default = false;
    us.kms_keys = vec![key(
        "3c5e7a9b-1d3f-4a5b-8c7d-9e0f1a2b3c07",
        "Data lake encryption key",
        "SYMMETRIC_DEFAULT",
        "Enabled",
        false,
    )];
    well_run_account(DATA_ACCOUNT, "data-platform", true, vec![us])
}

fn legacy_account() -> AccountState {
    let mut us = well_run_region(LEGACY_ACCOUNT, "f0e1d2c3b4a5968778695a4b3c2d1e0f");
    us.ebs_encryption_by_default = false;
    well_run_account(LEGACY_ACCOUNT, "legacy-analytics", false, vec![us])
}

/// The organisation as Organizations lists it.
fn organisation(members: &[AccountState]) -> Vec<OrgAccount> {
    let listed = |id: &'static str, name: &str, status| OrgAccount {
        id: account_id(id),
        name: name.to_string(),
        status,
    };
    let mut accounts = vec![listed(
        MANAGEMENT_ACCOUNT,
        "management",
        AccountStatus::Active,
    )];
    accounts.extend(members.iter().map(|a| OrgAccount {
        id: a.id.clone(),
        name: a.alias.clone(),
        status: AccountStatus::Active,
    }));
    accounts.push(listed(
        SUSPENDED_ACCOUNT,
        "closed-project",
        AccountStatus::Suspended,
    ));
    accounts
}

/// The default organisation.
pub fn default_org() -> OrgState {
    let accounts = vec![
        security_account(),
        workload_account(),
        data_account(),
        legacy_account(),
    ];
    OrgState {
        security_account: account_id(SECURITY_ACCOUNT),
        home_region: US_EAST_1.to_string(),
        organisation: organisation(&accounts),
        member_role: crate::settings::DEFAULT_MEMBER_ROLE.to_string(),
        accounts,
    }
}
