//! The words the kernel shows around results, in English and Japanese. Each
//! message is written once here in both languages (the macro takes no message
//! without both), with numbered holes `{0}`, `{1}` for ids and values, which
//! stay as they are in either language. A test checks every message.

use runbook::settings::Lang;

macro_rules! texts {
    ($($name:ident => $en:literal, $ja:literal;)+) => {
        /// A message shown to users; [`Text::fill`] gives it in a language.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Text { $($name,)+ }

        impl Text {
            pub const ALL: &'static [Text] = &[$(Text::$name,)+];

            pub fn en(self) -> &'static str {
                match self { $(Text::$name => $en,)+ }
            }

            pub fn ja(self) -> &'static str {
                match self { $(Text::$name => $ja,)+ }
            }
        }
    };
}

texts! {
    ApprovalNeeded => "Approval needed", "承認が必要です";
    DryRunAhead => "Dry run (nothing will change)", "ドライラン (何も変更しません)";
    DryRunOf => "Dry run of {0} — nothing was changed.", "{0} のドライラン — 何も変更していません。";
    NotApproved => "Not approved: {0} — {1}", "承認されませんでした: {0} — {1}";
    AlreadyRan => "{0} already ran successfully (see the audit trail in {1}); nothing was changed.", "{0} は既に正常に実行されています (監査証跡 {1} を参照)。何も変更していません。";
    PlanHeading => "{0} — {1} · {2} in {3}", "{0} — {1} · {2} ({3} リージョン)";
    ApprovedBy => "Approved by {0}", "承認者: {0}";
    RollbackNeedsApproval => "Rollback needs approval", "ロールバックには承認が必要です";
    UndoesActionN => "action {0}", "アクション {0}";
    StatePending => "pending", "待機中";
    StateRunning => "running…", "実行中…";
    StateDone => "applied and verified", "適用・検証済み";
    StateNoOp => "already in place (no-op)", "既に適用済み (変更なし)";
    StateFailed => "failed", "失敗";
    StateRolledBack => "rolled back", "ロールバック済み";
    OutcomeRunning => "Running…", "実行中…";
    OutcomeDone => "Done: every action applied and verified; {0}.", "完了: すべてのアクションを適用し、検証しました。{0}。";
    FindingResolved => "the finding is marked RESOLVED with a note naming the plan", "検出結果をプラン ID を記したメモとともに RESOLVED にしました";
    FindingUpdateRefused => "the finding update was refused for {0} finding(s): {1}", "{0} 件の検出結果の更新が拒否されました: {1}";
    FindingUpdateFailed => "the change holds, but updating the finding failed: {0}", "変更は適用済みですが、検出結果の更新に失敗しました: {0}";
    OutcomeNothingToDo => "Nothing to do: every action's intended state already holds; nothing was changed.", "対応不要: すべてのアクションの目標状態が既に満たされています。何も変更していません。";
    OutcomeDrifted => "Stopped before any change: the live state drifted since the plan was made ({0}).", "変更前に停止しました: プラン作成後に実際の状態が変わっています ({0})。";
    OutcomeActionFailed => "Action {0} failed: {1}.", "アクション {0} が失敗しました: {1}。";
    RolledBackBefore => "Everything applied before it was rolled back.", "それまでに適用した変更はすべてロールバックしました。";
    RollbackProblems => "Rollback problems: {0}", "ロールバックの問題: {0}";
    OutcomeInterrupted => "Interrupted between actions: what had been applied was rolled back.", "アクションの間で中断しました。適用済みの変更はロールバックしました。";
    OutcomeInterruptedProblems => "Interrupted; rollback problems: {0}", "中断しました。ロールバックの問題: {0}";
    OutcomeJournalFailed => "Stopped: the audit trail could not be written ({0}).", "停止しました: 監査証跡に書き込めませんでした ({0})。";
    NoteDrift => "drift: {0}", "ドリフト: {0}";
    NoteAlreadyInPlace => "already in place: no-op", "適用済み: 変更なし";
    NoteWouldChange => "would change", "変更あり";
    NoteUnreadable => "could not read: {0}", "読み取れませんでした: {0}";
    ColAction => "Action", "アクション";
    ColWhatItDoes => "What it does", "内容";
    ColState => "State", "状態";
    ColError => "Error", "エラー";
    ColNow => "Now", "現在";
    ColWouldBecome => "Would become", "変更後";
    ColNote => "Note", "備考";
    ColUndoes => "Undoes action", "取り消すアクション";
    ColInverse => "Inverse", "逆操作";
    ColAfter => "After", "変更後";
    FindingsHeading => "{0} finding(s) ({1}) — {2}", "検出結果 {0} 件 ({1}) — {2}";
    FindingsLimited => " — limited; use --limit N or --all for more", " — 件数を制限しています。--limit N または --all で増やせます";
    FindingsReadOfTotal => "Reading… {0} of {1} read.", "読み込み中… {1} 件中 {0} 件。";
    FindingsReadSoFar => "Reading… {0} read so far.", "読み込み中… ここまで {0} 件。";
    FindingsSource => "Source: {0}", "取得元: {0}";
    FindingsCounted => "{0} finding(s) match, counted by {1} before any page is read", "該当する検出結果は {0} 件です ({1} による集計。ページを読む前の件数)";
    FindingsCountsUnavailable => "Counts are not available up front ({0}); the table fills as pages arrive.", "事前の件数は取得できません ({0})。ページが届くたびに表が埋まります。";
    FindingsNoneMatch => "No findings match.", "条件に一致する検出結果はありません。";
    FindingsShowingFirst => "Showing the first {0} of {1}. %finding N opens any of them; filters narrow the list.", "{1} 件中、最初の {0} 件を表示しています。%finding N でどれでも開けます。フィルターで絞り込めます。";
    FindingsHint => "%finding N shows one in full; %summarize N and %remediate N act on it.", "%finding N で詳細を表示し、%summarize N と %remediate N で対応します。";
    ColSeverity => "Severity", "重要度";
    ColControl => "Control", "コントロール";
    ColTitle => "Title", "タイトル";
    ColResource => "Resource", "リソース";
    ColAccount => "Account", "アカウント";
    ColRegion => "Region", "リージョン";
    ColWorkflow => "Workflow", "ワークフロー";
    ColUpdated => "Updated", "更新日時";
    AuditHeading => "{0} audit record(s) in {1}", "{1} の監査レコード {0} 件";
    ColTime => "Time", "日時";
    ColEvent => "Event", "イベント";
    ColPlan => "Plan", "プラン";
    ColActor => "Actor", "実行者";
    ColAccountRegion => "Account / region", "アカウント / リージョン";
    ColDetail => "Detail", "詳細";
    ColCompliance => "Compliance", "コンプライアンス";
    ColRecordState => "Record state", "レコード状態";
    ColProduct => "Product", "製品";
    ColFindingNote => "Note", "メモ";
    ColNoteBy => "Note by", "メモの記入者";
    ColType => "Type", "種類";
    ColName => "Name", "名前";
    ColTags => "Tags", "タグ";
    ResourcesHeading => "Resources", "リソース";
    ResourceLine => "Resource: {0} {1}", "リソース: {0} {1}";
    RemediationLink => "Remediation: {0}", "修復手順: {0}";
    FullFinding => "Full finding (ASFF JSON)", "検出結果の全体 (ASFF JSON)";
    NoteAt => "{0} at {1}", "{0} ({1} に記入)";
    ChartTitle => "Findings by severity", "重要度別の検出結果";
    ChartCounts => "Findings by severity: {0}", "重要度別の検出結果: {0}";
    ChartAxisCount => "Findings", "件数";
    ReadingFindings => "Reading findings from {0}…", "{0} から検出結果を読み込んでいます…";
    ReadingFindingsPage => "Reading findings from {0}… page {1}, {2} finding(s) so far", "{0} から検出結果を読み込んでいます… {1} ページ目、ここまで {2} 件";
    ReadingUnreadable => " ({0} could not be read)", " ({0} 件は読み取れませんでした)";
    ReadingFailed => "Reading findings failed: {0}", "検出結果の読み込みに失敗しました: {0}";
    AccountsHeading => "{0} account(s) — the runbook can act in {1} (member role {2})", "アカウント {0} 件 — Runbook が操作できるのは {1} 件 (メンバーロール {2})";
    ColStatus => "Status", "ステータス";
    ColOpenFindings => "Open findings", "未対応の検出結果";
    ColCanAct => "Can act", "操作可否";
    AccessOwn => "yes: the security account itself", "可: セキュリティアカウント自身";
    AccessRole => "yes: {0}", "可: {0}";
    AccessDenied => "no: {0}", "不可: {0}";
    CountsNone => "none", "なし";
    AccountsListing => "Listing the organisation's accounts…", "組織のアカウントを一覧しています…";
    AccountsCounting => "Counting open findings… page {0}, {1} so far", "未対応の検出結果を数えています… {0} ページ目、ここまで {1} 件";
    AccountsChecking => "Checking the member role in account {0} of {1}…", "メンバーロールを確認しています… {1} 件中 {0} 件目";
    AccountSuspendedReason => "the account is {0}; nothing can be changed there", "アカウントは {0} です。変更はできません";
    SettingsHeading => "Settings (environment variable in brackets):", "設定 (括弧内は環境変数):";
    ColSetting => "Setting", "設定";
    ColValue => "Value", "値";
    ColSource => "Source", "設定元";
    ColEnvironment => "Environment", "環境変数";
    ColAccepted => "Accepted", "指定できる値";
    IgnoredFromEnv => "Ignored at start-up from the environment: {0}", "起動時に環境変数から無視した値: {0}";
    BackendInUse => "Backend in use: {0}", "使用中のバックエンド: {0}";
    NoVariables => "No runbook variables are set. %set NAME=VALUE defines one; $NAME uses it.", "Runbook 変数は設定されていません。%set NAME=VALUE で定義し、$NAME で使います。";
    VariablesHeading => "{0} runbook variable(s)", "Runbook 変数 {0} 件";
    MagicsHeading => "Magics (each accepts --help):", "マジック (いずれも --help が使えます):";
    ColMagic => "Magic", "マジック";
    Waited => "Waited {0} s.", "{0} 秒待ちました。";
    Waiting => "Waiting… {0} of {1} s", "待機中… {1} 秒中 {0} 秒";
    ColAuditTrail => "Audit trail", "監査証跡";
    ColLiveState => "Live state", "実際の状態";
    RecoverNext => "Next: `%recover {0} --finish` applies the actions not applied (those applied are skipped), or `%recover {0} --rollback` undoes those applied. Either asks you to type the plan id.", "次に: `%recover {0} --finish` で未適用のアクションを適用します (適用済みのものはスキップします)。`%recover {0} --rollback` で適用済みのものを取り消します。どちらもプラン ID の入力を求めます。";
    RecoverUnknown => "Some actions drifted or could not be read: neither finishing nor rolling back is offered. Check those resources by hand.", "状態が変わった、または読み取れなかったアクションがあります。完了もロールバックも提示できません。該当するリソースを手動で確認してください。";
    ColParameter => "Parameter", "パラメーター";
    ColPolicyValue => "Policy value", "ポリシーの値";
    ColApplied => "Applied", "適用";
    ColHeading => "Heading", "見出し";
    Yes => "yes", "はい";
    No => "no", "いいえ";
}

impl Text {
    pub fn template(self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en(),
            Lang::Ja => self.ja(),
        }
    }

    /// The message in `lang`, with `{0}`, `{1}`, ... replaced by `values`.
    pub fn fill(self, lang: Lang, values: &[&dyn std::fmt::Display]) -> String {
        let mut text = self.template(lang).to_string();
        for (i, value) in values.iter().enumerate() {
            text = text.replace(&format!("{{{i}}}"), &value.to_string());
        }
        text
    }

    /// The message in `lang`, for messages without holes.
    pub fn get(self, lang: Lang) -> &'static str {
        self.template(lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holes(text: &str) -> Vec<usize> {
        let mut found: Vec<usize> = (0..10)
            .filter(|i| text.contains(&format!("{{{i}}}")))
            .collect();
        found.sort_unstable();
        found
    }

    #[test]
    fn every_message_is_translated_with_the_same_holes() {
        for text in Text::ALL {
            let (en, ja) = (text.en(), text.ja());
            assert!(!en.trim().is_empty(), "{text:?} has no English");
            assert_ne!(en, ja, "{text:?} is not translated");
            assert!(
                ja.chars().any(|c| ('\u{3040}'..='\u{30ff}').contains(&c)
                    || ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{text:?}: the Japanese text has no Japanese in it: {ja}"
            );
            assert_eq!(
                holes(en),
                holes(ja),
                "{text:?}: en and ja fill different holes"
            );
            let filled = text.fill(Lang::Ja, &[&"a", &"b", &"c", &"d"]);
            assert!(!filled.contains('{'), "{text:?}: a hole was left: {filled}");
        }
    }
}
