//! Approving a plan, without any user interface: the audit trail says whether the
//! plan already ran, the log records who acts and what the human decided, and only
//! an [`Approved`] plan (or its rollback) runs, every step journalled. The kernel
//! asks the human; this module keeps the record.
//!
//! It sits beside `execute` rather than in it: `audit` builds on `execute`'s
//! [`Journal`](crate::execute::Journal), so `execute` stays free of the audit log.

use std::path::Path;

use serde_json::{Value, json};

use crate::audit::{self, AuditError, AuditJournal, AuditLog, AuditRecord, PlanStatus};
use crate::cloud::{Acting, Cloud, CloudError, SessionRequest};
use crate::execute::{self, ExecutionReport, Undo};
use crate::plan::{Precheck, RemediationPlan};

/// Why an approval could not be opened: the log, or the backend naming the actor.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// Whether the trail at `path` shows `plan` already succeeded, so it must not run
/// again. An error means the trail cannot be read, and nothing may run.
pub fn already_succeeded(path: &Path, plan: &RemediationPlan) -> Result<bool, AuditError> {
    let trail = audit::read(path)?;
    Ok(matches!(
        audit::plan_status(&trail, &plan.id),
        PlanStatus::Succeeded
    ))
}

/// A plan waiting for the human's decision, its audit log open with the actor set.
pub struct Approval<'p> {
    plan: &'p RemediationPlan,
    log: AuditLog,
    actor: String,
    /// Who proposed the plan, when known: recorded beside the approver.
    proposer: Option<String>,
}

/// A plan the human approved, on the record; the only way to run one.
pub struct Approved<'p> {
    plan: &'p RemediationPlan,
    log: AuditLog,
    actor: String,
}

impl<'p> Approval<'p> {
    /// Takes the opened log (opened before anything else, so an unwritable log
    /// stops the approval) and asks the backend who is acting.
    pub async fn open(
        plan: &'p RemediationPlan,
        log: AuditLog,
        cloud: &dyn Cloud,
    ) -> Result<Approval<'p>, ApprovalError> {
        let actor = cloud.caller_identity().await?;
        Ok(Approval::open_as(plan, log, actor))
    }

    /// As [`Approval::open`], with the actor already known.
    pub fn open_as(plan: &'p RemediationPlan, mut log: AuditLog, actor: String) -> Approval<'p> {
        log.set_actor(actor.clone());
        Approval {
            plan,
            log,
            actor,
            proposer: None,
        }
    }

    /// Names who proposed the plan, so the approval record holds both people.
    pub fn proposed_by(mut self, proposer: Option<String>) -> Approval<'p> {
        self.proposer = proposer;
        self
    }

    /// Why the two-person rule refuses this approval, if it does: the proposer
    /// is unknown, or is the approver.
    pub fn two_person_refusal(&self) -> Option<String> {
        match &self.proposer {
            None => Some(format!(
                "approval=two-person: who proposed {} is not known, so a second person cannot be confirmed; make the plan again with %remediate",
                self.plan.id
            )),
            Some(p) if *p == self.actor => Some(format!(
                "approval=two-person: {} proposed {} and cannot also approve it; someone else must",
                self.actor, self.plan.id
            )),
            Some(_) => None,
        }
    }

    pub fn plan(&self) -> &'p RemediationPlan {
        self.plan
    }

    /// Who acts, as the trail names them.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Records the human's yes; `how` says how it was given.
    pub fn approve(mut self, how: impl Into<String>) -> Result<Approved<'p>, AuditError> {
        let mut detail = how.into();
        if let Some(proposer) = &self.proposer {
            detail = format!("{detail}; proposed by {proposer}");
        }
        self.log
            .append(AuditRecord::approved(self.plan).with_detail(detail))?;
        Ok(Approved {
            plan: self.plan,
            log: self.log,
            actor: self.actor,
        })
    }

    /// Records a refusal and why; nothing runs.
    pub fn refuse(mut self, why: impl Into<String>) -> Result<(), AuditError> {
        self.log.append(AuditRecord::cancelled(self.plan, why))
    }

    /// Records a dry run: each action's state now and what the plan would make it.
    pub fn record_dry_run(mut self, checks: &[Result<Precheck, String>]) -> Result<(), AuditError> {
        let side = |pick: fn(&Precheck) -> &Value| {
            json!(
                checks
                    .iter()
                    .map(|c| c.as_ref().map(|p| pick(p).clone()).unwrap_or_default())
                    .collect::<Vec<_>>()
            )
        };
        let before = side(|p| &p.current);
        let after = side(|p| &p.expected);
        self.log
            .append(AuditRecord::dry_run(self.plan, before, after))
    }
}

impl Approved<'_> {
    /// Opens what the plan acts through ([`Cloud::act_in`]): in a member account,
    /// the member role under the plan's session policy, named after the approver.
    /// Every record after this carries that session. When no session can be
    /// had, that is on the record and nothing runs.
    pub async fn act(&mut self, cloud: &dyn Cloud) -> Result<Acting, ApprovalError> {
        let request = SessionRequest {
            target: self.plan.target(),
            approver: self.actor.clone(),
            purpose: self.plan.id.to_string(),
            policy: self.plan.session_policy(),
        };
        match cloud.act_in(&request).await {
            Ok(acting) => {
                self.log.set_member_session(acting.session.clone());
                Ok(acting)
            }
            Err(e) => {
                self.log.append(
                    AuditRecord::run_finished(self.plan, "failed")
                        .with_detail(format!("no session to act in {}: {e}", request.target)),
                )?;
                Err(e.into())
            }
        }
    }

    /// Precheck, apply, verify and resolve the finding ([`execute::execute`]),
    /// every step written to the trail before the next one starts.
    pub async fn execute(
        &mut self,
        cloud: &dyn Cloud,
        progress: &mut (dyn FnMut(&ExecutionReport) + Send),
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> ExecutionReport {
        let mut journal = AuditJournal::new(&mut self.log, self.plan);
        execute::execute(self.plan, cloud, &mut journal, progress, cancelled).await
    }

    /// Applies recorded inverses, newest first ([`execute::rollback`]), journalled.
    pub async fn roll_back(
        &mut self,
        undo: &[Undo],
        cloud: &dyn Cloud,
        progress: &mut (dyn FnMut(&ExecutionReport) + Send),
    ) -> ExecutionReport {
        let mut journal = AuditJournal::new(&mut self.log, self.plan);
        execute::rollback(self.plan, undo, cloud, &mut journal, progress).await
    }

    /// Writes one more record of this approved plan (a rollout's per-target result).
    pub fn record(&mut self, record: AuditRecord) -> Result<(), AuditError> {
        self.log.append(record)
    }

    /// The journal, for other runs of an approved plan (such as recovery).
    pub fn journal(&mut self) -> AuditJournal<'_> {
        AuditJournal::new(&mut self.log, self.plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::cloud::{Sandbox, Target};
    use crate::execute::Outcome;
    use crate::finding::{ControlId, FindingIdentifier};
    use crate::plan::{Action, PlanDraft, PlanSource};
    use crate::settings::Lang;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// A plan that turns on EBS default encryption where the sandbox has it off.
    fn plan(sandbox: &Sandbox) -> RemediationPlan {
        let target = sandbox.with_state(|s| {
            s.accounts
                .iter()
                .flat_map(|a| a.regions.iter().map(move |r| (a, r)))
                .find(|(_, r)| !r.ebs_encryption_by_default)
                .map(|(a, r)| Target {
                    account: a.id.clone(),
                    region: r.region.clone(),
                })
                .expect("the sandbox has a region without EBS default encryption")
        });
        RemediationPlan::new(PlanDraft {
            findings: vec![FindingIdentifier {
                id: "test-finding".into(),
                product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
                source: crate::finding::FindingSource::Asff,
            }],
            control_id: "EC2.7".parse::<ControlId>().expect("control id"),
            target,
            actions: vec![Action::EnableEbsEncryptionByDefault(
                crate::catalog::ebs::EnableEbsEncryptionByDefault {},
            )],
            rationale: "test".into(),
            policy_citations: Vec::new(),
            lang: Lang::En,
            source: PlanSource::Catalog,
        })
    }

    /// A fresh, empty directory for one test.
    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "runbook-approval-{}-{name}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn events(path: &Path) -> Vec<AuditEvent> {
        audit::read(path)
            .expect("trail")
            .records
            .iter()
            .map(|r| r.event)
            .collect()
    }

    #[test]
    fn an_approved_plan_runs_on_the_record_and_is_then_done() {
        let dir = temp_dir("run");
        let path = dir.join("audit.jsonl");
        let sandbox = Sandbox::new();
        let plan = plan(&sandbox);
        assert!(!already_succeeded(&path, &plan).expect("no trail yet"));
        let approval = block_on(Approval::open(
            &plan,
            AuditLog::open(&path).expect("log"),
            &sandbox,
        ))
        .expect("open");
        assert_eq!(approval.actor(), audit::SANDBOX_ACTOR);
        let mut approved = approval.approve("typed the plan id").expect("recorded");
        let report = block_on(approved.execute(&sandbox, &mut |_| {}, &|| false));
        assert_eq!(report.outcome, Outcome::Succeeded);
        let trail = events(&path);
        assert_eq!(trail[0], AuditEvent::Approved);
        assert_eq!(trail.last(), Some(&AuditEvent::RunFinished));
        assert!(already_succeeded(&path, &plan).expect("trail"));
    }

    #[test]
    fn a_refusal_is_recorded_and_runs_nothing() {
        let dir = temp_dir("refuse");
        let path = dir.join("audit.jsonl");
        let sandbox = Sandbox::new();
        let plan = plan(&sandbox);
        let before = sandbox.state();
        let approval = block_on(Approval::open(
            &plan,
            AuditLog::open(&path).expect("log"),
            &sandbox,
        ))
        .expect("open");
        approval.refuse("the answer was empty").expect("recorded");
        assert_eq!(events(&path), [AuditEvent::Cancelled]);
        assert_eq!(sandbox.state(), before);
        assert!(!already_succeeded(&path, &plan).expect("trail"));
    }
}
