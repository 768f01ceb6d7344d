//! What every magic needs: the session, where its output goes, the backend,
//! advisor and knowledge base (each made once and kept until the settings that
//! chose it change), and the two look-ups most magics start with: [`Context::resolve`]
//! (a finding reference) and [`Context::consult`] (the organisation's policy).

use std::future::Future;
use std::sync::Arc;

use runbook::advisor::{self, Advisor, AdvisorKind, Usage};
use runbook::cloud::{Connected, FetchProgress};
use runbook::finding::{Finding, FindingFilter, FindingRef};
use runbook::kb::{self, KnowledgeBase, PolicyContext};
use runbook::settings::{Lang, SettingKey, Settings};

pub use crate::error::{ErrorKind, MagicError};
pub use crate::output::{DisplayHandle, Output};
use crate::render::{self, Bundle};
use crate::session::{ChosenAdvisor, KbSlot};
pub use crate::session::{Listing, Session, StoredPlan};

/// One cell's view of the kernel: its session and its output.
pub struct Context<'a> {
    pub session: &'a mut Session,
    pub out: &'a dyn Output,
}

impl<'a> Context<'a> {
    pub fn new(session: &'a mut Session, out: &'a dyn Output) -> Context<'a> {
        Context { session, out }
    }

    /// A shorter-lived context over the same session and output, for a helper
    /// that holds one while the caller keeps its own.
    pub fn reborrow(&mut self) -> Context<'_> {
        Context {
            session: &mut *self.session,
            out: self.out,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.session.settings
    }

    /// Runs `work` until it finishes or the cell is interrupted, whichever comes first.
    pub async fn cancellable<T>(&self, work: impl Future<Output = T>) -> Result<T, MagicError> {
        crate::output::cancellable(self.out, work).await
    }

    /// The backend for this session's settings; says so while it looks for credentials.
    pub async fn cloud(&mut self) -> Result<Connected, MagicError> {
        let connecting = self.session.clouds.get(&self.session.settings);
        Ok(crate::output::cancellable(self.out, connecting).await??)
    }

    /// Who is acting, as the audit names them: the STS caller on AWS; in the
    /// sandbox, the `identity` setting when set.
    pub async fn actor(&mut self) -> Result<String, MagicError> {
        let connected = self.cloud().await?;
        if connected.describe().kind == runbook::cloud::BackendKind::Sandbox
            && let Some(name) = &self.session.settings.identity
        {
            return Ok(name.clone());
        }
        Ok(self
            .cancellable(connected.cloud.caller_identity())
            .await??)
    }

    /// `222222222222 (workload)`: the account with its name from the
    /// organisation, or the id alone when names are not known.
    pub async fn account_label(&mut self, account: &runbook::finding::AccountId) -> String {
        match self.cloud().await {
            Ok(connected) => match self.cancellable(connected.cloud.organisation()).await {
                Ok(organisation) => organisation.label(account),
                Err(_) => account.to_string(),
            },
            Err(_) => account.to_string(),
        }
    }

    /// The advisor for the session's settings (and why it was chosen), chosen
    /// again only when they change.
    pub async fn advisor(&mut self) -> Result<(Arc<dyn Advisor>, String), MagicError> {
        let connected = self.cloud().await?;
        let backend = connected.describe().kind;
        let settings = &self.session.settings;
        let key = (
            settings.model.clone(),
            settings.region.clone(),
            settings.profile.clone(),
            format!(
                "{backend}/{}/{}",
                settings.source(SettingKey::Model),
                settings.max_tokens
            ),
        );
        if let Some(chosen) = &self.session.advisor
            && chosen.key == key
        {
            return Ok((chosen.advisor.clone(), chosen.reason.clone()));
        }
        let (advisor, reason) =
            crate::output::cancellable(self.out, advisor::choose(settings, backend)).await??;
        self.session.advisor = Some(ChosenAdvisor {
            key,
            advisor: advisor.clone(),
            reason: reason.clone(),
        });
        Ok((advisor, reason))
    }

    /// The configured knowledge base, opened again only when the settings naming it change.
    pub async fn knowledge_base(&mut self) -> Result<Option<Arc<dyn KnowledgeBase>>, MagicError> {
        let Some(value) = self.session.settings.kb.clone() else {
            self.session.kb = None;
            return Ok(None);
        };
        let cwd = std::env::current_dir().unwrap_or_default();
        let key = format!(
            "{value}\u{0}{}\u{0}{:?}\u{0}{:?}",
            cwd.display(),
            self.session.settings.region,
            self.session.settings.profile
        );
        if let Some(slot) = &self.session.kb
            && slot.key == key
        {
            return Ok(Some(slot.kb.clone()));
        }
        let opened = self
            .cancellable(kb::open(&self.session.settings, &cwd))
            .await??;
        let Some(opened) = opened else {
            return Ok(None);
        };
        self.session.kb = Some(KbSlot {
            key,
            kb: opened.clone(),
        });
        Ok(Some(opened))
    }

    /// What the knowledge base says about a finding; `None` when none is configured.
    pub async fn consult(
        &mut self,
        finding: &Finding,
    ) -> Result<Option<PolicyContext>, MagicError> {
        let Some(kb) = self.knowledge_base().await? else {
            return Ok(None);
        };
        let context = self
            .cancellable(kb::consult(kb.as_ref(), finding))
            .await??;
        Ok(Some(context))
    }

    /// Finds what a reference names: a number in the last listing, or an Id looked up
    /// in the listing first and then in the backend.
    pub async fn resolve(&mut self, reference: &FindingRef) -> Result<Finding, MagicError> {
        match reference {
            FindingRef::Index(n) => {
                let listing = self.session.listing.as_ref().ok_or_else(|| {
                    MagicError::usage(format!(
                        "there is no listing to take finding {n} from: run %findings first, or give a finding Id"
                    ))
                })?;
                let count = listing.findings.len();
                listing.findings.get(n - 1).cloned().ok_or_else(|| {
                    MagicError::usage(if count == 0 {
                        format!("the last listing is empty, so it has no finding {n}")
                    } else {
                        format!("there is no finding {n} in the last listing; accepted: 1 to {count}, or a finding Id")
                    })
                })
            }
            FindingRef::Id(id) => {
                if let Some(found) = self
                    .session
                    .listing
                    .as_ref()
                    .and_then(|l| l.findings.iter().find(|f| &f.id == id))
                {
                    return Ok(found.clone());
                }
                let connected = self.cloud().await?;
                let filter = FindingFilter::by_ids([id.clone()]);
                let mut ignore = |_: FetchProgress, _: &[runbook::finding::Finding]| {};
                let found = self
                    .cancellable(connected.cloud.get_findings(&filter, &mut ignore))
                    .await??;
                found.into_iter().next().ok_or_else(|| {
                    MagicError::new(
                        ErrorKind::NotFound,
                        format!(
                            "no finding with Id {id} in the {} backend",
                            connected.describe().kind
                        ),
                    )
                })
            }
        }
    }
}

/// `--lang en|ja`, shared by the magics that write in the session language.
pub fn lang_parser() -> impl clap::builder::TypedValueParser<Value = Lang> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["en", "ja"]).try_map(|s: String| s.parse::<Lang>())
}

/// One display that shows a model's text as it streams in, then its final form.
pub struct StreamingDisplay<'a> {
    out: &'a dyn Output,
    handle: DisplayHandle,
    kind: AdvisorKind,
    /// JSON fields every bundle of this display carries.
    pub extra: serde_json::Value,
    status: &'static str,
    /// Everything that has arrived so far.
    pub text: String,
}

impl<'a> StreamingDisplay<'a> {
    pub fn start(
        out: &'a dyn Output,
        kind: AdvisorKind,
        extra: serde_json::Value,
        waiting: &str,
        status: &'static str,
    ) -> StreamingDisplay<'a> {
        let handle = out.display(render::plan::explanation(
            waiting,
            &kind,
            None,
            None,
            extra.clone(),
        ));
        StreamingDisplay {
            out,
            handle,
            kind,
            extra,
            status,
            text: String::new(),
        }
    }

    pub fn push(&mut self, piece: &str) {
        self.text.push_str(piece);
        let bundle = render::plan::explanation(
            &self.text,
            &self.kind,
            None,
            Some(self.status),
            self.extra.clone(),
        );
        self.out.update(&self.handle, bundle);
    }

    /// Replaces the display with `text` and an optional status line.
    pub fn show(&self, text: &str, usage: Option<&Usage>, status: Option<&str>) {
        let bundle = render::plan::explanation(text, &self.kind, usage, status, self.extra.clone());
        self.out.update(&self.handle, bundle);
    }

    pub fn replace(&self, bundle: Bundle) {
        self.out.update(&self.handle, bundle);
    }
}
