//! `%recover`: what each action of an interrupted plan looks like now.

use runbook::plan::RemediationPlan;
use runbook::recover::{LiveState, Recovery, TrailState};
use serde_json::json;

use super::Bundle;
use super::html::{self, Cell, Table};
use super::text::Text;

fn live_label(live: &LiveState) -> String {
    match live {
        LiveState::Applied => "applied (live state matches the target)".to_string(),
        LiveState::NotApplied => "not applied".to_string(),
        LiveState::Unknown { detail } => format!("drifted or unknown: {detail}"),
    }
}

fn trail_label(trail: TrailState) -> &'static str {
    match trail {
        TrailState::Finished => "finished",
        TrailState::InFlight => "in flight when the run stopped",
        TrailState::NotStarted => "not started",
    }
}

/// The classification, and the two ways on.
pub fn status(plan: &RemediationPlan, recovery: &Recovery) -> Bundle {
    let title = format!(
        "{} ({}, {} in {}) did not finish. Live state of each action:",
        plan.id, plan.control_id, plan.account, plan.region
    );
    let mut plain = format!("{title}\n");
    let mut table = Table::new(
        "runbook-recover",
        &[
            "#",
            Text::ColAction.get(plan.lang),
            Text::ColAuditTrail.get(plan.lang),
            Text::ColLiveState.get(plan.lang),
        ],
    );
    for a in &recovery.actions {
        let live = live_label(&a.live);
        let trail = trail_label(a.trail);
        plain.push_str(&format!(
            "  {}. {} — {trail}; {live}\n",
            a.index + 1,
            a.description
        ));
        table.row(vec![
            Cell::text((a.index + 1).to_string()),
            Cell::text(&a.description),
            Cell::text(trail),
            Cell::text(&live),
        ]);
    }
    let next = if recovery.unknown().is_empty() {
        Text::RecoverNext.fill(plan.lang, &[&plan.id])
    } else {
        Text::RecoverUnknown.get(plan.lang).to_string()
    };
    plain.push_str(&next);
    let rich = format!(
        "<div class=\"runbook-recover\"><p><strong>{}</strong></p>{}<p>{}</p></div>",
        html::text(&title),
        table.render(),
        html::text(&next)
    );
    Bundle::html(
        plain,
        rich,
        json!({"plan_id": plan.id, "state": "recovery", "recovery": recovery}),
    )
}
