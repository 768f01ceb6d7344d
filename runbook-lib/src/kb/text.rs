//! Tokenisation that finds English and Japanese alike: words of letters and
//! digits (lower-cased, English-stemmed), and overlapping character bigrams
//! for runs of Japanese (or other CJK) script, which has no spaces between words.
//! The same analyzer indexes, queries and highlights, so they always agree.

use std::collections::BTreeSet;

use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the analyzer is registered under in the index.
pub const ANALYZER: &str = "runbook_mixed";

/// Kana, CJK ideographs, Hangul and their punctuation-free neighbours.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // Half-width katakana
        | 0x20000..=0x2FFFF) // CJK extensions B+
}

/// Words and CJK bigrams, before lower-casing and stemming.
#[derive(Clone, Default)]
pub struct MixedTokenizer;

pub struct MixedTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for MixedTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1).min(self.tokens.len() - 1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        let i = self.next.saturating_sub(1).min(self.tokens.len() - 1);
        &mut self.tokens[i]
    }
}

fn push(tokens: &mut Vec<Token>, text: &str, from: usize, to: usize) {
    let position = tokens.len();
    tokens.push(Token {
        offset_from: from,
        offset_to: to,
        position,
        text: text[from..to].to_string(),
        position_length: 1,
    });
}

/// Splits `text` into (offset_from, offset_to) spans of words and CJK bigrams.
fn spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i + 1).map_or(text.len(), |(o, _)| *o);
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if is_cjk(c) {
            let mut j = i;
            while j + 1 < chars.len() && is_cjk(chars[j + 1].1) {
                j += 1;
            }
            if i == j {
                out.push((start, end_of(i)));
            } else {
                for pair in chars[i..=j].windows(2) {
                    out.push((pair[0].0, pair[1].0 + pair[1].1.len_utf8()));
                }
            }
            i = j + 1;
        } else if c.is_alphanumeric() {
            let mut j = i;
            while j + 1 < chars.len() && chars[j + 1].1.is_alphanumeric() && !is_cjk(chars[j + 1].1)
            {
                j += 1;
            }
            out.push((start, end_of(j)));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

impl Tokenizer for MixedTokenizer {
    type TokenStream<'a> = MixedTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MixedTokenStream {
        let mut tokens = Vec::new();
        for (from, to) in spans(text) {
            push(&mut tokens, text, from, to);
        }
        if tokens.is_empty() {
            // `token()` must always have something to point at.
            tokens.push(Token::default());
            return MixedTokenStream { tokens, next: 1 };
        }
        MixedTokenStream { tokens, next: 0 }
    }
}

/// The analyzer for indexing and querying.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(MixedTokenizer)
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// (offset_from, offset_to, term) of every token of `text`.
pub fn tokens(text: &str) -> Vec<(usize, usize, String)> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let t = stream.token();
        out.push((t.offset_from, t.offset_to, t.text.clone()));
    }
    out
}

/// The distinct terms of a query, in order of first appearance.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tokens(query)
        .into_iter()
        .filter_map(|(_, _, t)| seen.insert(t.clone()).then_some(t))
        .collect()
}

/// Byte ranges of `text` that match a query term, merged where they touch.
pub fn highlights(text: &str, terms: &[String]) -> Vec<(usize, usize)> {
    let wanted: BTreeSet<&str> = terms.iter().map(String::as_str).collect();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (from, to, term) in tokens(text) {
        if !wanted.contains(term.as_str()) {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => ranges.push((from, to)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_words_are_lowercased_and_stemmed() {
        assert_eq!(
            query_terms("Passwords, MINIMUM length!"),
            ["password", "minimum", "length"]
        );
        assert!(query_terms("!!! ...").is_empty());
    }

    #[test]
    fn japanese_runs_become_bigrams() {
        assert_eq!(query_terms("パスワード"), ["パス", "スワ", "ワー", "ード"]);
        assert_eq!(query_terms("暗号"), ["暗号"]);
        assert_eq!(query_terms("鍵"), ["鍵"]);
        // Mixed text: the Latin word and the Japanese bigrams are separate tokens.
        assert_eq!(query_terms("IAMの設定"), ["iam", "の設", "設定"]);
    }

    #[test]
    fn highlights_cover_matches_and_merge_bigrams() {
        let text = "最小文字数は 64 文字以上、パスワードは長く。";
        let terms = query_terms("パスワード");
        let ranges = highlights(text, &terms);
        assert_eq!(ranges.len(), 1);
        let (a, b) = ranges[0];
        assert_eq!(&text[a..b], "パスワード");
        let text = "Passwords must be long; the password length is 64.";
        let ranges = highlights(text, &query_terms("password"));
        let words: Vec<&str> = ranges.iter().map(|(a, b)| &text[*a..*b]).collect();
        assert_eq!(words, ["Passwords", "password"]);
    }
}
