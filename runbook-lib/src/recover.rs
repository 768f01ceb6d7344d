//! Recovery after a run died part-way (a killed kernel): classify every action of
//! the plan from the audit trail and live prechecks, then either finish the
//! actions not applied yet or roll back those applied. Nothing is applied twice:
//! an action whose live state already matches is recorded as skipped.

use serde::Serialize;

use crate::audit::{self, AuditEvent, AuditReport, PlanStatus};
use crate::cloud::Cloud;
use crate::execute::{
    self, ExecutionReport, Journal, JournalEvent, Outcome, StepReport, StepState, Undo,
};
use crate::finding::WorkflowStatus;
use crate::plan::{PlanId, Precheck, RemediationPlan};

/// What the live state says about one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "live", rename_all = "snake_case")]
pub enum LiveState {
    /// The live state already matches the action's target.
    Applied,
    /// The live state is still what the plan was made from.
    NotApplied,
    /// Drifted from the plan, or unreadable: neither finishing nor undoing is safe.
    Unknown { detail: String },
}

/// What the audit trail says about one action in the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailState {
    /// `action_finished` and not rolled back since.
    Finished,
    /// `action_started` with nothing after it: in flight when the run died.
    InFlight,
    /// No record of it in the unfinished run.
    NotStarted,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionStatus {
    pub index: usize,
    pub action: String,
    pub description: String,
    pub trail: TrailState,
    #[serde(flatten)]
    pub live: LiveState,
    pub precheck: Option<Precheck>,
}

/// Every action of a plan whose run never finished, classified.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub plan_id: String,
    pub actions: Vec<ActionStatus>,
}

impl Recovery {
    pub fn unknown(&self) -> Vec<&ActionStatus> {
        self.actions
            .iter()
            .filter(|a| matches!(a.live, LiveState::Unknown { .. }))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    #[error(
        "{plan_id} has no unfinished run in the audit trail (its status: {status}); there is nothing to recover"
    )]
    NothingToRecover { plan_id: String, status: String },
    #[error("{plan_id} cannot be recovered automatically: {detail}; check these resources by hand")]
    Unknown { plan_id: String, detail: String },
    #[error(
        "{plan_id} is neither in this session nor in the audit trail (no readable plan_proposed record); give the id of a plan that ran"
    )]
    UnknownPlan { plan_id: String },
    #[error(
        "the plan_proposed record of {plan_id} does not match its id (its content digests to {digest}): the trail was altered, so it is not used"
    )]
    Altered { plan_id: String, digest: String },
}

/// The plan as its last readable `plan_proposed` record holds it, checked against
/// its id: a record whose content does not digest to the id is refused.
pub fn plan_from_trail(
    trail: &AuditReport,
    plan_id: &PlanId,
) -> Result<RemediationPlan, RecoverError> {
    let plan: RemediationPlan = trail
        .records
        .iter()
        .rev()
        .filter(|r| &r.plan_id == plan_id && r.event == AuditEvent::PlanProposed)
        .find_map(|r| r.after.clone().and_then(|v| serde_json::from_value(v).ok()))
        .ok_or_else(|| RecoverError::UnknownPlan {
            plan_id: plan_id.to_string(),
        })?;
    let digest = plan.digest();
    if &digest != plan_id || &plan.id != plan_id {
        return Err(RecoverError::Altered {
            plan_id: plan_id.to_string(),
            digest: digest.to_string(),
        });
    }
    Ok(plan)
}

/// Classifies every action of `plan` from the trail and `prechecks` (one per
/// action, from [`execute::precheck_all`]). Errors when the trail shows no
/// unfinished run of the plan.
pub fn classify(
    plan: &RemediationPlan,
    trail: &AuditReport,
    prechecks: Vec<Result<Precheck, String>>,
) -> Result<Recovery, RecoverError> {
    let status = audit::plan_status(trail, &plan.id);
    let PlanStatus::Running { unfinished } = &status else {
        return Err(RecoverError::NothingToRecover {
            plan_id: plan.id.to_string(),
            status: status.to_string(),
        });
    };
    let finished: Vec<usize> = audit::executed_actions(trail, &plan.id)
        .iter()
        .map(|e| e.index)
        .collect();
    let in_flight: Vec<usize> = unfinished
        .iter()
        .filter_map(|r| r.action.as_ref().map(|a| a.index))
        .collect();
    let mut checks = prechecks.into_iter();
    let actions = plan
        .actions
        .iter()
        .enumerate()
        .map(|(index, action)| {
            let check = checks
                .next()
                .unwrap_or_else(|| Err("no precheck was made".to_string()));
            let (live, precheck) = match check {
                Ok(p) if p.already_done => (LiveState::Applied, Some(p)),
                Ok(p) => match p.drift.clone() {
                    None => (LiveState::NotApplied, Some(p)),
                    Some(detail) => (LiveState::Unknown { detail }, Some(p)),
                },
                Err(e) => (
                    LiveState::Unknown {
                        detail: format!("cannot read the current state: {e}"),
                    },
                    None,
                ),
            };
            let trail = if in_flight.contains(&index) {
                TrailState::InFlight
            } else if finished.contains(&index) {
                TrailState::Finished
            } else {
                TrailState::NotStarted
            };
            ActionStatus {
                index,
                action: action.name().to_string(),
                description: action.describe(plan.lang),
                trail,
                live,
                precheck,
            }
        })
        .collect();
    Ok(Recovery {
        plan_id: plan.id.to_string(),
        actions,
    })
}

fn refuse_unknown(recovery: &Recovery) -> Result<(), RecoverError> {
    let unknown = recovery.unknown();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(RecoverError::Unknown {
        plan_id: recovery.plan_id.clone(),
        detail: unknown
            .iter()
            .map(|a| match &a.live {
                LiveState::Unknown { detail } => format!("action {}: {detail}", a.index + 1),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("; "),
    })
}

fn steps_of(plan: &RemediationPlan, recovery: &Recovery) -> Vec<StepReport> {
    recovery
        .actions
        .iter()
        .map(|a| StepReport {
            index: a.index,
            action: a.action.clone(),
            description: a.description.clone(),
            state: StepState::Pending,
            precheck: a.precheck.clone(),
            applied: None,
            verified: None,
            error: None,
            detail: None,
        })
        .take(plan.actions.len())
        .collect()
}

/// Finishes the run: actions already applied are recorded as skipped, the others
/// applied and verified in order, then the finding is resolved. A failure stops
/// the run (nothing is rolled back: `%recover` again offers the rollback).
/// Refuses, changing nothing, when any action is drifted or unreadable.
pub async fn finish(
    plan: &RemediationPlan,
    recovery: &Recovery,
    cloud: &dyn Cloud,
    journal: &mut dyn Journal,
    progress: &mut (dyn FnMut(&ExecutionReport) + Send),
) -> Result<ExecutionReport, RecoverError> {
    refuse_unknown(recovery)?;
    let at = plan.target();
    let mut report = ExecutionReport {
        plan_id: plan.id.to_string(),
        target: at.clone(),
        steps: steps_of(plan, recovery),
        outcome: Outcome::Running,
        finding_update: None,
    };
    progress(&report);
    let end = |report: &mut ExecutionReport, journal: &mut dyn Journal, outcome: Outcome| {
        report.outcome = outcome;
        if let Err(error) = journal.record(JournalEvent::RunFinished {
            outcome: report.outcome.label(),
        }) {
            report.outcome = Outcome::JournalFailed { error };
        }
    };
    for status in &recovery.actions {
        let index = status.index;
        let action = &plan.actions[index];
        if status.live == LiveState::Applied {
            if let Err(error) = journal.record(JournalEvent::ActionSkipped {
                index,
                action,
                reason: "already applied: the live state matches the target",
            }) {
                report.outcome = Outcome::JournalFailed { error };
                progress(&report);
                return Ok(report);
            }
            report.steps[index].state = StepState::NoOp;
            progress(&report);
            continue;
        }
        let before = status
            .precheck
            .as_ref()
            .map_or(serde_json::Value::Null, |p| p.current.clone());
        if let Err(error) = journal.record(JournalEvent::ActionStarted {
            index,
            action,
            before: &before,
        }) {
            report.outcome = Outcome::JournalFailed { error };
            progress(&report);
            return Ok(report);
        }
        report.steps[index].state = StepState::Running;
        progress(&report);
        let result = match action.apply(cloud, &at).await {
            Ok(applied) => match action.verify(cloud, &at).await {
                Ok(true) => Ok(applied),
                Ok(false) => Err(
                    "verification failed: the intended state does not hold after apply".to_string(),
                ),
                Err(e) => Err(format!("verification could not read the state: {e}")),
            },
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(applied) => {
                let after = action
                    .precheck(cloud, &at)
                    .await
                    .map_or(serde_json::Value::Null, |p| p.current);
                let recorded = journal.record(JournalEvent::ActionFinished {
                    index,
                    action,
                    applied: &applied,
                    after,
                    verified: true,
                });
                let step = &mut report.steps[index];
                step.state = if applied.changed {
                    StepState::Done
                } else {
                    StepState::NoOp
                };
                step.verified = Some(true);
                step.applied = Some(applied);
                if let Err(error) = recorded {
                    report.outcome = Outcome::JournalFailed { error };
                    progress(&report);
                    return Ok(report);
                }
                progress(&report);
            }
            Err(error) => {
                let _ = journal.record(JournalEvent::ActionFailed {
                    index,
                    action,
                    error: error.clone(),
                });
                report.steps[index].state = StepState::Failed;
                report.steps[index].error = Some(error.clone());
                end(
                    &mut report,
                    journal,
                    Outcome::Failed {
                        index,
                        error,
                        rollback_errors: Vec::new(),
                    },
                );
                progress(&report);
                return Ok(report);
            }
        }
    }
    let note = execute::resolution_note(plan);
    let update = cloud
        .update_findings(&plan.findings, WorkflowStatus::Resolved, &note)
        .await
        .map_err(|e| e.to_string());
    let recorded = journal.record(JournalEvent::FindingUpdated {
        findings: &plan.findings,
        note: &note,
        error: update.as_ref().err().cloned(),
    });
    report.finding_update = Some(update);
    match recorded {
        Ok(()) => end(&mut report, journal, Outcome::Succeeded),
        Err(error) => report.outcome = Outcome::JournalFailed { error },
    }
    progress(&report);
    Ok(report)
}

/// What rolling back would undo, newest first: every action whose live state is
/// applied, with the inverse built from what its recorded apply returned (or,
/// for the action in flight when the run died, the inverse known before apply).
pub fn undo_list(plan: &RemediationPlan, trail: &AuditReport, recovery: &Recovery) -> Vec<Undo> {
    let executed = audit::executed_actions(trail, &plan.id);
    recovery
        .actions
        .iter()
        .rev()
        .filter(|a| a.live == LiveState::Applied && a.trail != TrailState::NotStarted)
        .filter_map(|a| {
            let inverse = match executed.iter().find(|e| e.index == a.index) {
                Some(e) => e.inverse(),
                None => plan.actions.get(a.index)?.inverse(None),
            }?;
            Some(Undo {
                index: a.index,
                inverse,
            })
        })
        .collect()
}

/// Rolls back the actions applied by the unfinished run ([`undo_list`]), each
/// verified and journalled. Refuses, changing nothing, when any action is drifted
/// or unreadable.
pub async fn roll_back(
    plan: &RemediationPlan,
    trail: &AuditReport,
    recovery: &Recovery,
    cloud: &dyn Cloud,
    journal: &mut dyn Journal,
    progress: &mut (dyn FnMut(&ExecutionReport) + Send),
) -> Result<ExecutionReport, RecoverError> {
    refuse_unknown(recovery)?;
    let undo = undo_list(plan, trail, recovery);
    Ok(execute::rollback(plan, &undo, cloud, journal, progress).await)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::audit::{AuditJournal, AuditLog, AuditRecord};
    use crate::cloud::sandbox::state::OrgState;
    use crate::cloud::{Sandbox, Target};
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

    /// A fresh audit log file for one test.
    fn log_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runbook-recover-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.jsonl"));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// A sandbox, and a two-action plan for a region without EBS default
    /// encryption: enable it, then tighten the password policy.
    fn setting() -> (Sandbox, RemediationPlan) {
        let sandbox = Sandbox::new();
        let (target, previous) = sandbox.with_state(|s: &OrgState| {
            s.accounts
                .iter()
                .find_map(|a| {
                    a.regions
                        .iter()
                        .find(|r| !r.ebs_encryption_by_default)
                        .map(|r| {
                            (
                                Target {
                                    account: a.id.clone(),
                                    region: r.region.clone(),
                                },
                                a.password_policy.clone(),
                            )
                        })
                })
                .expect("the sandbox has a region without EBS default encryption")
        });
        let mut policy = previous
            .clone()
            .unwrap_or(crate::catalog::iam_password::DEFAULT_POLICY);
        policy.minimum_password_length = 20;
        let plan = RemediationPlan::new(PlanDraft {
            findings: vec![FindingIdentifier {
                id: "test-finding".into(),
                product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
                source: crate::finding::FindingSource::Asff,
            }],
            control_id: "EC2.7".parse::<ControlId>().unwrap(),
            target,
            actions: vec![
                Action::EnableEbsEncryptionByDefault(
                    crate::catalog::ebs::EnableEbsEncryptionByDefault {},
                ),
                Action::SetPasswordPolicy(crate::catalog::iam_password::SetPasswordPolicy {
                    policy,
                    previous,
                }),
            ],
            rationale: "test".into(),
            policy_citations: Vec::new(),
            lang: Lang::En,
            source: PlanSource::Catalog,
        });
        (sandbox, plan)
    }

    /// What a kernel killed during action 2 leaves: action 1 applied and
    /// finished, action 2 started (and applied too when `second_applied`).
    fn crash(sandbox: &Sandbox, plan: &RemediationPlan, path: &Path, second_applied: bool) {
        let at = plan.target();
        let mut log = AuditLog::open(path).unwrap();
        log.append(AuditRecord::plan_proposed(plan)).unwrap();
        log.append(AuditRecord::approved(plan)).unwrap();
        let first = &plan.actions[0];
        log.append(AuditRecord::action_started(
            plan,
            0,
            first,
            serde_json::Value::Null,
        ))
        .unwrap();
        let applied = block_on(first.apply(sandbox, &at)).unwrap();
        assert!(applied.changed);
        log.append(AuditRecord::action_finished(
            plan,
            0,
            first,
            &applied,
            serde_json::Value::Null,
        ))
        .unwrap();
        let second = &plan.actions[1];
        log.append(AuditRecord::action_started(
            plan,
            1,
            second,
            serde_json::Value::Null,
        ))
        .unwrap();
        if second_applied {
            assert!(block_on(second.apply(sandbox, &at)).unwrap().changed);
        }
    }

    fn classified(sandbox: &Sandbox, plan: &RemediationPlan, path: &Path) -> Recovery {
        let trail = audit::read(path).unwrap();
        let checks = block_on(execute::precheck_all(plan, sandbox));
        classify(plan, &trail, checks).unwrap()
    }

    fn events(path: &Path) -> Vec<String> {
        audit::read(path)
            .unwrap()
            .records
            .iter()
            .map(|r| r.event.name().to_string())
            .collect()
    }

    #[test]
    fn finishing_applies_only_what_was_not_applied() {
        let (sandbox, plan) = setting();
        let path = log_path("finish");
        crash(&sandbox, &plan, &path, false);
        let recovery = classified(&sandbox, &plan, &path);
        let states: Vec<_> = recovery
            .actions
            .iter()
            .map(|a| (a.trail, a.live.clone()))
            .collect();
        assert_eq!(
            states,
            [
                (TrailState::Finished, LiveState::Applied),
                (TrailState::InFlight, LiveState::NotApplied)
            ]
        );
        let mut log = AuditLog::open(&path).unwrap();
        let report = {
            let mut journal = AuditJournal::new(&mut log, &plan);
            block_on(finish(
                &plan,
                &recovery,
                &sandbox,
                &mut journal,
                &mut |_| {},
            ))
            .unwrap()
        };
        assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.outcome);
        assert_eq!(report.steps[0].state, StepState::NoOp);
        assert_eq!(report.steps[1].state, StepState::Done);
        let after = classified_or_status(&sandbox, &plan, &path);
        assert_eq!(after, "succeeded");
        assert!(events(&path).ends_with(&[
            "action_skipped".to_string(),
            "action_started".to_string(),
            "action_finished".to_string(),
            "finding_updated".to_string(),
            "run_finished".to_string(),
        ]));
    }

    /// The plan status after recovery: no unfinished run is left.
    fn classified_or_status(sandbox: &Sandbox, plan: &RemediationPlan, path: &Path) -> String {
        let trail = audit::read(path).unwrap();
        let checks = block_on(execute::precheck_all(plan, sandbox));
        match classify(plan, &trail, checks) {
            Ok(_) => "still unfinished".to_string(),
            Err(RecoverError::NothingToRecover { status, .. }) => status,
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_action_applied_by_the_dead_run_is_never_applied_again() {
        let (sandbox, plan) = setting();
        let path = log_path("twice");
        crash(&sandbox, &plan, &path, true);
        let recovery = classified(&sandbox, &plan, &path);
        assert!(
            recovery
                .actions
                .iter()
                .all(|a| a.live == LiveState::Applied)
        );
        let before = sandbox.state();
        let mut log = AuditLog::open(&path).unwrap();
        let report = {
            let mut journal = AuditJournal::new(&mut log, &plan);
            block_on(finish(
                &plan,
                &recovery,
                &sandbox,
                &mut journal,
                &mut |_| {},
            ))
            .unwrap()
        };
        assert_eq!(report.outcome, Outcome::Succeeded);
        assert!(report.steps.iter().all(|s| s.state == StepState::NoOp));
        assert_eq!(sandbox.state(), before, "nothing was applied");
        let evs = events(&path);
        assert_eq!(evs.iter().filter(|e| *e == "action_skipped").count(), 2);
        assert_eq!(
            evs.iter().filter(|e| *e == "action_started").count(),
            2,
            "only the dead run's"
        );
    }

    #[test]
    fn rolling_back_undoes_what_the_dead_run_applied_including_the_action_in_flight() {
        let (sandbox, plan) = setting();
        let before = sandbox.state();
        let path = log_path("rollback");
        crash(&sandbox, &plan, &path, true);
        let recovery = classified(&sandbox, &plan, &path);
        let trail = audit::read(&path).unwrap();
        let undo = undo_list(&plan, &trail, &recovery);
        assert_eq!(
            undo.iter().map(|u| u.index).collect::<Vec<_>>(),
            [1, 0],
            "newest first"
        );
        let mut log = AuditLog::open(&path).unwrap();
        let report = {
            let mut journal = AuditJournal::new(&mut log, &plan);
            block_on(roll_back(
                &plan,
                &trail,
                &recovery,
                &sandbox,
                &mut journal,
                &mut |_| {},
            ))
            .unwrap()
        };
        assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.outcome);
        assert_eq!(sandbox.state(), before, "the account is as it was");
        assert_eq!(classified_or_status(&sandbox, &plan, &path), "rolled back");
    }

    #[test]
    fn a_plan_without_an_unfinished_run_has_nothing_to_recover() {
        let (sandbox, plan) = setting();
        let path = log_path("nothing");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(AuditRecord::plan_proposed(&plan)).unwrap();
        let err = classified_or_status(&sandbox, &plan, &path);
        assert_eq!(err, "not run");
        let trail = audit::read(&path).unwrap();
        let e = classify(&plan, &trail, Vec::new()).unwrap_err();
        assert!(e.to_string().contains("no unfinished run"), "{e}");
    }

    #[test]
    fn drift_refuses_both_ways_and_changes_nothing() {
        let (sandbox, plan) = setting();
        let path = log_path("drift");
        crash(&sandbox, &plan, &path, false);
        sandbox.with_state_mut(|s| {
            if let Some(a) = s.account_mut(&plan.account) {
                a.password_policy = a.password_policy.clone().map(|mut p| {
                    p.minimum_password_length = 10;
                    p
                });
            }
        });
        let recovery = classified(&sandbox, &plan, &path);
        assert!(matches!(
            recovery.actions[1].live,
            LiveState::Unknown { .. }
        ));
        let before = sandbox.state();
        let trail = audit::read(&path).unwrap();
        let mut log = AuditLog::open(&path).unwrap();
        let mut journal = AuditJournal::new(&mut log, &plan);
        let e = block_on(finish(
            &plan,
            &recovery,
            &sandbox,
            &mut journal,
            &mut |_| {},
        ));
        assert!(matches!(e, Err(RecoverError::Unknown { .. })));
        let e = block_on(roll_back(
            &plan,
            &trail,
            &recovery,
            &sandbox,
            &mut journal,
            &mut |_| {},
        ));
        assert!(matches!(e, Err(RecoverError::Unknown { .. })));
        assert_eq!(sandbox.state(), before);
    }

    #[test]
    fn the_plan_is_rebuilt_from_the_trail_and_an_altered_record_is_refused() {
        let (_, plan) = setting();
        let path = log_path("rebuild");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(AuditRecord::plan_proposed(&plan)).unwrap();
        let trail = audit::read(&path).unwrap();
        assert_eq!(plan_from_trail(&trail, &plan.id).unwrap(), plan);
        let other: PlanId = "plan-00000000".parse().unwrap();
        assert!(matches!(
            plan_from_trail(&trail, &other),
            Err(RecoverError::UnknownPlan { .. })
        ));
        let mut altered = plan.clone();
        altered.rationale = "changed after approval".into();
        let mut record = AuditRecord::plan_proposed(&altered);
        record.plan_id = plan.id.clone();
        let path = log_path("altered");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(record).unwrap();
        let trail = audit::read(&path).unwrap();
        assert!(matches!(
            plan_from_trail(&trail, &plan.id),
            Err(RecoverError::Altered { .. })
        ));
    }
}
