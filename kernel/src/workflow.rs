//! The steps %remediate, %approve, %rollback and %ask share, each with a typed
//! outcome: propose a plan ([`propose`] -> [`Proposed`]); ask the human and run
//! what they approved ([`approve_and_execute`], [`approve_and_roll_back`] ->
//! [`Executed`]). The record keeping is the library's (`runbook::approval`);
//! what is Jupyter's — showing, asking through stdin, interrupts — is here.

use runbook::advisor::catalog::CatalogAdvisor;
use runbook::advisor::{Advisor, AdvisorError, Proposal, ProposalError};
use runbook::approval::{Approval, ApprovalError, Approved};
use runbook::audit::AuditRecord;
use runbook::catalog::CatalogError;
use runbook::cloud::Cloud;
use runbook::execute::{self, ExecutionReport, Outcome, Undo};
use runbook::finding::Finding;
use runbook::plan::RemediationPlan;
use runbook::settings::{ApprovalMode, Lang};
use serde_json::json;
use std::sync::Arc;

use crate::context::{Context, DisplayHandle, ErrorKind, MagicError, StoredPlan, StreamingDisplay};
use crate::output::AskError;
use crate::render::{self, Bundle, approval as render_approval, plan as render_plan};

/// What [`propose`] produced.
#[derive(Debug, Clone)]
pub enum Proposed {
    /// A validated plan, on the audit trail and stored in the session.
    Plan(Box<StoredPlan>),
    /// Advice for a control the catalog does not cover (not executable).
    Advice(String),
    /// The finding needs no change.
    NothingToDo(String),
}

/// What the catalog stands in for when the model cannot answer.
#[derive(Debug, Clone, Copy)]
pub enum StandIn {
    Explanation,
    Plan,
}

/// Says, above the catalog's answer, that the model could not answer and the
/// catalog stands in, and how to use the catalog without asking the model.
pub fn stand_in_notice(error: &AdvisorError, lang: Lang, what: StandIn) -> Bundle {
    let text = match (lang, what) {
        (Lang::En, StandIn::Explanation) => format!(
            "Claude on Bedrock could not answer, so the built-in catalog's explanation follows instead.\n{error}\nTo use the catalog without asking Bedrock: %config model=catalog"
        ),
        (Lang::En, StandIn::Plan) => format!(
            "Claude on Bedrock could not answer, so the built-in catalog's plan follows instead.\n{error}\nTo use the catalog without asking Bedrock: %config model=catalog"
        ),
        (Lang::Ja, StandIn::Explanation) => format!(
            "Bedrock の Claude が応答できなかったため、組み込みカタログの説明を代わりに表示します。\n{error}\nBedrock を使わずにカタログを使うには: %config model=catalog"
        ),
        (Lang::Ja, StandIn::Plan) => format!(
            "Bedrock の Claude が応答できなかったため、組み込みカタログのプランを代わりに表示します。\n{error}\nBedrock を使わずにカタログを使うには: %config model=catalog"
        ),
    };
    Bundle::html(
        text.clone(),
        format!(
            "<div class=\"runbook-stand-in\"><p><strong>{}</strong></p></div>",
            render::html::text(&text).replace('\n', "<br>")
        ),
        json!({"stand_in": true, "model_error": error.to_string(), "catalog": true}),
    )
}

/// The %remediate path, shared with %ask: asks the advisor, validates the plan,
/// records it in the audit trail, stores it in the session and shows it.
pub async fn propose(
    cx: &mut Context<'_>,
    finding: Finding,
    lang: Lang,
    instructions: Option<&str>,
) -> Result<Proposed, MagicError> {
    let out = cx.out;
    let connected = cx.cloud().await?;
    let (advisor, _) = cx.advisor().await?;
    let policy = cx.consult(&finding).await?;
    let kind = advisor.kind();
    let waiting = match lang {
        Lang::En => format!("_Planning with {}…_", kind.label()),
        Lang::Ja => format!("_{} で修復プランを作成しています…_", kind.label()),
    };
    let extra = json!({"finding_id": finding.id, "lang": lang.code()});
    let mut stream = StreamingDisplay::start(out, kind.clone(), extra, &waiting, "planning…");
    let mut on_text = |piece: &str| stream.push(piece);
    let proposal = cx
        .cancellable(advisor.remediate(
            &finding,
            lang,
            instructions,
            connected.cloud.as_ref(),
            policy.as_ref(),
            &mut on_text,
        ))
        .await?;
    // When the model cannot be used at all, the catalog stands in for a control it
    // covers, labelled; the cell still ends with the model's error.
    let (proposal, stood_in) = match proposal {
        Err(ProposalError::Advisor(e))
            if e.catalog_may_stand_in() && runbook::catalog::covers(&finding) =>
        {
            out.display(stand_in_notice(&e, lang, StandIn::Plan));
            let catalog = cx
                .cancellable(CatalogAdvisor.remediate(
                    &finding,
                    lang,
                    instructions,
                    connected.cloud.as_ref(),
                    policy.as_ref(),
                    &mut |_| {},
                ))
                .await?;
            (catalog, Some(MagicError::from(e)))
        }
        other => (other, None),
    };
    let proposal = match proposal {
        Ok(p) => p,
        Err(ProposalError::Catalog(CatalogError::NothingToDo(why))) => {
            let text = match lang {
                Lang::En => format!("Nothing to do: {why}"),
                Lang::Ja => format!("対応不要: {why}"),
            };
            stream.show(&text, None, None);
            return match stood_in {
                Some(error) => Err(error),
                None => Ok(Proposed::NothingToDo(why)),
            };
        }
        Err(e) => {
            let error: MagicError = stood_in.unwrap_or_else(|| e.into());
            stream.show(&stream.text, None, Some(&error.evalue));
            return Err(error);
        }
    };
    let kind = if stood_in.is_some() {
        CatalogAdvisor.kind()
    } else {
        kind
    };
    let proposed = shown_proposal(cx, proposal, finding, lang, &kind, policy, stream).await?;
    match stood_in {
        Some(error) => Err(error),
        None => Ok(proposed),
    }
}

/// Records, stores and shows what the advisor proposed.
async fn shown_proposal(
    cx: &mut Context<'_>,
    proposal: Proposal,
    finding: Finding,
    lang: Lang,
    kind: &runbook::advisor::AdvisorKind,
    policy: Option<runbook::kb::PolicyContext>,
    stream: StreamingDisplay<'_>,
) -> Result<Proposed, MagicError> {
    let connected = cx.cloud().await?;
    match proposal {
        Proposal::Advice {
            markdown,
            advisor,
            usage,
        } => {
            stream.replace(render::kb::with_policy(
                render_plan::advice(&markdown, &advisor, usage.as_ref(), lang),
                policy.as_ref(),
                lang,
            ));
            Ok(Proposed::Advice(markdown))
        }
        Proposal::Plan { plan, usage } => {
            // The proposal is on the record before anyone can approve it.
            let actor = cx.actor().await?;
            let recorded = cx.session.open_audit_log().and_then(|mut log| {
                log.append(AuditRecord::plan_proposed(&plan).by(actor.clone()))
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = recorded {
                let error = MagicError::new(
                    ErrorKind::Audit,
                    format!(
                        "{e}; the plan was not stored (set %config audit_log=PATH to a writable file)"
                    ),
                );
                stream.show("", None, Some(&error.evalue));
                return Err(error);
            }
            let checks = cx
                .cancellable(execute::precheck_all(&plan, connected.cloud.as_ref()))
                .await?;
            let account = cx.account_label(&plan.account).await;
            let mut shown = render_plan::plan(&plan, &account, &checks, kind, usage.as_ref());
            // A saved notebook carries who proposed it (%approve --from, two-person).
            if let Some(json) = shown.json.as_object_mut() {
                json.insert("proposed_by".to_string(), json!(actor));
            }
            stream.replace(render::kb::with_policy(shown, policy.as_ref(), lang));
            let id = plan.id.to_string();
            let stored = StoredPlan {
                plan: *plan,
                finding,
                proposed_by: Some(actor),
            };
            cx.session.plans.insert(id.clone(), stored.clone());
            cx.session.last_plan = Some(id);
            Ok(Proposed::Plan(Box::new(stored)))
        }
    }
}

fn prompt(id: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("Type the plan id ({id}) to apply it; anything else cancels: "),
        Lang::Ja => format!(
            "適用するにはプラン ID ({id}) を入力してください。それ以外の入力で取り消します: "
        ),
    }
}

/// Asks the human to approve plan `id` by typing it (or accepts `--yes` where the
/// frontend cannot ask and the settings allow it): how they approved, or why not.
pub async fn approval(cx: &Context<'_>, yes: bool, id: &str) -> Result<String, MagicError> {
    let out = cx.out;
    let lang = cx.settings().lang;
    if let Some(unattended) = cx.session.unattended {
        return match (yes, unattended.allow_yes) {
            (true, true) => Ok(
                "--yes in an unattended run (runbook-kernel exec -p approval=allow-yes)"
                    .to_string(),
            ),
            _ => Err(MagicError::new(
                ErrorKind::NotApproved,
                "runbook-kernel exec has no human to type the plan id: it applies a plan only when run with -p approval=allow-yes and the %approve line has --yes; nothing was changed",
            )),
        };
    }
    if out.stdin_allowed() {
        return match out.ask(&prompt(id, lang), false).await {
            Ok(answer) if answer.trim() == id => Ok("typed the plan id".to_string()),
            Ok(answer) if answer.trim().is_empty() => Err(MagicError::new(
                ErrorKind::NotApproved,
                "cancelled: the answer was empty, so nothing was changed",
            )),
            Ok(_) => Err(MagicError::new(
                ErrorKind::NotApproved,
                format!("cancelled: the answer was not {id}, so nothing was changed"),
            )),
            Err(AskError::Interrupted) => Err(MagicError::interrupted()),
            Err(e) => Err(MagicError::new(
                ErrorKind::NotApproved,
                format!("{e}; nothing was changed"),
            )),
        };
    }
    match (yes, cx.settings().approval) {
        (true, ApprovalMode::AllowYes) => Ok("--yes (the frontend cannot ask)".to_string()),
        (true, mode @ (ApprovalMode::Interactive | ApprovalMode::TwoPerson)) => {
            Err(MagicError::new(
                ErrorKind::NotApproved,
                format!(
                    "approval={} refuses --yes: run the cell in JupyterLab and type the plan id; nothing was changed",
                    if mode == ApprovalMode::TwoPerson {
                        "two-person"
                    } else {
                        "interactive"
                    }
                ),
            ))
        }
        (false, _) => Err(MagicError::new(
            ErrorKind::NotApproved,
            "this frontend cannot ask for the plan id (no stdin); add --yes to approve without typing it (allowed unless approval=interactive); nothing was changed",
        )),
    }
}

/// The error a run ends with, if it did not succeed.
pub fn outcome_error(report: &ExecutionReport) -> Option<MagicError> {
    match &report.outcome {
        Outcome::Succeeded | Outcome::AlreadyInPlace | Outcome::Running => None,
        Outcome::Drifted { detail } => Some(MagicError::new(
            ErrorKind::StateDrifted,
            format!(
                "the live state changed since the plan was made, so nothing was changed: {detail}; run %remediate again"
            ),
        )),
        Outcome::Failed {
            index,
            error,
            rollback_errors,
        } => Some(MagicError::new(
            ErrorKind::ExecutionFailed,
            if rollback_errors.is_empty() {
                format!(
                    "action {} failed: {error}; the actions before it were rolled back",
                    index + 1
                )
            } else {
                format!(
                    "action {} failed: {error}; rolling back also failed: {}",
                    index + 1,
                    rollback_errors.join("; ")
                )
            },
        )),
        Outcome::Cancelled { rollback_errors } => Some(MagicError::new(
            ErrorKind::Interrupted,
            if rollback_errors.is_empty() {
                "interrupted between actions; what had been applied was rolled back".to_string()
            } else {
                format!(
                    "interrupted; rolling back failed: {}",
                    rollback_errors.join("; ")
                )
            },
        )),
        Outcome::JournalFailed { error } => Some(audit_error(error)),
    }
}

/// Audit trouble before anything changed.
pub fn audit_error(e: impl std::fmt::Display) -> MagicError {
    MagicError::new(
        ErrorKind::Audit,
        format!("{e}; nothing was changed (set %config audit_log=PATH to a writable file)"),
    )
}

fn approval_error(e: ApprovalError) -> MagicError {
    match e {
        ApprovalError::Audit(e) => audit_error(e),
        ApprovalError::Cloud(e) => e.into(),
    }
}

/// Opens the record of an approval: the audit log and who is acting.
pub async fn open_approval<'p>(
    cx: &mut Context<'_>,
    plan: &'p RemediationPlan,
) -> Result<Approval<'p>, MagicError> {
    let log = cx.session.open_audit_log().map_err(audit_error)?;
    let actor = cx.actor().await?;
    Ok(Approval::open_as(plan, log, actor))
}

/// What an approved plan's steps run through: the backend itself in the caller's
/// own account, or the member-account session opened for this plan (its role
/// assumed with the plan's session policy). A refusal is on the record.
pub async fn acting_cloud(
    cx: &Context<'_>,
    approved: &mut Approved<'_>,
    cloud: &Arc<dyn Cloud>,
) -> Result<Arc<dyn Cloud>, MagicError> {
    let acting = cx
        .cancellable(approved.act(cloud.as_ref()))
        .await?
        .map_err(approval_error)?;
    Ok(acting.cloud.unwrap_or_else(|| cloud.clone()))
}

/// What the human decided about a plan; either way it is on the record.
pub enum Decision<'p> {
    Approved(Approved<'p>),
    /// Not approved (the reason says why); nothing was changed.
    Refused(String),
}

/// Asks the human about the plan shown in `handle` and records the answer. `what`
/// names what is approved when it is not the plan itself ("rollback"). An
/// interrupt is recorded as a refusal and ends the cell.
pub async fn decide<'p>(
    cx: &Context<'_>,
    pending: Approval<'p>,
    yes: bool,
    what: Option<&str>,
    handle: &DisplayHandle,
) -> Result<Decision<'p>, MagicError> {
    let plan_id = pending.plan().id.to_string();
    let labelled = |text: &str| match what {
        Some(what) => format!("{what}: {text}"),
        None => text.to_string(),
    };
    match approval(cx, yes, &plan_id).await {
        Ok(how) => Ok(Decision::Approved(
            pending.approve(labelled(&how)).map_err(audit_error)?,
        )),
        Err(refused) => {
            let plan = pending.plan();
            pending
                .refuse(labelled(&refused.evalue))
                .map_err(audit_error)?;
            cx.out
                .update(handle, render_approval::refused(plan, &refused.evalue));
            match refused.kind {
                ErrorKind::NotApproved => Ok(Decision::Refused(refused.evalue)),
                _ => Err(refused),
            }
        }
    }
}

/// What [`approve_and_execute`] and [`approve_and_roll_back`] did.
#[derive(Debug, Clone)]
pub enum Executed {
    /// The audit trail shows the plan already succeeded; nothing ran.
    AlreadyDone,
    /// The human did not approve (the reason says why); recorded, nothing changed.
    Refused(String),
    /// It ran; its outcome may still be a failure (see [`outcome_error`]).
    Ran(ExecutionReport),
}

impl Executed {
    /// The error a magic ends with for this outcome, if any.
    pub fn error(&self) -> Option<MagicError> {
        match self {
            Executed::AlreadyDone => None,
            Executed::Refused(why) => Some(MagicError::new(ErrorKind::NotApproved, why.clone())),
            Executed::Ran(report) => outcome_error(report),
        }
    }
}

/// The approval and execution of %approve, shared with %ask: shows the request,
/// asks the human (the plan id through stdin), and on yes runs precheck, apply,
/// verify and the finding update, every step in the audit trail.
pub async fn approve_and_execute(
    cx: &mut Context<'_>,
    plan: &RemediationPlan,
    yes: bool,
) -> Result<Executed, MagicError> {
    let out = cx.out;
    let connected = cx.cloud().await?;
    let cloud = connected.cloud.clone();
    let path = cx.settings().audit_log.clone();
    if runbook::approval::already_succeeded(&path, plan).map_err(audit_error)? {
        out.display(render_approval::already_done(plan, &path));
        return Ok(Executed::AlreadyDone);
    }
    let account = cx.account_label(&plan.account).await;
    let handle = out.display(render_approval::request(plan, &account, false));
    let proposer = cx
        .session
        .plans
        .get(plan.id.as_str())
        .and_then(|s| s.proposed_by.clone());
    let pending = open_approval(cx, plan).await?.proposed_by(proposer);
    let actor = pending.actor().to_string();
    if cx.settings().approval == ApprovalMode::TwoPerson
        && let Some(why) = pending.two_person_refusal()
    {
        pending.refuse(why.clone()).map_err(audit_error)?;
        out.update(&handle, render_approval::refused(plan, &why));
        return Ok(Executed::Refused(why));
    }
    let mut approved = match decide(cx, pending, yes, None, &handle).await? {
        Decision::Approved(approved) => approved,
        Decision::Refused(why) => return Ok(Executed::Refused(why)),
    };
    let cloud = acting_cloud(cx, &mut approved, &cloud).await?;

    // From here an interrupt is honoured between actions, with rollback; the
    // kernel must not drop the cell part-way through an action.
    out.set_critical(true);
    let token = out.cancellation();
    let cancelled = move || token.is_cancelled();
    let mut show = |report: &ExecutionReport| {
        out.update(
            &handle,
            render_approval::progress(plan, &account, report, &actor),
        )
    };
    let report = approved
        .execute(cloud.as_ref(), &mut show, &cancelled)
        .await;
    out.set_critical(false);
    out.update(
        &handle,
        render_approval::progress(plan, &account, &report, &actor),
    );
    Ok(Executed::Ran(report))
}

/// The approval and run of %rollback: shows the inverses to apply, asks the human
/// as %approve does, and on yes applies them newest first, each step audited.
pub async fn approve_and_roll_back(
    cx: &mut Context<'_>,
    plan: &RemediationPlan,
    undo: &[Undo],
    yes: bool,
) -> Result<Executed, MagicError> {
    let out = cx.out;
    let connected = cx.cloud().await?;
    let cloud = connected.cloud.clone();
    let account = cx.account_label(&plan.account).await;
    let handle = out.display(render_approval::rollback_request(plan, &account, undo));
    let pending = open_approval(cx, plan).await?;
    let actor = pending.actor().to_string();
    let mut approved = match decide(cx, pending, yes, Some("rollback"), &handle).await? {
        Decision::Approved(approved) => approved,
        Decision::Refused(why) => return Ok(Executed::Refused(why)),
    };
    let cloud = acting_cloud(cx, &mut approved, &cloud).await?;
    out.set_critical(true);
    let mut show = |r: &ExecutionReport| {
        out.update(
            &handle,
            render_approval::progress(plan, &account, r, &actor),
        )
    };
    let report = approved.roll_back(undo, cloud.as_ref(), &mut show).await;
    out.set_critical(false);
    out.update(
        &handle,
        render_approval::progress(plan, &account, &report, &actor),
    );
    Ok(Executed::Ran(report))
}

/// The stored plan a `PLAN_ID` or `last` names.
pub fn stored_plan(
    session: &crate::session::Session,
    wanted: &str,
) -> Result<crate::session::StoredPlan, MagicError> {
    let known = || {
        if session.plans.is_empty() {
            "there are no plans in this session yet: run %remediate first".to_string()
        } else {
            format!(
                "plans in this session: {}",
                session.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    };
    let id = if wanted == "last" {
        session
            .last_plan
            .clone()
            .ok_or_else(|| MagicError::usage(known()))?
    } else {
        let parsed: runbook::plan::PlanId = wanted
            .parse()
            .map_err(|e| MagicError::usage(format!("{e}; or `last` for the most recent plan")))?;
        parsed.to_string()
    };
    session
        .plans
        .get(&id)
        .cloned()
        .ok_or_else(|| MagicError::usage(format!("unknown plan {id}; {}", known())))
}
