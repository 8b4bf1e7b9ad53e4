//! Validated AST + registered model → parameterized SQL.
//!
//! Names only ever come from the model (quoted by Postgres); every user value becomes a bind
//! parameter `$n` cast to the column's own type. `$1` is always the evaluation time (`as_of`,
//! timestamptz). Generated SQL runs with `search_path = pg_catalog, pg_temp`, so operators and
//! functions resolve to the built-in ones.
//!
//! Semantics, in SQL's terms: a comparison on a NULL value is not a match (only `is_null` matches
//! it), and `not` matches whatever its inner condition does not match (so NULLs included). An
//! event condition counts the contact's events that pass `where` and `within`; the default is "at
//! least one"; when the count test accepts zero (e.g. `count < 3`) contacts without events match.
pub use crate::algebra::Expr;
use crate::error::{choices, Problem, Problems, RULE_HINT};
use crate::model::{find, Column, ContactSource, EventSource, Model, TypeKind};
use crate::rule::json::valid_timestamp;
use crate::rule::*;

/// A bind parameter after `$1` (as_of). Values for a column are bound in the column's type, and
/// bounds of relative windows as timestamps computed before the statement runs: PostgreSQL then
/// plans with the actual values (a cast or `$1 - interval` in the SQL would be a stable
/// expression, evaluated on every row and invisible to the planner's estimates).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// bound as text (the SQL casts it where it needs another type)
    Text(String),
    TextArray(Vec<String>),
    /// a value of type `type_sql` (a `format_type()` string; its type modifier is ignored) in its
    /// text form, converted by the type's input function in the session's settings, as a cast is
    Typed { text: String, type_sql: String },
    /// values of type `type_sql`, bound as one array of it
    TypedArray { texts: Vec<String>, type_sql: String },
    /// as_of minus this interval, as timestamptz
    AsOfMinus(String),
    /// as_of's calendar date (session time zone) minus this interval, as timestamp
    AsOfDateMinus(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub sql: String,
    /// `$2`, `$3`, … (`$1` is as_of)
    pub params: Vec<Param>,
}

/// One step of a funnel: the top-level condition `path` and its label (text form).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub path: String,
    pub label: String,
}

pub struct Compiled<'m> {
    contacts: &'m ContactSource,
    params: Vec<Param>,
    predicate: String,
}

/// The problem of a model without a contact source.
pub fn no_contacts() -> Problem {
    Problem::invalid("$", "no contact source is registered")
        .hint("call segplan.register_contacts('schema.table', 'key_column') first")
}

/// Checks a `matches` pattern with the database's own regex engine: `Some(error)` if invalid.
pub type RegexCheck<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Checks the rule against the model and builds its predicate over the contacts row `c`.
pub fn compile<'m>(rule: &Rule, model: &'m Model, regex: RegexCheck<'m>) -> Result<Compiled<'m>, Problems> {
    let contacts = model.contacts.as_ref().ok_or_else(no_contacts)?;
    let mut c = Compiler::new(model, contacts, regex);
    let predicate = c.rule(rule, "$");
    if !c.problems.is_empty() {
        return Err(Problems(c.problems).or_hint(RULE_HINT));
    }
    Ok(Compiled { contacts, params: c.params, predicate })
}

/// All problems of a rule against the model, without raising (for `segplan.validate`).
pub fn check(rule: &Rule, model: &Model, regex: RegexCheck) -> Vec<Problem> {
    match compile(rule, model, regex) {
        Ok(_) => Vec::new(),
        Err(p) => p.0,
    }
}

impl Compiled<'_> {
    fn from(&self) -> String {
        format!("{} AS c WHERE c.{} IS NOT NULL", self.contacts.rel.sql, self.contacts.key.sql)
    }
    pub fn count(&self) -> Query {
        Query { sql: format!("SELECT count(*) FROM {} AND ({})", self.from(), self.predicate), params: self.params.clone() }
    }
    /// The matching keys, cast to `key_cast` (e.g. `bigint` or `text`).
    pub fn members(&self, key_cast: &str) -> Query {
        Query {
            sql: format!("SELECT c.{}::{key_cast} FROM {} AND ({})", self.contacts.key.sql, self.from(), self.predicate),
            params: self.params.clone(),
        }
    }
}

/// The funnel of a rule's top-level conditions: one query returning, for k = 1..n, the count
/// of condition k alone and the running count of conditions 1..k, as 2n bigint columns.
pub fn steps<'m>(rule: &Rule, model: &'m Model, regex: RegexCheck<'m>) -> Result<(Vec<Step>, Query), Problems> {
    let contacts = model.contacts.as_ref().ok_or_else(no_contacts)?;
    let (parts, key, any) = top_level(rule);
    let join = if any { " OR " } else { " AND " };
    let mut c = Compiler::new(model, contacts, regex);
    let mut steps = Vec::new();
    let mut flags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let path = part_path(key, i);
        let pred = c.rule(part, &path);
        flags.push(format!("({pred}) IS TRUE AS b{}", i + 1));
        steps.push(Step { path, label: crate::rule::text::format(part) });
    }
    if !c.problems.is_empty() {
        return Err(Problems(c.problems).or_hint(RULE_HINT));
    }
    let mut cols = Vec::new();
    for k in 1..=parts.len() {
        cols.push(format!("count(*) FILTER (WHERE s.b{k})"));
        let running: Vec<String> = (1..=k).map(|j| format!("s.b{j}")).collect();
        cols.push(format!("count(*) FILTER (WHERE {})", running.join(join)));
    }
    // OFFSET 0 keeps the flags computed once per contact (no pull-up duplicating sub-plans)
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM {} AS c WHERE c.{} IS NOT NULL OFFSET 0) AS s",
        cols.join(", "), flags.join(", "), contacts.rel.sql, contacts.key.sql
    );
    Ok((steps, Query { sql, params: c.params }))
}

/// One leaf condition of a rule as a query returning its contacts in one value: integer keys as
/// one `roaringbitmap64` (its portable bytes, so the result reads back without a type lookup),
/// any other key (uuid, text) through [`keys_agg`], which the engine turns into dense ids
/// ([`gather`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub query: Query,
    /// how the answer depends on `$1` (as_of)
    pub as_of: AsOf,
    /// oids of the relations the query reads (sorted)
    pub relations: Vec<u32>,
    /// the condition in the text form
    pub label: String,
    /// for a condition on the contacts' own columns: its predicate over `c` (so several such
    /// leaves can be built in one scan of the contacts, see [`one_scan`])
    pub filter: Option<String>,
    /// how to bring its bitmap up to date after writes, when whether a contact matches depends on
    /// that contact's rows only (not RFM: its scores rank every contact)
    pub patch: Option<Patch>,
}

/// A leaf re-evaluated for some contacts only: after writes to its tables, the contacts they
/// touched (keys the change-log trigger logged) are taken out of the cached bitmap and this query's
/// answer for them is put in; every other contact's answer is unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// the leaf's query for the contacts whose keys are its last parameter (a `bigint[]`)
    pub query: Query,
    /// per relation the leaf reads, the column that names the contact in it: a write's logged
    /// keys patch the leaf only if they are of that column
    pub keys: Vec<(u32, String)>,
    /// for a leaf whose answer depends on as_of: how to find the contacts whose answer may differ
    /// at another as_of, so a bitmap of another minute (or day) can be patched for those
    pub shift: Option<Shift>,
}

/// The contacts a leaf's answer may differ for between two as_of values: those with a row that
/// passes the leaf's conditions on it that do not depend on as_of and whose column compared with
/// an as_of bound lies between that bound's two values (a comparison with a bound can only change
/// for values between its old and new value). Every other contact's rows compare the same, so its
/// answer is the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// returns a `roaringbitmap64`'s bytes (integer keys) or the keys' text in a `text[]`; `$1` and
    /// the leaf's own parameters as in the leaf,
    /// then two parameters per bound in `bounds`: its lower and its higher value
    pub sql: String,
    pub bounds: Vec<Bound>,
}

/// A value computed from as_of that a column is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `$1` itself (timestamptz)
    AsOf,
    /// the leaf's parameter at this index (`$(i + 2)`, a [`Param::AsOfMinus`] or [`Param::AsOfDateMinus`])
    Param(usize),
}

/// Rows of one relation a leaf reads whose contact's answer may change as as_of moves.
#[derive(Debug, Clone, PartialEq)]
struct Moving {
    /// `relation AS alias`
    from: String,
    /// the row's contact key
    contact: String,
    /// conditions on the rows that do not depend on as_of (all must hold for a row to count)
    fixed: Vec<String>,
    /// columns compared with bounds computed from as_of
    slices: Vec<(String, Bound)>,
}

/// `= ANY ($n)` for a list of contact keys given as parameter `n`: integer keys as `bigint[]`,
/// others (the text of uuid and text keys, as the change log keeps them) as `text[]` read in the
/// key's own type (an index on the contact column is used).
fn among(contacts: &ContactSource, n: usize) -> String {
    if integer_keys(contacts) {
        format!("= ANY (${n}::bigint[])")
    } else {
        format!("= ANY (${n}::pg_catalog.text[]::{}[])", contacts.key.type_sql)
    }
}

/// The statement listing the contacts of the rows in `moving` whose compared columns lie between
/// their bounds' two values (see [`Shift`]); the bounds' parameters follow the leaf's `params`.
/// Integer keys come back as a `roaringbitmap64`'s bytes, others as their text in one `text[]`.
fn shift(moving: &[Moving], params: usize, integers: bool) -> Shift {
    let mut bounds = Vec::new();
    let parts: Vec<String> = moving
        .iter()
        .map(|m| {
            let slices: Vec<String> = m
                .slices
                .iter()
                .map(|(column, b)| {
                    let lo = params + 2 + 2 * bounds.len();
                    bounds.push(*b);
                    format!("{column} BETWEEN ${lo} AND ${}", lo + 1)
                })
                .collect();
            let mut conds = m.fixed.clone();
            conds.push(format!("({})", slices.join(" OR ")));
            format!("SELECT ({})::{} FROM {} WHERE {}", m.contact, if integers { "bigint" } else { "text" }, m.from, conds.join(" AND "))
        })
        .collect();
    let sql = if integers {
        format!("SELECT segplan.rb64_build_agg(s.k)::pg_catalog.bytea FROM ({}) AS s(k)", parts.join(" UNION ALL "))
    } else {
        format!("SELECT pg_catalog.array_agg(DISTINCT s.k) FROM ({}) AS s(k)", parts.join(" UNION ALL "))
    };
    Shift { sql, bounds }
}

/// Several contact-column leaves as one statement: one scan of the contacts returning, per leaf,
/// its bitmap (`FILTER (WHERE predicate)`), in order. Each leaf's own `$n` are renumbered after
/// the parameters of the leaves before it; `$1` (as_of) is shared.
pub fn one_scan(leaves: &[&Leaf], contacts: &ContactSource) -> Query {
    let k = &contacts.key.sql;
    let mut params = Vec::new();
    let mut cols = Vec::new();
    for l in leaves {
        let pred = renumber(l.filter.as_deref().unwrap_or("true"), params.len());
        params.extend(l.query.params.iter().cloned());
        cols.push(if integer_keys(contacts) {
            format!("(segplan.rb64_build_agg(c.{k}::bigint) FILTER (WHERE {pred}))::pg_catalog.bytea")
        } else {
            format!("{}(c.{k}::{}) FILTER (WHERE {pred})", keys_agg(contacts), key_travel_type(contacts))
        });
    }
    Query { sql: format!("SELECT {} FROM {} AS c", cols.join(", "), contacts.rel.sql), params }
}

fn integer_keys(contacts: &ContactSource) -> bool {
    contacts.key.kind == TypeKind::Integer
}

/// The type other keys travel in: uuid as itself (16 bytes), anything else as text.
fn key_travel_type(contacts: &ContactSource) -> &'static str {
    if contacts.key.kind == TypeKind::Uuid { "uuid" } else { "text" }
}

/// The aggregate other keys leave a statement in, as ids where the session's copy has them and
/// as keys where it does not: uuid keys (`segplan._ids_agg`), text keys by their fingerprint
/// (`segplan._keys_agg`).
fn keys_agg(contacts: &ContactSource) -> &'static str {
    if contacts.key.kind == TypeKind::Uuid { "segplan._ids_agg" } else { "segplan._keys_agg" }
}

/// The statement collecting the keys `key` (an SQL expression) of the rows `FROM {from}`: integer
/// keys into a `roaringbitmap64`'s bytes, others (as uuid or text) into [`keys_agg`]'s
/// bytes (`distinct`: `from` may list a contact many times, as event rows do). Both aggregates
/// run in parallel and skip NULL keys (so a scan of the contacts needs no `IS NOT NULL` filter).
pub fn gather(contacts: &ContactSource, key: &str, from: &str, distinct: bool) -> String {
    let (t, agg) = (key_travel_type(contacts), keys_agg(contacts));
    match (integer_keys(contacts), distinct) {
        (true, _) => format!("SELECT segplan.rb64_build_agg({key}::bigint)::pg_catalog.bytea FROM {from}"),
        (false, false) => format!("SELECT {agg}({key}::{t}) FROM {from}"),
        (false, true) => format!("SELECT {agg}(s.k) FROM (SELECT DISTINCT {key}::{t} FROM {from}) AS s(k)"),
    }
}

/// `$n` for n ≥ 2 becomes `$(n + by)` (the compiler writes `$` only in parameter references).
fn renumber(sql: &str, by: usize) -> String {
    renumber_from(sql, 2, by)
}

/// `$n` for n ≥ `from` becomes `$(n + by)`.
pub(crate) fn renumber_from(sql: &str, from: usize, by: usize) -> String {
    if by == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        out.push(ch);
        if ch == '$' {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            match digits.parse::<usize>() {
                Ok(n) if n >= from => out.push_str(&(n + by).to_string()),
                _ => out.push_str(&digits),
            }
        }
    }
    out
}

/// How much of `$1` (as_of) a query depends on: not at all, only its calendar date in the
/// session's time zone (RFM), or the exact instant (relative windows, ages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum AsOf {
    #[default]
    No,
    Date,
    Exact,
}

/// A rule as bitmap algebra: the top-level conditions (`steps`, combined with AND, or OR when
/// `any`) over distinct leaves; every result is intersected with `universe` (all contacts).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub universe: Leaf,
    pub leaves: Vec<Leaf>,
    pub steps: Vec<(Step, Expr)>,
    pub any: bool,
}

impl Plan {
    /// The whole rule.
    pub fn expr(&self) -> Expr {
        let parts = self.steps.iter().map(|(_, e)| e.clone()).collect();
        if self.any { Expr::Any(parts) } else { Expr::All(parts) }
    }

    /// Whether answering needs `universe`: for a `not` (all contacts minus), for a group of no
    /// conditions (all contacts), and to bound leaves that may name others than contacts (event
    /// rows, segments). A rule of conditions on the contacts' own columns joined by and/or does
    /// not: its leaves hold contacts only, so their union bounds every answer just as well.
    pub fn needs_universe(&self) -> bool {
        crate::algebra::needs_universe(&self.expr()) || self.leaves.iter().any(|l| l.filter.is_none())
    }
}

/// Splits a rule into its top-level conditions: (parts, "all"/"any"/"", any?).
fn top_level(rule: &Rule) -> (Vec<&Rule>, &'static str, bool) {
    match rule {
        Tree::All(xs) => (xs.iter().collect(), "all", false),
        Tree::Any(xs) => (xs.iter().collect(), "any", true),
        other => (vec![other], "", false),
    }
}

fn part_path(key: &str, i: usize) -> String {
    if key.is_empty() { "$".to_string() } else { format!("$.{key}[{i}]") }
}

/// Checks the rule against the model and plans it as bitmap algebra over leaf queries (integer
/// contact keys: each leaf returns the keys as bigint in a `roaringbitmap64`).
pub fn plan(rule: &Rule, model: &Model, regex: RegexCheck) -> Result<Plan, Problems> {
    let contacts = model.contacts.as_ref().ok_or_else(no_contacts)?;
    let mut c = Compiler::new(model, contacts, regex);
    let (parts, key, any) = top_level(rule);
    let mut leaves = Vec::new();
    let mut steps = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let path = part_path(key, i);
        let expr = c.plan(part, &path, &mut leaves);
        steps.push((Step { path, label: crate::rule::text::format(part) }, expr));
    }
    if !c.problems.is_empty() {
        return Err(Problems(c.problems).or_hint(RULE_HINT));
    }
    let k = &contacts.key.sql;
    let universe = Leaf {
        query: Query { sql: gather(contacts, &format!("c.{k}"), &format!("{} AS c", contacts.rel.sql), false), params: Vec::new() },
        as_of: AsOf::No,
        relations: vec![contacts.rel.oid],
        label: "all contacts".into(),
        filter: Some("true".into()),
        patch: contacts.keyed.clone().map(|keyed| Patch {
            query: Query { sql: gather(contacts, &format!("c.{k}"), &format!("{} AS c WHERE c.{k} {}", contacts.rel.sql, among(contacts, 2)), false), params: Vec::new() },
            keys: vec![keyed],
            shift: None,
        }),
    };
    Ok(Plan { universe, leaves, steps, any })
}

struct Compiler<'m> {
    model: &'m Model,
    contacts: &'m ContactSource,
    regex: RegexCheck<'m>,
    params: Vec<Param>,
    problems: Vec<Problem>,
    /// how `$1` (as_of) was used since the last reset
    as_of_used: AsOf,
    /// oids of the relations read since the last reset
    relations: Vec<u32>,
    /// where writes to the event sources read since the last reset log their contacts
    contact_columns: Vec<crate::model::Keyed>,
    /// whether something read since the last reset ranks all contacts (RFM)
    global: bool,
    /// references to as_of (`$1` or a parameter computed from it) since the last reset
    as_of_refs: usize,
    /// comparisons with as_of bounds not yet placed in `moving`
    slices: Vec<(String, Bound)>,
    /// rows whose answers may change as as_of moves, since the last reset
    moving: Vec<Moving>,
}

/// What a condition compiles to: a predicate over the contacts row `c`, a query listing contact
/// keys, or the rows of one relation that name their contact (`negate`: the condition holds for
/// the contacts *not* listed).
enum Piece {
    Pred(String),
    Set { sql: String, negate: bool },
    /// `FROM {rows}` lists rows whose contact key is `contact`
    Rows { contact: String, rows: String, negate: bool },
}

impl Piece {
    fn negated(self) -> Piece {
        match self {
            // a comparison on NULL is no match, and neither is its negation: `not` takes those
            Piece::Pred(p) => Piece::Pred(format!("(({p}) IS NOT TRUE)")),
            Piece::Set { sql, negate } => Piece::Set { sql, negate: !negate },
            Piece::Rows { contact, rows, negate } => Piece::Rows { contact, rows, negate: !negate },
        }
    }
}

const FAILED: &str = "false";

/// The values an integer column's type holds (by its name; a domain is read as bigint, and
/// PostgreSQL refuses what its base type cannot hold).
fn int_range(type_sql: &str) -> (i64, i64) {
    match type_sql {
        "smallint" => (i16::MIN.into(), i16::MAX.into()),
        "integer" => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

/// 32 hex digits, with hyphens between groups of four and in braces or not, as uuid_in reads them.
fn looks_like_uuid(v: &str) -> bool {
    let inner = v.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(v);
    let digits: Vec<&str> = inner.split('-').collect();
    digits.iter().all(|g| !g.is_empty() && g.len() % 4 == 0 && g.chars().all(|c| c.is_ascii_hexdigit()))
        && digits.iter().map(|g| g.len()).sum::<usize>() == 32
}

/// A contact key given as text (an uploaded list) that the key column's type cannot read, as the
/// problem at `path`: PostgreSQL's input function would stop the statement without saying which.
pub fn key_problem(key: &str, col: &Column, path: &str) -> Option<Problem> {
    let (lo, hi) = int_range(&col.type_sql);
    let ok = match col.kind {
        // int8in reads surrounding spaces, uuid_in none
        TypeKind::Integer => key.trim().parse::<i64>().is_ok_and(|v| (lo..=hi).contains(&v)),
        TypeKind::Uuid => looks_like_uuid(key),
        _ => true,
    };
    (!ok).then(|| {
        Problem::invalid(path, format!("the contacts' key \"{}\" is of type {}; {key:?} is not one", col.name, col.type_sql)).hint(match col.kind {
            TypeKind::Integer => format!("give keys that are whole numbers from {lo} to {hi}"),
            k => format!("give keys that are each {}", kind_word(k)),
        })
    })
}

fn kind_word(k: TypeKind) -> &'static str {
    match k {
        TypeKind::Integer => "a whole number",
        TypeKind::Numeric => "a number",
        TypeKind::Bool => "true or false",
        TypeKind::Date | TypeKind::Timestamp | TypeKind::TimestampTz => "a date or timestamp string such as \"2026-01-31\"",
        TypeKind::Uuid => "a uuid such as \"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
        _ => "a string",
    }
}

impl<'m> Compiler<'m> {
    fn new(model: &'m Model, contacts: &'m ContactSource, regex: RegexCheck<'m>) -> Self {
        Compiler { model, contacts, regex, params: Vec::new(), problems: Vec::new(), as_of_used: AsOf::No, relations: Vec::new(), contact_columns: Vec::new(), global: false, as_of_refs: 0, slices: Vec::new(), moving: Vec::new() }
    }

    fn as_of(&mut self) -> &'static str {
        self.as_of_used = AsOf::Exact;
        self.as_of_refs += 1;
        "$1"
    }

    /// as_of's calendar date (session time zone), computed once per statement.
    fn as_of_date(&mut self) -> String {
        self.as_of_used = self.as_of_used.max(AsOf::Date);
        self.as_of_refs += 1;
        once("($1)::date")
    }

    /// `column >= start AND column <= as_of` for a window reaching back `span` from as_of (the
    /// comparisons noted as moving with as_of).
    fn since(&mut self, column: &str, span: &Span) -> String {
        let since = self.param(Param::AsOfMinus(span.interval()));
        let a = self.as_of();
        self.slices.push((column.to_string(), Bound::Param(self.params.len() - 1)));
        self.slices.push((column.to_string(), Bound::AsOf));
        format!("{column} >= {since} AND {column} <= {a}")
    }

    fn param(&mut self, p: Param) -> String {
        // parameters computed from as_of make the query depend on it
        let uses = match p {
            Param::AsOfMinus(_) => AsOf::Exact,
            Param::AsOfDateMinus(_) => AsOf::Date,
            _ => AsOf::No,
        };
        if uses != AsOf::No {
            self.as_of_refs += 1;
        }
        self.as_of_used = self.as_of_used.max(uses);
        self.params.push(p);
        format!("${}", self.params.len() + 1)
    }

    /// The comparisons with as_of bounds noted since `mark`, taken out.
    fn slices_since(&mut self, mark: usize) -> Vec<(String, Bound)> {
        self.slices.drain(mark.min(self.slices.len())..).collect()
    }

    /// Adds `cond` (compiled since the comparisons with as_of numbered `mark`) to `conds`, and to
    /// `fixed` if it holds no such comparison, else its comparisons to `slices`.
    fn place(&mut self, cond: String, mark: usize, conds: &mut Vec<String>, fixed: &mut Vec<String>, slices: &mut Vec<(String, Bound)>) {
        let moved = self.slices_since(mark);
        if moved.is_empty() {
            fixed.push(cond.clone());
        } else {
            slices.extend(moved);
        }
        conds.push(cond);
    }

    /// Notes the rows `from` (their contact `contact`; `fixed`: their conditions free of as_of) as
    /// moving with as_of if `slices` (comparisons with as_of bounds on them) are any.
    fn note_moving(&mut self, from: String, contact: String, fixed: Vec<String>, slices: Vec<(String, Bound)>) {
        if !slices.is_empty() {
            self.moving.push(Moving { from, contact, fixed, slices });
        }
    }

    fn fail(&mut self, p: Problem) -> String {
        self.problems.push(p);
        FAILED.to_string()
    }

    /// The rule as a predicate over the contacts row `c`. A negated condition on related rows
    /// is written `NOT EXISTS`, which PostgreSQL runs as an anti-join: `NOT IN` would be a
    /// sub-plan, re-run for every contact once its hash table outgrows `work_mem`.
    fn rule(&mut self, t: &Rule, path: &str) -> String {
        match t {
            Tree::Not(x) => match &**x {
                Tree::Leaf(l) => {
                    let piece = self.cond(l, &format!("{path}.not"));
                    self.pred(piece.negated())
                }
                x => format!("(({}) IS NOT TRUE)", self.rule(x, &format!("{path}.not"))),
            },
            Tree::Leaf(l) => {
                let piece = self.cond(l, path);
                self.pred(piece)
            }
            Tree::All(xs) | Tree::Any(xs) => {
                let (key, op) = if matches!(t, Tree::All(_)) { ("all", " AND ") } else { ("any", " OR ") };
                let parts: Vec<String> = xs.iter().enumerate().map(|(i, x)| self.rule(x, &format!("{path}.{key}[{i}]"))).collect();
                format!("({})", parts.join(op))
            }
        }
    }

    fn pred(&self, piece: Piece) -> String {
        let key = &self.contacts.key.sql;
        match piece {
            Piece::Pred(p) => p,
            Piece::Set { sql, negate: false } => format!("c.{key} IN ({sql})"),
            Piece::Set { sql, negate: true } => format!("NOT EXISTS (SELECT 1 FROM ({sql}) AS s(k) WHERE s.k = c.{key})"),
            Piece::Rows { contact, rows, negate } => {
                format!("{}EXISTS (SELECT 1 FROM {rows} AND {contact} = c.{key})", if negate { "NOT " } else { "" })
            }
        }
    }

    /// The rule as bitmap algebra over leaves; each new leaf (one per distinct condition) is
    /// appended to `leaves` as a query returning its contacts as a `roaringbitmap64`.
    fn plan(&mut self, t: &Rule, path: &str, leaves: &mut Vec<Leaf>) -> Expr {
        match t {
            Tree::All(xs) => Expr::All(xs.iter().enumerate().map(|(i, x)| self.plan(x, &format!("{path}.all[{i}]"), leaves)).collect()),
            Tree::Any(xs) => Expr::Any(xs.iter().enumerate().map(|(i, x)| self.plan(x, &format!("{path}.any[{i}]"), leaves)).collect()),
            Tree::Not(x) => Expr::not(self.plan(x, &format!("{path}.not"), leaves)),
            Tree::Leaf(cond) => {
                let params = std::mem::take(&mut self.params);
                let as_of_used = std::mem::take(&mut self.as_of_used);
                let relations = std::mem::take(&mut self.relations);
                let contact_columns = std::mem::take(&mut self.contact_columns);
                let global = std::mem::take(&mut self.global);
                let as_of_refs = std::mem::take(&mut self.as_of_refs);
                let slices = std::mem::take(&mut self.slices);
                let moving = std::mem::take(&mut self.moving);
                let piece = self.cond(cond, path);
                let params = std::mem::replace(&mut self.params, params);
                let as_of = std::mem::replace(&mut self.as_of_used, as_of_used);
                let mut relations = std::mem::replace(&mut self.relations, relations);
                let mut keys = std::mem::replace(&mut self.contact_columns, contact_columns);
                let global = std::mem::replace(&mut self.global, global);
                let as_of_refs = std::mem::replace(&mut self.as_of_refs, as_of_refs);
                let unplaced = std::mem::replace(&mut self.slices, slices);
                let moving = std::mem::replace(&mut self.moving, moving);
                // every reference to as_of must be a comparison placed in some rows' slices
                let placed = moving.iter().map(|m| m.slices.len()).sum::<usize>();
                let shift = (as_of != AsOf::No && unplaced.is_empty() && placed == as_of_refs).then(|| shift(&moving, params.len(), integer_keys(self.contacts)));
                let (key, rel) = (&self.contacts.key.sql, &self.contacts.rel.sql);
                // the patch's key list comes after the leaf's own parameters
                let among = among(self.contacts, params.len() + 2);
                let (sql, negate, filter, patch_sql) = match piece {
                    Piece::Pred(p) => {
                        relations.push(self.contacts.rel.oid);
                        keys.push(self.contacts.keyed.clone());
                        let patch = gather(self.contacts, &format!("c.{key}"), &format!("{rel} AS c WHERE ({p}) AND c.{key} {among}"), false);
                        (gather(self.contacts, &format!("c.{key}"), &format!("{rel} AS c WHERE ({p})"), false), false, Some(p), patch)
                    }
                    // PostgreSQL pushes the test on the grouped or distinct key down to the rows
                    Piece::Set { sql, negate } => {
                        let patch = gather(self.contacts, "s.k", &format!("({sql}) AS s(k) WHERE s.k {among}"), false);
                        (gather(self.contacts, "s.k", &format!("({sql}) AS s(k)"), false), negate, None, patch)
                    }
                    Piece::Rows { contact, rows, negate } => {
                        let patch = gather(self.contacts, &format!("({contact})"), &format!("{rows} AND ({contact}) {among}"), true);
                        (gather(self.contacts, &format!("({contact})"), &rows, true), negate, None, patch)
                    }
                };
                relations.sort_unstable();
                relations.dedup();
                // every source it reads must say where writes log their contacts
                let keys: Option<Vec<(u32, String)>> = keys.into_iter().collect();
                let patch = keys.filter(|_| !global).map(|mut keys| {
                    keys.sort();
                    keys.dedup();
                    Patch { query: Query { sql: patch_sql, params: params.clone() }, keys, shift }
                });
                let label = crate::rule::text::format(&Tree::Leaf(cond.clone()));
                let leaf = Leaf { query: Query { sql, params }, as_of, relations, label, filter, patch };
                let i = match leaves.iter().position(|l| *l == leaf) {
                    Some(i) => i,
                    None => {
                        leaves.push(leaf);
                        leaves.len() - 1
                    }
                };
                if negate { Expr::not(Expr::Leaf(i)) } else { Expr::Leaf(i) }
            }
        }
    }

    fn tree<L>(&mut self, t: &Tree<L>, path: &str, leaf: &mut dyn FnMut(&mut Self, &L, &str) -> String) -> String {
        match t {
            Tree::All(xs) | Tree::Any(xs) => {
                let (key, op) = if matches!(t, Tree::All(_)) { ("all", " AND ") } else { ("any", " OR ") };
                let parts: Vec<String> = xs.iter().enumerate()
                    .map(|(i, x)| self.tree(x, &format!("{path}.{key}[{i}]"), leaf)).collect();
                format!("({})", parts.join(op))
            }
            Tree::Not(x) => format!("(({}) IS NOT TRUE)", self.tree(x, &format!("{path}.not"), leaf)),
            Tree::Leaf(l) => leaf(self, l, path),
        }
    }

    fn cond(&mut self, c: &Cond, path: &str) -> Piece {
        match c {
            Cond::Attr(cmp) => {
                let contacts = self.contacts;
                Piece::Pred(match find(&contacts.columns, &cmp.field) {
                    Some(col) => {
                        let mark = self.slices.len();
                        let pred = self.compare(cmp, col, "c", path);
                        let slices = self.slices_since(mark);
                        self.note_moving(format!("{} AS c", contacts.rel.sql), format!("c.{}", contacts.key.sql), Vec::new(), slices);
                        pred
                    }
                    None => self.fail(Problem::invalid(&format!("{path}.attr"), format!("unknown attribute \"{}\"", cmp.field))
                        .hint(format!("attributes of {}: {}", contacts.rel.name, choices(contacts.columns.iter().map(|c| c.name.as_str()))))),
                })
            }
            Cond::Event(e) => self.event(e, path),
            Cond::Ratio(r) => self.ratio(r, &format!("{path}.ratio")),
            Cond::Sequence(s) => self.sequence(s, &format!("{path}.sequence")),
            Cond::Rfm(r) => self.rfm(r, &format!("{path}.rfm")),
            // references are replaced by the segments' rules before compiling (crate::segments::expand)
            Cond::Segment(name) => Piece::Pred(self.fail(Problem::invalid(&format!("{path}.segment"), format!("unknown segment \"{name}\""))
                .hint("the segplan.segments view lists the saved segments"))),
        }
    }

    /// A value for column `col`, as a parameter cast to the column's type.
    fn typed(&mut self, s: &Scalar, col: &Column, path: &str) -> Option<String> {
        let (lo, hi) = int_range(&col.type_sql);
        let ok = match (s, col.kind) {
            (Scalar::Num(n), TypeKind::Integer) => n.as_i64().is_some_and(|v| (lo..=hi).contains(&v)),
            (Scalar::Num(_), TypeKind::Numeric) => true,
            (Scalar::Bool(_), TypeKind::Bool) => true,
            (Scalar::Str(v), k) if k.is_time() => valid_timestamp(v),
            (Scalar::Str(v), TypeKind::Uuid) => looks_like_uuid(v),
            (Scalar::Str(_), TypeKind::Text | TypeKind::Other) => true,
            (Scalar::Num(_) | Scalar::Bool(_), TypeKind::Other) => true,
            _ => false,
        };
        if !ok {
            self.problems.push(Problem::invalid(path, format!("\"{}\" is of type {}; the value {} does not fit", col.name, col.type_sql, crate::rule::json::scalar_json(s)))
                .hint(match col.kind {
                    TypeKind::Integer => format!("give a whole number from {lo} to {hi}"),
                    k => format!("give {}", kind_word(k)),
                }));
            return None;
        }
        Some(self.param(Param::Typed { text: scalar_text(s), type_sql: col.type_sql.clone() }))
    }

    fn compare(&mut self, c: &Compare, col: &Column, alias: &str, path: &str) -> String {
        let f = format!("{alias}.{}", col.sql);
        let vpath = format!("{path}.value");
        let need = |c2: &mut Self, ok: bool, what: &str| -> bool {
            if !ok {
                c2.problems.push(Problem::invalid(&format!("{path}.op"), format!("op {} needs {what}; \"{}\" is of type {}", c.op.name(), col.name, col.type_sql))
                    .hint("choose another op or another field"));
            }
            ok
        };
        match (&c.op, &c.value) {
            (Op::IsNull, _) => format!("{f} IS NULL"),
            (Op::NotNull, _) => format!("{f} IS NOT NULL"),
            (op, Operand::Scalar(s)) if op.as_cmp().is_some() => match self.typed(s, col, &vpath) {
                Some(v) => format!("{f} {} {v}", op.as_cmp().map(|o| o.sql()).unwrap_or("=")),
                None => FAILED.into(),
            },
            (Op::Between, Operand::Pair(lo, hi)) => {
                let lo = self.typed(lo, col, &format!("{vpath}[0]"));
                let hi = self.typed(hi, col, &format!("{vpath}[1]"));
                match (lo, hi) {
                    (Some(lo), Some(hi)) => format!("{f} BETWEEN {lo} AND {hi}"),
                    _ => FAILED.into(),
                }
            }
            (Op::In | Op::NotIn, Operand::List(xs)) => {
                let mut texts = Vec::with_capacity(xs.len());
                for (i, x) in xs.iter().enumerate() {
                    if self.typed_check(x, col, &format!("{vpath}[{i}]")) {
                        texts.push(scalar_text(x));
                    }
                }
                if texts.len() != xs.len() {
                    return FAILED.into();
                }
                let p = self.param(Param::TypedArray { texts, type_sql: col.type_sql.clone() });
                let any = format!("{f} = ANY ({p})");
                if c.op == Op::In { any } else { format!("NOT ({any})") }
            }
            (Op::Contains | Op::StartsWith | Op::EndsWith, Operand::Scalar(Scalar::Str(s))) => {
                if !need(self, col.kind == TypeKind::Text, "a text field") {
                    return FAILED.into();
                }
                let esc = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                let pat = match c.op {
                    Op::Contains => format!("%{esc}%"),
                    Op::StartsWith => format!("{esc}%"),
                    _ => format!("%{esc}"),
                };
                let p = self.param(Param::Text(pat));
                format!("{f} ILIKE {p}::text")
            }
            (Op::Matches, Operand::Scalar(Scalar::Str(s))) => {
                if !need(self, col.kind == TypeKind::Text, "a text field") {
                    return FAILED.into();
                }
                if let Some(e) = (self.regex)(s) {
                    return self.fail(Problem::invalid(&vpath, e)
                        .hint("write a POSIX regular expression as PostgreSQL's ~ operator reads it"));
                }
                let p = self.param(Param::Text(s.clone()));
                format!("{f} ~ {p}::text")
            }
            (Op::WithinLast | Op::NotWithinLast, Operand::Span(span)) => {
                if !need(self, col.kind.is_time(), "a date or timestamp field") {
                    return FAILED.into();
                }
                let within = format!("({})", self.since(&f, span));
                if c.op == Op::WithinLast { within } else { format!("NOT {within}") }
            }
            (Op::AgeBetween, Operand::Pair(Scalar::Num(lo), Scalar::Num(hi))) => {
                if !need(self, col.kind.is_time(), "a birth date field") {
                    return FAILED.into();
                }
                // age >= lo  ⇔  born on or before as_of − lo years;  age <= hi  ⇔  born after as_of − (hi+1) years
                let lo = lo.as_i64().unwrap_or(0);
                let hi = hi.as_i64().unwrap_or(0) + 1;
                let plo = self.param(Param::AsOfDateMinus(format!("{lo} years")));
                self.slices.push((f.clone(), Bound::Param(self.params.len() - 1)));
                let phi = self.param(Param::AsOfDateMinus(format!("{hi} years")));
                self.slices.push((f.clone(), Bound::Param(self.params.len() - 1)));
                format!("({f} <= {plo} AND {f} > {phi})")
            }
            (op, _) => self.fail(Problem::invalid(&vpath, format!("op {} got a value of the wrong shape", op.name()))),
        }
    }

    fn typed_check(&mut self, s: &Scalar, col: &Column, path: &str) -> bool {
        let before = self.params.len();
        let ok = self.typed(s, col, path).is_some();
        self.params.truncate(before);
        ok
    }

    fn source(&mut self, name: &str, path: &str) -> Option<&'m EventSource> {
        let model = self.model;
        let src = model.event(name);
        if let Some(s) = src {
            self.relations.push(s.rel.oid);
            self.contact_columns.push(s.keyed.clone());
        }
        if let Some(b) = model.broken.iter().find(|b| b.name == name) {
            self.problems.push(Problem::new(b.code, path, format!("event source \"{name}\" is broken: {}", b.reason))
                .hint("the table, view or column was dropped or renamed: register the source again with segplan.register_events"));
        } else if src.is_none() {
            let known = choices(model.events.iter().map(|e| e.name.as_str()));
            self.problems.push(Problem::invalid(path, format!("unknown event source \"{name}\""))
                .hint(if known.is_empty() { "register one with segplan.register_events(name, source, contact_column, time_column)".to_string() } else { format!("registered event sources: {known}") }));
        }
        src
    }

    fn prop(&mut self, src: &'m EventSource, name: &str, path: &str) -> Option<&'m Column> {
        let col = find(&src.columns, name);
        if col.is_none() {
            self.problems.push(Problem::invalid(path, format!("unknown property \"{name}\" of event source \"{}\"", src.name))
                .hint(format!("properties of {}: {}", src.name, choices(src.columns.iter().map(|c| c.name.as_str())))));
        }
        col
    }

    fn props(&mut self, src: &'m EventSource, t: &PropTree, alias: &str, path: &str) -> String {
        self.tree(t, path, &mut |c, cmp: &Compare, p| match c.prop(src, &cmp.field, &format!("{p}.prop")) {
            Some(col) => c.compare(cmp, col, alias, p),
            None => FAILED.into(),
        })
    }

    /// The contact column of an event source, cast to the key's type when the types differ.
    fn contact_expr(&mut self, src: &EventSource, alias: &str, path: &str) -> String {
        let key = &self.contacts.key;
        let c = format!("{alias}.{}", src.contact.sql);
        if src.contact.type_sql == key.type_sql || (src.contact.kind == TypeKind::Integer && key.kind == TypeKind::Integer) {
            c
        } else if src.contact.kind == key.kind || key.kind == TypeKind::Text {
            format!("{c}::{}", key.type_sql)
        } else {
            self.fail(Problem::invalid(path, format!("event source \"{}\" has contact column \"{}\" of type {}, but contact keys are {}", src.name, src.contact.name, src.contact.type_sql, key.type_sql))
                .hint("register the event source with a contact column of the contact key's type"))
        }
    }

    fn time_col(&mut self, src: &'m EventSource, path: &str) -> Option<&'m Column> {
        if src.time.is_none() {
            self.problems.push(Problem::invalid(path, format!("event source \"{}\" has no time column, so it cannot take a time window", src.name))
                .hint("register it again with a time column: segplan.register_events(name, source, contact_column, time_column)"));
        }
        src.time.as_ref()
    }

    fn window(&mut self, src: &'m EventSource, w: &Window, alias: &str, path: &str) -> String {
        let Some(t) = self.time_col(src, path) else { return FAILED.into() };
        let t = format!("{alias}.{}", t.sql);
        match w {
            Window::Last(span) => self.since(&t, span),
            Window::Range { from, to } => {
                let mut parts = Vec::new();
                if let Some(f) = from {
                    let p = self.param(Param::Typed { text: f.clone(), type_sql: "timestamptz".into() });
                    parts.push(format!("{t} >= {p}"));
                }
                if let Some(x) = to {
                    let p = self.param(Param::Typed { text: x.clone(), type_sql: "timestamptz".into() });
                    parts.push(format!("{t} < {p}"));
                }
                parts.join(" AND ")
            }
        }
    }

    /// `WHERE` conditions of an event leaf (filter and window) over alias `e`.
    fn event_filters(&mut self, src: &'m EventSource, e: &EventCond, alias: &str, path: &str) -> Vec<String> {
        let mut conds = vec![format!("{alias}.{} IS NOT NULL", src.contact.sql)];
        // the conditions that hold no comparison with as_of stay in the rows' shift
        let (mut fixed, mut slices) = (conds.clone(), Vec::new());
        if let Some(f) = &e.filter {
            let mark = self.slices.len();
            let cond = self.props(src, f, alias, &format!("{path}.where"));
            self.place(cond, mark, &mut conds, &mut fixed, &mut slices);
        }
        if let Some(w) = &e.within {
            let mark = self.slices.len();
            let cond = self.window(src, w, alias, &format!("{path}.within"));
            self.place(cond, mark, &mut conds, &mut fixed, &mut slices);
        }
        self.note_moving(format!("{} AS {alias}", src.rel.sql), format!("{alias}.{}", src.contact.sql), fixed, slices);
        conds
    }

    fn event(&mut self, e: &EventCond, path: &str) -> Piece {
        let Some(src) = self.source(&e.event, &format!("{path}.event")) else { return Piece::Pred(FAILED.into()) };
        let contact = self.contact_expr(src, "e", &format!("{path}.event"));
        let conds = self.event_filters(src, e, "e", path);
        let (count_op, count_v) = e.count.unwrap_or((CmpOp::Gte, 1));
        let mut tests = Vec::new();
        let mut zero_ok = count_op.holds(0, count_v);
        if e.count.is_some() {
            let p = self.param(Param::Text(count_v.to_string()));
            tests.push(format!("count(*) {} {p}::bigint", count_op.sql()));
        }
        for (i, h) in e.having.iter().enumerate() {
            let hp = format!("{path}.having[{i}]");
            let Some(col) = self.prop(src, &h.prop, &format!("{hp}.prop")) else { continue };
            let arg = format!("e.{}", col.sql);
            let (agg, value) = match h.func {
                AggFn::Count | AggFn::CountDistinct => {
                    let agg = if h.func == AggFn::Count { format!("count({arg})") } else { format!("count(DISTINCT {arg})") };
                    match &h.value {
                        Scalar::Num(n) if n.as_i64().is_some_and(|v| v >= 0) => {
                            zero_ok &= h.op.holds(0, n.as_i64().unwrap_or(0));
                            (agg, Some(format!("{}::bigint", self.param(Param::Text(n.to_string())))))
                        }
                        _ => {
                            self.problems.push(Problem::invalid(&format!("{hp}.value"), "a count is compared with a whole number").hint("for example 3"));
                            (agg, None)
                        }
                    }
                }
                AggFn::Sum | AggFn::Avg => {
                    zero_ok = false;
                    let agg = format!("{}({arg})", h.func.name());
                    if !col.kind.is_number() {
                        self.problems.push(Problem::invalid(&format!("{hp}.fn"), format!("{} needs a numeric property; \"{}\" is of type {}", h.func.name(), col.name, col.type_sql))
                            .hint("use count, count_distinct, min or max"));
                        (agg, None)
                    } else if let Scalar::Num(n) = &h.value {
                        (agg, Some(format!("{}::numeric", self.param(Param::Text(n.to_string())))))
                    } else {
                        self.problems.push(Problem::invalid(&format!("{hp}.value"), format!("{} is compared with a number", h.func.name())));
                        (agg, None)
                    }
                }
                AggFn::Min | AggFn::Max => {
                    zero_ok = false;
                    let v = self.typed(&h.value, col, &format!("{hp}.value"));
                    (format!("{}({arg})", h.func.name()), v)
                }
            };
            if let Some(v) = value {
                tests.push(format!("{agg} {} {v}", h.op.sql()));
            }
        }
        let rows = format!("{} AS e WHERE {}", src.rel.sql, conds.join(" AND "));
        if tests.is_empty() {
            return Piece::Rows { contact, rows, negate: !e.performed };
        }
        let (sql, zero) = if zero_ok {
            // contacts without events pass the tests: exclude those whose events fail them
            (format!("SELECT {contact} FROM {rows} GROUP BY 1 HAVING NOT coalesce(({}), false)", tests.join(" AND ")), true)
        } else {
            (format!("SELECT {contact} FROM {rows} GROUP BY 1 HAVING {}", tests.join(" AND ")), false)
        };
        Piece::Set { sql, negate: zero == e.performed }
    }

    fn ratio(&mut self, r: &RatioCond, path: &str) -> Piece {
        let Some(src) = self.source(&r.event, &format!("{path}.event")) else { return Piece::Pred(FAILED.into()) };
        let contact = self.contact_expr(src, "e", &format!("{path}.event"));
        let Some(occ) = self.prop(src, &r.occasion, &format!("{path}.occasion")) else { return Piece::Pred(FAILED.into()) };
        let mark = self.slices.len();
        let mut conds = vec![format!("e.{} IS NOT NULL", src.contact.sql), format!("e.{} IS NOT NULL", occ.sql)];
        let fixed = conds.clone();
        if let Some(w) = &r.within {
            conds.push(self.window(src, w, "e", &format!("{path}.within")));
        }
        let is_of = match &r.of {
            Some(of) => format!("coalesce({}, false)", self.props(src, of, "e", &format!("{path}.of"))),
            None => "true".into(),
        };
        let is_match = format!("coalesce({}, false)", self.props(src, &r.matches, "e", &format!("{path}.match")));
        // a row's part in the ratio changes only with its window, `of` or `match` comparisons
        let slices = self.slices_since(mark);
        self.note_moving(format!("{} AS e", src.rel.sql), format!("e.{}", src.contact.sql), fixed, slices);
        let pmin = self.param(Param::Text(r.min_occasions.to_string()));
        let pv = self.param(Param::Text(r.value.to_string()));
        let sql = format!(
            "SELECT o.contact FROM (SELECT {contact} AS contact, e.{occ} AS occasion, bool_or({is_of}) AS is_of, \
             bool_or({is_match}) AS is_match FROM {rel} AS e WHERE {conds} GROUP BY 1, 2) AS o WHERE o.is_of GROUP BY o.contact \
             HAVING count(*) >= {pmin}::bigint AND (count(*) FILTER (WHERE o.is_match))::float8 / count(*) {op} {pv}::float8",
            occ = occ.sql, rel = src.rel.sql, conds = conds.join(" AND "), op = r.op.sql()
        );
        Piece::Set { sql, negate: false }
    }

    fn rfm(&mut self, r: &RfmCond, path: &str) -> Piece {
        let key_type = self.contacts.key.type_sql.clone();
        let Some(scores) = self.rfm_scores(path, &key_type) else { return Piece::Pred(FAILED.into()) };
        let mut tests = Vec::new();
        if !r.clusters.is_empty() {
            let p = self.param(Param::TextArray(r.clusters.clone()));
            tests.push(format!("s.cluster = ANY ({p}::text[])"));
        }
        for (score, op, v) in &r.scores {
            let (sql, factor) = crate::rfm::score_sql(*score, "s");
            let p = self.param(Param::Text(v.to_string()));
            tests.push(format!("{sql} {} {factor} * {p}::numeric", op.sql()));
        }
        Piece::Set { sql: format!("SELECT s.k FROM ({scores}) AS s WHERE {}", tests.join(" AND ")), negate: false }
    }

    /// The RFM scores of every contact with a purchase in the configured window, as a query with
    /// columns k (the contact, cast to `key_cast` when it is not the contacts' key type),
    /// recency_days, frequency, monetary, r, f, m, cluster. See [`crate::rfm`] for the method.
    fn rfm_scores(&mut self, path: &str, key_cast: &str) -> Option<String> {
        self.global = true;
        let model = self.model;
        let Some(cfg) = &model.rfm else {
            self.problems.push(Problem::invalid(path, "RFM is not configured")
                .hint("call segplan.configure_rfm(event, amount_property, occasion_property) first"));
            return None;
        };
        let src = self.source(&cfg.event, path)?;
        let time = self.time_col(src, path)?;
        let amount = self.prop(src, &cfg.amount, path)?;
        if !amount.kind.is_number() {
            self.problems.push(Problem::invalid(path, format!("the RFM amount \"{}\" is of type {}, not a number", amount.name, amount.type_sql))
                .hint("configure RFM again with a numeric amount_property"));
            return None;
        }
        let occasion = match &cfg.occasion {
            Some(o) => Some(self.prop(src, o, path)?),
            None => None,
        };
        let contact = self.contact_expr(src, "e", path);
        let day = match &cfg.as_of {
            Some(t) => {
                let p = self.param(Param::Text(t.clone()));
                once(&format!("({p}::timestamptz)::date"))
            }
            None => self.as_of_date(),
        };
        // bounds computed once, in a type the column compares with natively (no per-row time zone work)
        let bound = if time.kind == TypeKind::TimestampTz { "timestamptz" } else { "timestamp" };
        let end = once(&format!("(({day} + 1)::{bound})"));
        let start = once(&format!("((({day} + 1) - {}::interval)::{bound})", self.param(Param::Text(cfg.window.clone()))));
        let t = format!("e.{}", time.sql);
        let window = format!("{contact} IS NOT NULL AND {t} < {end} AND {t} >= {start}");
        // integer keys are folded as bigint, any other as text; the scores come back in that type
        let (fold_key, scored_key, scored_type) = if self.contacts.key.kind == TypeKind::Integer {
            (format!("({contact})::bigint"), "s.k", "bigint")
        } else {
            (format!("({contact})::text"), "s.k_text", "text")
        };
        let amt = format!("(e.{})::numeric", amount.sql);
        // one pass folds the purchases per contact (segplan._rfm_agg, in Rust); with an occasion
        // property, rows are first grouped per contact and occasion (a NULL occasion adds to the
        // last day and the amount but is not an occasion)
        let purchases = match occasion {
            None => format!("SELECT segplan._rfm_agg({fold_key}, ({t})::date, 1::bigint, {amt}) FROM {rel} AS e WHERE {window}", rel = src.rel.sql),
            Some(o) => format!(
                "SELECT segplan._rfm_agg(o.k, o.day, o.occasions, o.amount) FROM (SELECT {fold_key} AS k, max({t})::date AS day, \
                 (e.{occ} IS NOT NULL)::int::bigint AS occasions, sum({amt}) AS amount FROM {rel} AS e WHERE {window} \
                 GROUP BY {contact}, e.{occ}) AS o",
                occ = o.sql, rel = src.rel.sql
            ),
        };
        let key = if key_cast == scored_type { scored_key.to_string() } else { format!("{scored_key}::{key_cast}") };
        Some(format!(
            "SELECT {key} AS k, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m, s.cluster \
             FROM segplan._rfm_scores(({purchases}), {day}) AS s"
        ))
    }

    fn sequence(&mut self, s: &SequenceCond, path: &str) -> Piece {
        Piece::Set { sql: self.sequence_set(s, path), negate: false }
    }

    fn sequence_set(&mut self, s: &SequenceCond, path: &str) -> String {
        let (fp, tp) = (format!("{path}.first"), format!("{path}.then"));
        let a = self.source(&s.first.event, &format!("{fp}.event"));
        let b = self.source(&s.then.event, &format!("{tp}.event"));
        let (Some(a), Some(b)) = (a, b) else { return FAILED.into() };
        let (Some(at), Some(bt)) = (self.time_col(a, &fp), self.time_col(b, &tp)) else { return FAILED.into() };
        let ca = self.contact_expr(a, "ea", &format!("{fp}.event"));
        let cb = self.contact_expr(b, "eb", &format!("{tp}.event"));
        let fa = self.event_filters(a, &s.first, "ea", &fp).join(" AND ");
        let fb = self.event_filters(b, &s.then, "eb", &tp).join(" AND ");
        let gap = self.param(Param::Typed { text: s.gap.interval(), type_sql: "interval".into() });
        let op = s.gap_op.sql();
        match s.gap_op {
            // "more than": the earliest A and the latest B decide
            CmpOp::Gt | CmpOp::Gte => format!(
                "SELECT fa.contact FROM (SELECT {ca} AS contact, min(ea.{at}) AS t FROM {ra} AS ea WHERE {fa} GROUP BY 1) AS fa \
                 JOIN (SELECT {cb} AS contact, max(eb.{bt}) AS t FROM {rb} AS eb WHERE {fb} GROUP BY 1) AS fb ON fb.contact = fa.contact \
                 WHERE fb.t > fa.t AND fb.t {op} (fa.t + {gap})",
                at = at.sql, bt = bt.sql, ra = a.rel.sql, rb = b.rel.sql
            ),
            // "within": some A shortly before some B
            _ => format!(
                "SELECT {cb} FROM {rb} AS eb WHERE {fb} AND EXISTS (SELECT 1 FROM {ra} AS ea WHERE {ca} = {cb} AND {fa} \
                 AND ea.{at} < eb.{bt} AND eb.{bt} {op} (ea.{at} + {gap}))",
                at = at.sql, bt = bt.sql, ra = a.rel.sql, rb = b.rel.sql
            ),
        }
    }
}

/// The RFM scores of all contacts as a query (see [`crate::rfm`]); `key_cast` is the type the
/// contact keys are returned in (`bigint` or `text`); problems are reported at `path`.
pub fn rfm_scores(model: &Model, key_cast: &str, path: &str) -> Result<Query, Problems> {
    let contacts = model.contacts.as_ref().ok_or_else(no_contacts)?;
    let mut c = Compiler::new(model, contacts, &|_| None);
    let sql = c.rfm_scores(path, key_cast);
    match sql {
        Some(sql) if c.problems.is_empty() => Ok(Query { sql, params: c.params }),
        _ => Err(Problems(c.problems).or_hint(RULE_HINT)),
    }
}

/// An expression of parameters only, as a scalar sub-select: PostgreSQL computes it once per
/// statement (an InitPlan) instead of once per row. Casts from text to timestamptz or interval and
/// timestamptz arithmetic are not constant-folded (they depend on settings), so without this every
/// scanned event row would parse and compute the window bound again.
fn once(expr: &str) -> String {
    format!("(SELECT {expr})")
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => s.clone(),
        Scalar::Num(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, RfmConfig, TypeKind};

    use crate::testing::{col, small_model as model};

    fn plan_of(text: &str) -> Plan {
        let rule = crate::rule::parse_any(text).unwrap();
        plan(&rule, &model(), &|_| None).unwrap()
    }

    #[test]
    fn leaves_are_one_query_each_with_their_own_parameters() {
        let p = plan_of("country = 'FR' and clicks(within last 7 days) and not country = 'FR'");
        // the repeated condition is one leaf
        assert_eq!(p.leaves.len(), 2);
        assert_eq!(p.expr(), Expr::All(vec![Expr::Leaf(0), Expr::Leaf(1), Expr::not(Expr::Leaf(0))]));
        assert_eq!(p.leaves[0].query.params, vec![typed("FR", "text")]);
        assert!(p.leaves[0].query.sql.contains("c.country = $2") && p.leaves[0].as_of == AsOf::No);
        assert_eq!(p.leaves[0].relations, vec![10]);
        assert!(p.leaves[1].as_of == AsOf::Exact && p.leaves[1].query.sql.contains("$1"));
        assert_eq!(p.leaves[1].relations, vec![20]);
        assert_eq!(p.universe.relations, vec![10]);
        assert_eq!(p.steps.len(), 3);
    }

    #[test]
    fn patches_evaluate_a_leaf_for_the_listed_contacts_only() {
        let p = plan_of("country = 'FR' and clicks(within last 7 days) and clicks(count >= 3) and ratio(clicks, per order_id, match amount > 5) >= 0.5 and sequence(clicks(), then clicks(), gap > 1 days)");
        let people = (10, "id".to_string());
        let clicks = (20, "person".to_string());
        for (leaf, keys) in p.leaves.iter().zip([vec![people.clone()], vec![clicks.clone()], vec![clicks.clone()], vec![clicks.clone()], vec![clicks.clone()]]) {
            let patch = leaf.patch.as_ref().unwrap_or_else(|| panic!("{} has no patch", leaf.label));
            assert_eq!(patch.keys, keys, "{}", leaf.label);
            // the same parameters, then the key list
            assert_eq!(patch.query.params, leaf.query.params, "{}", leaf.label);
            let list = format!("= ANY (${}::bigint[])", leaf.query.params.len() + 2);
            assert!(patch.query.sql.contains(&list) && patch.query.sql.starts_with("SELECT segplan.rb64_build_agg("), "{}: {}", leaf.label, patch.query.sql);
        }
        assert!(p.leaves[0].patch.as_ref().is_some_and(|x| x.query.sql.ends_with("WHERE (c.country = $2) AND c.id = ANY ($3::bigint[])")));
        assert!(p.leaves[1].patch.as_ref().is_some_and(|x| x.query.sql.contains("AND (e.person) = ANY ($3::bigint[])")));
        assert!(p.leaves[2].patch.as_ref().is_some_and(|x| x.query.sql.contains(") AS s(k) WHERE s.k = ANY ($3::bigint[])")));
        assert_eq!(p.universe.patch.as_ref().map(|x| x.query.sql.as_str()), Some("SELECT segplan.rb64_build_agg(c.id::bigint)::pg_catalog.bytea FROM public.people AS c WHERE c.id = ANY ($2::bigint[])"));
        // RFM ranks every contact: a write to one moves the others' scores
        let rule = crate::rule::parse_any("rfm(r >= 4) and clicks()").unwrap();
        let p = plan(&rule, &rfm_model(None), &|_| None).unwrap();
        assert!(p.leaves[0].patch.is_none() && p.leaves[1].patch.is_some());
        // a view's writes are logged by the table its rows come from; a source without one is not patched
        let mut m = model();
        m.events[0].keyed = Some((21, "customer".into()));
        let p = plan(&crate::rule::parse_any("country = 'FR' and clicks()").unwrap(), &m, &|_| None).unwrap();
        assert_eq!(p.leaves[1].patch.as_ref().map(|x| x.keys.clone()), Some(vec![(21, "customer".to_string())]));
        m.events[0].keyed = None;
        let p = plan(&crate::rule::parse_any("country = 'FR' and clicks() and sequence(clicks(), then clicks(), gap > 1 days)").unwrap(), &m, &|_| None).unwrap();
        assert!(p.leaves[0].patch.is_some() && p.leaves[1].patch.is_none() && p.leaves[2].patch.is_none());
        // uuid keys: the patch takes their text, read as uuids; the shift returns the keys' text
        let mut m = model();
        if let Some(c) = m.contacts.as_mut() {
            c.key = col("id", "uuid", TypeKind::Uuid);
        }
        m.events[0].contact = col("person", "uuid", TypeKind::Uuid);
        let p = plan(&crate::rule::parse_any("country = 'FR' and clicks(within last 3 days)").unwrap(), &m, &|_| None).unwrap();
        assert!(p.leaves[0].patch.as_ref().is_some_and(|x| x.query.sql.starts_with("SELECT segplan._ids_agg(c.id::uuid) FROM public.people AS c WHERE (c.country = $2) AND c.id = ANY ($3::pg_catalog.text[]::uuid[])")));
        assert_eq!(p.universe.patch.as_ref().map(|x| x.query.sql.as_str()), Some("SELECT segplan._ids_agg(c.id::uuid) FROM public.people AS c WHERE c.id = ANY ($2::pg_catalog.text[]::uuid[])"));
        let patch = p.leaves[1].patch.as_ref().unwrap();
        assert!(patch.query.sql.contains("AND (e.person) = ANY ($3::pg_catalog.text[]::uuid[])"), "{}", patch.query.sql);
        assert!(patch.shift.as_ref().is_some_and(|s| s.sql.starts_with("SELECT pg_catalog.array_agg(DISTINCT s.k) FROM (SELECT (e.person)::text FROM public.clicks AS e")));
    }

    #[test]
    fn shifts_list_the_rows_whose_comparisons_with_as_of_may_change() {
        let plan_of = |text: &str| plan(&crate::rule::parse_any(text).unwrap(), &crate::testing::model(), &|_| None).unwrap();
        let p = plan_of("clicks(where kind = 'open', within last 7 days) and age(birth) between 25 and 40 and created within last 2 days \
            and ratio(clicks, per order_id, match amount > 5, within last 30 days) >= 0.5 \
            and sequence(clicks(where kind = 'open'), then clicks(within last 3 days), gap > 1 days) and country = 'FR' and clicks(count >= 3)");
        let shift = |i: usize| p.leaves[i].patch.as_ref().and_then(|x| x.shift.clone());
        // the window's start and as_of itself; its other conditions stay (an index on them is used)
        let s = shift(0).unwrap();
        assert_eq!(s.bounds, vec![Bound::Param(1), Bound::AsOf]);
        assert_eq!(s.sql, "SELECT segplan.rb64_build_agg(s.k)::pg_catalog.bytea FROM (SELECT (e.person)::bigint FROM public.clicks AS e \
            WHERE e.person IS NOT NULL AND e.kind = $2 AND (e.at BETWEEN $4 AND $5 OR e.at BETWEEN $6 AND $7)) AS s(k)");
        // an age moves with the date: both its bounds are parameters
        let s = shift(1).unwrap();
        assert_eq!(s.bounds, vec![Bound::Param(0), Bound::Param(1)]);
        assert!(s.sql.contains("FROM public.people AS c WHERE (c.birth BETWEEN $4 AND $5 OR c.birth BETWEEN $6 AND $7)"), "{}", s.sql);
        assert_eq!(p.leaves[1].as_of, AsOf::Date);
        assert_eq!(shift(2).unwrap().bounds, vec![Bound::Param(0), Bound::AsOf]);
        // a ratio: the window and the matches decide a row's part; only the non-NULL keys stay
        let s = shift(3).unwrap();
        assert!(s.sql.contains("WHERE e.person IS NOT NULL AND e.order_id IS NOT NULL AND (e.at BETWEEN"), "{}", s.sql);
        // a sequence: only the rows of its second part move
        let s = shift(4).unwrap();
        assert_eq!(s.bounds.len(), 2);
        assert!(s.sql.contains("FROM public.clicks AS eb WHERE eb.person IS NOT NULL AND (eb.at BETWEEN") && !s.sql.contains(" AS ea "), "{}", s.sql);
        // nothing moves with as_of
        assert!(shift(5).is_none() && shift(6).is_none() && p.leaves[5].patch.is_some());
        // RFM ranks every contact: never patched, so never shifted
        let rule = crate::rule::parse_any("rfm(r >= 4) and clicks(within last 7 days)").unwrap();
        let p = plan(&rule, &rfm_model(None), &|_| None).unwrap();
        assert!(p.leaves[0].patch.is_none() && p.leaves[1].patch.as_ref().is_some_and(|x| x.shift.is_some()));
        // as_of inside a where (a property within a window) and in not-within
        let p = plan_of("clicks(where at not within last 1 days or kind = 'x', within last 9 days)");
        let s = p.leaves[0].patch.as_ref().and_then(|x| x.shift.clone()).unwrap();
        assert_eq!(s.bounds.len(), 4);
        assert!(s.sql.contains("WHERE e.person IS NOT NULL AND (e.at BETWEEN $5 AND $6 OR e.at BETWEEN $7 AND $8 OR e.at BETWEEN $9 AND $10 OR e.at BETWEEN $11 AND $12)"), "{}", s.sql);
    }

    #[test]
    fn all_contacts_only_when_an_answer_needs_them() {
        for (rule, needs) in [
            ("country = 'FR'", false),
            ("country = 'FR' and (country = 'IT' or country = 'DE')", false),
            ("not country = 'FR'", true),
            ("country = 'FR' and not country = 'IT'", true),
            ("country != 'FR'", false),
            ("clicks()", true),
            ("no clicks()", true),
            ("country = 'FR' or clicks(within last 7 days)", true),
        ] {
            assert_eq!(plan_of(rule).needs_universe(), needs, "{rule}");
        }
        // a group of no conditions is all contacts
        assert!(Plan { steps: vec![], any: false, ..plan_of("country = 'FR'") }.needs_universe());
    }

    fn typed(text: &str, type_sql: &str) -> Param {
        Param::Typed { text: text.into(), type_sql: type_sql.into() }
    }

    fn statement(text: &str) -> Query {
        let rule = crate::rule::parse_any(text).unwrap();
        compile(&rule, &model(), &|_| None).unwrap().count()
    }

    #[test]
    fn values_and_window_starts_are_parameters_the_planner_sees() {
        let q = statement("clicks(where amount = 5, within last 7 days) and clicks(within from '2026-01-01' to '2026-02-01')");
        assert_eq!(q.params, vec![typed("5", "numeric"), Param::AsOfMinus("7 days".into()), typed("2026-01-01", "timestamptz"), typed("2026-02-01", "timestamptz")]);
        assert!(q.sql.contains("e.amount = $2 AND e.at >= $3 AND e.at <= $1"), "{}", q.sql);
        assert!(q.sql.contains("e.at >= $4 AND e.at < $5"), "{}", q.sql);
        // no expression left for the executor to compute per row, nor hidden in a sub-select
        assert!(!q.sql.contains("::interval") && !q.sql.contains("(SELECT $"), "{}", q.sql);
    }

    #[test]
    fn conditions_on_related_rows_are_semi_and_anti_joins() {
        // "no …" and "not …" of plain event conditions: a correlated NOT EXISTS (an anti-join), never NOT IN
        for text in ["no clicks(within last 7 days)", "not clicks(within last 7 days)"] {
            let q = statement(text);
            assert!(q.sql.contains("AND (NOT EXISTS (SELECT 1 FROM public.clicks AS e WHERE e.person IS NOT NULL AND e.at >= $2 AND e.at <= $1 AND e.person = c.id))"), "{}", q.sql);
        }
        let q = statement("clicks()");
        assert!(q.sql.contains("(EXISTS (SELECT 1 FROM public.clicks AS e WHERE e.person IS NOT NULL AND e.person = c.id))"), "{}", q.sql);
        // grouped conditions list their contacts; the negated ones are anti-joined too
        let q = statement("clicks(count >= 2)");
        assert!(q.sql.contains("c.id IN (SELECT e.person FROM public.clicks AS e WHERE e.person IS NOT NULL GROUP BY 1 HAVING count(*) >= $2::bigint)"), "{}", q.sql);
        let q = statement("not clicks(count >= 2)");
        assert!(q.sql.contains("NOT EXISTS (SELECT 1 FROM (SELECT e.person FROM public.clicks AS e WHERE e.person IS NOT NULL GROUP BY 1 HAVING count(*) >= $2::bigint) AS s(k) WHERE s.k = c.id)"), "{}", q.sql);
        // a negated group keeps SQL's three-valued logic: NULL comparisons match under `not`
        let q = statement("not (country = 'FR' and clicks())");
        assert!(q.sql.contains("(((c.country = $2 AND EXISTS (SELECT 1 FROM public.clicks AS e WHERE e.person IS NOT NULL AND e.person = c.id))) IS NOT TRUE)"), "{}", q.sql);
        assert!(!q.sql.contains(" NOT IN") && !q.sql.contains("NOT (c."), "{}", q.sql);
    }

    #[test]
    fn zero_accepting_counts_and_no_events_are_complements() {
        // count < 2 holds for contacts without clicks: all contacts minus those with 2 or more
        let p = plan_of("clicks(count < 2)");
        assert_eq!(p.expr(), Expr::All(vec![Expr::not(Expr::Leaf(0))]));
        assert!(p.leaves[0].query.sql.contains("HAVING NOT coalesce"));
        // "no clicks" is the complement of "some click"; "no clicks(count < 2)" is the set itself
        assert_eq!(plan_of("no clicks()").expr(), Expr::All(vec![Expr::not(Expr::Leaf(0))]));
        assert_eq!(plan_of("no clicks(count < 2)").expr(), Expr::All(vec![Expr::Leaf(0)]));
    }

    fn rfm_model(as_of: Option<&str>) -> Model {
        let mut m = model();
        m.rfm = Some(RfmConfig { event: "clicks".into(), amount: "amount".into(), occasion: Some("order_id".into()), window: "2 years".into(), as_of: as_of.map(String::from) });
        m
    }

    #[test]
    fn rfm_leaves_depend_on_the_date_only_or_on_nothing_when_as_of_is_fixed() {
        let rule = crate::rule::parse_any("rfm(cluster in ('champions'), fm >= 3.5)").unwrap();
        let p = plan(&rule, &rfm_model(None), &|_| None).unwrap();
        let leaf = &p.leaves[0];
        assert_eq!(leaf.as_of, AsOf::Date);
        assert_eq!(leaf.relations, vec![20]);
        // window, clusters, fm: all parameters
        assert_eq!(leaf.query.params, vec![Param::Text("2 years".into()), Param::TextArray(vec!["champions".into()]), Param::Text("3.5".into())]);
        assert!(leaf.query.sql.contains("(s.f + s.m) >= 2 * $4::numeric"));
        // with a window in the same rule, the leaf of that window is exact, the RFM one still by date
        let rule = crate::rule::parse_any("rfm(r >= 4) and clicks(within last 7 days)").unwrap();
        let p = plan(&rule, &rfm_model(None), &|_| None).unwrap();
        assert_eq!((p.leaves[0].as_of, p.leaves[1].as_of), (AsOf::Date, AsOf::Exact));
        let p = plan(&rule, &rfm_model(Some("2026-01-01 00:00:00+00")), &|_| None).unwrap();
        assert_eq!(p.leaves[0].as_of, AsOf::No);
    }

    #[test]
    fn rfm_needs_a_configuration_and_a_numeric_amount() {
        let rule = crate::rule::parse_any("rfm(r >= 4)").unwrap();
        let e = plan(&rule, &model(), &|_| None).unwrap_err();
        assert_eq!(e.0[0].path, "$.rfm");
        assert!(e.0[0].message.contains("not configured"));
        let mut m = rfm_model(None);
        if let Some(c) = m.rfm.as_mut() { c.amount = "at".into() }
        let e = plan(&rule, &m, &|_| None).unwrap_err();
        assert!(e.0[0].message.contains("not a number"), "{:?}", e);
        if let Some(c) = m.rfm.as_mut() { c.amount = "gone".into() }
        let e = plan(&rule, &m, &|_| None).unwrap_err();
        assert!(e.0[0].message.contains("unknown property \"gone\""), "{:?}", e);
    }

    #[test]
    fn contact_leaves_share_one_scan_with_renumbered_parameters() {
        let p = plan_of("country = 'FR' and country in ('IT', 'ES') and clicks(within last 7 days)");
        let m = model();
        let contacts = m.contacts.as_ref().unwrap();
        let attr: Vec<&Leaf> = p.leaves.iter().chain([&p.universe]).filter(|l| l.filter.is_some()).collect();
        assert_eq!(attr.len(), 3);
        let q = one_scan(&attr, contacts);
        assert_eq!(q.params, vec![typed("FR", "text"), Param::TypedArray { texts: vec!["IT".into(), "ES".into()], type_sql: "text".into() }]);
        assert!(q.sql.contains("c.country = $2") && q.sql.contains("c.country = ANY ($3)"), "{}", q.sql);
        assert!(q.sql.contains("FILTER (WHERE true)"));
        assert_eq!(renumber("a = $1 AND b = $2 AND c = $12", 3), "a = $1 AND b = $5 AND c = $15");
    }

    #[test]
    fn leaves_over_uuid_keys_return_distinct_keys() {
        let mut m = model();
        if let Some(c) = m.contacts.as_mut() {
            c.key = col("id", "uuid", TypeKind::Uuid);
        }
        for e in m.events.iter_mut() {
            e.contact = col("person", "uuid", TypeKind::Uuid);
        }
        let rule = crate::rule::parse_any("country = 'FR' and clicks(within last 7 days) and clicks(count >= 2)").unwrap();
        let p = plan(&rule, &m, &|_| None).unwrap();
        assert_eq!(p.universe.query.sql, "SELECT segplan._ids_agg(c.id::uuid) FROM public.people AS c");
        assert_eq!(p.leaves[0].query.sql, "SELECT segplan._ids_agg(c.id::uuid) FROM public.people AS c WHERE (c.country = $2)");
        // event rows name a contact many times: distinct before the keys leave the statement
        assert!(p.leaves[1].query.sql.starts_with("SELECT segplan._ids_agg(s.k) FROM (SELECT DISTINCT (e.person)::uuid FROM public.clicks AS e WHERE"), "{}", p.leaves[1].query.sql);
        assert!(p.leaves[2].query.sql.starts_with("SELECT segplan._ids_agg(s.k::uuid) FROM (SELECT e.person FROM public.clicks AS e"), "{}", p.leaves[2].query.sql);
        assert!(p.leaves.iter().chain([&p.universe]).all(|l| !l.query.sql.contains("rb64")));
        let attr: Vec<&Leaf> = p.leaves.iter().chain([&p.universe]).filter(|l| l.filter.is_some()).collect();
        let q = one_scan(&attr, m.contacts.as_ref().unwrap());
        assert_eq!(q.sql, "SELECT segplan._ids_agg(c.id::uuid) FILTER (WHERE c.country = $2), segplan._ids_agg(c.id::uuid) FILTER (WHERE true) FROM public.people AS c");
        // text keys travel as text
        if let Some(c) = m.contacts.as_mut() {
            c.key = col("id", "text", TypeKind::Text);
        }
        let p = plan(&rule, &m, &|_| None).unwrap();
        assert_eq!(p.universe.query.sql, "SELECT segplan._keys_agg(c.id::text) FROM public.people AS c");
    }

    #[test]
    fn values_a_column_type_cannot_hold_are_problems_with_their_path() {
        let m = crate::testing::model();
        let problem = |text: &str| {
            let rule = crate::rule::parse_any(text).unwrap();
            plan(&rule, &m, &|_| None).err().map(|p| (p.0[0].path.clone(), p.0[0].hint.clone().unwrap_or_default()))
        };
        // integer holds ±2^31 (found by the SQL fuzz probe: PostgreSQL's 22003 with no path)
        assert_eq!(problem("visits <> 2147483648"), Some(("$.value".into(), "give a whole number from -2147483648 to 2147483647".into())));
        assert_eq!(problem("visits in (1, -2147483649)").map(|p| p.0), Some("$.value[1]".into()));
        assert_eq!(problem("visits = -2147483648"), None);
        assert_eq!(problem("id = 9223372036854775807"), None);
        assert!(problem("id = 9223372036854775808").is_some());
        // a year of four digits: PostgreSQL reads "21-12-31" by its DateStyle (22008)
        assert_eq!(problem("birth = '21-12-31'").map(|p| p.0), Some("$.value".into()));
        assert_eq!(problem("birth between '2021-12-31' and '2022-01-01 10:00:00+02'"), None);
        // uuid as uuid_in reads it
        for ok in ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11"] {
            assert_eq!(problem(&format!("tag = '{ok}'")), None, "{ok}");
        }
        for bad in ["abc", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99--9c0b4ef8-bb6d-6bb9bd380a11", "-a0eebc999c0b4ef8bb6d6bb9bd380a11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11"] {
            assert_eq!(problem(&format!("tag = '{bad}'")).map(|p| p.0), Some("$.value".into()), "{bad}");
        }
    }

    #[test]
    fn uploaded_keys_the_key_type_cannot_read_are_problems_at_their_position() {
        let key = |kind, type_sql: &str| col("id", type_sql, kind);
        let int = key(TypeKind::Integer, "integer");
        assert!(key_problem(" 42 ", &int, "keys[1]").is_none());
        assert!(key_problem("-2147483648", &int, "keys[1]").is_none());
        let p = key_problem("2147483648", &int, "keys[3]").expect("out of range");
        assert_eq!(p.path, "keys[3]");
        assert_eq!(p.hint.as_deref(), Some("give keys that are whole numbers from -2147483648 to 2147483647"));
        assert!(key_problem("", &key(TypeKind::Integer, "bigint"), "keys[1]").is_some());
        assert!(key_problem("4.5", &key(TypeKind::Integer, "bigint"), "keys[1]").is_some());
        let uuid = key(TypeKind::Uuid, "uuid");
        assert!(key_problem("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", &uuid, "keys[1]").is_none());
        assert!(key_problem(" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", &uuid, "keys[1]").is_some());
        assert!(key_problem("anything", &key(TypeKind::Text, "text"), "keys[1]").is_none());
    }

    #[test]
    fn the_readable_part_of_a_refused_rule_is_checked_against_the_model_at_its_paths() {
        let m = crate::testing::model();
        // a reading problem (a span too long) and a model problem (a value the column cannot hold)
        let text = "visits <> 2147483648 or (country = 'FR' and created within last 5000 years) or not birth = '21-12-31'";
        let read = crate::rule::parse_any(text).unwrap_err().0;
        assert_eq!(read.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(), vec!["$.any[1].all[1].value.years"]);
        let part = crate::rule::readable_part(text).expect("the rest reads");
        let paths: Vec<String> = check(&part, &m, &|_| None).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, vec!["$.any[0].value", "$.any[2].not.value"]);
        // JSON likewise; nothing readable, or a syntax error, gives nothing to check
        let json = r#"{"all": [{"attr": "visits", "op": "eq", "value": 2147483648}, {"attr": "country", "op": "eqq", "value": "FR"}]}"#;
        let paths: Vec<String> = check(&crate::rule::readable_part(json).expect("reads"), &m, &|_| None).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, vec!["$.all[0].value"]);
        assert!(crate::rule::readable_part(r#"{"attr": "country", "op": "eqq"}"#).is_none());
        assert!(crate::rule::readable_part("country = = 'FR'").is_none());
    }

    /// Valid rules over [`crate::testing::model`], one of each kind, that the fuzz test below mutates.
    const SEEDS: &[&str] = &[
        "country = 'FR' and (score >= 2.5 or not opt_in) and age(birth) between 25 and 40",
        "country in ('FR', 'IT') and country not in ('DE') and city is not null and city contains 'ro' and city starts with 'R' and city ends with 'e' and city matches '^R'",
        "created within last 30 days and created not within last 2 years and birth between '1990-01-01' and '2000-12-31' and visits <> 3",
        "clicks(where amount > 10 and kind = 'open', within last 7 days, count >= 2, sum(amount) > 100, count_distinct(order_id) >= 2)",
        "no clicks(within from '2026-01-01' to '2026-02-01', avg(amount) < 3.5, min(amount) >= 0, max(at) < '2026-03-01')",
        "ratio(clicks, per order_id, of kind = 'open', match amount > 5, within last 1 year, min_occasions 3) >= 0.1",
        "sequence(clicks(where kind = 'click'), then clicks(where kind = 'order'), gap > 30 days)",
        "rfm(cluster in ('champions', 'lost'), r >= 4, fm <= 2.5) or country = 'IT'",
        "all(any(country = 'FR' or country = 'IT') and not not opt_in)",
    ];

    #[test]
    fn the_seeds_are_valid_rules() {
        for s in SEEDS {
            let r = crate::rule::parse_any(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
            plan(&r, &crate::testing::model(), &|_| None).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        }
    }

    /// Everything a rule goes through before SQL runs: its plan, the one-statement form, the steps,
    /// and both forms written back.
    fn through_everything(rule: &Rule, m: &Model) {
        match plan(rule, m, &|_| None) {
            Ok(p) => {
                let leaves: Vec<&Leaf> = p.leaves.iter().filter(|l| l.filter.is_some()).collect();
                if let (true, Some(c)) = (!leaves.is_empty(), m.contacts.as_ref()) {
                    one_scan(&leaves, c);
                }
            }
            Err(p) => crate::testing::assert_hinted(&p),
        }
        match compile(rule, m, &|_| None) {
            Ok(c) => {
                c.count();
                c.members("bigint");
            }
            Err(p) => crate::testing::assert_hinted(&p),
        }
        if let Err(p) = steps(rule, m, &|_| None) {
            crate::testing::assert_hinted(&p);
        }
        let _ = crate::rule::parse_any(&crate::rule::text::format(rule));
        let _ = crate::rule::parse_any(&crate::rule::json::to_json(rule).to_string());
    }

    const TOKENS: &[&str] = &[
        " and ", " or ", " not ", "(", ")", ",", "'", "\"", " = ", " <= ", " between ", " in ", " is null", " within last ", "99999999999999999999",
        "-0", "1e308", "0.000001", " 0 days", " 2147483648 hours", "'2026-02-30'", "'infinity'", "'-infinity'", "'1999-01-01 25:00'", " count >= ",
        "sum(", "age(", "clicks(", "ratio(", "sequence(", "rfm(", "segment(", " where ", " per ", " of ", " match ", " gap > ", " min_occasions ",
        "country", "amount", "at", "kind", "birth", "created", "visits", "tag", "seen", "score", "opt_in", "\u{0}", "é", "\"\"", "''", " no ",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        /// Mutated rules (tokens put in, spans cut out or repeated) are read and planned without a
        /// panic: whatever a user types is a rule or a problem to report, never an internal error.
        #[test]
        fn mutated_rules_never_panic(seed in 0..SEEDS.len(), edits in proptest::collection::vec((0usize..400, 0usize..3, 0..TOKENS.len(), 0usize..40), 1..5)) {
            let m = crate::testing::model();
            let mut text = SEEDS[seed].to_string();
            for (at, kind, token, len) in edits {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) { at -= 1; }
                let mut end = (at + len).min(text.len());
                while !text.is_char_boundary(end) { end -= 1; }
                match kind {
                    0 => text.insert_str(at, TOKENS[token]),
                    1 => text.replace_range(at..end, ""),
                    _ => { let piece = text[at..end].to_string(); text.insert_str(at, &piece) }
                }
            }
            match crate::rule::parse_any(&text) {
                Ok(rule) => through_everything(&rule, &m),
                Err(p) => {
                    crate::testing::assert_hinted(&p);
                    // validate checks what reads of it against the model
                    if let Some(part) = crate::rule::readable_part(&text) {
                        crate::testing::assert_hinted(&Problems(check(&part, &m, &|_| None)));
                    }
                }
            }
        }

        /// The JSON form with one value anywhere replaced by another of any kind.
        #[test]
        fn rules_with_a_json_value_replaced_never_panic(seed in 0..SEEDS.len(), pick in 0usize..200, with in crate::testing::odd_json()) {
            let m = crate::testing::model();
            let v = crate::testing::with_one_replaced(crate::rule::json::to_json(&crate::rule::parse_any(SEEDS[seed]).unwrap()), pick, with);
            match crate::rule::json::parse_value(&v) {
                Ok(rule) => through_everything(&rule, &m),
                Err(p) => {
                    crate::testing::assert_hinted(&p);
                    if let Some(part) = crate::rule::json::readable_part(&v) {
                        crate::testing::assert_hinted(&Problems(check(&part, &m, &|_| None)));
                    }
                }
            }
        }
    }
}
