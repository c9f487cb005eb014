//! The key-template grammar, shared by the derive (compile-time validation)
//! and the runtime evaluator so that both read a template the same way.
//!
//! This file depends on `std` only: `singletable-derive` keeps a byte-identical
//! copy (`derive/src/internals/grammar.rs`, so the packaged derive builds on
//! its own); `tests/tests/grammar_shared.rs` fails when the two differ.
//!
//! ```text
//! template    := piece+
//! piece       := literal | placeholder
//! literal     := (any char but '{' '}' | "{{" | "}}")+
//! placeholder := '{' name (':' '0' width)? '}'
//! ```
//!
//! Two placeholders must be separated by literal text: the first character
//! of the literal after a placeholder is that placeholder's *delimiter*,
//! which its values may not contain. That rule is what lets every key be
//! parsed back into its fields, and so what makes rendering injective.

/// One parsed piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text, with `{{`/`}}` already unescaped.
    Literal(String),
    /// A `{name}` or `{name:0N}` placeholder.
    Field {
        /// The name between the braces.
        name: String,
        /// Zero-padded width for integers (`{n:08}` → `Some(8)`).
        pad: Option<u8>,
        /// Byte offset of the name inside the template source.
        offset: usize,
    },
}

/// Why a template was refused, with the byte offset it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrammarError {
    /// Byte offset in the template source.
    pub offset: usize,
    /// What is wrong, phrased for a user.
    pub message: String,
}

/// The widest zero padding accepted: 39 digits hold every `u128`.
pub const MAX_PAD: u8 = 39;

/// Parses a template into pieces, refusing every form the renderer could
/// not parse back.
pub fn parse(src: &str) -> Result<Vec<Piece>, GrammarError> {
    if src.is_empty() {
        return Err(GrammarError { offset: 0, message: "empty key template: a key attribute can never be empty".into() });
    }
    let mut pieces: Vec<Piece> = Vec::new();
    let mut literal = String::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                literal.push('{');
                i += 2;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                literal.push('}');
                i += 2;
            }
            b'}' => {
                return Err(GrammarError { offset: i, message: "unmatched `}` in key template (write `}}` for a literal brace)".into() });
            }
            b'{' => {
                let close = src[i + 1..].find('}').map(|p| p + i + 1).ok_or_else(|| GrammarError {
                    offset: i,
                    message: "unclosed `{` in key template (write `{{` for a literal brace)".into(),
                })?;
                let inner = &src[i + 1..close];
                if inner.contains('{') {
                    return Err(GrammarError { offset: i, message: "unclosed `{` in key template (write `{{` for a literal brace)".into() });
                }
                let (name, format) = match inner.find(':') {
                    Some(colon) => (&inner[..colon], Some(&inner[colon + 1..])),
                    None => (inner, None),
                };
                if name.trim().is_empty() {
                    return Err(GrammarError { offset: i, message: "empty placeholder `{}`: name the field whose value goes here".into() });
                }
                let pad = match format {
                    None => None,
                    Some(f) => Some(parse_pad(f).ok_or_else(|| GrammarError {
                        offset: i + 1 + name.len() + 1,
                        message: format!(
                            "unsupported format `:{f}` for `{name}`: the only format is zero padding of integers, `{{{name}:0N}}` with N from 1 to {MAX_PAD}"
                        ),
                    })?),
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                if let Some(Piece::Field { name: prev, .. }) = pieces.last() {
                    return Err(GrammarError {
                        offset: i,
                        message: format!(
                            "placeholders `{{{prev}}}` and `{{{name}}}` touch: put literal text between them (e.g. `#`) so keys can be parsed back"
                        ),
                    });
                }
                pieces.push(Piece::Field { name: name.to_string(), pad, offset: i + 1 });
                i = close + 1;
            }
            _ => {
                // Advance by one whole UTF-8 character.
                let ch = src[i..].chars().next().expect("in bounds");
                literal.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn parse_pad(format: &str) -> Option<u8> {
    let digits = format.strip_prefix('0')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let width: u8 = digits.parse().ok()?;
    (1..=MAX_PAD).contains(&width).then_some(width)
}

/// The delimiter of the placeholder at `index`: the first character of the
/// literal right after it, or `None` for a placeholder that ends the key.
pub fn delimiter_after(pieces: &[Piece], index: usize) -> Option<char> {
    match pieces.get(index + 1) {
        Some(Piece::Literal(text)) => text.chars().next(),
        _ => None,
    }
}

/// Writes pieces back in source form, escaping literal braces; `parse`
/// of the result gives the same pieces (offsets aside).
pub fn unparse(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => {
                for ch in text.chars() {
                    match ch {
                        '{' => out.push_str("{{"),
                        '}' => out.push_str("}}"),
                        c => out.push(c),
                    }
                }
            }
            Piece::Field { name, pad, .. } => {
                out.push('{');
                out.push_str(name);
                if let Some(width) = pad {
                    out.push_str(":0");
                    out.push_str(&width.to_string());
                }
                out.push('}');
            }
        }
    }
    out
}
