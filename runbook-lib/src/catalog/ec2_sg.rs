//! EC2.19, EC2.13, EC2.14, EC2.18: security group rules open to the internet.
//! The fix revokes only the rules open to 0.0.0.0/0 or ::/0 on the ports the
//! control flags; every other rule stays.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    About, Action, ApiCall, Applied, AutomationSteps, CatalogError, Family, FamilyPlan, PlanRejection, PlanRequest, PolicyCitation,
    Precheck, Step, ToolSpec, arn_in_scope, canonical_json, check_fields, malformed, plural,
    py_str, py_value, python_call, resources_text, shell_quote, str_field,
};
use crate::cloud::sandbox::OrgState;
use crate::cloud::sandbox::controls::{
    CIS_12, ControlDef, Evaluation, FSBP, NIST, PCI, sg_resource,
};
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding, Resource};
use crate::resources::{IngressRule, SecurityGroup};
use crate::settings::Lang;

crate::control!(
    EC2_13,
    "EC2.13",
    High,
    "restricted-ssh",
    [CIS_12, NIST, PCI],
    "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 22",
    "This control checks whether an Amazon EC2 security group allows ingress from 0.0.0.0/0 or ::/0 to port 22. The control fails if the security group allows ingress from 0.0.0.0/0 or ::/0 to port 22."
);

crate::control!(
    EC2_14,
    "EC2.14",
    High,
    "restricted-common-ports",
    [CIS_12],
    "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 3389",
    "This control checks whether an Amazon EC2 security group allows ingress from 0.0.0.0/0 or ::/0 to port 3389. The control fails if the security group allows ingress from 0.0.0.0/0 or ::/0 to port 3389."
);

crate::control!(
    EC2_18,
    "EC2.18",
    High,
    "vpc-sg-open-only-to-authorized-ports",
    [FSBP, NIST],
    "Security groups should only allow unrestricted incoming traffic for authorized ports",
    "This control checks whether an Amazon EC2 security group permits unrestricted incoming traffic from unauthorized ports. The control fails if the security group allows unrestricted incoming traffic (0.0.0.0/0 or ::/0) to any port other than the authorized TCP ports 80 and 443."
);

crate::control!(
    EC2_19,
    "EC2.19",
    Critical,
    "vpc-sg-restricted-common-ports",
    [FSBP, NIST],
    "Security groups should not allow unrestricted access to ports with high risk",
    "This control checks whether unrestricted incoming traffic for an Amazon EC2 security group is accessible to ports that are considered high risk. The control fails if any rule in the security group allows ingress from 0.0.0.0/0 or ::/0 to one of those ports (for example 22, 3389, 3306 or 5432)."
);

/// Ports EC2.19 treats as high risk.
pub const HIGH_RISK_PORTS: &[i32] = &[
    20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432, 5500,
    5601, 8080, 8088, 8888, 9200, 9300,
];

/// TCP ports EC2.18 allows to be open to the world.
pub const AUTHORIZED_TCP_PORTS: &[i32] = &[80, 443];

const ABOUT: About = About {
    name: "ec2_security_group",
    controls: &[&EC2_19, &EC2_13, &EC2_14, &EC2_18],
    title_en: "Security group ingress open to the internet",
    title_ja: "インターネットに開いたセキュリティグループのインバウンドルール",
};

/// EC2.19, EC2.13, EC2.14, EC2.18.
pub struct SecurityGroupIngress;

#[async_trait]
impl Family for SecurityGroupIngress {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "RevokeIngress",
            description: "EC2.13/EC2.14/EC2.18/EC2.19: revoke the security group rules open to 0.0.0.0/0 or ::/0 on the ports the control flags.",
            properties: json!({
                "group_id": {"type": "string", "pattern": "^sg-[0-9a-f]{8,17}$"},
                "rule_ids": {"type": "array", "minItems": 1, "maxItems": 50,
                    "items": {"type": "string", "pattern": "^sgr-[0-9a-f]{8,17}$"}}
            }),
            required: &["group_id", "rule_ids"],
        }]
    }

    async fn plan(&self, req: &PlanRequest<'_>) -> Result<FamilyPlan, CatalogError> {
        plan(req.finding, req.control, req.cloud, &req.at, req.lang).await
    }

    async fn step_from_model(
        &self,
        step: &str,
        input: &Map<String, Value>,
        req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError> {
        check_fields(input, step, &["group_id", "rule_ids"])?;
        let group_id = str_field(input, step, "group_id")?;
        group_in_finding(group_id, req.finding)?;
        let ids = input
            .get("rule_ids")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(format!("{step} needs rule_ids as an array")))?;
        let g = req.cloud.security_group(&req.at, group_id).await?;
        let mut rules = Vec::new();
        for id in ids {
            let id = id
                .as_str()
                .ok_or_else(|| malformed("rule_ids must be strings"))?;
            let rule = g.ingress.iter().find(|r| r.rule_id == id).ok_or_else(|| {
                PlanRejection::UnknownRule {
                    rule_id: id.to_string(),
                    group_id: group_id.to_string(),
                }
            })?;
            rules.push(rule.clone());
        }
        let action = RevokeIngress {
            group_id: group_id.to_string(),
            rules,
        };
        Ok((action.into(), Vec::new()))
    }

    fn validate(
        &self,
        action: &Action,
        control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection> {
        match action {
            Action::RevokeIngress(a) => validate_revoke(&a.group_id, &a.rules, control, finding),
            _ => Ok(()),
        }
    }

    fn explain(
        &self,
        finding: &Finding,
        control: &str,
        lang: Lang,
    ) -> (String, String, Vec<String>) {
        explain(finding, control, lang)
    }

    fn examples(&self) -> Vec<Action> {
        let rules = vec![IngressRule {
            rule_id: "sgr-0123456789abcdef0".to_string(),
            protocol: "tcp".to_string(),
            from_port: 22,
            to_port: 22,
            cidr_ipv4: Some("0.0.0.0/0".to_string()),
            cidr_ipv6: None,
            description: Some("SSH from anywhere".to_string()),
        }];
        let group_id = "sg-0123456789abcdef0".to_string();
        vec![
            RevokeIngress {
                group_id: group_id.clone(),
                rules: rules.clone(),
            }
            .into(),
            AuthorizeIngress { group_id, rules }.into(),
        ]
    }

    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation> {
        let mut out = Vec::new();
        for acct in &state.accounts {
            for reg in &acct.regions {
                for g in &reg.security_groups {
                    for (control, passed, reason) in evaluate_security_group(g) {
                        out.push(Evaluation::of(
                            control,
                            &acct.id,
                            &reg.region,
                            sg_resource(&acct.id, &reg.region, g),
                            passed,
                            reason,
                        ));
                    }
                }
            }
        }
        out
    }
}

// How the sandbox evaluates the four controls on one security group.

fn world_rules(g: &SecurityGroup) -> impl Iterator<Item = &IngressRule> {
    g.ingress.iter().filter(|r| r.is_open_to_world())
}

fn describe_rules(rules: &[&IngressRule]) -> String {
    rules
        .iter()
        .map(|r| format!("{} from {} ({})", r.ports(), r.source(), r.rule_id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pass if no offending rule; the reason lists them otherwise.
fn rule_check(offending: Vec<&IngressRule>, what: &str) -> (bool, String) {
    if offending.is_empty() {
        (
            true,
            format!("no rule allows {what} from 0.0.0.0/0 or ::/0"),
        )
    } else {
        (
            false,
            format!("open to the world: {}", describe_rules(&offending)),
        )
    }
}

fn evaluate_security_group(g: &SecurityGroup) -> Vec<(&'static ControlDef, bool, String)> {
    let port_check = |port: i32| {
        rule_check(
            world_rules(g).filter(|r| r.allows_tcp_port(port)).collect(),
            &format!("port {port}"),
        )
    };
    let high_risk = rule_check(
        world_rules(g)
            .filter(|r| {
                r.is_all_traffic()
                    || HIGH_RISK_PORTS
                        .iter()
                        .any(|p| r.from_port <= *p && *p <= r.to_port)
            })
            .collect(),
        "high-risk ports",
    );
    let unauthorized = rule_check(
        world_rules(g)
            .filter(|r| {
                let authorized = r.protocol.eq_ignore_ascii_case("tcp")
                    && AUTHORIZED_TCP_PORTS
                        .iter()
                        .any(|p| r.from_port == *p && r.to_port == *p);
                !authorized
            })
            .collect(),
        "unauthorized ports",
    );
    let (p22, r22) = port_check(22);
    let (p3389, r3389) = port_check(3389);
    vec![
        (&EC2_19, high_risk.0, high_risk.1),
        (&EC2_13, p22, r22),
        (&EC2_14, p3389, r3389),
        (&EC2_18, unauthorized.0, unauthorized.1),
    ]
}


/// Revoke these world-open ingress rules (full definitions kept for the inverse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeIngress {
    pub group_id: String,
    pub rules: Vec<IngressRule>,
}

/// Re-authorize ingress rules. Inverse only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeIngress {
    pub group_id: String,
    pub rules: Vec<IngressRule>,
}

/// Same traffic (protocol, ports, CIDR), whatever the rule id and description.
fn same_permission(a: &IngressRule, b: &IngressRule) -> bool {
    a.protocol.eq_ignore_ascii_case(&b.protocol)
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.cidr_ipv4 == b.cidr_ipv4
        && a.cidr_ipv6 == b.cidr_ipv6
}

/// The EC2 `IpPermissions` entry of one rule.
fn ip_permission(r: &IngressRule) -> Value {
    let mut p = json!({"IpProtocol": r.protocol});
    if !r.is_all_traffic() {
        p["FromPort"] = json!(r.from_port);
        p["ToPort"] = json!(r.to_port);
    }
    let mut range = |list: &str, key: &str, cidr: &str| {
        let mut entry = json!({ key: cidr });
        if let Some(d) = &r.description {
            entry["Description"] = json!(d);
        }
        p[list] = json!([entry]);
    };
    if let Some(c) = &r.cidr_ipv4 {
        range("IpRanges", "CidrIp", c);
    }
    if let Some(c) = &r.cidr_ipv6 {
        range("Ipv6Ranges", "CidrIpv6", c);
    }
    p
}

/// "tcp 22" / "all traffic" / "全トラフィック".
fn ports_text(r: &IngressRule, lang: Lang) -> String {
    if r.is_all_traffic() && lang == Lang::Ja {
        "全トラフィック".to_string()
    } else {
        r.ports()
    }
}

fn rules_text(rules: &[IngressRule], lang: Lang) -> String {
    rules
        .iter()
        .map(|r| match lang {
            Lang::En => format!("{} from {}", ports_text(r, lang), r.source()),
            Lang::Ja => format!("{} からの {}", r.source(), ports_text(r, lang)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sources(rules: &[IngressRule]) -> String {
    let set: BTreeSet<&str> = rules.iter().map(IngressRule::source).collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}

#[async_trait]
impl Step for RevokeIngress {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let rules = &self.rules;
        let g = cloud.security_group(at, &self.group_id).await?;
        let mut gone = Vec::new();
        let mut changed = Vec::new();
        for planned in rules {
            match g.ingress.iter().find(|r| r.rule_id == planned.rule_id) {
                None => gone.push(planned),
                Some(live) if live != planned => changed.push((planned, live)),
                Some(_) => {}
            }
        }
        let remaining: Vec<&IngressRule> = g
            .ingress
            .iter()
            .filter(|r| !rules.iter().any(|p| p.rule_id == r.rule_id))
            .collect();
        let already_done = gone.len() == rules.len();
        let mut drift = Vec::new();
        if !already_done {
            drift.extend(gone.iter().map(|r| {
                format!(
                    "rule {} ({} from {}) is gone",
                    r.rule_id,
                    r.ports(),
                    r.source()
                )
            }));
        }
        drift.extend(changed.iter().map(|(p, l)| {
            format!(
                "rule {} changed: planned {} from {}, now {} from {}",
                p.rule_id,
                p.ports(),
                p.source(),
                l.ports(),
                l.source()
            )
        }));
        Ok(Precheck {
            current: json!({"group_id": g.group_id, "ingress": g.ingress,
                "network_interfaces": g.network_interfaces}),
            expected: json!({"group_id": g.group_id, "ingress": remaining}),
            already_done: already_done && changed.is_empty(),
            drift: (!drift.is_empty()).then(|| drift.join("; ")),
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        let group_id = &self.group_id;
        let g = cloud.security_group(at, group_id).await?;
        let present: Vec<IngressRule> = self
            .rules
            .iter()
            .filter(|p| g.ingress.iter().any(|r| r == *p))
            .cloned()
            .collect();
        let ids: Vec<String> = present.iter().map(|r| r.rule_id.clone()).collect();
        cloud.revoke_ingress(at, group_id, &ids).await?;
        Ok(Applied {
            rules: present,
            ..Applied::changed(format!(
                "revoked {} rule(s) from {group_id}: {}",
                ids.len(),
                ids.join(", ")
            ))
        })
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        let g = cloud.security_group(at, &self.group_id).await?;
        Ok(!self.rules.iter().any(|p| {
            g.ingress
                .iter()
                .any(|r| r.rule_id == p.rule_id || same_permission(r, p))
        }))
    }

    fn inverse(&self, applied: Option<&Applied>) -> Option<Action> {
        let rules = match applied {
            Some(a) => a.rules.clone(),
            None => self.rules.clone(),
        };
        (!rules.is_empty()).then(|| {
            AuthorizeIngress {
                group_id: self.group_id.clone(),
                rules,
            }
            .into()
        })
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        vec![(
            "ec2:RevokeSecurityGroupIngress",
            at.arn("ec2", &format!("security-group/{}", self.group_id)),
        )]
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSecurityGroupRules",
            "ec2:DescribeNetworkInterfaces",
            "ec2:RevokeSecurityGroupIngress",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        let ids: Vec<&str> = self.rules.iter().map(|r| r.rule_id.as_str()).collect();
        Some(AutomationSteps {
            apply: vec![ApiCall::new(
                "ec2",
                "RevokeSecurityGroupIngress",
                json!({"GroupId": self.group_id, "SecurityGroupRuleIds": ids}),
            )],
            // "These rules are gone" is not a property one read can assert.
            verify: None,
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws ec2 revoke-security-group-ingress --region {} --group-id {} --security-group-rule-ids {}",
            shell_quote(&at.region),
            shell_quote(&self.group_id),
            self.rules
                .iter()
                .map(|x| shell_quote(&x.rule_id))
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(
            at,
            "ec2",
            "revoke_security_group_ingress",
            &[
                ("GroupId", py_str(&self.group_id)),
                (
                    "SecurityGroupRuleIds",
                    py_value(&json!(self.rules.iter().map(|r| &r.rule_id).collect::<Vec<_>>())),
                ),
            ],
        )
    }

    fn describe(&self, lang: Lang) -> String {
        let (group_id, rules) = (&self.group_id, &self.rules);
        let list = rules_text(rules, lang);
        match lang {
            Lang::Ja => format!(
                "セキュリティグループ {group_id} から、インターネット ({}) に開いている {} 件のインバウンドルール ({list}) を削除します。",
                sources(rules),
                rules.len()
            ),
            Lang::En => format!(
                "Revoke {} ingress rule{} open to the internet ({list}) on {group_id}",
                rules.len(),
                plural(rules.len())
            ),
        }
    }
}

#[async_trait]
impl Step for AuthorizeIngress {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let g = cloud.security_group(at, &self.group_id).await?;
        let missing: Vec<&IngressRule> = self
            .rules
            .iter()
            .filter(|p| !g.ingress.iter().any(|r| same_permission(r, p)))
            .collect();
        let mut expected = g.ingress.clone();
        expected.extend(missing.iter().map(|r| (*r).clone()));
        Ok(Precheck {
            current: json!({"group_id": g.group_id, "ingress": g.ingress}),
            expected: json!({"group_id": g.group_id, "ingress": expected}),
            already_done: missing.is_empty(),
            drift: None,
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        let group_id = &self.group_id;
        let g = cloud.security_group(at, group_id).await?;
        let missing: Vec<IngressRule> = self
            .rules
            .iter()
            .filter(|p| !g.ingress.iter().any(|r| same_permission(r, p)))
            .cloned()
            .collect();
        let created = cloud.authorize_ingress(at, group_id, &missing).await?;
        Ok(Applied {
            summary: format!(
                "authorized {} rule(s) on {group_id}: {}",
                created.len(),
                created
                    .iter()
                    .map(|r| r.rule_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            changed: true,
            rules: created,
            ..Applied::default()
        })
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        let g = cloud.security_group(at, &self.group_id).await?;
        Ok(self
            .rules
            .iter()
            .all(|p| g.ingress.iter().any(|r| same_permission(r, p))))
    }

    fn inverse(&self, applied: Option<&Applied>) -> Option<Action> {
        let created = applied.map(|a| a.rules.clone()).unwrap_or_default();
        (!created.is_empty()).then(|| {
            RevokeIngress {
                group_id: self.group_id.clone(),
                rules: created,
            }
            .into()
        })
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        vec![(
            "ec2:AuthorizeSecurityGroupIngress",
            at.arn("ec2", &format!("security-group/{}", self.group_id)),
        )]
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSecurityGroupRules",
            "ec2:DescribeNetworkInterfaces",
            "ec2:AuthorizeSecurityGroupIngress",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(AutomationSteps {
            apply: vec![ApiCall::new(
                "ec2",
                "AuthorizeSecurityGroupIngress",
                json!({
                    "GroupId": self.group_id,
                    "IpPermissions": self.rules.iter().map(ip_permission).collect::<Vec<_>>(),
                }),
            )],
            verify: None,
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        let r = shell_quote(&at.region);
        self.rules
            .iter()
            .map(|x| {
                format!(
                    "aws ec2 authorize-security-group-ingress --region {r} --group-id {} --ip-permissions {}",
                    shell_quote(&self.group_id),
                    shell_quote(&canonical_json(&Value::Array(vec![ip_permission(x)])))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn python(&self, at: &Target) -> String {
        python_call(
            at,
            "ec2",
            "authorize_security_group_ingress",
            &[
                ("GroupId", py_str(&self.group_id)),
                (
                    "IpPermissions",
                    py_value(&Value::Array(self.rules.iter().map(ip_permission).collect())),
                ),
            ],
        )
    }

    fn describe(&self, lang: Lang) -> String {
        let (group_id, rules) = (&self.group_id, &self.rules);
        let list = rules_text(rules, lang);
        match lang {
            Lang::Ja => format!(
                "セキュリティグループ {group_id} に {} 件のインバウンドルール ({list}) を再び追加します。",
                rules.len()
            ),
            Lang::En => format!(
                "Re-authorize {} ingress rule{} ({list}) on {group_id}",
                rules.len(),
                plural(rules.len())
            ),
        }
    }
}

/// Whether a rule's port range reaches `port`.
fn reaches(r: &IngressRule, port: i32) -> bool {
    r.is_all_traffic() || (r.from_port <= port && port <= r.to_port)
}

/// Whether `control` flags this rule: open to the world on a port it checks.
pub fn flagged(control: &str, r: &IngressRule) -> bool {
    if !r.is_open_to_world() {
        return false;
    }
    match control.to_ascii_uppercase().as_str() {
        "EC2.13" => r.allows_tcp_port(22),
        "EC2.14" => r.allows_tcp_port(3389),
        "EC2.19" => HIGH_RISK_PORTS.iter().any(|p| reaches(r, *p)),
        "EC2.18" => {
            let authorized = r.protocol.eq_ignore_ascii_case("tcp")
                && r.from_port == r.to_port
                && AUTHORIZED_TCP_PORTS.contains(&r.from_port);
            !authorized
        }
        _ => false,
    }
}

/// The ports a control flags, in words.
pub fn flagged_ports(control: &str, lang: Lang) -> String {
    let list = |ports: &[i32]| {
        ports
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (control.to_ascii_uppercase().as_str(), lang) {
        ("EC2.13", Lang::En) => "port 22 (SSH)".to_string(),
        ("EC2.13", Lang::Ja) => "ポート 22 (SSH)".to_string(),
        ("EC2.14", Lang::En) => "port 3389 (RDP)".to_string(),
        ("EC2.14", Lang::Ja) => "ポート 3389 (RDP)".to_string(),
        ("EC2.19", Lang::En) => format!("high-risk ports ({})", list(HIGH_RISK_PORTS)),
        ("EC2.19", Lang::Ja) => format!("高リスクのポート ({})", list(HIGH_RISK_PORTS)),
        (_, Lang::En) => format!(
            "any port other than the authorized TCP ports {}",
            list(AUTHORIZED_TCP_PORTS)
        ),
        (_, Lang::Ja) => format!(
            "許可された TCP ポート ({}) 以外のポート",
            list(AUTHORIZED_TCP_PORTS)
        ),
    }
}

/// The finding's resource for this security group (by id or ARN, in its account and region).
pub fn group_in_finding<'a>(
    group_id: &str,
    finding: &'a Finding,
) -> Result<&'a Resource, PlanRejection> {
    let suffix = format!(":security-group/{group_id}");
    finding
        .resources
        .iter()
        .find(|r| {
            !group_id.is_empty()
                && (r.id == group_id || (r.id.ends_with(&suffix) && arn_in_scope(&r.id, finding)))
        })
        .ok_or_else(|| PlanRejection::ResourceNotInFinding {
            kind: "security group",
            id: group_id.to_string(),
            resources: resources_text(finding),
        })
}

/// Checks a RevokeIngress: the group is the finding's, and every rule is world-open
/// on a port the control flags.
pub fn validate_revoke(
    group_id: &str,
    rules: &[IngressRule],
    control: &ControlId,
    finding: &Finding,
) -> Result<(), PlanRejection> {
    group_in_finding(group_id, finding)?;
    if rules.is_empty() {
        return Err(PlanRejection::NoRules {
            action: "RevokeIngress".to_string(),
            control: control.to_string(),
        });
    }
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|p| p.rule_id == r.rule_id) {
            return Err(PlanRejection::Malformed(format!(
                "rule {} is listed twice",
                r.rule_id
            )));
        }
        if !r.is_open_to_world() {
            return Err(PlanRejection::RuleNotWorldOpen {
                rule_id: r.rule_id.clone(),
                ports: r.ports(),
                source_cidr: r.source().to_string(),
            });
        }
        if !flagged(control.as_str(), r) {
            return Err(PlanRejection::RuleNotFlagged {
                rule_id: r.rule_id.clone(),
                ports: r.ports(),
                control: control.to_string(),
                flagged: flagged_ports(control.as_str(), Lang::En),
            });
        }
    }
    Ok(())
}

/// The security group id of the finding's first security group resource.
fn finding_group_id(finding: &Finding) -> Option<String> {
    finding.resources.iter().find_map(|r| {
        let details = r.details();
        let from_details = details
            .pointer("/AwsEc2SecurityGroup/GroupId")
            .and_then(Value::as_str);
        let from_id =
            r.id.rsplit_once("security-group/")
                .map(|(_, id)| id)
                .or_else(|| r.id.starts_with("sg-").then_some(r.id.as_str()));
        (r.resource_type == "AwsEc2SecurityGroup" || from_id.is_some())
            .then(|| from_id.or(from_details))
            .flatten()
            .map(str::to_string)
    })
}

fn rule_list(rules: &[&IngressRule], lang: Lang) -> String {
    rules
        .iter()
        .map(|r| {
            let ports = if r.is_all_traffic() && lang == Lang::Ja {
                "全トラフィック".to_string()
            } else {
                r.ports()
            };
            match lang {
                Lang::En => format!("{ports} from {} ({})", r.source(), r.rule_id),
                Lang::Ja => format!("{} からの {ports} ({})", r.source(), r.rule_id),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn plan(
    finding: &Finding,
    control: &str,
    cloud: &dyn Cloud,
    at: &Target,
    lang: Lang,
) -> Result<FamilyPlan, CatalogError> {
    let group_id = finding_group_id(finding).ok_or(CatalogError::MissingResource {
        kind: "security group",
    })?;
    let g = cloud.security_group(at, &group_id).await?;
    let open: Vec<&IngressRule> = g.ingress.iter().filter(|r| flagged(control, r)).collect();
    if open.is_empty() {
        return Err(CatalogError::NothingToDo(format!(
            "security group {group_id} has no rule open to 0.0.0.0/0 or ::/0 on {}",
            flagged_ports(control, Lang::En)
        )));
    }
    let kept = g.ingress.len() - open.len();
    let enis = g.network_interfaces.join(", ");
    let n = open.len();
    let name = &g.group_name;
    let rationale = match lang {
        Lang::En => {
            let attached = if g.network_interfaces.is_empty() {
                "The group is not attached to any network interface, so nothing running loses access; it may be unused and could be deleted.".to_string()
            } else {
                let (count, pronoun) = match g.network_interfaces.len() {
                    1 => ("1 network interface".to_string(), "it"),
                    k => (format!("{k} network interfaces"), "them"),
                };
                format!(
                    "The group is attached to {count} ({enis}): whatever runs behind {pronoun} can no longer be reached from the internet through these rules. If people need that access, give it through Session Manager, a VPN or a known source range instead."
                )
            };
            format!(
                "{control}: security group {group_id} ({name}) has {n} rule{} open to the internet on {}: {}. Only {} revoked; {} {attached} Rollback re-authorizes the same rules.",
                if n == 1 { "" } else { "s" },
                flagged_ports(control, lang),
                rule_list(&open, lang),
                if n == 1 {
                    "this rule is"
                } else {
                    "these rules are"
                },
                match kept {
                    0 => "the group has no other rules.".to_string(),
                    1 => "its 1 other rule stays.".to_string(),
                    k => format!("its {k} other rules stay."),
                },
            )
        }
        Lang::Ja => {
            let attached = if g.network_interfaces.is_empty() {
                "このグループはどのネットワークインターフェイスにもアタッチされていないため、稼働中のリソースへの影響はありません。使われていなければ削除も検討してください。".to_string()
            } else {
                format!(
                    "このグループは {} 個のネットワークインターフェイス ({enis}) にアタッチされています。その先のリソースには、これらのルール経由でインターネットから接続できなくなります。接続が必要な場合は、Session Manager、VPN、または特定の送信元 IP 範囲で許可してください。",
                    g.network_interfaces.len()
                )
            };
            format!(
                "{control}: セキュリティグループ {group_id} ({name}) には、{} に対してインターネットに開いたルールが {n} 件あります: {}。削除するのはこれらのルールだけで、{}{attached}ロールバックでは同じルールを再び追加します。",
                flagged_ports(control, lang),
                rule_list(&open, lang),
                if kept == 0 {
                    "このグループにほかのルールはありません。".to_string()
                } else {
                    format!("ほかの {kept} 件のルールはそのまま残ります。")
                },
            )
        }
    };
    Ok(FamilyPlan {
        actions: vec![
            RevokeIngress {
                group_id,
                rules: open.into_iter().cloned().collect(),
            }
            .into(),
        ],
        rationale,
        citations: Vec::new(),
    })
}

/// World-open rules in the finding's own resource details that the control flags.
fn rules_in_details(finding: &Finding, control: &str) -> Vec<IngressRule> {
    let mut out = Vec::new();
    for r in &finding.resources {
        let details = r.details();
        let Some(perms) = details
            .pointer("/AwsEc2SecurityGroup/IpPermissions")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for p in perms {
            let protocol = p
                .get("IpProtocol")
                .and_then(Value::as_str)
                .unwrap_or("-1")
                .to_string();
            let port = |k: &str| {
                p.get(k)
                    .and_then(Value::as_i64)
                    .and_then(|n| i32::try_from(n).ok())
                    .unwrap_or(-1)
            };
            let base = IngressRule {
                rule_id: String::new(),
                protocol,
                from_port: port("FromPort"),
                to_port: port("ToPort"),
                cidr_ipv4: None,
                cidr_ipv6: None,
                description: None,
            };
            let cidrs = |list: &str, key: &str| -> Vec<String> {
                p.get(list)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e.get(key).and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for c in cidrs("IpRanges", "CidrIp") {
                out.push(IngressRule {
                    cidr_ipv4: Some(c),
                    ..base.clone()
                });
            }
            for c in cidrs("Ipv6Ranges", "CidrIpv6") {
                out.push(IngressRule {
                    cidr_ipv6: Some(c),
                    ..base.clone()
                });
            }
        }
    }
    out.retain(|r| flagged(control, r));
    out
}

pub(crate) fn explain(
    finding: &Finding,
    control: &str,
    lang: Lang,
) -> (String, String, Vec<String>) {
    let group = finding_group_id(finding).unwrap_or_else(|| "(unknown)".to_string());
    let name = finding
        .primary_resource()
        .and_then(Resource::name)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let open = rules_in_details(finding, control);
    let ports = flagged_ports(control, lang);
    let listed = open
        .iter()
        .map(|r| match lang {
            Lang::En => format!("{} from {}", r.ports(), r.source()),
            Lang::Ja => format!("{} からの {}", r.source(), r.ports()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    match lang {
        Lang::En => (
            format!(
                "Security group {group}{name} in account {}, region {} allows inbound traffic from the whole internet (0.0.0.0/0 or ::/0) to {ports}{}.",
                finding.account,
                finding.region,
                if listed.is_empty() { String::new() } else { format!(": {listed}") }
            ),
            "Anything reachable through these ports can be scanned and attacked from anywhere: brute-forced logins, exploits of unpatched services and exposed databases are among the most common ways into an AWS account. Admin and database ports should never face the internet.".to_string(),
            vec![
                "Run %remediate to revoke only the world-open rules on the flagged ports; the group's other rules stay, and the plan shows which network interfaces use the group.".to_string(),
                "If people need this access, use AWS Systems Manager Session Manager, a VPN, or a rule for a known source range instead of 0.0.0.0/0.".to_string(),
                "Check VPC Flow Logs and CloudTrail for unexpected connections while the port was open.".to_string(),
            ],
        ),
        Lang::Ja => (
            format!(
                "アカウント {}、リージョン {} のセキュリティグループ {group}{name} が、インターネット全体 (0.0.0.0/0 または ::/0) から {ports} へのインバウンド通信を許可しています{}。",
                finding.account,
                finding.region,
                if listed.is_empty() { String::new() } else { format!("（{listed}）") }
            ),
            "これらのポートで到達できるものは、世界中からスキャンや攻撃の対象になります。ログインへの総当たり攻撃、未修正のサービスの脆弱性の悪用、公開されたデータベースは、AWS アカウントへの侵入経路として最も多いものの一つです。管理用やデータベースのポートはインターネットに公開すべきではありません。".to_string(),
            vec![
                "%remediate を実行すると、対象ポートでインターネットに開いているルールだけを削除するプランを作成します。ほかのルールは残り、プランにはこのグループを使っているネットワークインターフェイスも表示されます。".to_string(),
                "接続が必要な場合は、0.0.0.0/0 の代わりに AWS Systems Manager Session Manager、VPN、または特定の送信元 IP 範囲を使ってください。".to_string(),
                "ポートが開いていた間に想定外の接続がなかったか、VPC フローログと CloudTrail を確認してください。".to_string(),
            ],
        ),
    }
}
