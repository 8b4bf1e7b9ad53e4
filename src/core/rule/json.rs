//! JSON ⇄ AST. Reading collects every problem with its JSON path instead of stopping at the first.
use super::ast::*;
use crate::error::{choices, unknown_keys, Code, Problem, Problems, MAX_DEPTH, MAX_LIST, RULE_HINT};
use serde_json::{json, Map, Number, Value};

const RULE_KEYS: &[&str] = &["all", "any", "not", "attr", "event", "ratio", "sequence", "segment", "rfm"];
const PROP_KEYS: &[&str] = &["all", "any", "not", "prop"];
const OBJECT_HINT: &str = "write the rule as a JSON object such as {\"attr\": \"country\", \"op\": \"eq\", \"value\": \"FR\"}";

/// Parses JSON text into a rule. Nesting beyond [`MAX_DEPTH`] is refused with 54001.
pub fn parse_str(s: &str) -> Result<Rule, Problems> {
    parse_value(&read_str(s)?)
}

/// JSON text as a value (not yet a rule).
pub(super) fn read_str(s: &str) -> Result<Value, Problems> {
    serde_json::from_str(s).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            too_deep("$").into()
        } else {
            Problem::invalid("$", format!("rule is not valid JSON: {e}")).hint(OBJECT_HINT).into()
        }
    })
}

/// Parses a JSON value (at most 128 levels deep, as serde_json reads it) into a rule.
pub fn parse_value(v: &Value) -> Result<Rule, Problems> {
    if depth(v) > MAX_DEPTH {
        return Err(too_deep("$").into());
    }
    let mut r = Reader::default();
    match r.rule(v, "$") {
        Some(rule) if r.problems.is_empty() => Ok(rule),
        _ => Err(Problems(r.problems).or_hint(RULE_HINT)),
    }
}

/// The readable part of a rule that [`parse_value`] refuses: every condition it could not read is
/// an empty `all` in its place, so the others keep their paths (for checking them against the
/// model too). None when not even the outermost condition reads.
pub fn readable_part(v: &Value) -> Option<Rule> {
    if depth(v) > MAX_DEPTH {
        return None;
    }
    Reader { partial: true, ..Reader::default() }.rule(v, "$")
}

pub(super) fn too_deep(path: &str) -> Problem {
    Problem::new(Code::TooComplex, path, format!("rule is nested more than {MAX_DEPTH} levels deep"))
        .hint("flatten nested groups or move parts into stored segments")
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Valid timestamp or date text, in the forms Postgres reads the same way under any DateStyle.
pub fn valid_timestamp(s: &str) -> bool {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    // chrono reads a year of any width; PostgreSQL reads "21-12-31" by its DateStyle
    let year = s.as_bytes().get(..5);
    year.is_some_and(|y| y[..4].iter().all(u8::is_ascii_digit) && y[4] == b'-')
        && (DateTime::parse_from_rfc3339(s).is_ok()
            || DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%#z").is_ok()
            || NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
            || NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
            || NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
    /// conditions that do not read become empty groups instead of failing their parents
    partial: bool,
}

type LeafFn<L> = fn(&mut Reader, &Map<String, Value>, &str) -> Option<L>;

impl Reader {
    fn err(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str, what: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                let p = Problem::invalid(path, format!("{what} must be a JSON object, not {}", kind(other)));
                self.err(if path == "$" { p.hint(OBJECT_HINT) } else { p });
                None
            }
        }
    }

    /// Reports keys outside `allowed`; returns false if there were any.
    fn known_keys(&mut self, m: &Map<String, Value>, path: &str, allowed: &[&str]) -> bool {
        let unknown = unknown_keys(m, path, allowed);
        let ok = unknown.is_empty();
        self.problems.extend(unknown);
        ok
    }

    fn required<'v>(&mut self, m: &'v Map<String, Value>, path: &str, key: &str) -> Option<&'v Value> {
        let v = m.get(key);
        if v.is_none() {
            self.err(Problem::invalid(path, format!("missing key \"{key}\"")).hint(format!("add \"{key}\"; {RULE_HINT}")));
        }
        v
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.err(Problem::invalid(path, "must not be an empty string"));
                None
            }
            other => {
                self.err(Problem::invalid(path, format!("must be a string, not {}", kind(other))));
                None
            }
        }
    }

    fn int(&mut self, v: &Value, path: &str, min: i64, max: i64) -> Option<i64> {
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(Problem::invalid(path, format!("must be a whole number from {min} to {max}, not {v}")));
                None
            }
        }
    }

    fn tree<L>(&mut self, v: &Value, path: &str, leaf_keys: &[&str], leaf: LeafFn<L>) -> Option<Tree<L>> {
        let m = self.object(v, path, "a condition")?;
        let present: Vec<&str> = leaf_keys.iter().copied().filter(|k| m.contains_key(*k)).collect();
        match present.as_slice() {
            [] => {
                self.err(Problem::invalid(path, "a condition needs one of these keys")
                    .hint(format!("use one of: {}", choices(leaf_keys.iter().copied()))));
                None
            }
            [k @ ("all" | "any")] => {
                if !self.known_keys(m, path, &[k]) {
                    return None;
                }
                let p = format!("{path}.{k}");
                let items = match &m[*k] {
                    Value::Array(a) if !a.is_empty() => a,
                    Value::Array(_) => {
                        self.err(Problem::invalid(&p, format!("\"{k}\" group is empty"))
                            .hint("add at least one condition or remove the group"));
                        return None;
                    }
                    other => {
                        self.err(Problem::invalid(&p, format!("\"{k}\" must be an array of conditions, not {}", kind(other))));
                        return None;
                    }
                };
                let parts: Vec<Option<Tree<L>>> = items.iter().enumerate()
                    .map(|(i, x)| self.tree(x, &format!("{p}[{i}]"), leaf_keys, leaf).or_else(|| self.hole())).collect();
                let parts: Option<Vec<Tree<L>>> = parts.into_iter().collect();
                let parts = parts?;
                Some(if *k == "all" { Tree::All(parts) } else { Tree::Any(parts) })
            }
            ["not"] => {
                if !self.known_keys(m, path, &["not"]) {
                    return None;
                }
                let inner = self.tree(&m["not"], &format!("{path}.not"), leaf_keys, leaf).or_else(|| self.hole())?;
                Some(Tree::Not(Box::new(inner)))
            }
            [_] => leaf(self, m, path).map(Tree::Leaf),
            many => {
                self.err(Problem::invalid(path, format!("a condition has exactly one of {}; found {}", choices(leaf_keys.iter().copied()), choices(many.iter().copied())))
                    .hint("wrap several conditions in {\"all\": [...]} or {\"any\": [...]}"));
                None
            }
        }
    }

    /// In a partial read, what stands for a condition that does not read.
    fn hole<L>(&self) -> Option<Tree<L>> {
        self.partial.then(|| Tree::All(Vec::new()))
    }

    fn rule(&mut self, v: &Value, path: &str) -> Option<Rule> {
        self.tree(v, path, RULE_KEYS, Reader::cond)
    }

    fn props(&mut self, v: &Value, path: &str) -> Option<PropTree> {
        self.tree(v, path, PROP_KEYS, |r, m, p| r.compare(m, p, "prop"))
    }

    fn cond(&mut self, m: &Map<String, Value>, path: &str) -> Option<Cond> {
        if m.contains_key("attr") {
            self.compare(m, path, "attr").map(Cond::Attr)
        } else if m.contains_key("event") {
            self.event(m, path, true).map(Cond::Event)
        } else if let Some(v) = m.get("ratio") {
            self.known_keys(m, path, &["ratio"]);
            self.ratio(v, &format!("{path}.ratio")).map(Cond::Ratio)
        } else if let Some(v) = m.get("sequence") {
            self.known_keys(m, path, &["sequence"]);
            self.sequence(v, &format!("{path}.sequence")).map(Cond::Sequence)
        } else if let Some(v) = m.get("rfm") {
            self.known_keys(m, path, &["rfm"]);
            self.rfm(v, &format!("{path}.rfm")).map(Cond::Rfm)
        } else {
            let ok = self.known_keys(m, path, &["segment"]);
            let name = self.string(&m["segment"], &format!("{path}.segment"));
            if ok { name.map(Cond::Segment) } else { None }
        }
    }

    fn compare(&mut self, m: &Map<String, Value>, path: &str, field_key: &str) -> Option<Compare> {
        let keys_ok = self.known_keys(m, path, &[field_key, "op", "value"]);
        let field = self.string(&m[field_key], &format!("{path}.{field_key}"));
        let op_path = format!("{path}.op");
        let op = match self.required(m, path, "op") {
            Some(Value::String(s)) => match Op::from_name(s) {
                Some(op) => Some(op),
                None => {
                    self.err(Problem::invalid(&op_path, format!("unknown op \"{s}\""))
                        .hint(format!("valid ops: {}", choices(OPS.iter().map(|(n, _)| *n)))));
                    None
                }
            },
            Some(other) => {
                self.err(Problem::invalid(&op_path, format!("op must be a string, not {}", kind(other))));
                None
            }
            None => None,
        };
        let op = op?;
        let value = self.operand(op, m.get("value"), &format!("{path}.value"), path)?;
        if !keys_ok {
            return None;
        }
        Some(Compare { field: field?, op, value })
    }

    fn scalar(&mut self, v: &Value, path: &str) -> Option<Scalar> {
        match v {
            Value::String(s) => Some(Scalar::Str(s.clone())),
            Value::Number(n) => Some(Scalar::Num(n.clone())),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Null => {
                self.err(Problem::invalid(path, "value must not be null").hint("use the op is_null or not_null to test for missing values"));
                None
            }
            other => {
                self.err(Problem::invalid(path, format!("value must be a string, number or boolean, not {}", kind(other))));
                None
            }
        }
    }

    fn operand(&mut self, op: Op, v: Option<&Value>, path: &str, owner: &str) -> Option<Operand> {
        use Op::*;
        match op {
            IsNull | NotNull => {
                if v.is_some() {
                    self.err(Problem::invalid(path, format!("op {} takes no value", op.name())).hint("remove \"value\""));
                    return None;
                }
                Some(Operand::None)
            }
            _ if v.is_none() => {
                self.err(Problem::invalid(owner, format!("op {} needs a \"value\"", op.name())));
                None
            }
            Eq | Ne | Lt | Lte | Gt | Gte => self.scalar(v?, path).map(Operand::Scalar),
            Contains | StartsWith | EndsWith | Matches => match v? {
                Value::String(s) => Some(Operand::Scalar(Scalar::Str(s.clone()))),
                other => {
                    self.err(Problem::invalid(path, format!("op {} needs a string value, not {}", op.name(), kind(other))));
                    None
                }
            },
            Between | AgeBetween => {
                let pair = match v? {
                    Value::Array(a) if a.len() == 2 => a,
                    other => {
                        self.err(Problem::invalid(path, format!("op {} needs [low, high], not {other}", op.name())).hint("for example [25, 40]"));
                        return None;
                    }
                };
                let lo = self.scalar(&pair[0], &format!("{path}[0]"));
                let hi = self.scalar(&pair[1], &format!("{path}[1]"));
                let (lo, hi) = (lo?, hi?);
                if op == AgeBetween {
                    for (i, s) in [&lo, &hi].iter().enumerate() {
                        if !matches!(s, Scalar::Num(n) if n.as_i64().is_some_and(|x| (0..=200).contains(&x))) {
                            self.err(Problem::invalid(&format!("{path}[{i}]"), format!("ages must be whole numbers from 0 to 200, not {}", pair[i])).hint("for example [25, 40]: from 25 to 40 years old"));
                            return None;
                        }
                    }
                }
                if out_of_order(&lo, &hi) {
                    self.err(Problem::invalid(path, format!("low bound is greater than the high bound in {}", op.name())).hint("write [low, high]"));
                    return None;
                }
                Some(Operand::Pair(lo, hi))
            }
            In | NotIn => {
                let items = match v? {
                    Value::Array(a) if !a.is_empty() => a,
                    other => {
                        self.err(Problem::invalid(path, format!("op {} needs a non-empty array, not {other}", op.name())));
                        return None;
                    }
                };
                if items.len() > MAX_LIST {
                    self.err(Problem::new(Code::TooLarge, path, format!("list has {} values, over the limit of {MAX_LIST}", items.len()))
                        .hint("store the values in a table, register it as an event source and use an event condition"));
                    return None;
                }
                let list: Vec<Option<Scalar>> = items.iter().enumerate().map(|(i, x)| self.scalar(x, &format!("{path}[{i}]"))).collect();
                list.into_iter().collect::<Option<Vec<_>>>().map(Operand::List)
            }
            WithinLast | NotWithinLast => self.span(v?, path).map(Operand::Span),
        }
    }

    /// `{"days": 30}`: exactly one unit.
    fn span(&mut self, v: &Value, path: &str) -> Option<Span> {
        let m = self.object(v, path, "a length of time")?;
        self.span_in(m, path, &[])
    }

    fn span_in(&mut self, m: &Map<String, Value>, path: &str, other_keys: &[&str]) -> Option<Span> {
        let units: Vec<(&str, Unit)> = UNITS.iter().copied().filter(|(n, _)| m.contains_key(*n)).collect();
        let mut allowed: Vec<&str> = UNITS.iter().map(|(n, _)| *n).collect();
        allowed.extend_from_slice(other_keys);
        let ok = self.known_keys(m, path, &allowed);
        match units.as_slice() {
            [(name, unit)] => {
                let max = unit.max();
                match m[*name].as_i64() {
                    Some(n) if (1..=max).contains(&n) => ok.then_some(Span { n, unit: *unit }),
                    _ => {
                        self.err(Problem::invalid(&format!("{path}.{name}"), format!("must be a whole number from 1 to {max}, not {}", m[*name]))
                            .hint(SPAN_HINT));
                        None
                    }
                }
            }
            _ => {
                self.err(Problem::invalid(path, "a length of time needs exactly one unit")
                    .hint(format!("for example {{\"days\": 30}}; units: {}", choices(UNITS.iter().map(|(n, _)| *n)))));
                None
            }
        }
    }

    fn window(&mut self, v: &Value, path: &str) -> Option<Window> {
        let m = self.object(v, path, "a window")?;
        if let Some(last) = m.get("last") {
            self.known_keys(m, path, &["last"]).then_some(())?;
            return self.span(last, &format!("{path}.last")).map(Window::Last);
        }
        if !self.known_keys(m, path, &["from", "to"]) {
            return None;
        }
        if m.is_empty() {
            self.err(Problem::invalid(path, "a window needs \"last\" or \"from\"/\"to\"")
                .hint("for example {\"last\": {\"days\": 30}} or {\"from\": \"2026-01-01\", \"to\": \"2026-02-01\"}"));
            return None;
        }
        let mut bound = |key: &str| -> Result<Option<String>, ()> {
            match m.get(key) {
                None => Ok(None),
                Some(Value::String(s)) if valid_timestamp(s) => Ok(Some(s.clone())),
                Some(other) => {
                    self.err(Problem::invalid(&format!("{path}.{key}"), format!("not a timestamp: {other}"))
                        .hint("write an ISO 8601 date or timestamp, e.g. \"2026-01-31\" or \"2026-01-31T09:00:00+01:00\""));
                    Err(())
                }
            }
        };
        let from = bound("from");
        let to = bound("to");
        let (from, to) = (from.ok()?, to.ok()?);
        if let (Some(f), Some(t)) = (&from, &to) {
            if f >= t && f.len() == t.len() {
                self.err(Problem::invalid(path, "window \"from\" is not before \"to\"").hint("swap the two bounds"));
                return None;
            }
        }
        Some(Window::Range { from, to })
    }

    fn cmp_op(&mut self, v: Option<&Value>, path: &str, owner: &str, allowed: &[CmpOp]) -> Option<CmpOp> {
        let names = || choices(allowed.iter().map(|o| o.name()));
        match v {
            None => {
                self.err(Problem::invalid(owner, "missing key \"op\""));
                None
            }
            Some(Value::String(s)) => match CmpOp::from_name(s).filter(|o| allowed.contains(o)) {
                Some(o) => Some(o),
                None => {
                    self.err(Problem::invalid(path, format!("unknown op \"{s}\"")).hint(format!("valid ops: {}", names())));
                    None
                }
            },
            Some(other) => {
                self.err(Problem::invalid(path, format!("op must be a string, not {}", kind(other))).hint(format!("valid ops: {}", names())));
                None
            }
        }
    }

    fn event(&mut self, m: &Map<String, Value>, path: &str, allow_counts: bool) -> Option<EventCond> {
        let allowed: &[&str] = if allow_counts {
            &["event", "where", "within", "count", "having", "performed"]
        } else {
            &["event", "where", "within"]
        };
        let keys_ok = self.known_keys(m, path, allowed);
        let event = self.string(&m["event"], &format!("{path}.event"));
        let filter = match m.get("where") {
            Some(w) => Some(self.props(w, &format!("{path}.where"))?),
            None => None,
        };
        let within = match m.get("within") {
            Some(w) => Some(self.window(w, &format!("{path}.within"))?),
            None => None,
        };
        let count = match m.get("count") {
            Some(c) => {
                let p = format!("{path}.count");
                let cm = self.object(c, &p, "count")?;
                let ok = self.known_keys(cm, &p, &["op", "value"]);
                let op = self.cmp_op(cm.get("op"), &format!("{p}.op"), &p, &CMP_ALL);
                let value = match cm.get("value") {
                    Some(v) => self.int(v, &format!("{p}.value"), 0, i64::MAX),
                    None => {
                        self.err(Problem::invalid(&p, "missing key \"value\""));
                        None
                    }
                };
                if !ok {
                    return None;
                }
                Some((op?, value?))
            }
            None => None,
        };
        let mut having = Vec::new();
        if let Some(h) = m.get("having") {
            let p = format!("{path}.having");
            match h {
                Value::Array(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        having.push(self.having(item, &format!("{p}[{i}]")));
                    }
                }
                other => {
                    self.err(Problem::invalid(&p, format!("having must be a non-empty array, not {other}")));
                    return None;
                }
            }
        }
        let having: Vec<Having> = having.into_iter().collect::<Option<Vec<_>>>()?;
        let performed = match m.get("performed") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(Problem::invalid(&format!("{path}.performed"), format!("performed must be true or false, not {other}")));
                return None;
            }
        };
        if !keys_ok {
            return None;
        }
        Some(EventCond { event: event?, filter, within, count, having, performed })
    }

    fn having(&mut self, v: &Value, path: &str) -> Option<Having> {
        let m = self.object(v, path, "a having clause")?;
        let ok = self.known_keys(m, path, &["fn", "prop", "op", "value"]);
        let func = match self.required(m, path, "fn") {
            Some(Value::String(s)) => match AGG_FNS.iter().find(|(n, _)| n == s) {
                Some((_, f)) => Some(*f),
                None => {
                    self.err(Problem::invalid(&format!("{path}.fn"), format!("unknown function \"{s}\""))
                        .hint(format!("valid functions: {}", choices(AGG_FNS.iter().map(|(n, _)| *n)))));
                    None
                }
            },
            Some(other) => {
                self.err(Problem::invalid(&format!("{path}.fn"), format!("fn must be a string, not {}", kind(other))));
                None
            }
            None => None,
        };
        let prop = match self.required(m, path, "prop") {
            Some(p) => self.string(p, &format!("{path}.prop")),
            None => None,
        };
        let op = self.cmp_op(m.get("op"), &format!("{path}.op"), path, &CMP_ALL);
        let value = match self.required(m, path, "value") {
            Some(x) => self.scalar(x, &format!("{path}.value")),
            None => None,
        };
        if !ok {
            return None;
        }
        Some(Having { func: func?, prop: prop?, op: op?, value: value? })
    }

    fn ratio(&mut self, v: &Value, path: &str) -> Option<RatioCond> {
        let m = self.object(v, path, "a ratio")?;
        let ok = self.known_keys(m, path, &["event", "occasion", "of", "match", "op", "value", "min_occasions", "within"]);
        let event = self.required(m, path, "event").and_then(|e| self.string(e, &format!("{path}.event")));
        let occasion = self.required(m, path, "occasion").and_then(|e| self.string(e, &format!("{path}.occasion")));
        let of = match m.get("of") {
            Some(x) => Some(self.props(x, &format!("{path}.of"))?),
            None => None,
        };
        let matches = self.required(m, path, "match").and_then(|x| self.props(x, &format!("{path}.match")));
        let op = self.cmp_op(m.get("op"), &format!("{path}.op"), path, &CMP_ALL);
        let value = match self.required(m, path, "value") {
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| (0.0..=1.0).contains(&f)) => Some(n.clone()),
            Some(other) => {
                self.err(Problem::invalid(&format!("{path}.value"), format!("a ratio is a number from 0 to 1, not {other}")).hint("10% is 0.10"));
                None
            }
            None => None,
        };
        let min_occasions = match m.get("min_occasions") {
            Some(x) => self.int(x, &format!("{path}.min_occasions"), 1, i64::MAX),
            None => Some(1),
        };
        let within = match m.get("within") {
            Some(w) => Some(self.window(w, &format!("{path}.within"))?),
            None => None,
        };
        if !ok {
            return None;
        }
        Some(RatioCond { event: event?, occasion: occasion?, of, matches: matches?, op: op?, value: value?, min_occasions: min_occasions?, within })
    }

    fn sequence(&mut self, v: &Value, path: &str) -> Option<SequenceCond> {
        let m = self.object(v, path, "a sequence")?;
        let ok = self.known_keys(m, path, &["first", "then", "gap"]);
        let step = |r: &mut Reader, key: &str| -> Option<EventCond> {
            let p = format!("{path}.{key}");
            let x = r.required(m, path, key)?;
            let em = r.object(x, &p, "a sequence step")?;
            if !em.contains_key("event") {
                r.err(Problem::invalid(&p, "a sequence step needs \"event\"").hint("for example {\"event\": \"message_events\", \"where\": {...}}"));
                return None;
            }
            r.event(em, &p, false)
        };
        let first = step(self, "first");
        let then = step(self, "then");
        let gap = match self.required(m, path, "gap") {
            Some(g) => {
                let p = format!("{path}.gap");
                let gm = self.object(g, &p, "a gap")?;
                let op = self.cmp_op(gm.get("op"), &format!("{p}.op"), &p, &[CmpOp::Gt, CmpOp::Gte, CmpOp::Lt, CmpOp::Lte]);
                let span = self.span_in(gm, &p, &["op"]);
                Some((op?, span?))
            }
            None => None,
        };
        let (gap_op, gap) = gap?;
        if !ok {
            return None;
        }
        Some(SequenceCond { first: first?, then: then?, gap_op, gap })
    }
}

impl Reader {
    fn rfm(&mut self, v: &Value, path: &str) -> Option<RfmCond> {
        let m = self.object(v, path, "an rfm condition")?;
        let mut keys = vec!["cluster"];
        keys.extend(SCORES.iter().map(|(n, _)| *n));
        let mut ok = self.known_keys(m, path, &keys);
        if m.is_empty() {
            self.err(Problem::invalid(path, "an rfm condition needs a cluster or a score")
                .hint("for example {\"cluster\": [\"champions\"]} or {\"r\": {\"op\": \"gte\", \"value\": 4}}"));
            return None;
        }
        let mut clusters = Vec::new();
        if let Some(c) = m.get("cluster") {
            let p = format!("{path}.cluster");
            match c {
                Value::Array(xs) if !xs.is_empty() => {
                    for (i, x) in xs.iter().enumerate() {
                        let xp = format!("{p}[{i}]");
                        match self.string(x, &xp) {
                            Some(name) if crate::rfm::is_cluster(&name) => clusters.push(name),
                            Some(name) => {
                                ok = false;
                                self.err(Problem::invalid(&xp, format!("unknown RFM cluster \"{name}\""))
                                    .hint(format!("clusters: {}", choices(crate::rfm::cluster_names()))));
                            }
                            None => ok = false,
                        }
                    }
                }
                other => {
                    ok = false;
                    self.err(Problem::invalid(&p, format!("cluster must be a non-empty array of cluster names, not {}", kind(other)))
                        .hint(format!("clusters: {}", choices(crate::rfm::cluster_names()))));
                }
            }
        }
        let mut scores = Vec::new();
        for (name, score) in SCORES {
            let Some(x) = m.get(*name) else { continue };
            let p = format!("{path}.{name}");
            let Some(sm) = self.object(x, &p, "a score test") else {
                ok = false;
                continue;
            };
            ok &= self.known_keys(sm, &p, &["op", "value"]);
            let op = self.cmp_op(sm.get("op"), &format!("{p}.op"), &p, &CMP_ALL);
            let step = if *score == Score::Fm { 0.5 } else { 1.0 };
            let value = match self.required(sm, &p, "value") {
                Some(Value::Number(n)) if n.as_f64().is_some_and(|f| (1.0..=5.0).contains(&f) && (f / step).fract() == 0.0) => Some(n.clone()),
                Some(other) => {
                    self.err(Problem::invalid(&format!("{p}.value"), format!("{name} is compared with a score from 1 to 5, not {other}"))
                        .hint(if *score == Score::Fm { "fm is the average of f and m: 1, 1.5, 2, … 5" } else { "give a whole number from 1 to 5" }));
                    None
                }
                None => None,
            };
            match (op, value) {
                (Some(op), Some(v)) => scores.push((*score, op, v)),
                _ => ok = false,
            }
        }
        ok.then_some(RfmCond { clusters, scores })
    }
}

const CMP_ALL: [CmpOp; 6] = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Lte, CmpOp::Gt, CmpOp::Gte];

fn out_of_order(lo: &Scalar, hi: &Scalar) -> bool {
    match (lo, hi) {
        (Scalar::Num(a), Scalar::Num(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a > b,
            _ => false,
        },
        (Scalar::Str(a), Scalar::Str(b)) => valid_timestamp(a) && valid_timestamp(b) && a.len() == b.len() && a > b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// AST → JSON

pub fn to_json(rule: &Rule) -> Value {
    tree_json(rule, &cond_json)
}

fn tree_json<L>(t: &Tree<L>, leaf: &dyn Fn(&L) -> Value) -> Value {
    match t {
        Tree::All(xs) => json!({"all": xs.iter().map(|x| tree_json(x, leaf)).collect::<Vec<_>>()}),
        Tree::Any(xs) => json!({"any": xs.iter().map(|x| tree_json(x, leaf)).collect::<Vec<_>>()}),
        Tree::Not(x) => json!({"not": tree_json(x, leaf)}),
        Tree::Leaf(l) => leaf(l),
    }
}

pub fn props_json(t: &PropTree) -> Value {
    tree_json(t, &|c| compare_json(c, "prop"))
}

fn cond_json(c: &Cond) -> Value {
    match c {
        Cond::Attr(c) => compare_json(c, "attr"),
        Cond::Event(e) => event_json(e),
        Cond::Ratio(r) => {
            let mut m = Map::new();
            m.insert("event".into(), json!(r.event));
            m.insert("occasion".into(), json!(r.occasion));
            if let Some(of) = &r.of {
                m.insert("of".into(), props_json(of));
            }
            m.insert("match".into(), props_json(&r.matches));
            m.insert("op".into(), json!(r.op.name()));
            m.insert("value".into(), Value::Number(r.value.clone()));
            if r.min_occasions != 1 {
                m.insert("min_occasions".into(), json!(r.min_occasions));
            }
            if let Some(w) = &r.within {
                m.insert("within".into(), window_json(w));
            }
            json!({"ratio": m})
        }
        Cond::Sequence(s) => {
            let mut gap = Map::new();
            gap.insert("op".into(), json!(s.gap_op.name()));
            gap.insert(s.gap.unit.name().into(), json!(s.gap.n));
            json!({"sequence": {"first": event_json(&s.first), "then": event_json(&s.then), "gap": gap}})
        }
        Cond::Segment(name) => json!({"segment": name}),
        Cond::Rfm(r) => {
            let mut m = Map::new();
            if !r.clusters.is_empty() {
                m.insert("cluster".into(), json!(r.clusters));
            }
            for (score, op, v) in &r.scores {
                m.insert(score.name().into(), json!({"op": op.name(), "value": v}));
            }
            json!({"rfm": m})
        }
    }
}

fn compare_json(c: &Compare, key: &str) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), json!(c.field));
    m.insert("op".into(), json!(c.op.name()));
    match &c.value {
        Operand::None => {}
        Operand::Scalar(s) => {
            m.insert("value".into(), scalar_json(s));
        }
        Operand::Pair(a, b) => {
            m.insert("value".into(), json!([scalar_json(a), scalar_json(b)]));
        }
        Operand::List(xs) => {
            m.insert("value".into(), Value::Array(xs.iter().map(scalar_json).collect()));
        }
        Operand::Span(s) => {
            m.insert("value".into(), span_json(s));
        }
    }
    Value::Object(m)
}

pub fn scalar_json(s: &Scalar) -> Value {
    match s {
        Scalar::Str(s) => Value::String(s.clone()),
        Scalar::Num(n) => Value::Number(n.clone()),
        Scalar::Bool(b) => Value::Bool(*b),
    }
}

fn span_json(s: &Span) -> Value {
    let mut m = Map::new();
    m.insert(s.unit.name().into(), json!(s.n));
    Value::Object(m)
}

fn window_json(w: &Window) -> Value {
    match w {
        Window::Last(s) => json!({"last": span_json(s)}),
        Window::Range { from, to } => {
            let mut m = Map::new();
            if let Some(f) = from {
                m.insert("from".into(), json!(f));
            }
            if let Some(t) = to {
                m.insert("to".into(), json!(t));
            }
            Value::Object(m)
        }
    }
}

fn event_json(e: &EventCond) -> Value {
    let mut m = Map::new();
    m.insert("event".into(), json!(e.event));
    if let Some(f) = &e.filter {
        m.insert("where".into(), props_json(f));
    }
    if let Some(w) = &e.within {
        m.insert("within".into(), window_json(w));
    }
    if let Some((op, v)) = e.count {
        m.insert("count".into(), json!({"op": op.name(), "value": v}));
    }
    if !e.having.is_empty() {
        let hs: Vec<Value> = e.having.iter()
            .map(|h| json!({"fn": h.func.name(), "prop": h.prop, "op": h.op.name(), "value": scalar_json(&h.value)}))
            .collect();
        m.insert("having".into(), Value::Array(hs));
    }
    if !e.performed {
        m.insert("performed".into(), json!(false));
    }
    Value::Object(m)
}

/// A number literal as written, e.g. for the text form.
pub fn number_from_str(s: &str) -> Option<Number> {
    serde_json::from_str::<Number>(s).ok()
}
