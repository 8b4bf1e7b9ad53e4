//! The validated shape of a rule. Every JSON rule maps to exactly one value here and back.
use serde_json::Number;

/// A boolean tree of leaves: the top-level rule (`L = Cond`) and event filters (`L = Compare`).
#[derive(Debug, Clone, PartialEq)]
pub enum Tree<L> {
    All(Vec<Tree<L>>),
    Any(Vec<Tree<L>>),
    Not(Box<Tree<L>>),
    Leaf(L),
}

pub type Rule = Tree<Cond>;
pub type PropTree = Tree<Compare>;

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Attr(Compare),
    Event(EventCond),
    Ratio(RatioCond),
    Sequence(SequenceCond),
    Segment(String),
    Rfm(RfmCond),
}

/// `field op value`: `attr` on contacts, `prop` on events.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    pub field: String,
    pub op: Op,
    pub value: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq, Ne, Lt, Lte, Gt, Gte, Between, In, NotIn, IsNull, NotNull,
    Contains, StartsWith, EndsWith, Matches, WithinLast, NotWithinLast, AgeBetween,
}

pub const OPS: &[(&str, Op)] = &[
    ("eq", Op::Eq), ("ne", Op::Ne), ("lt", Op::Lt), ("lte", Op::Lte), ("gt", Op::Gt), ("gte", Op::Gte),
    ("between", Op::Between), ("in", Op::In), ("not_in", Op::NotIn), ("is_null", Op::IsNull),
    ("not_null", Op::NotNull), ("contains", Op::Contains), ("starts_with", Op::StartsWith),
    ("ends_with", Op::EndsWith), ("matches", Op::Matches), ("within_last", Op::WithinLast),
    ("not_within_last", Op::NotWithinLast), ("age_between", Op::AgeBetween),
];

impl Op {
    pub fn name(self) -> &'static str {
        OPS.iter().find(|(_, o)| *o == self).map(|(n, _)| *n).unwrap_or("?")
    }
    pub fn from_name(s: &str) -> Option<Op> {
        OPS.iter().find(|(n, _)| *n == s).map(|(_, o)| *o)
    }
    pub fn as_cmp(self) -> Option<CmpOp> {
        Some(match self {
            Op::Eq => CmpOp::Eq, Op::Ne => CmpOp::Ne, Op::Lt => CmpOp::Lt,
            Op::Lte => CmpOp::Lte, Op::Gt => CmpOp::Gt, Op::Gte => CmpOp::Gte,
            _ => return None,
        })
    }
}

/// What an op compares with. Which shape an op takes is fixed by the op.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    None,
    Scalar(Scalar),
    Pair(Scalar, Scalar),
    List(Vec<Scalar>),
    Span(Span),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(Number),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit { Hours, Days, Weeks, Months, Years }

pub const UNITS: &[(&str, Unit)] = &[
    ("hours", Unit::Hours), ("days", Unit::Days), ("weeks", Unit::Weeks),
    ("months", Unit::Months), ("years", Unit::Years),
];

/// The hint for a length of time out of range ([`Unit::max`]).
pub const SPAN_HINT: &str = "a length of time is from 1 to 100000 hours, days or weeks, 12000 months or 1000 years";

impl Unit {
    pub fn name(self) -> &'static str {
        UNITS.iter().find(|(_, u)| *u == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// The longest length of time in this unit: 100000, and no more than 1000 years, so that a
    /// window back from any time in years 1 to 9999 stays within PostgreSQL's dates.
    pub fn max(self) -> i64 {
        match self {
            Unit::Months => 12_000,
            Unit::Years => 1_000,
            Unit::Hours | Unit::Days | Unit::Weeks => 100_000,
        }
    }
}

/// A length of time such as 30 days; `n` is positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub n: i64,
    pub unit: Unit,
}

impl Span {
    /// Postgres interval input text, e.g. `30 days`.
    pub fn interval(&self) -> String {
        format!("{} {}", self.n, self.unit.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp { Eq, Ne, Lt, Lte, Gt, Gte }

pub const CMP_OPS: &[(&str, CmpOp, &str)] = &[
    ("eq", CmpOp::Eq, "="), ("ne", CmpOp::Ne, "<>"), ("lt", CmpOp::Lt, "<"),
    ("lte", CmpOp::Lte, "<="), ("gt", CmpOp::Gt, ">"), ("gte", CmpOp::Gte, ">="),
];

impl CmpOp {
    pub fn name(self) -> &'static str {
        CMP_OPS.iter().find(|(_, o, _)| *o == self).map(|(n, _, _)| *n).unwrap_or("?")
    }
    /// The SQL operator, always written as `OPERATOR(pg_catalog.x)` by the compiler.
    pub fn sql(self) -> &'static str {
        CMP_OPS.iter().find(|(_, o, _)| *o == self).map(|(_, _, s)| *s).unwrap_or("=")
    }
    pub fn from_name(s: &str) -> Option<CmpOp> {
        CMP_OPS.iter().find(|(n, _, _)| *n == s).map(|(_, o, _)| *o)
    }
    pub fn from_symbol(s: &str) -> Option<CmpOp> {
        let s = if s == "!=" { "<>" } else { s };
        CMP_OPS.iter().find(|(_, _, sym)| *sym == s).map(|(_, o, _)| *o)
    }
    /// Does an integer `x` satisfy `x op v`?
    pub fn holds(self, x: i64, v: i64) -> bool {
        match self {
            CmpOp::Eq => x == v, CmpOp::Ne => x != v, CmpOp::Lt => x < v,
            CmpOp::Lte => x <= v, CmpOp::Gt => x > v, CmpOp::Gte => x >= v,
        }
    }
}

/// `{"last": {...}}` relative to the evaluation time, or a fixed `[from, to)` range.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    Last(Span),
    Range { from: Option<String>, to: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventCond {
    pub event: String,
    pub filter: Option<PropTree>,
    pub within: Option<Window>,
    pub count: Option<(CmpOp, i64)>,
    pub having: Vec<Having>,
    pub performed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn { Count, CountDistinct, Sum, Avg, Min, Max }

pub const AGG_FNS: &[(&str, AggFn)] = &[
    ("count", AggFn::Count), ("count_distinct", AggFn::CountDistinct), ("sum", AggFn::Sum),
    ("avg", AggFn::Avg), ("min", AggFn::Min), ("max", AggFn::Max),
];

impl AggFn {
    pub fn name(self) -> &'static str {
        AGG_FNS.iter().find(|(_, f)| *f == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Having {
    pub func: AggFn,
    pub prop: String,
    pub op: CmpOp,
    pub value: Scalar,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RatioCond {
    pub event: String,
    pub occasion: String,
    pub of: Option<PropTree>,
    pub matches: PropTree,
    pub op: CmpOp,
    pub value: Number,
    pub min_occasions: i64,
    pub within: Option<Window>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceCond {
    pub first: EventCond,
    pub then: EventCond,
    pub gap_op: CmpOp,
    pub gap: Span,
}

/// `{"rfm": {"cluster": [...], "r": {...}, "fm": {...}}}`: all parts must hold (at least one given).
#[derive(Debug, Clone, PartialEq)]
pub struct RfmCond {
    /// empty: any cluster
    pub clusters: Vec<String>,
    /// in the order r, f, m, fm; each score at most once
    pub scores: Vec<(Score, CmpOp, Number)>,
}

/// An RFM score: r, f and m are whole numbers 1–5; fm is the average of f and m (1, 1.5, … 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score { R, F, M, Fm }

pub const SCORES: &[(&str, Score)] = &[("r", Score::R), ("f", Score::F), ("m", Score::M), ("fm", Score::Fm)];

impl Score {
    pub fn name(self) -> &'static str {
        SCORES.iter().find(|(_, s)| *s == self).map(|(n, _)| *n).unwrap_or("?")
    }
}
