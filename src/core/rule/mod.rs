//! The rule language: one AST, read from JSON or text and written back to both.
pub mod ast;
pub mod json;
pub mod text;

pub use ast::*;

use crate::error::{Code, Problem, Problems, MAX_RULE_BYTES};

/// Reads a rule given as JSON (text starting with `{`) or in the text form.
pub fn parse_any(input: &str) -> Result<Rule, Problems> {
    if input.len() > MAX_RULE_BYTES {
        return Err(Problem::new(Code::TooLarge, "$", format!("rule is {} bytes, over the limit of {} bytes", input.len(), MAX_RULE_BYTES))
            .hint("split the rule into stored segments and reference them")
            .into());
    }
    json::parse_value(&read(input)?)
}

/// The rule's JSON form as a value (not yet read as a rule).
fn read(input: &str) -> Result<serde_json::Value, Problems> {
    // the text form never starts with either: a JSON array is a JSON rule of the wrong kind
    if input.trim_start().starts_with(['{', '[']) {
        json::read_str(input)
    } else {
        text::to_json_value(input)
    }
}

/// For listing problems: the readable part of a rule [`parse_any`] refuses (see
/// [`json::readable_part`]); None for a text syntax error or a rule too large or deep.
pub fn readable_part(input: &str) -> Option<Rule> {
    if input.len() > MAX_RULE_BYTES {
        return None;
    }
    json::readable_part(&read(input).ok()?)
}

#[cfg(test)]
mod tests;
