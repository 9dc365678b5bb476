//! CLIP byte-level BPE tokenizer, a port of the *slow* `CLIPTokenizer` from Hugging Face
//! transformers (`models/clip/tokenization_clip.py`, v4.x; transformers v5 dropped it), which
//! itself follows OpenAI CLIP's `simple_tokenizer.py` (<https://github.com/openai/CLIP>).
//! Stable Diffusion 1.5 and InstructPix2Pix load it from their `tokenizer/` folder
//! (`vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json`) and call it
//! with `padding="max_length", max_length=77, truncation=True`.
//!
//! Pipeline, in transformers' order:
//! 1. split the raw text on the special tokens (exact, case-sensitive match);
//! 2. clean each remaining piece the way transformers does when `ftfy` is *not* installed
//!    (`BasicTokenizer(strip_accents=False, do_split_on_punc=False)`): drop control / format /
//!    unassigned characters, NUL and U+FFFD, turn other whitespace into spaces, put spaces
//!    around CJK ideographs, NFC-normalise, split on whitespace, lower-case, re-join with `" "`;
//! 3. split with CLIP's regex, map UTF-8 bytes to printable characters (`bytes_to_unicode`)
//!    and apply BPE with `</w>` on the last symbol of every piece;
//! 4. add `<|startoftext|>` / `<|endoftext|>`, and for [`ClipTokenizer::encode_padded`]
//!    truncate to `model_max_length - 2` tokens and pad with the pad token.
//!
//! transformers replaces step 2 with `ftfy.fix_text` + whitespace clean-up + lower-casing when
//! the optional `ftfy` package is installed; only the ftfy-less path is reproduced (it is what
//! a plain `pip install transformers diffusers` runs). With ftfy, HTML entities such as
//! `&amp;`, mojibake, control characters and CJK spacing are handled differently.
//!
//! Known differences from the ftfy-less path (none affects ASCII or Latin-script text):
//! * NFC is implemented here with tables taken from Python 3.11 (Unicode 14.0), except that
//!   CJK compatibility ideographs (U+F900–U+FAFF, U+2F800–U+2FA1F) are not mapped to their
//!   unified equivalents.
//! * Letter / number / control classes and lower-casing come from the `regex` crate (Unicode
//!   16.0) and Rust's standard library, while transformers uses the running Python's
//!   `unicodedata` (Python 3.11: Unicode 14.0). transformers deletes characters unassigned in
//!   that database, so e.g. the Unicode 15 emoji U+1FA75 is deleted on Python 3.11 but kept
//!   (and byte-encoded) here; transformers' own output changes with the Python version there.
//! * Only the four special tokens (bos, eos, unk, pad) are treated as added tokens: extra added
//!   tokens (`added_tokens.json`, textual-inversion words) and `lstrip` / `rstrip` /
//!   `single_word` flags are not supported and are reported as errors.
//! * A malformed `merges.txt` line is an error instead of a merge that never applies.
//! * There is no BPE cache; results are identical, only repeated words cost more.

use super::nfc_tables::{CCC_RANGES, COMPOSITION_EXCLUSIONS, DECOMPOSITIONS};
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;

/// Sequence length used when `tokenizer_config.json` does not give `model_max_length`.
const DEFAULT_MAX_LENGTH: usize = 77;
/// Default beginning-of-text token (CLIP's and transformers' default).
const DEFAULT_BOS: &str = "<|startoftext|>";
/// Default end-of-text token; CLIP also uses it for unknown tokens and padding.
const DEFAULT_EOS: &str = "<|endoftext|>";
/// Suffix marking the last symbol of a word in CLIP's BPE vocabulary.
const END_OF_WORD: &str = "</w>";
/// transformers reads `merges.txt` lines `[1 : 49152 - 256 - 2 + 1]`, i.e. at most this many.
const MAX_MERGES: usize = 49152 - 256 - 2;
/// Larger `model_max_length` values are transformers' "unlimited" sentinel (1e30), which
/// cannot be padded to.
const MAX_MODEL_LENGTH: usize = 1 << 20;
/// CLIP's pre-tokenisation regex, compiled by transformers with `re.IGNORECASE` (Python
/// `regex` module). The text is already lower-cased, so the flag only matters through case
/// folding, and that module applies it to the literal alternatives (`'ſ` counts as `'s`) but
/// not to `\p{..}` classes, except that the negated class rejects U+0345 (it folds to a
/// letter) so that character matches nothing and is dropped. The `regex` crate folds classes
/// too, hence the scoped `(?i:..)` and the explicit U+0345.
const SPLIT_PATTERN: &str = r"(?i:<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d)|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{345}]+";
/// Characters `BasicTokenizer._clean_text` deletes: NUL, U+FFFD and every general category
/// `C*` character except tab, newline and carriage return (which count as whitespace).
const DROPPED_CHARS: &str = r"[[\p{C}\x{0}\x{FFFD}]--[\t\n\r]]";
/// Characters `BasicTokenizer._clean_text` turns into a plain space.
const SPACE_CHARS: &str = r"[\t\n\r\p{Zs}]";

/// Errors raised while loading a CLIP tokenizer folder.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required file (`vocab.json` or `merges.txt`) does not exist.
    #[error("missing tokenizer file {}", path.display())]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A file exists but could not be read (permissions, invalid UTF-8, ...).
    #[error("cannot read {}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A JSON file does not parse.
    #[error("{} is not valid JSON", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parser error, with line and column.
        source: serde_json::Error,
    },
    /// `vocab.json` parses but is not an object mapping tokens to `u32` ids.
    #[error("bad vocabulary in {}: {message}", path.display())]
    BadVocab {
        /// The vocabulary file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `merges.txt` line (after the `#version` header) is not two space-separated symbols.
    #[error("malformed merges line {line} in {}: expected two symbols, got {content:?}", path.display())]
    MalformedMerge {
        /// The merges file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// The offending line.
        content: String,
    },
    /// `tokenizer_config.json` or `special_tokens_map.json` has a field this port cannot use.
    #[error("bad tokenizer config {}: {message}", path.display())]
    BadConfig {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// One of this module's built-in regular expressions was rejected by the `regex` crate
    /// (not expected with any `regex` 1.x; reported rather than panicking).
    #[error("built-in tokenizer pattern does not compile")]
    Pattern(#[from] regex::Error),
    /// A special token (bos, eos, unk or pad) is not in the vocabulary.
    #[error("missing special token: {role} {token:?} is not in {}", path.display())]
    MissingSpecialToken {
        /// Which special token: `bos_token`, `eos_token`, `unk_token` or `pad_token`.
        role: &'static str,
        /// The token text that was looked up.
        token: String,
        /// The vocabulary file it was looked up in.
        path: PathBuf,
    },
}

/// CLIP byte-level BPE tokenizer loaded from a tokenizer folder (vocab.json + merges.txt).
///
/// Matches transformers' slow `CLIPTokenizer` (without `ftfy`); see the module documentation
/// for the exact pipeline and the few known differences.
#[derive(Clone)]
pub struct ClipTokenizer {
    encoder: HashMap<String, u32>,
    /// Merge ranks keyed first by the left symbol so lookups can borrow `&str` pairs.
    ranks: HashMap<String, HashMap<String, u32>>,
    byte_encoder: [char; 256],
    split_pattern: Regex,
    cleaner: TextCleaner,
    /// Special-token strings matched verbatim in the raw text (transformers' added-token trie).
    added_tokens: Vec<String>,
    bos_id: u32,
    eos_id: u32,
    unk_id: u32,
    pad_id: u32,
    max_length: usize,
}

impl fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The vocabulary and merge tables are tens of thousands of entries: print sizes only.
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.encoder.len())
            .field("added_tokens", &self.added_tokens)
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("unk_id", &self.unk_id)
            .field("pad_id", &self.pad_id)
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

/// Special tokens and sequence length, as transformers resolves them from the config files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    bos: String,
    eos: String,
    unk: String,
    pad: String,
    max_length: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bos: DEFAULT_BOS.to_owned(),
            eos: DEFAULT_EOS.to_owned(),
            unk: DEFAULT_EOS.to_owned(),
            pad: DEFAULT_EOS.to_owned(),
            max_length: DEFAULT_MAX_LENGTH,
        }
    }
}

/// One piece of the input after splitting on special tokens.
enum Segment<'a> {
    Text(&'a str),
    Special(&'a str),
}

impl ClipTokenizer {
    /// Loads `vocab.json` and `merges.txt` from `dir`.
    ///
    /// The optional `tokenizer_config.json` and `special_tokens_map.json` supply
    /// `model_max_length` (default 77) and the bos / eos / unk / pad tokens (defaults
    /// `<|startoftext|>` and `<|endoftext|>`); as in transformers, `special_tokens_map.json`
    /// wins over `tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let mut settings = Settings::default();
        let mut declared = Vec::new();
        let config_path = dir.join("tokenizer_config.json");
        if let Some(config) = read_optional_json(&config_path)? {
            apply_config(&mut settings, &config, &config_path, true)?;
            declared.extend(declared_added_tokens(&config).map(|t| (config_path.clone(), t)));
        }
        let map_path = dir.join("special_tokens_map.json");
        if let Some(map) = read_optional_json(&map_path)? {
            apply_config(&mut settings, &map, &map_path, false)?;
            declared.extend(declared_added_tokens(&map).map(|t| (map_path.clone(), t)));
        }
        let added_path = dir.join("added_tokens.json");
        if let Some(Value::Object(added)) = read_optional_json(&added_path)? {
            declared.extend(added.keys().map(|t| (added_path.clone(), t.clone())));
        }
        // transformers would split the text on any other added token (e.g. a textual-inversion
        // word); this port does not, so refuse rather than silently produce different ids.
        let specials = [&settings.bos, &settings.eos, &settings.unk, &settings.pad];
        if let Some((path, token)) = declared.into_iter().find(|(_, t)| !specials.contains(&t)) {
            return Err(TokenizerError::BadConfig {
                path,
                message: format!(
                    "added token {token:?} is not supported (only bos, eos, unk and pad are)"
                ),
            });
        }
        Self::build(&dir.join("vocab.json"), &dir.join("merges.txt"), settings)
    }

    /// Loads a tokenizer from explicit vocabulary and merges files with CLIP's defaults
    /// (`<|startoftext|>` / `<|endoftext|>`, pad = `<|endoftext|>`, max length 77).
    pub fn from_files(vocab: &Path, merges: &Path) -> Result<Self, TokenizerError> {
        Self::build(vocab, merges, Settings::default())
    }

    fn build(vocab: &Path, merges: &Path, settings: Settings) -> Result<Self, TokenizerError> {
        let encoder = parse_vocab(vocab, &read_json(vocab)?)?;
        let ranks = parse_merges(merges, &read_text(merges)?)?;
        let id_of = |role: &'static str, token: &str| {
            encoder
                .get(token)
                .copied()
                .ok_or_else(|| TokenizerError::MissingSpecialToken {
                    role,
                    token: token.to_owned(),
                    path: vocab.to_path_buf(),
                })
        };
        let bos_id = id_of("bos_token", &settings.bos)?;
        let eos_id = id_of("eos_token", &settings.eos)?;
        let unk_id = id_of("unk_token", &settings.unk)?;
        let pad_id = id_of("pad_token", &settings.pad)?;

        let mut added_tokens = Vec::new();
        for token in [settings.bos, settings.eos, settings.unk, settings.pad] {
            if !token.is_empty() && !added_tokens.contains(&token) {
                added_tokens.push(token);
            }
        }

        Ok(Self {
            encoder,
            ranks,
            byte_encoder: bytes_to_unicode(),
            split_pattern: Regex::new(SPLIT_PATTERN)?,
            cleaner: TextCleaner::new()?,
            added_tokens,
            bos_id,
            eos_id,
            unk_id,
            pad_id,
            max_length: settings.max_length,
        })
    }

    /// Token ids for `text`: `<|startoftext|>`, the BPE tokens, `<|endoftext|>`; no padding
    /// and no truncation (may exceed [`Self::max_length`]).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.push(self.bos_id);
        ids.extend(self.content_ids(text));
        ids.push(self.eos_id);
        ids
    }

    /// Exactly [`Self::max_length`] ids, as Stable Diffusion pipelines request them
    /// (`padding="max_length"`, `max_length=model_max_length`, `truncation=True`): the text
    /// tokens are cut to `max_length - 2` so `<|endoftext|>` always follows them, then the
    /// pad id fills the rest.
    pub fn encode_padded(&self, text: &str) -> Vec<u32> {
        let mut content = self.content_ids(text);
        // Loading rejects lengths below 2, so bos and eos always fit.
        content.truncate(self.max_length - 2);
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(content);
        ids.push(self.eos_id);
        ids.resize(self.max_length, self.pad_id);
        ids
    }

    /// `model_max_length`: the fixed length of [`Self::encode_padded`] (77 for SD 1.5).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Number of entries in `vocab.json` (49408 for CLIP), i.e. the embedding table size.
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// BPE token strings without bos / eos, like transformers' `tokenizer.tokenize(text)`
    /// (byte-level symbols, e.g. `"cafÃ©</w>"` for `"café"`); meant for debugging.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        for segment in self.split_special(text) {
            match segment {
                Segment::Special(token) => tokens.push(token.to_owned()),
                Segment::Text(piece) => self.tokenize_piece(piece, &mut tokens),
            }
        }
        tokens
    }

    fn content_ids(&self, text: &str) -> Vec<u32> {
        self.tokenize(text)
            .iter()
            .map(|token| self.encoder.get(token).copied().unwrap_or(self.unk_id))
            .collect()
    }

    /// transformers matches special tokens on the raw text before any cleaning, so e.g.
    /// `"!<|endoftext|>"` yields `!` + eos rather than one punctuation run.
    fn split_special<'a>(&'a self, text: &'a str) -> Vec<Segment<'a>> {
        let mut segments = Vec::new();
        let mut start = 0;
        let mut pos = 0;
        while pos < text.len() {
            let rest = &text[pos..];
            let found = self
                .added_tokens
                .iter()
                .filter(|token| rest.starts_with(token.as_str()))
                .max_by_key(|token| token.len());
            if let Some(token) = found {
                if start < pos {
                    segments.push(Segment::Text(&text[start..pos]));
                }
                segments.push(Segment::Special(token));
                pos += token.len();
                start = pos;
            } else {
                pos += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        if start < text.len() {
            segments.push(Segment::Text(&text[start..]));
        }
        segments
    }

    fn tokenize_piece(&self, piece: &str, tokens: &mut Vec<String>) {
        let cleaned = self.cleaner.clean(piece);
        for found in self.split_pattern.find_iter(&cleaned) {
            let symbols: String = found
                .as_str()
                .bytes()
                .map(|b| self.byte_encoder[usize::from(b)])
                .collect();
            self.bpe(&symbols, tokens);
        }
    }

    fn rank(&self, left: &str, right: &str) -> Option<u32> {
        self.ranks.get(left)?.get(right).copied()
    }

    /// Byte-pair merges on one pre-token, lowest-ranked pair first, as in `CLIPTokenizer.bpe`.
    fn bpe(&self, token: &str, out: &mut Vec<String>) {
        // transformers seeds its BPE cache with these two strings, so a special token that
        // only appears after cleaning (e.g. upper-case `<|ENDOFTEXT|>`) maps to its id
        // instead of being split into characters.
        if token == DEFAULT_BOS || token == DEFAULT_EOS {
            out.push(token.to_owned());
            return;
        }
        let mut word: Vec<String> = token.chars().map(String::from).collect();
        let Some(last) = word.last_mut() else {
            return;
        };
        last.push_str(END_OF_WORD);
        while word.len() > 1 {
            let best = (0..word.len() - 1)
                .filter_map(|i| Some((self.rank(&word[i], &word[i + 1])?, i)))
                .min();
            let Some((_, at)) = best else {
                break;
            };
            let (first, second) = (word[at].clone(), word[at + 1].clone());
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut word[i]));
                    i += 1;
                }
            }
            word = merged;
        }
        out.extend(word);
    }
}

/// CLIP's reversible byte → printable-character map, so BPE never sees whitespace or
/// control bytes: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut shifted = 0u32;
    for (byte, slot) in (0u32..).zip(table.iter_mut()) {
        let printable =
            (0x21..=0x7E).contains(&byte) || (0xA1..=0xAC).contains(&byte) || byte >= 0xAE;
        let code = if printable {
            byte
        } else {
            shifted += 1;
            0xFF + shifted
        };
        // Every code below U+0200 is a valid scalar value, so the fallback never triggers.
        *slot = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
    }
    table
}

/// The CJK blocks `BasicTokenizer._is_chinese_char` spaces out (Hangul and kana excluded).
fn is_cjk_ideograph(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B820..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// The ftfy-less text cleaning of transformers' `CLIPTokenizer._tokenize`.
#[derive(Clone)]
struct TextCleaner {
    dropped_chars: Regex,
    space_chars: Regex,
    nfc: Nfc,
}

impl TextCleaner {
    fn new() -> Result<Self, regex::Error> {
        Ok(Self {
            dropped_chars: Regex::new(DROPPED_CHARS)?,
            space_chars: Regex::new(SPACE_CHARS)?,
            nfc: Nfc::new(),
        })
    }

    /// `" ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text))`.
    fn clean(&self, text: &str) -> String {
        let kept = self.dropped_chars.replace_all(text, "");
        let spaced = self.space_chars.replace_all(&kept, " ");
        let mut separated = String::with_capacity(spaced.len());
        for c in spaced.chars() {
            // Ideographs carry no spaces between words, so BERT's cleaner isolates each one;
            // without this `[\p{L}]+` would glue a whole CJK sentence into one BPE word.
            if is_cjk_ideograph(c) {
                separated.push(' ');
                separated.push(c);
                separated.push(' ');
            } else {
                separated.push(c);
            }
        }
        let normalized = self.nfc.normalize(&separated);
        // Rust's `split_whitespace` differs from Python's `str.split()` only on control
        // characters, which were already removed above.
        normalized
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn read_text(path: &Path) -> Result<String, TokenizerError> {
    fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TokenizerError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            TokenizerError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn parse_json(path: &Path, text: &str) -> Result<Value, TokenizerError> {
    serde_json::from_str(text).map_err(|source| TokenizerError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Value, TokenizerError> {
    parse_json(path, &read_text(path)?)
}

fn read_optional_json(path: &Path) -> Result<Option<Value>, TokenizerError> {
    match read_text(path) {
        Ok(text) => parse_json(path, &text).map(Some),
        Err(TokenizerError::MissingFile { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

fn parse_vocab(path: &Path, json: &Value) -> Result<HashMap<String, u32>, TokenizerError> {
    let bad = |message: String| TokenizerError::BadVocab {
        path: path.to_path_buf(),
        message,
    };
    let Value::Object(map) = json else {
        return Err(bad(
            "expected a JSON object mapping tokens to ids".to_owned()
        ));
    };
    let mut encoder = HashMap::with_capacity(map.len());
    for (token, id) in map {
        let id = id
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| bad(format!("id of token {token:?} is {id}, not a u32")))?;
        encoder.insert(token.clone(), id);
    }
    Ok(encoder)
}

/// Mirrors `read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]`: the first line is always
/// skipped (it is the `#version: 0.2` header) and later duplicates overwrite earlier ranks.
fn parse_merges(
    path: &Path,
    text: &str,
) -> Result<HashMap<String, HashMap<String, u32>>, TokenizerError> {
    let body = text.trim_start();
    let skipped_lines = text[..text.len() - body.len()].matches('\n').count();
    let mut ranks: HashMap<String, HashMap<String, u32>> = HashMap::new();
    let lines = body.trim_end().split('\n').enumerate().skip(1);
    for (rank, (index, line)) in (0u32..).zip(lines.take(MAX_MERGES)) {
        let mut parts = line.split_whitespace();
        let (Some(left), Some(right), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenizerError::MalformedMerge {
                path: path.to_path_buf(),
                line: skipped_lines + index + 1,
                content: line.to_owned(),
            });
        };
        ranks
            .entry(left.to_owned())
            .or_default()
            .insert(right.to_owned(), rank);
    }
    Ok(ranks)
}

/// Token strings a config file declares as added tokens (`added_tokens_decoder` entries and
/// `additional_special_tokens`), whether given as strings or `AddedToken` objects.
fn declared_added_tokens(json: &Value) -> impl Iterator<Item = String> + '_ {
    let decoder = json
        .get("added_tokens_decoder")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|map| map.values());
    let additional = json
        .get("additional_special_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    decoder.chain(additional).filter_map(|token| match token {
        Value::String(content) => Some(content.clone()),
        other => other.get("content")?.as_str().map(str::to_owned),
    })
}

/// Applies one config file on top of `settings` (`tokenizer_config.json` first, then
/// `special_tokens_map.json`, which only carries tokens).
fn apply_config(
    settings: &mut Settings,
    json: &Value,
    path: &Path,
    read_max_length: bool,
) -> Result<(), TokenizerError> {
    let bad = |message: String| TokenizerError::BadConfig {
        path: path.to_path_buf(),
        message,
    };
    let Value::Object(map) = json else {
        return Err(bad("expected a JSON object".to_owned()));
    };
    let slots = [
        ("bos_token", &mut settings.bos),
        ("eos_token", &mut settings.eos),
        ("unk_token", &mut settings.unk),
        ("pad_token", &mut settings.pad),
    ];
    for (key, slot) in slots {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(token)) => *slot = token.clone(),
            Some(Value::Object(added)) => {
                let Some(Value::String(content)) = added.get("content") else {
                    return Err(bad(format!("{key} has no string \"content\"")));
                };
                for flag in ["lstrip", "rstrip", "single_word"] {
                    if added.get(flag) == Some(&Value::Bool(true)) {
                        return Err(bad(format!("{key} sets {flag}, which is not supported")));
                    }
                }
                *slot = content.clone();
            }
            Some(other) => {
                return Err(bad(format!(
                    "{key} must be a string or object, got {other}"
                )));
            }
        }
    }
    if read_max_length {
        match map.get("model_max_length") {
            None | Some(Value::Null) => {}
            Some(value) => {
                let length = value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (2..=MAX_MODEL_LENGTH).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "model_max_length {value} is not a length between 2 and \
                             {MAX_MODEL_LENGTH} (bos and eos need two slots)"
                        ))
                    })?;
                settings.max_length = length;
            }
        }
    }
    Ok(())
}

/// Unicode NFC (canonical decomposition, canonical ordering, canonical composition), as
/// `unicodedata.normalize("NFC", ...)` in `BasicTokenizer.tokenize`.
#[derive(Clone)]
struct Nfc {
    decompositions: HashMap<char, (char, Option<char>)>,
    compositions: HashMap<(char, char), char>,
}

const HANGUL_S_BASE: u32 = 0xAC00;
const HANGUL_L_BASE: u32 = 0x1100;
const HANGUL_V_BASE: u32 = 0x1161;
const HANGUL_T_BASE: u32 = 0x11A7;
const HANGUL_L_COUNT: u32 = 19;
const HANGUL_V_COUNT: u32 = 21;
const HANGUL_T_COUNT: u32 = 28;
const HANGUL_S_COUNT: u32 = HANGUL_L_COUNT * HANGUL_V_COUNT * HANGUL_T_COUNT;

impl Nfc {
    fn new() -> Self {
        let mut decompositions = HashMap::with_capacity(DECOMPOSITIONS.len());
        let mut compositions = HashMap::with_capacity(DECOMPOSITIONS.len());
        for &(composed, first, second) in DECOMPOSITIONS {
            let (Some(composed), Some(first)) = (char::from_u32(composed), char::from_u32(first))
            else {
                continue;
            };
            let second = char::from_u32(second).filter(|&c| c != '\0');
            decompositions.insert(composed, (first, second));
            if let Some(second) = second {
                if !COMPOSITION_EXCLUSIONS.contains(&u32::from(composed)) {
                    compositions.insert((first, second), composed);
                }
            }
        }
        Self {
            decompositions,
            compositions,
        }
    }

    fn normalize(&self, text: &str) -> String {
        // Below U+0300 every character is a starter that neither decomposes nor composes
        // with another, so such text (all ASCII / Latin-1 prompts) is already NFC.
        if text.chars().all(|c| u32::from(c) < 0x300) {
            return text.to_owned();
        }
        let mut chars = Vec::with_capacity(text.len());
        for c in text.chars() {
            self.decompose(c, &mut chars);
        }
        canonical_order(&mut chars);
        self.compose(&chars).into_iter().collect()
    }

    fn decompose(&self, c: char, out: &mut Vec<char>) {
        let code = u32::from(c);
        if (HANGUL_S_BASE..HANGUL_S_BASE + HANGUL_S_COUNT).contains(&code) {
            let index = code - HANGUL_S_BASE;
            let jamo = [
                HANGUL_L_BASE + index / (HANGUL_V_COUNT * HANGUL_T_COUNT),
                HANGUL_V_BASE + (index % (HANGUL_V_COUNT * HANGUL_T_COUNT)) / HANGUL_T_COUNT,
                HANGUL_T_BASE + index % HANGUL_T_COUNT,
            ];
            let len = if jamo[2] == HANGUL_T_BASE { 2 } else { 3 };
            out.extend(jamo[..len].iter().filter_map(|&j| char::from_u32(j)));
            return;
        }
        match self.decompositions.get(&c) {
            Some(&(first, second)) => {
                self.decompose(first, out);
                if let Some(second) = second {
                    self.decompose(second, out);
                }
            }
            None => out.push(c),
        }
    }

    fn compose_pair(&self, first: char, second: char) -> Option<char> {
        let (a, b) = (u32::from(first), u32::from(second));
        if (HANGUL_L_BASE..HANGUL_L_BASE + HANGUL_L_COUNT).contains(&a)
            && (HANGUL_V_BASE..HANGUL_V_BASE + HANGUL_V_COUNT).contains(&b)
        {
            let lv = (a - HANGUL_L_BASE) * HANGUL_V_COUNT + (b - HANGUL_V_BASE);
            return char::from_u32(HANGUL_S_BASE + lv * HANGUL_T_COUNT);
        }
        if (HANGUL_S_BASE..HANGUL_S_BASE + HANGUL_S_COUNT).contains(&a)
            && (a - HANGUL_S_BASE).is_multiple_of(HANGUL_T_COUNT)
            && (HANGUL_T_BASE + 1..HANGUL_T_BASE + HANGUL_T_COUNT).contains(&b)
        {
            return char::from_u32(a + (b - HANGUL_T_BASE));
        }
        self.compositions.get(&(first, second)).copied()
    }

    fn compose(&self, chars: &[char]) -> Vec<char> {
        let mut out: Vec<char> = Vec::with_capacity(chars.len());
        let mut starter: Option<usize> = None;
        // Class of the last character kept after the current starter; `None` means the next
        // character is adjacent to the starter and so cannot be blocked.
        let mut last_class: Option<u8> = None;
        for &c in chars {
            let class = combining_class(c);
            if let Some(index) = starter {
                let blocked = last_class.is_some_and(|last| last == 0 || last >= class);
                if !blocked {
                    if let Some(composed) = self.compose_pair(out[index], c) {
                        out[index] = composed;
                        continue;
                    }
                }
            }
            if class == 0 {
                starter = Some(out.len());
                last_class = None;
            } else {
                last_class = Some(class);
            }
            out.push(c);
        }
        out
    }
}

/// Stable-sorts every run of non-starters by combining class (Unicode canonical ordering).
fn canonical_order(chars: &mut [char]) {
    let mut start = 0;
    while start < chars.len() {
        if combining_class(chars[start]) == 0 {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < chars.len() && combining_class(chars[end]) != 0 {
            end += 1;
        }
        chars[start..end].sort_by_key(|&c| combining_class(c));
        start = end;
    }
}

fn combining_class(c: char) -> u8 {
    let code = u32::from(c);
    if code < 0x300 {
        return 0;
    }
    match CCC_RANGES.binary_search_by(|&(first, last, _)| {
        if last < code {
            std::cmp::Ordering::Less
        } else if first > code {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }) {
        Ok(index) => CCC_RANGES[index].2,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaner() -> TextCleaner {
        TextCleaner::new().unwrap()
    }

    #[test]
    fn byte_map_matches_clip() {
        let table = bytes_to_unicode();
        assert_eq!(table[usize::from(b'!')], '!');
        assert_eq!(table[usize::from(b'a')], 'a');
        assert_eq!(table[0], '\u{100}');
        assert_eq!(table[usize::from(b' ')], '\u{120}'); // 'Ġ', GPT-2's well-known space
        assert_eq!(table[0xAD], '\u{143}');
        assert_eq!(table[0xE9], 'é');
        let mut sorted: Vec<char> = table.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256, "byte map must be a bijection");
    }

    #[test]
    fn cleaning_follows_basic_tokenizer() {
        let c = cleaner();
        assert_eq!(c.clean("  Hello\t\tWORLD\r\n "), "hello world");
        assert_eq!(
            c.clean("zero\u{200B}width soft\u{AD}hyphen nul\0l"),
            "zerowidth softhyphen null"
        );
        assert_eq!(c.clean("a\u{A0}b\u{3000}c\u{2028}d"), "a b c d");
        assert_eq!(c.clean("中文abc"), "中 文 abc");
        assert_eq!(c.clean("İSTANBUL"), "i\u{307}stanbul");
        assert_eq!(c.clean("ΟΔΟΣ"), "οδος");
        assert_eq!(c.clean("cafe\u{301}"), "café");
        assert_eq!(c.clean("a\u{378}b\u{E000}c\u{FEFF}d"), "abcd"); // Cn, Co, Cf
        assert_eq!(c.clean(""), "");
    }

    #[test]
    fn nfc_composes_reorders_and_keeps_exclusions() {
        let nfc = Nfc::new();
        let cases = [
            ("e\u{301}", "\u{E9}"),
            ("A\u{30A}", "\u{C5}"),
            ("\u{212B}", "\u{C5}"),          // ANGSTROM SIGN is a singleton
            ("\u{212A}", "K"),               // KELVIN SIGN
            ("e\u{302}\u{323}", "\u{1EC7}"), // marks reordered, then composed twice
            ("e\u{323}\u{302}", "\u{1EC7}"),
            ("\u{E9}\u{323}", "\u{1EB9}\u{301}"),
            ("a\u{591}\u{301}", "\u{E1}\u{591}"), // lower class does not block
            ("a\u{301}\u{301}", "\u{E1}\u{301}"), // equal class blocks
            ("\u{958}", "\u{915}\u{93C}"),        // composition exclusion
            ("\u{1100}\u{1161}\u{11A8}", "\u{AC01}"), // Hangul jamo
            ("\u{AC00}\u{11A8}", "\u{AC01}"),
            ("\u{304B}\u{3099}", "\u{304C}"), // kana + dakuten
            ("\u{301}a", "\u{301}a"),         // leading mark has no starter
            ("plain ascii", "plain ascii"),
        ];
        for (input, expected) in cases {
            assert_eq!(nfc.normalize(input), expected, "NFC({input:?})");
        }
    }

    #[test]
    fn combining_classes_come_from_the_table() {
        assert_eq!(combining_class('a'), 0);
        assert_eq!(combining_class('\u{301}'), 230);
        assert_eq!(combining_class('\u{323}'), 220);
        assert_eq!(combining_class('\u{345}'), 240);
        assert_eq!(combining_class('\u{3099}'), 8);
        assert_eq!(combining_class('\u{10FFFF}'), 0);
    }

    #[test]
    fn merges_skip_header_and_report_line_numbers() {
        let path = Path::new("merges.txt");
        let ranks = parse_merges(path, "#version: 0.2\ni n\nt h\n\n").unwrap();
        assert_eq!(ranks["i"]["n"], 0);
        assert_eq!(ranks["t"]["h"], 1);
        let err = parse_merges(path, "\n#version: 0.2\ni n\nbad\nt h\n").unwrap_err();
        match err {
            TokenizerError::MalformedMerge { line, content, .. } => {
                assert_eq!((line, content.as_str()), (4, "bad"));
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn split_pattern_matches_python() {
        let re = Regex::new(SPLIT_PATTERN).unwrap();
        let pieces: Vec<&str> = re
            .find_iter("don't <|endoftext|>!! it''s 2024 x\u{345}y")
            .map(|m| m.as_str())
            .collect();
        assert_eq!(
            pieces,
            [
                "don",
                "'t",
                "<|endoftext|>",
                "!!",
                "it",
                "''",
                "s",
                "2",
                "0",
                "2",
                "4",
                "x",
                "y"
            ]
        );
    }
}
