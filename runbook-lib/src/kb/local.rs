//! A local folder of Markdown policy files, indexed in memory with tantivy,
//! one document per heading section. The folder is re-read whenever a file is
//! added, removed or changed (checked by size and modification time, at most once
//! a second: stating 10,000 files on every query cost more than the query).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tantivy::collector::TopDocs;
use tantivy::query::BooleanQuery;
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::document;
use super::text::{self, ANALYZER};
use super::{KbError, KbInfo, KnowledgeBase, Overview, Passage, Problem, SearchResult};
use crate::catalog::PolicyValues;

/// Files larger than this are not policy documents.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// How deep the folder is read.
const MAX_DEPTH: usize = 8;
/// Indexing threads: tokenising runs beside the main thread's file parsing.
const WRITER_THREADS: usize = 2;
/// The indexer's memory budget, shared by its threads (tantivy's minimum is 15 MB
/// per thread); 10,000 policy files index without flushing a segment early.
const WRITER_BUDGET: usize = 96 * 1024 * 1024;

/// How long a check of the folder stays fresh.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// What a file looked like when it was indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

struct IndexedSection {
    source: String,
    heading: String,
    text: String,
}

/// One build of the index over the folder as it was.
struct Indexed {
    stamps: Vec<Stamp>,
    /// Files seen that could not be stamped (broken links, permissions).
    unreadable: Vec<Problem>,
    reader: IndexReader,
    text_field: Field,
    section_field: Field,
    sections: Vec<IndexedSection>,
    documents: usize,
    values: Result<PolicyValues, KbError>,
    ignored: Vec<String>,
    problems: Vec<Problem>,
}

pub struct LocalKnowledgeBase {
    root: PathBuf,
    recheck_after: Duration,
    state: Mutex<Option<Checked>>,
}

/// The index and when the folder was last compared with it.
struct Checked {
    indexed: Arc<Indexed>,
    at: Instant,
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn is_markdown(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"))
}

impl LocalKnowledgeBase {
    /// Opens and indexes a folder; it must exist and hold Markdown files.
    pub fn open(root: &Path) -> Result<LocalKnowledgeBase, KbError> {
        Self::open_with_recheck(root, RECHECK_AFTER)
    }

    /// As [`open`](Self::open), with the folder compared at most once per `recheck_after`.
    pub fn open_with_recheck(
        root: &Path,
        recheck_after: Duration,
    ) -> Result<LocalKnowledgeBase, KbError> {
        let kb = LocalKnowledgeBase {
            root: root.to_path_buf(),
            recheck_after,
            state: Mutex::new(None),
        };
        kb.current()?;
        Ok(kb)
    }

    fn folder(&self) -> String {
        self.root.display().to_string()
    }

    /// The Markdown files under the folder, sorted, with what could not be read.
    fn scan(&self) -> Result<(Vec<Stamp>, Vec<Problem>), KbError> {
        if !self.root.is_dir() {
            return Err(KbError::Unreadable {
                folder: self.folder(),
                message: "it does not exist or is not a folder".to_string(),
            });
        }
        let mut stamps = Vec::new();
        let mut problems = Vec::new();
        let walk = walkdir::WalkDir::new(&self.root)
            .follow_links(true)
            .max_depth(MAX_DEPTH)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_file() && is_markdown(e.path()) => match e.metadata() {
                    Ok(m) => stamps.push(Stamp {
                        path: e.path().to_path_buf(),
                        len: m.len(),
                        modified: m.modified().ok(),
                    }),
                    Err(err) => problems.push(Problem {
                        source: relative(&self.root, e.path()),
                        message: err.to_string(),
                    }),
                },
                Ok(_) => {}
                Err(err) => {
                    let source = err
                        .path()
                        .map_or_else(|| self.folder(), |p| relative(&self.root, p));
                    if err.depth() == 0 {
                        return Err(KbError::Unreadable {
                            folder: self.folder(),
                            message: err.to_string(),
                        });
                    }
                    let message = err
                        .io_error()
                        .map_or_else(|| err.to_string(), ToString::to_string);
                    problems.push(Problem { source, message });
                }
            }
        }
        Ok((stamps, problems))
    }

    /// The index for the folder as it is now, rebuilt if anything changed.
    fn current(&self) -> Result<Arc<Indexed>, KbError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| KbError::Config("the policy index is unusable after a crash".into()))?;
        if let Some(checked) = state.as_ref()
            && checked.at.elapsed() < self.recheck_after
        {
            return Ok(checked.indexed.clone());
        }
        let (stamps, unreadable) = self.scan()?;
        if stamps.is_empty() && unreadable.is_empty() {
            return Err(KbError::NoDocuments {
                folder: self.folder(),
            });
        }
        let at = Instant::now();
        if let Some(checked) = state.as_mut()
            && checked.indexed.stamps == stamps
            && checked.indexed.unreadable == unreadable
        {
            checked.at = at;
            return Ok(checked.indexed.clone());
        }
        let indexed = Arc::new(self.build(stamps, unreadable)?);
        *state = Some(Checked {
            indexed: indexed.clone(),
            at,
        });
        Ok(indexed)
    }

    fn build(&self, stamps: Vec<Stamp>, unreadable: Vec<Problem>) -> Result<Indexed, KbError> {
        let index_error =
            |e: tantivy::TantivyError| KbError::Config(format!("indexing failed: {e}"));
        let mut schema = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs);
        let text_field = schema.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(indexing),
        );
        let section_field = schema.add_u64_field("section", INDEXED | STORED);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, text::analyzer());
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(WRITER_THREADS, WRITER_BUDGET)
            .map_err(index_error)?;

        let mut sections = Vec::new();
        let mut problems = unreadable.clone();
        let mut values = Ok(PolicyValues::new());
        let mut ignored = Vec::new();
        let mut documents = 0;
        for stamp in &stamps {
            let source = relative(&self.root, &stamp.path);
            if stamp.len > MAX_FILE_BYTES {
                problems.push(Problem {
                    source,
                    message: format!("larger than {} MiB; not read", MAX_FILE_BYTES >> 20),
                });
                continue;
            }
            let bytes = match std::fs::read(&stamp.path) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(Problem {
                        source,
                        message: format!("could not be read: {e}"),
                    });
                    continue;
                }
            };
            let Ok(content) = String::from_utf8(bytes) else {
                problems.push(Problem {
                    source,
                    message: "is not UTF-8 text; save it as UTF-8".to_string(),
                });
                continue;
            };
            let stem = stamp
                .path
                .file_stem()
                .map_or_else(|| source.clone(), |s| s.to_string_lossy().to_string());
            let (doc, problem) = document::parse(&content, &source, &stem);
            if let Some(message) = problem {
                problems.push(Problem {
                    source: source.clone(),
                    message,
                });
            }
            documents += 1;
            if let Ok(v) = values.as_mut()
                && let Err(conflict) = super::merge_values(v, &doc.values)
            {
                values = Err(conflict);
            }
            ignored.extend(doc.ignored.iter().map(|i| format!("{source}: {i}")));
            for section in doc.sections {
                let id = sections.len() as u64;
                let mut d = TantivyDocument::default();
                d.add_text(text_field, &section.heading);
                d.add_text(text_field, &section.text);
                d.add_u64(section_field, id);
                writer.add_document(d).map_err(index_error)?;
                sections.push(IndexedSection {
                    source: source.clone(),
                    heading: section.heading,
                    text: section.text,
                });
            }
        }
        writer.commit().map_err(index_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        Ok(Indexed {
            stamps,
            unreadable,
            reader,
            text_field,
            section_field,
            sections,
            documents,
            values,
            ignored,
            problems,
        })
    }
}

#[async_trait::async_trait]
impl KnowledgeBase for LocalKnowledgeBase {
    fn info(&self) -> KbInfo {
        KbInfo::Local {
            folder: self.folder(),
        }
    }

    async fn search(&self, query: &str, top: usize) -> Result<SearchResult, KbError> {
        let top = super::check_top(top)?;
        let terms = text::query_terms(query);
        if terms.is_empty() {
            return Err(KbError::EmptyQuery);
        }
        let indexed = self.current()?;
        let searcher = indexed.reader.searcher();
        let query_terms = terms
            .iter()
            .map(|t| Term::from_field_text(indexed.text_field, t))
            .collect();
        let found = searcher
            .search(
                &BooleanQuery::new_multiterms_query(query_terms),
                &TopDocs::with_limit(top).order_by_score(),
            )
            .map_err(|e| KbError::Config(format!("search failed: {e}")))?;
        let mut passages = Vec::new();
        for (score, address) in found {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(|e| KbError::Config(format!("search failed: {e}")))?;
            let Some(section) = doc
                .get_first(indexed.section_field)
                .and_then(|v| v.as_u64())
                .and_then(|i| indexed.sections.get(usize::try_from(i).ok()?))
            else {
                continue;
            };
            passages.push(Passage {
                source: section.source.clone(),
                heading: section.heading.clone(),
                highlights: text::highlights(&section.text, &terms),
                text: section.text.clone(),
                score,
            });
        }
        Ok(SearchResult {
            kb: self.info(),
            query: query.to_string(),
            passages,
            problems: indexed.problems.clone(),
        })
    }

    /// Every value the folder's front matter sets: all of them apply, whatever the search ranked.
    async fn values(&self, _passages: &[Passage]) -> Result<PolicyValues, KbError> {
        let indexed = self.current()?;
        if !indexed.problems.is_empty() {
            return Err(KbError::Incomplete(indexed.problems.clone()));
        }
        indexed.values.clone()
    }

    async fn overview(&self) -> Result<Overview, KbError> {
        let indexed = self.current()?;
        let mut problems = indexed.problems.clone();
        if let Err(conflict) = &indexed.values {
            problems.push(Problem {
                source: self.folder(),
                message: conflict.to_string(),
            });
        }
        Ok(Overview {
            kb: self.info(),
            documents: Some(indexed.documents),
            passages: Some(indexed.sections.len()),
            values: indexed.values.clone().unwrap_or_default(),
            ignored: indexed.ignored.clone(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Folder(PathBuf);

    impl Folder {
        fn new(name: &str) -> Folder {
            // Tests run in parallel: each folder gets its own name.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("kb-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Folder(p)
        }

        fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const EN: &str = "---\ncontrols:\n  IAM.7:\n    MinimumPasswordLength: 64\n---\n# Password policy\n\n## Minimum length\n\nEvery password has at least 64 characters.\n\n## Rotation\n\nPasswords expire after 90 days.\n";
    const JA: &str = "---\ncontrols:\n  IAM.7:\n    MinimumPasswordLength: 64\n---\n# パスワードポリシー\n\n## 最小文字数\n\nパスワードは 64 文字以上とする。\n\n## 暗号化\n\nEBS ボリュームは既定で暗号化する。\n";
    const NET: &str =
        "# Network access\n\n## SSH\n\nSSH from 0.0.0.0/0 is forbidden; use Session Manager.\n";

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn policies() -> Folder {
        let f = Folder::new("policies");
        f.write("en/password.md", EN);
        f.write("ja/password.md", JA);
        f.write("en/network.md", NET);
        f.write(
            ".ipynb_checkpoints/old.md",
            "# Old\n\nMinimum length 8 characters\n",
        );
        f.write("notes.txt", "not markdown: password minimum length");
        f
    }

    #[test]
    fn english_and_japanese_queries_find_their_sections() {
        let f = policies();
        let kb = LocalKnowledgeBase::open(&f.0).unwrap();
        let r = block_on(kb.search("password minimum length", 5)).unwrap();
        assert_eq!(r.passages[0].source, "en/password.md");
        assert_eq!(r.passages[0].heading, "Password policy › Minimum length");
        assert!(r.passages.iter().all(|p| !p.source.contains("checkpoints")));
        let hl: Vec<&str> = r.passages[0]
            .highlights
            .iter()
            .map(|(a, b)| &r.passages[0].text[*a..*b])
            .collect();
        assert!(hl.contains(&"password"), "{hl:?}");
        let r = block_on(kb.search("パスワードの最小文字数", 5)).unwrap();
        assert_eq!(r.passages[0].source, "ja/password.md");
        assert_eq!(r.passages[0].heading, "パスワードポリシー › 最小文字数");
        let r = block_on(kb.search("暗号化", 1)).unwrap();
        assert_eq!(r.passages[0].heading, "パスワードポリシー › 暗号化");
        let r = block_on(kb.search("SSH Session Manager", 1)).unwrap();
        assert_eq!(r.passages[0].source, "en/network.md");
        assert!(matches!(
            block_on(kb.search("?!", 3)),
            Err(KbError::EmptyQuery)
        ));
        assert!(matches!(
            block_on(kb.search("x", 0)),
            Err(KbError::BadTop(0))
        ));
    }

    #[test]
    fn values_come_from_front_matter_and_cite_their_section() {
        let f = policies();
        let kb = LocalKnowledgeBase::open(&f.0).unwrap();
        let values = block_on(kb.values(&[])).unwrap();
        let v = values.get("IAM.7", "MinimumPasswordLength").unwrap();
        assert_eq!(v.value, json!(64));
        assert_eq!(v.source, "en/password.md");
        assert_eq!(v.heading, "Password policy › Minimum length");
        let o = block_on(kb.overview()).unwrap();
        assert_eq!(o.documents, Some(3));
        assert!(o.problems.is_empty());
    }

    #[test]
    fn changes_within_the_recheck_window_wait_for_it() {
        let f = policies();
        let window = Duration::from_millis(300);
        let opened = Instant::now();
        let kb = LocalKnowledgeBase::open_with_recheck(&f.0, window).unwrap();
        let found = |kb: &LocalKnowledgeBase| {
            !block_on(kb.search("logging retention", 3))
                .unwrap()
                .passages
                .is_empty()
        };
        assert!(!found(&kb));
        f.write(
            "en/logging.md",
            "# Logging\n\n## Retention\n\nKeep CloudTrail logs for 400 days: logging retention.\n",
        );
        let seen_at_once = found(&kb);
        if opened.elapsed() < window {
            assert!(
                !seen_at_once,
                "the folder was compared again inside the window"
            );
        }
        std::thread::sleep(window);
        assert!(
            found(&kb),
            "the first query after the window sees the change"
        );
    }

    #[test]
    fn changes_are_picked_up() {
        let f = policies();
        let kb = LocalKnowledgeBase::open_with_recheck(&f.0, Duration::ZERO).unwrap();
        assert!(
            block_on(kb.search("logging retention", 3))
                .unwrap()
                .passages
                .is_empty()
        );
        f.write(
            "en/logging.md",
            "# Logging\n\n## Retention\n\nKeep CloudTrail logs for 400 days: logging retention.\n",
        );
        let r = block_on(kb.search("logging retention", 3)).unwrap();
        assert_eq!(r.passages[0].source, "en/logging.md");
        f.write("en/password.md", EN.replace("64", "80"));
        let e = block_on(kb.values(&[])).unwrap_err().to_string();
        assert!(
            e.contains("80 in en/password.md but 64 in ja/password.md"),
            "{e}"
        );
    }

    #[test]
    fn bad_folders_and_files_get_clear_errors() {
        let missing = LocalKnowledgeBase::open(Path::new("/nonexistent/policies"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
        let empty = Folder::new("empty");
        empty.write("readme.txt", "x");
        let e = LocalKnowledgeBase::open(&empty.0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("has no Markdown (.md) files"), "{e}");

        let f = policies();
        f.write("en/binary.md", [0xff_u8, 0xfe, 0x00, 0x41]);
        f.write(
            "en/broken.md",
            "---\ncontrols: [\n---\n# Broken\n\npassword text\n",
        );
        #[cfg(unix)]
        std::os::unix::fs::symlink(f.0.join("gone.md"), f.0.join("en/dangling.md")).unwrap();
        let kb = LocalKnowledgeBase::open(&f.0).unwrap();
        let r = block_on(kb.search("password", 10)).unwrap();
        let problems: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        let all = problems.join("\n");
        assert!(all.contains("en/binary.md: is not UTF-8"), "{all}");
        assert!(
            all.contains("en/broken.md: malformed front matter: invalid YAML"),
            "{all}"
        );
        #[cfg(unix)]
        assert!(all.contains("en/dangling.md"), "{all}");
        // The broken file's text is still searchable; its values are not trusted.
        assert!(r.passages.iter().any(|p| p.source == "en/broken.md"));
        let e = block_on(kb.values(&[])).unwrap_err().to_string();
        assert!(e.contains("could not be read completely"), "{e}");
    }
}
