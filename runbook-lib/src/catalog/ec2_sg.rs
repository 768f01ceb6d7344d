//! EC2.19, EC2.13, EC2.14, EC2.18: security group rules open to the internet.
//! The fix revokes only the rules open to 0.0.0.0/0 or ::/0 on the ports the
//! control flags; every other rule stays.

use serde_json::Value;

use super::{CatalogError, FamilyPlan, arn_in_scope, resources_text};
use crate::cloud::sandbox::controls::{AUTHORIZED_TCP_PORTS, HIGH_RISK_PORTS};
use crate::cloud::{Cloud, Target};
use crate::finding::{ControlId, Finding, Resource};
use crate::plan::{Action, PlanRejection};
use crate::resources::IngressRule;
use crate::settings::Lang;

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
        let from_details = r
            .details
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
        actions: vec![Action::RevokeIngress {
            group_id,
            rules: open.into_iter().cloned().collect(),
        }],
        rationale,
        citations: Vec::new(),
    })
}

/// World-open rules in the finding's own resource details that the control flags.
fn rules_in_details(finding: &Finding, control: &str) -> Vec<IngressRule> {
    let mut out = Vec::new();
    for r in &finding.resources {
        let Some(perms) = r
            .details
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
