//! `%accounts`: every account of the organisation with its name, status, open
//! findings by severity, and whether the runbook can act there (a probe of the
//! member role whose credentials allow nothing).

use std::collections::BTreeMap;

use clap::Parser;
use runbook::cloud::member::AccountStatus;
use runbook::cloud::{Access, OrgAccount};
use runbook::finding::FindingFilter;

use crate::context::{Context, MagicError};
use crate::render::accounts::{self as render, AccountRow};
use crate::render::text::Text;

/// List the organisation's accounts: name, status, open findings by severity, and whether the runbook can act in each (its member role can be assumed)
#[derive(Debug, Parser)]
pub struct AccountsArgs {}

pub async fn run(_args: AccountsArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    let connected = cx.cloud().await?;
    let cloud = connected.cloud.clone();
    let lang = cx.settings().lang;
    let handle = out.display(render::progress(Text::AccountsListing.get(lang)));
    let organisation = cx.cancellable(cloud.organisation()).await?;

    let open_filter = FindingFilter {
        limit: None,
        ..FindingFilter::default()
    };
    let mut counting = |p: runbook::cloud::FetchProgress, _: &[runbook::finding::Finding]| {
        out.update(
            &handle,
            render::progress(&Text::AccountsCounting.fill(lang, &[&p.pages, &p.findings])),
        );
    };
    let findings = cx
        .cancellable(cloud.get_findings(&open_filter, &mut counting))
        .await??;
    let mut open: BTreeMap<_, BTreeMap<_, usize>> = BTreeMap::new();
    for f in &findings {
        *open
            .entry(f.account.clone())
            .or_default()
            .entry(f.severity)
            .or_default() += 1;
    }

    // Without the organisation's list, the accounts are those findings name.
    let mut accounts = organisation.accounts.clone();
    for id in open.keys() {
        if organisation.account(id).is_none() {
            accounts.push(OrgAccount {
                id: id.clone(),
                name: String::new(),
                status: AccountStatus::Active,
            });
        }
    }
    let mut rows = Vec::with_capacity(accounts.len());
    for (i, account) in accounts.into_iter().enumerate() {
        out.update(
            &handle,
            render::progress(&Text::AccountsChecking.fill(lang, &[&(i + 1), &rows.capacity()])),
        );
        let access = match account.status {
            AccountStatus::Active => cx.cancellable(cloud.access(&account.id)).await?,
            _ => Access::Denied {
                reason: Text::AccountSuspendedReason.fill(lang, &[&account.status.label()]),
            },
        };
        rows.push(AccountRow {
            open: open.remove(&account.id).unwrap_or_default(),
            account,
            access,
        });
    }
    // The security account first, then the ones the runbook can act in.
    rows.sort_by_key(|r| {
        (
            !matches!(r.access, Access::Own),
            !r.access.can_act(),
            r.account.id.clone(),
        )
    });
    out.update(
        &handle,
        render::accounts(
            &rows,
            organisation.unavailable.as_deref(),
            &cx.settings().member_role,
            lang,
        ),
    );
    Ok(())
}
