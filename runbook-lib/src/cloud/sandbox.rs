//! The sandbox: an in-process simulated organisation, the embedded default backend.
//! It holds resource state; findings are derived from it by evaluating controls, so a
//! remediation that changes the state changes the findings. No network, deterministic.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Access, AccountInfo, Acting, BackendInfo, BackendKind, Cloud, CloudError, FetchProgress,
    FindingCounts, FindingUpdate, MemberRole, MemberSession, Organisation, ProgressFn,
    SessionRequest, Target, UnprocessedFinding, UpdateOutcome,
};
use crate::finding::{AccountId, Finding, FindingFilter, FindingIdentifier, Note, WorkflowStatus};

pub(crate) mod automation;
pub mod controls;
pub(crate) mod ops;
pub mod seed;
pub mod state;

pub use state::{
    AccountState, DetectorStatus, GuardDutyDetector, IngressRule, KeyManager, KmsKey, OrgState,
    PasswordPolicy, PublicAccessBlock, RegionState, SecurityGroup, Trail,
};

use controls::{Evaluation, Render};

/// Who the sandbox records as the author of notes.
pub const UPDATED_BY: &str = "runbook-kernel";

/// Findings per simulated GetFindings page (small, so progress shows several pages).
const PAGE_SIZE: usize = 25;

/// The sandbox's "now" when created; its clock ticks a minute per change.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A workflow update stored by [`Cloud::update_findings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub status: WorkflowStatus,
    pub note: Option<Note>,
    pub updated_at: DateTime<Utc>,
}

/// Last compliance result of a finding and when it last changed.
#[derive(Debug, Clone)]
struct Known {
    passed: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Inner {
    state: OrgState,
    clock: DateTime<Utc>,
    known: BTreeMap<String, Known>,
    workflow: BTreeMap<String, WorkflowRecord>,
    /// SSM Automation runs, by execution id.
    automations: BTreeMap<String, crate::cloud::ssm::AutomationRun>,
    /// Automation documents created (CreateDocument), by name.
    documents: BTreeMap<String, String>,
}

impl Inner {
    fn tick(&mut self) -> DateTime<Utc> {
        self.clock += Duration::minutes(1);
        self.clock
    }

    /// Records compliance changes since the last evaluation, stamped with the clock.
    fn refresh(&mut self) -> Vec<Evaluation> {
        let evals = controls::evaluate(&self.state);
        for e in &evals {
            let id = e.finding_id();
            let now = self.clock;
            match self.known.get_mut(&id) {
                Some(k) if k.passed == e.passed => {}
                Some(k) => {
                    k.passed = e.passed;
                    k.updated_at = now;
                }
                None => {
                    self.known.insert(
                        id,
                        Known {
                            passed: e.passed,
                            created_at: now,
                            updated_at: now,
                        },
                    );
                }
            }
        }
        evals
    }

    /// Workflow as Security Hub sets it: a passing check resolves NEW/NOTIFIED findings;
    /// a check that fails again after being resolved makes the finding NEW.
    fn workflow_of(&self, id: &str, passed: bool, known: &Known) -> WorkflowStatus {
        let rec = self.workflow.get(id);
        let chosen = rec.map_or(WorkflowStatus::New, |r| r.status);
        match (passed, chosen, rec) {
            (true, WorkflowStatus::New | WorkflowStatus::Notified, _) => WorkflowStatus::Resolved,
            (false, WorkflowStatus::Resolved, Some(r)) if known.updated_at > r.updated_at => {
                WorkflowStatus::New
            }
            (_, s, _) => s,
        }
    }

    fn findings(&mut self) -> Result<Vec<Finding>, CloudError> {
        let evals = self.refresh();
        evals
            .iter()
            .map(|e| {
                let id = e.finding_id();
                let known = self.known.get(&id).cloned().unwrap_or(Known {
                    passed: e.passed,
                    created_at: self.clock,
                    updated_at: self.clock,
                });
                let render = Render {
                    created_at: known.created_at,
                    updated_at: known.updated_at,
                    workflow: self.workflow_of(&id, e.passed, &known),
                    note: self.workflow.get(&id).and_then(|r| r.note.as_ref()),
                };
                Finding::from_asff(controls::to_asff(e, &render)).map_err(|err| {
                    CloudError::Other(format!("sandbox built an unreadable finding {id}: {err}"))
                })
            })
            .collect()
    }
}

/// The simulated organisation. Cheap to create; every method takes `&self`.
#[derive(Debug)]
pub struct Sandbox {
    inner: Mutex<Inner>,
    reason: String,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// The default organisation (see [`seed`]), with its seeded history.
    pub fn new() -> Sandbox {
        let sandbox = Sandbox::from_state(seed::default_org());
        sandbox.seed_history();
        sandbox
    }

    /// A sandbox over any state; findings start as first seen at the sandbox epoch.
    pub fn from_state(state: OrgState) -> Sandbox {
        let mut inner = Inner {
            state,
            clock: epoch(),
            known: BTreeMap::new(),
            workflow: BTreeMap::new(),
            automations: BTreeMap::new(),
            documents: BTreeMap::new(),
        };
        let evals = inner.refresh();
        // Spread first-seen and last-updated times over past weeks, stably per finding.
        for e in &evals {
            let id = e.finding_id();
            let h = controls::fnv1a(0x5eed, &id);
            if let Some(k) = inner.known.get_mut(&id) {
                k.created_at = epoch()
                    - Duration::days(14 + (h % 60) as i64)
                    - Duration::minutes(((h >> 8) % 1440) as i64);
                k.updated_at = epoch() - Duration::minutes(((h >> 20) % (3 * 1440)) as i64);
            }
        }
        Sandbox {
            inner: Mutex::new(inner),
            reason: "sandbox backend: a simulated organisation in memory; no AWS calls are made"
                .to_string(),
        }
    }

    /// Says why the kernel chose the sandbox (shown by `describe`).
    pub fn with_reason(mut self, reason: impl Into<String>) -> Sandbox {
        self.reason = reason.into();
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is plain data, so a panic elsewhere cannot leave it half-updated in a way we rely on.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Workflow history a real account would already have.
    fn seed_history(&self) {
        let mut inner = self.lock();
        let at = epoch() - Duration::days(2);
        let evals = controls::evaluate(&inner.state);
        let mut seed = |control: &str,
                        account: &str,
                        region: &str,
                        group: Option<&str>,
                        status,
                        text: &str| {
            let found = evals.iter().find(|e| {
                e.control.id == control
                    && e.account.as_str() == account
                    && e.region == region
                    && group.is_none_or(|g| e.resource_id.ends_with(g))
            });
            if let Some(e) = found {
                inner.workflow.insert(
                    e.finding_id(),
                    WorkflowRecord {
                        status,
                        note: Some(Note {
                            text: text.to_string(),
                            updated_by: Some("security-team@example.com".to_string()),
                            updated_at: Some(at),
                        }),
                        updated_at: at,
                    },
                );
            }
        };
        seed(
            "EC2.18",
            seed::SECURITY_ACCOUNT,
            seed::US_EAST_1,
            Some("sg-0a1b2c3d4e5f60701"),
            WorkflowStatus::Suppressed,
            "OpenVPN must be reachable from anywhere: accepted risk RISK-118, reviewed quarterly.",
        );
        seed(
            "GuardDuty.1",
            seed::WORKLOAD_ACCOUNT,
            seed::US_EAST_1,
            None,
            WorkflowStatus::Notified,
            "Ticket SEC-1042 sent to the workload team.",
        );
    }

    /// The member role name the runbook asks for (the `member_role` setting).
    pub fn set_member_role(&self, name: &str) {
        self.lock().state.member_role = name.to_string();
    }

    /// A copy of the current resource state.
    pub fn state(&self) -> OrgState {
        self.lock().state.clone()
    }

    /// Reads the state without copying it.
    pub fn with_state<R>(&self, f: impl FnOnce(&OrgState) -> R) -> R {
        f(&self.lock().state)
    }

    /// Changes the state (as an action's apply would); findings follow on the next read.
    /// The sandbox clock ticks, so changed findings get a newer `updated_at`.
    pub fn with_state_mut<R>(&self, f: impl FnOnce(&mut OrgState) -> R) -> R {
        let mut inner = self.lock();
        let out = f(&mut inner.state);
        inner.tick();
        inner.refresh();
        out
    }

    /// Runs a simulated Automation document at once (see `automation.rs`).
    pub(crate) fn run_automation(
        &self,
        at: &Target,
        start: &crate::cloud::ssm::AutomationStart,
    ) -> Result<String, CloudError> {
        let mut inner = self.lock();
        // As in AWS, a document that is not AWS-owned must have been created first.
        if crate::catalog::automation::OwnDocument::deployed(&start.document).is_some()
            && !inner.documents.contains_key(&start.document)
        {
            return Err(CloudError::NotFound(format!(
                "InvalidDocument: no document named {} in {at}",
                start.document
            )));
        }
        let id = format!("sandbox-{:08x}", inner.automations.len() + 1);
        let run = automation::run(&mut inner.state, at, start, &id)?;
        inner.automations.insert(id.clone(), run);
        inner.tick();
        inner.refresh();
        Ok(id)
    }

    pub(crate) fn automation_run(&self, id: &str) -> Option<crate::cloud::ssm::AutomationRun> {
        self.lock().automations.get(id).cloned()
    }

    /// Records a finished run made outside [`Sandbox::run_automation`] (a rollout).
    pub(crate) fn record_automation(&self, run: crate::cloud::ssm::AutomationRun) -> String {
        let mut inner = self.lock();
        let id = format!("sandbox-{:08x}", inner.automations.len() + 1);
        inner.automations.insert(
            id.clone(),
            crate::cloud::ssm::AutomationRun {
                execution_id: id.clone(),
                ..run
            },
        );
        id
    }

    /// CreateDocument: Ok(false) when the same document is already there.
    pub(crate) fn store_document(&self, name: &str, content: &str) -> Result<bool, CloudError> {
        let mut inner = self.lock();
        match inner.documents.get(name) {
            Some(existing) if existing == content => Ok(false),
            Some(_) => Err(CloudError::InvalidInput(format!(
                "a different Automation document named {name} already exists"
            ))),
            None => {
                inner
                    .documents
                    .insert(name.to_string(), content.to_string());
                Ok(true)
            }
        }
    }

    pub(crate) fn document(&self, name: &str) -> Option<String> {
        self.lock().documents.get(name).cloned()
    }

    /// The stored workflow update of a finding, if any.
    pub fn workflow_record(&self, finding_id: &str) -> Option<WorkflowRecord> {
        self.lock().workflow.get(finding_id).cloned()
    }

    /// The sandbox clock: fixed at creation, a minute later per change.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().clock
    }

    /// Every finding, unfiltered, in evaluation order.
    pub fn all_findings(&self) -> Result<Vec<Finding>, CloudError> {
        self.lock().findings()
    }

    fn update(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError> {
        let update = FindingUpdate::new(ids, workflow, note)?;
        let mut inner = self.lock();
        let evals = inner.refresh();
        let mut outcome = UpdateOutcome::default();
        // One batch stands for one BatchUpdateFindings call, with its own time.
        for batch in update.batches() {
            let now = inner.tick();
            for ident in batch {
                let exists = evals
                    .iter()
                    .any(|e| e.finding_id() == ident.id && e.product_arn() == ident.product_arn);
                if !exists {
                    outcome.unprocessed.push(UnprocessedFinding {
                        finding: ident.clone(),
                        error_code: "FindingNotFound".to_string(),
                        error_message: "no finding with this Id and ProductArn".to_string(),
                    });
                    continue;
                }
                let note = match update.note {
                    None => inner.workflow.get(&ident.id).and_then(|r| r.note.clone()),
                    Some(text) => Some(Note {
                        text: text.to_string(),
                        updated_by: Some(UPDATED_BY.to_string()),
                        updated_at: Some(now),
                    }),
                };
                inner.workflow.insert(
                    ident.id.clone(),
                    WorkflowRecord {
                        status: update.workflow,
                        note,
                        updated_at: now,
                    },
                );
                outcome.processed.push(ident.clone());
            }
        }
        Ok(outcome)
    }
}

#[async_trait]
impl Cloud for Sandbox {
    fn describe(&self) -> BackendInfo {
        self.with_state(|s| BackendInfo {
            kind: BackendKind::Sandbox,
            account: Some(s.security_account.clone()),
            region: s.home_region.clone(),
            reason: self.reason.clone(),
            accounts: s
                .accounts
                .iter()
                .map(|a| AccountInfo {
                    id: a.id.clone(),
                    alias: Some(a.alias.clone()),
                })
                .collect(),
            regions: s.region_names(),
            findings_api: Some("sandbox (ASFF)".to_string()),
        })
    }

    async fn get_findings(
        &self,
        filter: &FindingFilter,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<Finding>, CloudError> {
        let all = self.all_findings()?;
        let pages = all.len().div_ceil(PAGE_SIZE).max(1);
        let mut kept = 0;
        for (i, page) in all.chunks(PAGE_SIZE).enumerate() {
            let matching: Vec<Finding> =
                page.iter().filter(|f| filter.matches(f)).cloned().collect();
            kept += matching.len();
            progress(
                FetchProgress {
                    pages: i + 1,
                    findings: kept,
                    unreadable: 0,
                    done: false,
                },
                &matching,
            );
        }
        let selected = super::select(all, filter);
        progress(
            FetchProgress {
                pages,
                findings: selected.len(),
                unreadable: 0,
                done: true,
            },
            &[],
        );
        Ok(selected)
    }

    async fn count_findings(&self, filter: &FindingFilter) -> Result<FindingCounts, CloudError> {
        let all = self.all_findings()?;
        Ok(FindingCounts::of(
            all.iter().filter(|f| filter.matches(f)),
            "sandbox",
        ))
    }

    async fn update_findings(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError> {
        self.update(ids, workflow, note)
    }

    async fn caller_identity(&self) -> Result<String, CloudError> {
        // What the audit trail names as the approver when nothing touches AWS.
        Ok(crate::audit::SANDBOX_ACTOR.to_string())
    }

    async fn organisation(&self) -> Organisation {
        self.with_state(OrgState::organisation)
    }

    /// As on AWS, minus the credentials: the same refusals (suspended, no role,
    /// region not enabled), and the session the audit records.
    async fn act_in(&self, request: &SessionRequest) -> Result<Acting, CloudError> {
        let at = &request.target;
        let expires = self.now() + Duration::hours(1);
        self.with_state(|state| {
            if at.account == state.security_account {
                return Ok(Acting::default());
            }
            ops::region(state, at)?;
            request.policy.check_size()?;
            let role = MemberRole {
                name: state.member_role.clone(),
                external_id: None,
            };
            let session = MemberSession::new(
                request,
                role.arn(at),
                state
                    .organisation()
                    .name_of(&at.account)
                    .map(str::to_string),
                Some(expires),
            );
            Ok(Acting {
                cloud: None,
                session: Some(session),
            })
        })
    }

    fn member_role(&self) -> MemberRole {
        MemberRole {
            name: self.with_state(|s| s.member_role.clone()),
            external_id: None,
        }
    }

    async fn access(&self, account: &AccountId) -> Access {
        self.with_state(|state| {
            if *account == state.security_account {
                return Access::Own;
            }
            let at = Target {
                account: account.clone(),
                region: state.home_region.clone(),
            };
            match ops::cannot_act(state, &at) {
                None => Access::Role {
                    role_arn: MemberRole {
                        name: state.member_role.clone(),
                        external_id: None,
                    }
                    .arn(&at),
                },
                Some(e) => Access::Denied {
                    reason: e.to_string(),
                },
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::state::{ANY_IPV4, ANY_IPV6};
    use super::*;
    use crate::cloud::{Ec2, SessionPolicy};
    use crate::finding::{AccountId, ComplianceStatus, ControlId};
    use crate::severity::Severity;

    /// The sandbox never waits, so polling once completes its futures.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn list(cloud: &dyn Cloud, filter: &FindingFilter) -> Vec<Finding> {
        block_on(cloud.get_findings(filter, &mut |_, _| {})).unwrap()
    }

    fn control(s: &str) -> ControlId {
        s.parse().unwrap()
    }

    fn find<'a>(fs: &'a [Finding], ctrl: &str, resource_suffix: &str) -> &'a Finding {
        fs.iter()
            .find(|f| {
                f.control_id.as_ref().is_some_and(|c| c.as_str() == ctrl)
                    && f.resources.iter().any(|r| r.id.ends_with(resource_suffix))
            })
            .unwrap()
    }

    const BASTION: &str = "sg-0123456789abcdef0";

    #[test]
    fn seed_constants_are_valid() {
        assert!(seed::SECURITY_ACCOUNT.parse::<AccountId>().is_ok());
        assert!(seed::WORKLOAD_ACCOUNT.parse::<AccountId>().is_ok());
    }

    #[test]
    fn default_org_has_enough_varied_findings() {
        let sb = Sandbox::new();
        let all = list(&sb, &FindingFilter::everything());
        assert!(all.len() >= 25, "{} findings", all.len());
        let severities: BTreeSet<Severity> = all.iter().map(|f| f.severity).collect();
        assert_eq!(severities.len(), 5, "{severities:?}");
        let controls: BTreeSet<&str> = all
            .iter()
            .filter_map(|f| f.control_id.as_ref().map(ControlId::as_str))
            .collect();
        for c in [
            "EC2.19",
            "EC2.13",
            "EC2.14",
            "EC2.18",
            "GuardDuty.1",
            "IAM.7",
            "IAM.15",
            "S3.1",
            "EC2.7",
            "KMS.4",
        ] {
            assert!(controls.contains(c), "missing {c}");
        }
        // The security account's own findings and those of its three members.
        let accounts: BTreeSet<&str> = all.iter().map(|f| f.account.as_str()).collect();
        assert_eq!(
            accounts,
            BTreeSet::from([
                seed::SECURITY_ACCOUNT,
                seed::WORKLOAD_ACCOUNT,
                seed::DATA_ACCOUNT,
                seed::LEGACY_ACCOUNT
            ])
        );
        let regions: BTreeSet<&str> = all.iter().map(|f| f.region.as_str()).collect();
        assert_eq!(regions.len(), 2);
        assert!(
            all.iter()
                .any(|f| f.compliance.status == Some(ComplianceStatus::Passed)
                    && f.workflow == WorkflowStatus::Resolved)
        );

        // The default listing: open failures only, in all of LOW..CRITICAL.
        let open = list(&sb, &FindingFilter::default());
        assert!(open.len() >= 20, "{} open", open.len());
        assert!(
            open.iter()
                .all(|f| f.compliance.status == Some(ComplianceStatus::Failed))
        );
        let open_sev: BTreeSet<Severity> = open.iter().map(|f| f.severity).collect();
        assert_eq!(open_sev.len(), 4, "{open_sev:?}");
        // The suppressed VPN finding is hidden by default, the notified one is not.
        assert!(
            open.iter()
                .all(|f| f.workflow != WorkflowStatus::Suppressed)
        );
        assert!(open.iter().any(|f| f.workflow == WorkflowStatus::Notified));
    }

    #[test]
    fn findings_are_realistic_asff() {
        let sb = Sandbox::new();
        let all = sb.all_findings().unwrap();
        let f = find(&all, "EC2.19", BASTION);
        assert!(f.id.starts_with(
            "arn:aws:securityhub:us-east-1:222222222222:security-control/EC2.19/finding/"
        ));
        assert_eq!(
            f.product_arn,
            "arn:aws:securityhub:us-east-1::product/aws/securityhub"
        );
        assert_eq!(f.generator_id.as_deref(), Some("security-control/EC2.19"));
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(
            f.remediation_url.as_deref(),
            Some("https://docs.aws.amazon.com/console/securityhub/EC2.19/remediation")
        );
        let r = f.primary_resource().unwrap();
        assert_eq!(r.resource_type, "AwsEc2SecurityGroup");
        assert_eq!(
            r.id,
            "arn:aws:ec2:us-east-1:222222222222:security-group/sg-0123456789abcdef0"
        );
        assert_eq!(r.details()["AwsEc2SecurityGroup"]["GroupId"], BASTION);
        assert!(f.created_at < f.updated_at);
        assert_eq!(f.raw.value()["Compliance"]["SecurityControlId"], "EC2.19");
        // Ids are unique.
        let ids: BTreeSet<&str> = all.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn deterministic() {
        let a = Sandbox::new().all_findings().unwrap();
        let b = Sandbox::new().all_findings().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn hostile_text_is_carried_verbatim() {
        let all = Sandbox::new().all_findings().unwrap();
        let f = find(&all, "EC2.19", "sg-0c0ffee0ddba11000");
        assert_eq!(f.compliance.status, Some(ComplianceStatus::Failed));
        let r = f.primary_resource().unwrap();
        assert_eq!(r.name().as_deref(), Some(seed::HOSTILE_NAME));
        assert_eq!(r.tags["Owner"], seed::HOSTILE_DESCRIPTION);
        let details = r.details();
        let name = details["AwsEc2SecurityGroup"]["GroupName"]
            .as_str()
            .unwrap();
        assert!(name.contains(seed::HOSTILE_NAME));
    }

    #[test]
    fn revoking_world_ssh_resolves_ec2_19() {
        let sb = Sandbox::new();
        let acct: AccountId = seed::WORKLOAD_ACCOUNT.parse().unwrap();
        let before = sb.all_findings().unwrap();
        let old = find(&before, "EC2.19", BASTION).clone();
        assert_eq!(old.workflow, WorkflowStatus::New);

        let removed = sb.with_state_mut(|s| {
            s.security_group_mut(&acct, seed::US_EAST_1, BASTION)
                .unwrap()
                .revoke_ingress_where(|r| r.allows_tcp_port(22) && r.is_open_to_world())
        });
        assert_eq!(removed, 2);

        let after = sb.all_findings().unwrap();
        for ctrl in ["EC2.19", "EC2.13", "EC2.18"] {
            let f = find(&after, ctrl, BASTION);
            assert_eq!(f.id, find(&before, ctrl, BASTION).id, "same finding");
            assert_eq!(
                f.compliance.status,
                Some(ComplianceStatus::Passed),
                "{ctrl}"
            );
            assert_eq!(f.workflow, WorkflowStatus::Resolved, "{ctrl}");
            assert_eq!(f.severity, Severity::Informational);
            assert!(f.updated_at > old.updated_at);
        }
        assert!(
            !list(&sb, &FindingFilter::default())
                .iter()
                .any(|f| f.id == old.id)
        );
        // The partner rule survives.
        let sg = sb.state();
        assert_eq!(
            sg.security_group(&acct, seed::US_EAST_1, BASTION)
                .unwrap()
                .ingress
                .len(),
            1
        );

        // Re-opening the port makes the finding fail and NEW again.
        sb.with_state_mut(|s| {
            s.security_group_mut(&acct, seed::US_EAST_1, BASTION)
                .unwrap()
                .ingress
                .push(IngressRule {
                    rule_id: "sgr-0aaaaaaaaaaaaaaaa".into(),
                    protocol: "tcp".into(),
                    from_port: 0,
                    to_port: 65535,
                    cidr_ipv4: Some(ANY_IPV4.into()),
                    cidr_ipv6: None,
                    description: None,
                })
        });
        let f = find(&sb.all_findings().unwrap(), "EC2.19", BASTION).clone();
        assert_eq!(f.compliance.status, Some(ComplianceStatus::Failed));
        assert_eq!(f.workflow, WorkflowStatus::New);
    }

    #[test]
    fn other_state_changes_move_their_controls() {
        let sb = Sandbox::new();
        let acct: AccountId = seed::WORKLOAD_ACCOUNT.parse().unwrap();
        sb.with_state_mut(|s| {
            let a = s.account_mut(&acct).unwrap();
            let p = a.password_policy.as_mut().unwrap();
            p.minimum_password_length = 14;
            p.require_symbols = true;
            p.password_reuse_prevention = Some(24);
            a.s3_public_access_block = PublicAccessBlock::ALL_ON;
            let r = s.region_mut(&acct, seed::AP_NORTHEAST_1).unwrap();
            r.guardduty.as_mut().unwrap().status = DetectorStatus::Enabled;
            r.ebs_encryption_by_default = true;
            for k in &mut r.kms_keys {
                k.rotation_enabled = true;
            }
        });
        let all = sb.all_findings().unwrap();
        let passed = |ctrl: &str, region: &str| {
            all.iter()
                .filter(|f| {
                    f.account == acct
                        && f.region == region
                        && f.control_id.as_ref().is_some_and(|c| c.as_str() == ctrl)
                })
                .all(|f| f.compliance.status == Some(ComplianceStatus::Passed))
        };
        for ctrl in ["IAM.7", "IAM.13", "IAM.15", "IAM.16", "S3.1"] {
            assert!(passed(ctrl, seed::US_EAST_1), "{ctrl}");
        }
        for ctrl in ["GuardDuty.1", "EC2.7", "KMS.4", "S3.1"] {
            assert!(passed(ctrl, seed::AP_NORTHEAST_1), "{ctrl}");
        }
        // Untouched: GuardDuty is still missing in us-east-1.
        assert!(!passed("GuardDuty.1", seed::US_EAST_1));
        // The weak policy kept its expiry settings while being fixed.
        let p = sb
            .state()
            .account(&acct)
            .unwrap()
            .password_policy
            .clone()
            .unwrap();
        assert_eq!((p.max_password_age, p.hard_expiry), (Some(90), true));
    }

    #[test]
    fn update_findings_stores_status_and_note() {
        let sb = Sandbox::new();
        let all = sb.all_findings().unwrap();
        let f = find(&all, "EC2.13", BASTION);
        let missing = FindingIdentifier {
            id: "arn:aws:securityhub:us-east-1:222222222222:security-control/EC2.13/finding/nope"
                .into(),
            product_arn: f.product_arn.clone(),
            source: crate::finding::FindingSource::Asff,
        };
        let out = block_on(sb.update_findings(
            &[f.identifier(), missing.clone()],
            WorkflowStatus::Notified,
            "Assigned to the app team",
        ))
        .unwrap();
        assert_eq!(out.processed, vec![f.identifier()]);
        assert_eq!(out.unprocessed.len(), 1);
        assert_eq!(out.unprocessed[0].finding, missing);
        assert!(!out.all_processed());

        let g = find(&sb.all_findings().unwrap(), "EC2.13", BASTION).clone();
        assert_eq!(g.workflow, WorkflowStatus::Notified);
        let note = g.note.unwrap();
        assert_eq!(note.text, "Assigned to the app team");
        assert_eq!(note.updated_by.as_deref(), Some(UPDATED_BY));
        assert_eq!(note.updated_at, Some(sb.now()));

        // Resolving it hides it from the default listing; a blank note keeps the old one.
        block_on(sb.update_findings(&[f.identifier()], WorkflowStatus::Resolved, " \n")).unwrap();
        let rec = sb.workflow_record(&f.id).unwrap();
        assert_eq!(rec.status, WorkflowStatus::Resolved);
        assert_eq!(rec.note.unwrap().text, "Assigned to the app team");
        assert!(
            !list(&sb, &FindingFilter::default())
                .iter()
                .any(|x| x.id == f.id)
        );

        let err = block_on(sb.update_findings(&[], WorkflowStatus::New, "x")).unwrap_err();
        assert!(matches!(err, CloudError::InvalidInput(_)));
        let long = "x".repeat(crate::cloud::MAX_NOTE_CHARS + 1);
        let err = block_on(sb.update_findings(&[f.identifier()], WorkflowStatus::New, &long))
            .unwrap_err();
        assert!(err.to_string().contains("512"), "{err}");
    }

    /// The same rule as AWS (FindingUpdate): more than a hundred findings are
    /// updated in batches, not refused; a note is stored as given.
    #[test]
    fn update_findings_takes_more_than_a_hundred() {
        let sb = Sandbox::new();
        let all = sb.all_findings().unwrap();
        let f = find(&all, "EC2.13", BASTION);
        let mut ids: Vec<FindingIdentifier> = (0..crate::cloud::MAX_UPDATE_BATCH + 50)
            .map(|i| FindingIdentifier {
                id: format!("missing-{i}"),
                product_arn: f.product_arn.clone(),
                source: crate::finding::FindingSource::Asff,
            })
            .collect();
        ids.push(f.identifier());
        let out =
            block_on(sb.update_findings(&ids, WorkflowStatus::Notified, " Assigned ")).unwrap();
        assert_eq!(
            out.processed,
            vec![f.identifier()],
            "the last batch ran too"
        );
        assert_eq!(out.unprocessed.len(), 150);
        let rec = sb.workflow_record(&f.id).unwrap();
        assert_eq!(rec.status, WorkflowStatus::Notified);
        assert_eq!(rec.note.unwrap().text, " Assigned ", "as AWS stores it");
    }

    #[test]
    fn results_sorted_by_severity_then_updated() {
        let sb = Sandbox::new();
        let fs = list(&sb, &FindingFilter::everything());
        for w in fs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(
                a.severity > b.severity
                    || (a.severity == b.severity && a.updated_at >= b.updated_at),
                "{} {:?} before {} {:?}",
                a.severity,
                a.updated_at,
                b.severity,
                b.updated_at
            );
        }
    }

    #[test]
    fn filter_limit_and_progress() {
        let sb = Arc::new(Sandbox::new());
        let cloud: Arc<dyn Cloud> = sb.clone();
        let mut reports = Vec::new();
        let filter = FindingFilter {
            severities: vec![Severity::Critical, Severity::High],
            limit: Some(3),
            ..FindingFilter::default()
        };
        let fs = block_on(cloud.get_findings(&filter, &mut |p, _| reports.push(p))).unwrap();
        assert_eq!(fs.len(), 3);
        assert!(fs.iter().all(|f| f.severity >= Severity::High));
        assert_eq!(fs[0].severity, Severity::Critical);
        let last = reports.last().unwrap();
        assert!(last.done && last.findings == 3 && last.pages >= 2);
        assert!(reports.len() >= 3);

        let only = list(
            cloud.as_ref(),
            &FindingFilter {
                accounts: vec![seed::SECURITY_ACCOUNT.parse().unwrap()],
                control_ids: vec![control("ec2.7")],
                ..FindingFilter::default()
            },
        );
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].region, seed::AP_NORTHEAST_1);

        let by_id = list(cloud.as_ref(), &FindingFilter::by_ids([only[0].id.clone()]));
        assert_eq!(by_id, only);
    }

    fn target(account: &str) -> Target {
        Target {
            account: account.parse().unwrap(),
            region: seed::US_EAST_1.to_string(),
        }
    }

    fn request(account: &str) -> SessionRequest {
        SessionRequest {
            target: target(account),
            approver: "sandbox".to_string(),
            purpose: "plan-00000000".to_string(),
            policy: SessionPolicy::read_only(),
        }
    }

    #[test]
    fn the_organisation_lists_every_account_with_names_and_status() {
        let sb = Sandbox::new();
        let org = block_on(sb.organisation());
        assert!(org.unavailable.is_none());
        let listed: Vec<(&str, &str, &str)> = org
            .accounts
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str(), a.status.label()))
            .collect();
        assert_eq!(
            listed,
            [
                (seed::MANAGEMENT_ACCOUNT, "management", "ACTIVE"),
                (seed::SECURITY_ACCOUNT, "security", "ACTIVE"),
                (seed::WORKLOAD_ACCOUNT, "workload", "ACTIVE"),
                (seed::DATA_ACCOUNT, "data-platform", "ACTIVE"),
                (seed::LEGACY_ACCOUNT, "legacy-analytics", "ACTIVE"),
                (seed::SUSPENDED_ACCOUNT, "closed-project", "SUSPENDED"),
            ]
        );
    }

    #[test]
    fn acting_in_a_member_needs_its_role_an_active_account_and_an_enabled_region() {
        let sb = Sandbox::new();
        let own = block_on(sb.act_in(&request(seed::SECURITY_ACCOUNT))).unwrap();
        assert!(own.session.is_none() && own.cloud.is_none());

        let member = block_on(sb.act_in(&request(seed::WORKLOAD_ACCOUNT))).unwrap();
        let session = member.session.unwrap();
        assert_eq!(
            session.role_arn,
            "arn:aws:iam::222222222222:role/SecurityRunbookMember"
        );
        assert_eq!(session.account_name.as_deref(), Some("workload"));
        assert_eq!(session.session_name, "sandbox+plan-00000000");
        assert_eq!(session.policy_digest, SessionPolicy::read_only().digest());

        let missing = block_on(sb.act_in(&request(seed::LEGACY_ACCOUNT))).unwrap_err();
        assert!(
            matches!(missing, CloudError::RoleMissing { .. }),
            "{missing}"
        );
        assert!(
            missing
                .to_string()
                .contains("444444444444 (legacy-analytics)")
        );
        let suspended = block_on(sb.act_in(&request(seed::SUSPENDED_ACCOUNT))).unwrap_err();
        assert!(
            matches!(suspended, CloudError::AccountSuspended { .. }),
            "{suspended}"
        );
        let management = block_on(sb.act_in(&request(seed::MANAGEMENT_ACCOUNT))).unwrap_err();
        assert!(
            matches!(management, CloudError::RoleMissing { .. }),
            "{management}"
        );
        let mut far = request(seed::DATA_ACCOUNT);
        far.target.region = "eu-west-3".to_string();
        let region = block_on(sb.act_in(&far)).unwrap_err();
        assert!(
            matches!(region, CloudError::RegionNotEnabled { .. }),
            "{region}"
        );

        // Reads in a member without the role fail the same way.
        let read = block_on(sb.ebs_encryption_by_default(&target(seed::LEGACY_ACCOUNT)));
        assert!(
            matches!(read, Err(CloudError::RoleMissing { .. })),
            "{read:?}"
        );

        assert_eq!(
            block_on(sb.access(&seed::SECURITY_ACCOUNT.parse().unwrap())),
            Access::Own
        );
        assert!(block_on(sb.access(&seed::DATA_ACCOUNT.parse().unwrap())).can_act());
        assert!(!block_on(sb.access(&seed::LEGACY_ACCOUNT.parse().unwrap())).can_act());
        assert!(!block_on(sb.access(&seed::SUSPENDED_ACCOUNT.parse().unwrap())).can_act());
    }

    #[test]
    fn describe_names_the_org() {
        let info = Sandbox::new()
            .with_reason("backend=auto found no credentials")
            .describe();
        assert_eq!(info.kind, BackendKind::Sandbox);
        assert_eq!(info.account.unwrap().as_str(), seed::SECURITY_ACCOUNT);
        assert_eq!(info.region, seed::US_EAST_1);
        assert_eq!(info.reason, "backend=auto found no credentials");
        assert_eq!(info.accounts.len(), 4);
        assert_eq!(info.accounts[1].alias.as_deref(), Some("workload"));
        assert_eq!(info.regions, vec![seed::US_EAST_1, seed::AP_NORTHEAST_1]);
    }

    #[test]
    fn world_open_ipv6_counts() {
        let rule = IngressRule {
            rule_id: "sgr-1".into(),
            protocol: "tcp".into(),
            from_port: 3389,
            to_port: 3389,
            cidr_ipv4: None,
            cidr_ipv6: Some(ANY_IPV6.into()),
            description: None,
        };
        assert!(rule.is_open_to_world() && rule.allows_tcp_port(3389) && !rule.allows_tcp_port(22));
    }
}
