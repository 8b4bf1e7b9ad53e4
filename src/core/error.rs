//! Problems a user can cause, each with the SQLSTATE the extension raises it with.
use std::fmt;

/// Limits checked before and while parsing a rule.
pub const MAX_RULE_BYTES: usize = 1 << 20;
pub const MAX_DEPTH: usize = 64;
pub const MAX_LIST: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 22023 invalid_parameter_value
    InvalidParameter,
    /// 54000 program_limit_exceeded
    TooLarge,
    /// 54001 statement_too_complex
    TooComplex,
    /// 0A000 feature_not_supported
    NotSupported,
    /// 42P01 undefined_table / 42703 undefined_column: a registration points at something gone
    UndefinedTable,
    UndefinedColumn,
}

impl Code {
    pub fn sqlstate(self) -> &'static str {
        match self {
            Code::InvalidParameter => "22023",
            Code::TooLarge => "54000",
            Code::TooComplex => "54001",
            Code::NotSupported => "0A000",
            Code::UndefinedTable => "42P01",
            Code::UndefinedColumn => "42703",
        }
    }
}

/// One problem in a rule: what, where (a JSON path such as `$.all[2].where.prop`) and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub code: Code,
    pub message: String,
    pub path: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(code: Code, path: &str, message: impl Into<String>) -> Self {
        Problem { code, message: message.into(), path: path.to_string(), hint: None }
    }
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidParameter, path, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// A problem of a nested document, placed under `prefix` (`$.x` becomes `{prefix}.x`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = format!("{prefix}{}", self.path.trim_start_matches('$'));
        self
    }
    /// The DETAIL line shown to the user.
    pub fn detail(&self) -> String {
        format!("at {}", self.path)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.message, self.path)
    }
}

/// A non-empty list of problems; the first is the one raised as an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn first(&self) -> &Problem {
        &self.0[0]
    }

    /// Every problem without a hint of its own gets `hint` (where the form it broke is shown).
    pub fn or_hint(mut self, hint: &str) -> Self {
        for p in self.0.iter_mut().filter(|p| p.hint.is_none()) {
            p.hint = Some(hint.to_string());
        }
        self
    }
}

/// The hints of problems that have none of their own, per kind of input.
pub const RULE_HINT: &str = "the README's rule language shows every condition in JSON and in text, e.g. {\"attr\": \"country\", \"op\": \"eq\", \"value\": \"FR\"} or country = 'FR'";
pub const POLICY_HINT: &str = "a policy is {\"scope\": {…}, \"rules\": [{\"max_contacts\": 2, \"per\": {\"days\": 7}}, …]}: the README's Contact policies lists every rule kind";
pub const PLAN_HINT: &str = "the README's Plans lists every field of a plan spec, e.g. {\"segment\": \"vip\", \"channel\": \"email\", \"schedule\": {\"weekdays\": [\"tue\"], \"at\": \"09:00\", \"time_zone\": \"Europe/Paris\"}}";
pub const RESPONSES_HINT: &str = "responses are {\"window\": {\"days\": 7}, \"open\": {\"event\": …, \"where\": …}, \"click\": …, \"conversion\": …} (see configure_responses in the README)";
pub const DASHBOARD_HINT: &str = "the README's segment dashboard lists the fields configure_dashboard takes";

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Problems(vec![p])
    }
}

/// `a, b, c` for hints listing valid choices.
pub fn choices<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// A problem for every key of `m` not in `allowed`, at `path.key`.
pub fn unknown_keys(m: &serde_json::Map<String, serde_json::Value>, path: &str, allowed: &[&str]) -> Vec<Problem> {
    m.keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| Problem::invalid(&format!("{path}.{k}"), format!("unknown key \"{k}\"")).hint(format!("allowed keys here: {}", choices(allowed.iter().copied()))))
        .collect()
}
