//! Running an approved plan: precheck everything, apply each action and verify
//! it, roll back what was applied if anything fails, then resolve the finding.
//! Every step is written to a [`Journal`] before the next one starts.

use serde::Serialize;
use serde_json::Value;

use crate::catalog::Watch;
use crate::cloud::{Cloud, MAX_NOTE_CHARS, Target, UpdateOutcome};
use crate::finding::{FindingIdentifier, WorkflowStatus};
use crate::plan::{Action, Applied, Precheck, RemediationPlan};
use crate::settings::Lang;

/// One step worth recording, in the order it happens.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JournalEvent<'a> {
    ActionStarted {
        index: usize,
        action: &'a Action,
        before: &'a Value,
    },
    ActionFinished {
        index: usize,
        action: &'a Action,
        applied: &'a Applied,
        after: Value,
        verified: bool,
    },
    ActionFailed {
        index: usize,
        action: &'a Action,
        error: String,
    },
    RolledBack {
        index: usize,
        inverse: &'a Action,
        error: Option<String>,
    },
    FindingUpdated {
        findings: &'a [FindingIdentifier],
        note: &'a str,
        error: Option<String>,
    },
    RunFinished {
        outcome: &'a str,
    },
    /// `%recover`: the action's intended state already held, so it was not applied again.
    ActionSkipped {
        index: usize,
        action: &'a Action,
        reason: &'a str,
    },
}

/// Where the executor writes each step before it takes the next. An error stops
/// the run: a step that cannot be recorded is not taken.
pub trait Journal: Send {
    fn record(&mut self, event: JournalEvent<'_>) -> Result<(), String>;
}

/// A journal that keeps nothing, for dry runs and tests.
pub struct NoJournal;

impl Journal for NoJournal {
    fn record(&mut self, _event: JournalEvent<'_>) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    /// The intended state already held: nothing was changed.
    NoOp,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub index: usize,
    pub action: String,
    pub description: String,
    pub state: StepState,
    pub precheck: Option<Precheck>,
    pub applied: Option<Applied>,
    pub verified: Option<bool>,
    pub error: Option<String>,
    /// Where a long step is (an Automation run's current step), while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Running,
    /// Every action applied (or already held) and verified; the finding was updated.
    Succeeded,
    /// Every action's intended state already held; nothing was changed.
    AlreadyInPlace,
    /// The live state no longer matches the plan; nothing was changed.
    Drifted {
        detail: String,
    },
    /// An action failed; the ones applied before it were rolled back.
    Failed {
        index: usize,
        error: String,
        rollback_errors: Vec<String>,
    },
    /// Stopped by an interrupt between actions; applied ones were rolled back.
    Cancelled {
        rollback_errors: Vec<String>,
    },
    /// A step could not be recorded, so it was not taken.
    JournalFailed {
        error: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::AlreadyInPlace => "already_in_place",
            Outcome::Drifted { .. } => "drifted",
            Outcome::Failed { .. } => "failed",
            Outcome::Cancelled { .. } => "cancelled",
            Outcome::JournalFailed { .. } => "journal_failed",
        }
    }

    pub fn changed_nothing(&self) -> bool {
        matches!(
            self,
            Outcome::AlreadyInPlace | Outcome::Drifted { .. } | Outcome::JournalFailed { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport {
    pub plan_id: String,
    pub target: Target,
    pub steps: Vec<StepReport>,
    pub outcome: Outcome,
    pub finding_update: Option<Result<UpdateOutcome, String>>,
}

/// The note written on resolved findings: the plan id and what was done, in the
/// plan's language, at most [`MAX_NOTE_CHARS`] characters (not bytes).
pub fn resolution_note(plan: &RemediationPlan) -> String {
    let steps: Vec<String> = plan.actions.iter().map(|a| a.describe(plan.lang)).collect();
    let text = match plan.lang {
        Lang::En => format!(
            "Remediated by {} (runbook-kernel), approved by a human: {}",
            plan.id,
            steps.join("; ")
        ),
        Lang::Ja => format!(
            "{} により修復しました (runbook-kernel、人による承認済み): {}",
            plan.id,
            steps.join("、")
        ),
    };
    if text.chars().count() <= MAX_NOTE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_NOTE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Reads the live state of every action: what a dry run shows, and the first step of a run.
pub async fn precheck_all(
    plan: &RemediationPlan,
    cloud: &dyn Cloud,
) -> Vec<Result<Precheck, String>> {
    let at = plan.target();
    let mut out = Vec::with_capacity(plan.actions.len());
    for action in &plan.actions {
        out.push(action.precheck(cloud, &at).await.map_err(|e| e.to_string()));
    }
    out
}

struct Run<'a> {
    plan: &'a RemediationPlan,
    cloud: &'a dyn Cloud,
    journal: &'a mut dyn Journal,
    progress: &'a mut (dyn FnMut(&ExecutionReport) + Send),
    report: ExecutionReport,
    /// Actions applied so far, with what their apply returned, for rollback.
    applied: Vec<(usize, Applied)>,
}

impl Run<'_> {
    fn show(&mut self) {
        (self.progress)(&self.report);
    }

    fn record(&mut self, event: JournalEvent<'_>) -> Result<(), String> {
        self.journal.record(event)
    }

    /// Applies the inverses of everything applied so far, newest first.
    async fn roll_back(&mut self) -> Vec<String> {
        let at = self.plan.target();
        let mut errors = Vec::new();
        while let Some((index, applied)) = self.applied.pop() {
            let Some(inverse) = self.plan.actions[index].inverse(Some(&applied)) else {
                continue;
            };
            let error = inverse
                .apply(self.cloud, &at)
                .await
                .err()
                .map(|e| e.to_string());
            if let Err(journal) = self.journal.record(JournalEvent::RolledBack {
                index,
                inverse: &inverse,
                error: error.clone(),
            }) {
                errors.push(format!(
                    "recording the rollback of action {} failed: {journal}",
                    index + 1
                ));
            }
            match error {
                Some(e) => errors.push(format!("rolling back action {} failed: {e}", index + 1)),
                None => self.report.steps[index].state = StepState::RolledBack,
            }
            self.show();
        }
        errors
    }

    fn finish(&mut self, outcome: Outcome) -> ExecutionReport {
        let label = outcome.label();
        self.report.outcome = outcome;
        if let Err(e) = self
            .journal
            .record(JournalEvent::RunFinished { outcome: label })
        {
            self.report.outcome = Outcome::JournalFailed { error: e };
        }
        self.show();
        self.report.clone()
    }
}

/// Runs an approved plan. `cancelled` is asked between actions (an interrupt);
/// when it says yes, what was applied is rolled back.
pub async fn execute(
    plan: &RemediationPlan,
    cloud: &dyn Cloud,
    journal: &mut dyn Journal,
    progress: &mut (dyn FnMut(&ExecutionReport) + Send),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> ExecutionReport {
    let at = plan.target();
    let steps = plan
        .actions
        .iter()
        .enumerate()
        .map(|(index, a)| StepReport {
            index,
            action: a.name().to_string(),
            description: a.describe(plan.lang),
            state: StepState::Pending,
            precheck: None,
            applied: None,
            verified: None,
            error: None,
            detail: None,
        })
        .collect();
    let mut run = Run {
        plan,
        cloud,
        journal,
        progress,
        report: ExecutionReport {
            plan_id: plan.id.to_string(),
            target: at.clone(),
            steps,
            outcome: Outcome::Running,
            finding_update: None,
        },
        applied: Vec::new(),
    };
    run.show();

    // 1. Precheck everything first: a drifted state stops the run before any change.
    let prechecks = precheck_all(plan, cloud).await;
    let mut drift = Vec::new();
    for (i, check) in prechecks.into_iter().enumerate() {
        match check {
            Ok(p) => {
                if let Some(d) = &p.drift {
                    drift.push(format!("action {}: {d}", i + 1));
                }
                run.report.steps[i].precheck = Some(p);
            }
            Err(e) => drift.push(format!(
                "action {}: cannot read the current state: {e}",
                i + 1
            )),
        }
    }
    if !drift.is_empty() {
        return run.finish(Outcome::Drifted {
            detail: drift.join("; "),
        });
    }
    if run
        .report
        .steps
        .iter()
        .all(|s| s.precheck.as_ref().is_some_and(|p| p.already_done))
    {
        for step in &mut run.report.steps {
            step.state = StepState::NoOp;
        }
        return run.finish(Outcome::AlreadyInPlace);
    }

    // 2. Apply and verify, one action at a time.
    for index in 0..plan.actions.len() {
        if cancelled() {
            let rollback_errors = run.roll_back().await;
            return run.finish(Outcome::Cancelled { rollback_errors });
        }
        let action = &plan.actions[index];
        let before = run.report.steps[index]
            .precheck
            .as_ref()
            .map_or(Value::Null, |p| p.current.clone());
        if let Err(e) = run.record(JournalEvent::ActionStarted {
            index,
            action,
            before: &before,
        }) {
            let rollback_errors = run.roll_back().await;
            let _ = rollback_errors;
            return run.finish(Outcome::JournalFailed { error: e });
        }
        run.report.steps[index].state = StepState::Running;
        run.show();
        let report = &mut run.report;
        let show = &mut *run.progress;
        let mut progress = |line: &str| {
            report.steps[index].detail = Some(line.to_string());
            show(report);
        };
        let mut watch = Watch {
            cancelled,
            progress: &mut progress,
        };
        let result = match action.apply_watched(cloud, &at, &mut watch).await {
            Ok(applied) => match action.verify_watched(cloud, &at, &mut watch).await {
                Ok(true) => Ok(applied),
                Ok(false) => Err((
                    Some(applied),
                    "verification failed: the intended state does not hold after apply".to_string(),
                )),
                Err(e) => Err((
                    Some(applied),
                    format!("verification could not read the state: {e}"),
                )),
            },
            Err(e) => Err((None, e.to_string())),
        };
        run.report.steps[index].detail = None;
        match result {
            Ok(applied) => {
                let after = action
                    .precheck(cloud, &at)
                    .await
                    .map_or(Value::Null, |p| p.current);
                let recorded = run.record(JournalEvent::ActionFinished {
                    index,
                    action,
                    applied: &applied,
                    after,
                    verified: true,
                });
                let step = &mut run.report.steps[index];
                step.state = if applied.changed {
                    StepState::Done
                } else {
                    StepState::NoOp
                };
                step.verified = Some(true);
                step.applied = Some(applied.clone());
                if applied.changed {
                    run.applied.push((index, applied));
                }
                if let Err(e) = recorded {
                    let rollback_errors = run.roll_back().await;
                    let _ = rollback_errors;
                    return run.finish(Outcome::JournalFailed { error: e });
                }
                run.show();
            }
            Err((applied, error)) => {
                if let Some(applied) = applied.filter(|a| a.changed) {
                    run.applied.push((index, applied));
                }
                let _ = run.record(JournalEvent::ActionFailed {
                    index,
                    action,
                    error: error.clone(),
                });
                let step = &mut run.report.steps[index];
                step.state = StepState::Failed;
                step.error = Some(error.clone());
                run.show();
                let rollback_errors = run.roll_back().await;
                return run.finish(Outcome::Failed {
                    index,
                    error,
                    rollback_errors,
                });
            }
        }
    }

    // 3. Resolve the finding, with a note naming the plan.
    let note = resolution_note(plan);
    let update = cloud
        .update_findings(&plan.findings, WorkflowStatus::Resolved, &note)
        .await
        .map_err(|e| e.to_string());
    let error = update.as_ref().err().cloned();
    let recorded = run.record(JournalEvent::FindingUpdated {
        findings: &plan.findings,
        note: &note,
        error,
    });
    run.report.finding_update = Some(update);
    if let Err(e) = recorded {
        return run.finish(Outcome::JournalFailed { error: e });
    }
    run.finish(Outcome::Succeeded)
}

/// One recorded action to undo: its index in the plan and its inverse.
#[derive(Debug, Clone)]
pub struct Undo {
    pub index: usize,
    pub inverse: Action,
}

/// Applies recorded inverses (newest first, as given) for `%rollback`, each
/// verified and journalled. Stops at the first failure and says which.
pub async fn rollback(
    plan: &RemediationPlan,
    undo: &[Undo],
    cloud: &dyn Cloud,
    journal: &mut dyn Journal,
    progress: &mut (dyn FnMut(&ExecutionReport) + Send),
) -> ExecutionReport {
    let at = plan.target();
    let mut report = ExecutionReport {
        plan_id: plan.id.to_string(),
        target: at.clone(),
        steps: undo
            .iter()
            .map(|u| StepReport {
                index: u.index,
                action: u.inverse.name().to_string(),
                description: u.inverse.describe(plan.lang),
                state: StepState::Pending,
                precheck: None,
                applied: None,
                verified: None,
                error: None,
                detail: None,
            })
            .collect(),
        outcome: Outcome::Running,
        finding_update: None,
    };
    progress(&report);
    for (step, u) in undo.iter().enumerate() {
        report.steps[step].state = StepState::Running;
        progress(&report);
        let result = match u.inverse.apply(cloud, &at).await {
            Ok(applied) => match u.inverse.verify(cloud, &at).await {
                Ok(true) => Ok(applied),
                Ok(false) => Err(
                    "verification failed: the previous state does not hold after rollback"
                        .to_string(),
                ),
                Err(e) => Err(format!("verification could not read the state: {e}")),
            },
            Err(e) => Err(e.to_string()),
        };
        let error = result.as_ref().err().cloned();
        if let Err(e) = journal.record(JournalEvent::RolledBack {
            index: u.index,
            inverse: &u.inverse,
            error: error.clone(),
        }) {
            report.outcome = Outcome::JournalFailed { error: e };
            progress(&report);
            return report;
        }
        match result {
            Ok(applied) => {
                report.steps[step].state = StepState::RolledBack;
                report.steps[step].verified = Some(true);
                report.steps[step].applied = Some(applied);
            }
            Err(e) => {
                report.steps[step].state = StepState::Failed;
                report.steps[step].error = Some(e.clone());
                report.outcome = Outcome::Failed {
                    index: u.index,
                    error: e,
                    rollback_errors: Vec::new(),
                };
                let _ = journal.record(JournalEvent::RunFinished { outcome: "failed" });
                progress(&report);
                return report;
            }
        }
        progress(&report);
    }
    report.outcome = Outcome::Succeeded;
    if let Err(e) = journal.record(JournalEvent::RunFinished {
        outcome: "rolled_back",
    }) {
        report.outcome = Outcome::JournalFailed { error: e };
    }
    progress(&report);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Sandbox;
    use crate::cloud::sandbox::state::OrgState;
    use crate::finding::{ControlId, FindingIdentifier};
    use crate::plan::{PlanDraft, PlanSource};

    /// A journal that keeps event names, and can be told to fail.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
        fail_at: Option<usize>,
    }

    impl Journal for Recorder {
        fn record(&mut self, event: JournalEvent<'_>) -> Result<(), String> {
            if self.fail_at == Some(self.events.len()) {
                return Err("disk full".to_string());
            }
            let name = serde_json::to_value(&event)
                .ok()
                .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_default();
            self.events.push(name);
            Ok(())
        }
    }

    /// A sandbox account and region where EBS default encryption is off, with its password policy.
    fn setting(sandbox: &Sandbox) -> (Target, Option<crate::resources::PasswordPolicy>) {
        sandbox.with_state(|s: &OrgState| {
            for account in &s.accounts {
                for region in &account.regions {
                    if !region.ebs_encryption_by_default {
                        return (
                            Target {
                                account: account.id.clone(),
                                region: region.region.clone(),
                            },
                            account.password_policy.clone(),
                        );
                    }
                }
            }
            panic!("the sandbox has a region without EBS default encryption")
        })
    }

    fn plan_of(target: &Target, actions: Vec<Action>) -> RemediationPlan {
        RemediationPlan::new(PlanDraft {
            findings: vec![FindingIdentifier {
                id: "test-finding".into(),
                product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
                source: crate::finding::FindingSource::Asff,
            }],
            control_id: "EC2.7".parse::<ControlId>().unwrap(),
            target: target.clone(),
            actions,
            rationale: "test".into(),
            policy_citations: Vec::new(),
            lang: Lang::En,
            source: PlanSource::Catalog,
        })
    }

    fn run(
        plan: &RemediationPlan,
        cloud: &dyn Cloud,
        journal: &mut Recorder,
        cancel_after: Option<usize>,
    ) -> ExecutionReport {
        let mut seen = 0;
        let cancelled = std::sync::atomic::AtomicUsize::new(0);
        let mut progress = |_: &ExecutionReport| {
            seen += 1;
        };
        let ask = || {
            let asked = cancelled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            cancel_after.is_some_and(|n| asked >= n)
        };
        futures_block_on(execute(plan, cloud, journal, &mut progress, &ask))
    }

    fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn three_actions(
        previous: Option<crate::resources::PasswordPolicy>,
        bad_length: bool,
    ) -> Vec<Action> {
        let mut policy = previous
            .clone()
            .unwrap_or(crate::catalog::iam_password::DEFAULT_POLICY);
        // IAM accepts 6..=128: 200 makes the second action fail on apply.
        policy.minimum_password_length = if bad_length { 200 } else { 20 };
        vec![
            Action::EnableEbsEncryptionByDefault(
                crate::catalog::ebs::EnableEbsEncryptionByDefault {},
            ),
            Action::SetPasswordPolicy(crate::catalog::iam_password::SetPasswordPolicy {
                policy,
                previous,
            }),
            Action::DisableEbsEncryptionByDefault(
                crate::catalog::ebs::DisableEbsEncryptionByDefault {},
            ),
        ]
    }

    #[test]
    fn a_failure_in_action_two_of_three_leaves_the_account_as_it_was() {
        let sandbox = Sandbox::new();
        let (target, previous) = setting(&sandbox);
        let before = sandbox.state();
        let plan = plan_of(&target, three_actions(previous, true));
        let mut journal = Recorder::default();
        let report = run(&plan, &sandbox, &mut journal, None);
        assert!(
            matches!(report.outcome, Outcome::Failed { index: 1, .. }),
            "{:?}",
            report.outcome
        );
        assert_eq!(sandbox.state(), before, "action 1 was rolled back");
        assert_eq!(report.steps[0].state, StepState::RolledBack);
        assert_eq!(
            report.steps[2].state,
            StepState::Pending,
            "action 3 never ran"
        );
        assert_eq!(
            journal.events,
            [
                "action_started",
                "action_finished",
                "action_started",
                "action_failed",
                "rolled_back",
                "run_finished"
            ]
        );
        assert!(
            report.finding_update.is_none(),
            "no finding is resolved by a failed run"
        );
    }

    #[test]
    fn an_interrupt_between_actions_rolls_back() {
        let sandbox = Sandbox::new();
        let (target, previous) = setting(&sandbox);
        let before = sandbox.state();
        let plan = plan_of(&target, three_actions(previous, false));
        let mut journal = Recorder::default();
        // Asked before each action: not before the first, yes before the second.
        let report = run(&plan, &sandbox, &mut journal, Some(1));
        assert!(
            matches!(report.outcome, Outcome::Cancelled { ref rollback_errors } if rollback_errors.is_empty())
        );
        assert_eq!(sandbox.state(), before);
    }

    #[test]
    fn a_step_that_cannot_be_recorded_is_not_taken() {
        let sandbox = Sandbox::new();
        let (target, previous) = setting(&sandbox);
        let before = sandbox.state();
        let plan = plan_of(&target, three_actions(previous, false));
        let mut journal = Recorder {
            fail_at: Some(0),
            ..Recorder::default()
        };
        let report = run(&plan, &sandbox, &mut journal, None);
        assert!(matches!(report.outcome, Outcome::JournalFailed { .. }));
        assert_eq!(sandbox.state(), before, "nothing changed");
    }

    #[test]
    fn drift_stops_the_run_before_any_change() {
        let sandbox = Sandbox::new();
        let (target, previous) = setting(&sandbox);
        let plan = plan_of(&target, three_actions(previous, false));
        // Someone changes the password policy after the plan was made.
        sandbox.with_state_mut(|s| {
            if let Some(a) = s.account_mut(&target.account) {
                a.password_policy = a.password_policy.clone().map(|mut p| {
                    p.minimum_password_length = 10;
                    p
                });
            }
        });
        let before = sandbox.state();
        let report = run(&plan, &sandbox, &mut Recorder::default(), None);
        assert!(
            matches!(report.outcome, Outcome::Drifted { .. }),
            "{:?}",
            report.outcome
        );
        assert_eq!(sandbox.state(), before);
    }

    #[test]
    fn notes_fit_security_hub_in_characters() {
        let sandbox = Sandbox::new();
        let (target, previous) = setting(&sandbox);
        let mut plan = plan_of(&target, three_actions(previous, false));
        plan.lang = Lang::Ja;
        plan.actions = std::iter::repeat_n(
            Action::EnableEbsEncryptionByDefault(
                crate::catalog::ebs::EnableEbsEncryptionByDefault {},
            ),
            40,
        )
        .collect();
        let note = resolution_note(&plan);
        assert!(note.chars().count() <= MAX_NOTE_CHARS);
        assert!(
            note.len() > MAX_NOTE_CHARS,
            "multi-byte text is counted in characters"
        );
        assert!(note.contains(plan.id.as_str()));
    }
}
