//! The text form. Reading builds the JSON form and then reads that, so both forms share one
//! validator; writing is the exact inverse (property-tested: JSON → text → JSON is the identity).
use super::ast::*;
use super::ast::Rule as RuleAst;
use super::json::{self, number_from_str};
use crate::error::{Problem, Problems, MAX_DEPTH, RULE_HINT};
use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;
use serde_json::{json, Map, Value};

#[derive(Parser)]
#[grammar = "rule/grammar.pest"]
struct TextParser;

/// Words that are written quoted when used as names (same list as `keyword` in the grammar).
pub const KEYWORDS: &[&str] = &[
    "and", "or", "not", "no", "all", "any", "between", "in", "is", "null", "true", "false", "within",
    "last", "contains", "starts", "ends", "with", "matches", "age", "where", "count_distinct", "count",
    "sum", "avg", "min_occasions", "min", "max", "ratio", "per", "of", "match", "sequence", "then",
    "gap", "segment", "from", "to", "rfm",
];

pub fn parse(input: &str) -> Result<RuleAst, Problems> {
    json::parse_value(&to_json_value(input)?)
}

/// Text → the JSON form (unvalidated beyond the grammar).
pub fn to_json_value(input: &str) -> Result<Value, Problems> {
    read(input).map_err(|p| p.or_hint(RULE_HINT))
}

fn read(input: &str) -> Result<Value, Problems> {
    check_nesting(input)?;
    let mut pairs = TextParser::parse(Rule::rule_text, input).map_err(|e| {
        let e = e.renamed_rules(describe);
        let (line, col) = match e.line_col {
            pest::error::LineColLocation::Pos(p) => p,
            pest::error::LineColLocation::Span(p, _) => p,
        };
        Problem::invalid(&format!("line {line}, column {col}"), format!("syntax error in rule: {}", e.variant.message()))
            .hint("for example: country = 'FR' and purchase_lines(where on_sale, within last 6 months, count >= 3)")
    })?;
    let top = pairs.next().and_then(|p| p.into_inner().next());
    match top {
        Some(expr) => build_expr(expr),
        None => Err(Problem::invalid("$", "empty rule").into()),
    }
}

/// Grammar rules as a user reads them in "expected ..." messages.
fn describe(r: &Rule) -> String {
    let name = format!("{r:?}");
    if let Some(kw) = name.strip_prefix("kw_") {
        return format!("\"{kw}\"");
    }
    match r {
        Rule::EOI => "end of rule",
        Rule::value | Rule::list => "a value",
        Rule::string => "a quoted string",
        Rule::number | Rule::integer => "a number",
        Rule::name | Rule::bare_name | Rule::quoted_name => "a name",
        Rule::cmp_sym | Rule::cmp_tail | Rule::t_cmp => "a comparison such as = or >=",
        Rule::span | Rule::unit => "a length of time such as 30 days",
        Rule::event_arg | Rule::ratio_arg => "an argument",
        _ => "a condition",
    }
    .to_string()
}

/// Refuses deep nesting before the parser recurses into it.
fn check_nesting(input: &str) -> Result<(), Problem> {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    for ch in input.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(ch),
            (None, '(') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_DEPTH {
        return Err(json::too_deep("$"));
    }
    Ok(())
}

type R<T> = Result<T, Problems>;

fn pos_err(p: &Pair<Rule>, msg: impl Into<String>) -> Problems {
    let (line, col) = p.as_span().start_pos().line_col();
    Problem::invalid(&format!("line {line}, column {col}"), msg).into()
}

fn build_expr(p: Pair<Rule>) -> R<Value> {
    match p.as_rule() {
        Rule::expr => group(p, "any"),
        Rule::and_expr => group(p, "all"),
        Rule::unary => {
            let mut nots = 0;
            let mut node = Value::Null;
            for x in p.into_inner() {
                match x.as_rule() {
                    Rule::not_kw => nots += 1,
                    _ => node = build_expr(x)?,
                }
            }
            if nots > MAX_DEPTH {
                return Err(json::too_deep("$").into());
            }
            for _ in 0..nots {
                node = json!({ "not": node });
            }
            Ok(node)
        }
        Rule::primary | Rule::paren => build_expr(first(p)),
        Rule::group_fn => {
            let mut it = p.into_inner();
            let kw = it.next().map(|k| k.as_str().to_ascii_lowercase()).unwrap_or_default();
            let inner = build_expr(it.next().ok_or_else(|| Problem::invalid("$", "empty group"))?)?;
            let mut m = Map::new();
            m.insert(kw, json!([inner]));
            Ok(Value::Object(m))
        }
        Rule::compare => compare(p),
        Rule::age_cmp => {
            let mut it = p.into_inner().filter(|x| matches!(x.as_rule(), Rule::name | Rule::integer));
            let field = name(&it.next().unwrap_or_else(|| unreachable!()));
            let lo = int_value(&it.next().unwrap_or_else(|| unreachable!()))?;
            let hi = int_value(&it.next().unwrap_or_else(|| unreachable!()))?;
            Ok(json!({"attr": field, "op": "age_between", "value": [lo, hi]}))
        }
        Rule::event => event(p),
        Rule::ratio => ratio(p),
        Rule::sequence => {
            let mut events = Vec::new();
            let mut gap = None;
            let mut pending_op = None;
            for x in p.into_inner() {
                match x.as_rule() {
                    Rule::event => events.push(event(x)?),
                    Rule::cmp_sym => pending_op = Some(x),
                    Rule::span => {
                        let op = pending_op.take().map(|o| cmp_name(&o)).transpose()?.unwrap_or("gt");
                        let mut g = span_map(&x)?;
                        g.insert("op".into(), json!(op));
                        gap = Some(Value::Object(g));
                    }
                    _ => {}
                }
            }
            let then = events.pop().unwrap_or(Value::Null);
            let first = events.pop().unwrap_or(Value::Null);
            let mut s = Map::new();
            s.insert("first".into(), first);
            s.insert("then".into(), then);
            s.insert("gap".into(), gap.unwrap_or(Value::Null));
            Ok(json!({ "sequence": s }))
        }
        Rule::segment => {
            let s = p.into_inner().find(|x| x.as_rule() == Rule::string).map(|x| string(&x)).unwrap_or_default();
            Ok(json!({ "segment": s }))
        }
        Rule::rfm => rfm(p),
        _ => Err(pos_err(&p, format!("unexpected {:?}", p.as_rule()))),
    }
}

fn rfm(p: Pair<Rule>) -> R<Value> {
    let mut m = Map::new();
    for arg in p.into_inner().filter(|x| x.as_rule() == Rule::rfm_arg) {
        let arg = first(arg);
        let at = arg.clone();
        if arg.as_rule() == Rule::rfm_cluster {
            let list = arg.into_inner().find(|y| y.as_rule() == Rule::list).ok_or_else(|| pos_err(&at, "missing list"))?;
            let items: Vec<Value> = list.into_inner().map(|x| value(&x)).collect::<R<_>>()?;
            set_once(&mut m, &at, "cluster", Value::Array(items))?;
        } else {
            let mut it = arg.into_inner();
            let (Some(n), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else { return Err(pos_err(&at, "incomplete score test")) };
            let v = number_from_str(v.as_str()).ok_or_else(|| pos_err(&v, "bad number"))?;
            set_once(&mut m, &at, &n.as_str().to_ascii_lowercase(), json!({"op": cmp_name(&op)?, "value": v}))?;
        }
    }
    Ok(json!({ "rfm": m }))
}

fn first(p: Pair<Rule>) -> Pair<Rule> {
    let span = p.clone();
    p.into_inner().next().unwrap_or(span)
}

fn group(p: Pair<Rule>, key: &str) -> R<Value> {
    let parts: Vec<Value> = p.into_inner()
        .filter(|x| !matches!(x.as_rule(), Rule::kw_and | Rule::kw_or))
        .map(build_expr)
        .collect::<R<_>>()?;
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().unwrap_or(Value::Null));
    }
    let mut m = Map::new();
    m.insert(key.into(), Value::Array(parts));
    Ok(Value::Object(m))
}

fn name(p: &Pair<Rule>) -> String {
    let inner = p.clone().into_inner().next();
    match inner {
        Some(q) if q.as_rule() == Rule::quoted_name => {
            q.into_inner().next().map(|s| s.as_str().replace("\"\"", "\"")).unwrap_or_default()
        }
        Some(b) => b.as_str().to_string(),
        None => p.as_str().to_string(),
    }
}

fn string(p: &Pair<Rule>) -> String {
    p.clone().into_inner().next().map(|s| s.as_str().replace("''", "'")).unwrap_or_default()
}

fn int_value(p: &Pair<Rule>) -> R<Value> {
    p.as_str().parse::<i64>().map(|n| json!(n)).map_err(|_| pos_err(p, format!("number {} is too large", p.as_str())))
}

fn value(p: &Pair<Rule>) -> R<Value> {
    let v = p.clone().into_inner().next().ok_or_else(|| pos_err(p, "missing value"))?;
    Ok(match v.as_rule() {
        Rule::string => Value::String(string(&v)),
        Rule::number => Value::Number(number_from_str(v.as_str()).ok_or_else(|| pos_err(&v, format!("bad number {}", v.as_str())))?),
        Rule::kw_true => Value::Bool(true),
        _ => Value::Bool(false),
    })
}

fn cmp_name(p: &Pair<Rule>) -> R<&'static str> {
    CmpOp::from_symbol(p.as_str()).map(|o| o.name()).ok_or_else(|| pos_err(p, format!("unknown operator {}", p.as_str())))
}

fn span_map(p: &Pair<Rule>) -> R<Map<String, Value>> {
    let mut it = p.clone().into_inner();
    let n = int_value(&it.next().ok_or_else(|| pos_err(p, "missing number"))?)?;
    let unit = it.next().map(|u| u.as_str().to_ascii_lowercase()).unwrap_or_default();
    let unit = if unit.ends_with('s') { unit } else { format!("{unit}s") };
    let mut m = Map::new();
    m.insert(unit, n);
    Ok(m)
}

fn compare(p: Pair<Rule>) -> R<Value> {
    let mut it = p.into_inner();
    let field = name(&it.next().unwrap_or_else(|| unreachable!()));
    let mut m = Map::new();
    m.insert("attr".into(), json!(field));
    let Some(tail) = it.next().and_then(|t| t.into_inner().next()) else {
        // a bare name is a boolean test: `on_sale`
        m.insert("op".into(), json!("eq"));
        m.insert("value".into(), json!(true));
        return Ok(Value::Object(m));
    };
    let rule = tail.as_rule();
    let parts: Vec<Pair<Rule>> = tail.into_inner()
        .filter(|x| matches!(x.as_rule(), Rule::value | Rule::list | Rule::string | Rule::span | Rule::cmp_sym))
        .collect();
    let (op, v): (&str, Option<Value>) = match rule {
        Rule::t_cmp => (cmp_name(&parts[0])?, Some(value(&parts[1])?)),
        Rule::t_between => ("between", Some(json!([value(&parts[0])?, value(&parts[1])?]))),
        Rule::t_in | Rule::t_not_in => {
            let items: Vec<Value> = parts[0].clone().into_inner().map(|x| value(&x)).collect::<R<_>>()?;
            (if rule == Rule::t_in { "in" } else { "not_in" }, Some(Value::Array(items)))
        }
        Rule::t_is_null => ("is_null", None),
        Rule::t_is_not_null => ("not_null", None),
        Rule::t_contains => ("contains", Some(json!(string(&parts[0])))),
        Rule::t_starts => ("starts_with", Some(json!(string(&parts[0])))),
        Rule::t_ends => ("ends_with", Some(json!(string(&parts[0])))),
        Rule::t_matches => ("matches", Some(json!(string(&parts[0])))),
        Rule::t_within => ("within_last", Some(Value::Object(span_map(&parts[0])?))),
        _ => ("not_within_last", Some(Value::Object(span_map(&parts[0])?))),
    };
    m.insert("op".into(), json!(op));
    if let Some(v) = v {
        m.insert("value".into(), v);
    }
    Ok(Value::Object(m))
}

/// Event filters are written with the same syntax as rules; their leaves become `prop`s.
fn props(p: Pair<Rule>) -> R<Value> {
    let at = p.clone();
    let v = build_expr(p)?;
    to_props(v).map_err(|what| pos_err(&at, format!("{what} cannot be used inside an event's conditions; only comparisons of the event's properties can")))
}

fn to_props(v: Value) -> Result<Value, String> {
    let Value::Object(mut m) = v else { return Ok(v) };
    for key in ["all", "any"] {
        if let Some(Value::Array(xs)) = m.remove(key) {
            let xs: Vec<Value> = xs.into_iter().map(to_props).collect::<Result<_, _>>()?;
            return Ok(json!({ key: xs }));
        }
    }
    if let Some(x) = m.remove("not") {
        return Ok(json!({ "not": to_props(x)? }));
    }
    if let Some(f) = m.remove("attr") {
        let mut out = Map::new();
        out.insert("prop".into(), f);
        out.extend(m);
        return Ok(Value::Object(out));
    }
    Err(m.keys().next().map(|k| format!("a {k} condition")).unwrap_or_else(|| "this".into()))
}

fn window(p: Pair<Rule>) -> R<Value> {
    let w = p.into_inner().find(|x| matches!(x.as_rule(), Rule::last_win | Rule::range_win)).ok_or_else(|| Problem::invalid("$", "empty window"))?;
    if w.as_rule() == Rule::last_win {
        let span = w.into_inner().find(|x| x.as_rule() == Rule::span).ok_or_else(|| Problem::invalid("$", "missing span"))?;
        return Ok(json!({ "last": Value::Object(span_map(&span)?) }));
    }
    let mut m = Map::new();
    let mut key = "from";
    for x in w.into_inner() {
        match x.as_rule() {
            Rule::kw_from => key = "from",
            Rule::kw_to => key = "to",
            Rule::string => {
                m.insert(key.into(), json!(string(&x)));
            }
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn set_once(m: &mut Map<String, Value>, at: &Pair<Rule>, key: &str, v: Value) -> R<()> {
    if m.insert(key.into(), v).is_some() {
        return Err(pos_err(at, format!("\"{key}\" is given twice")));
    }
    Ok(())
}

fn event(p: Pair<Rule>) -> R<Value> {
    let mut m = Map::new();
    let mut having = Vec::new();
    let mut performed = true;
    for x in p.into_inner() {
        match x.as_rule() {
            Rule::no_kw => performed = false,
            Rule::name => {
                m.insert("event".into(), json!(name(&x)));
            }
            Rule::event_arg => {
                let arg = first(x);
                let at = arg.clone();
                match arg.as_rule() {
                    Rule::where_arg => {
                        let e = arg.into_inner().find(|y| y.as_rule() == Rule::expr).ok_or_else(|| pos_err(&at, "missing condition"))?;
                        let v = props(e)?;
                        set_once(&mut m, &at, "where", v)?;
                    }
                    Rule::within_arg => set_once(&mut m, &at, "within", window(arg)?)?,
                    Rule::count_arg => {
                        let parts: Vec<Pair<Rule>> = arg.into_inner().filter(|y| y.as_rule() != Rule::kw_count).collect();
                        let v = json!({"op": cmp_name(&parts[0])?, "value": int_value(&parts[1])?});
                        set_once(&mut m, &at, "count", v)?;
                    }
                    _ => {
                        let parts: Vec<Pair<Rule>> = arg.into_inner().collect();
                        let func = parts[0].as_str().to_ascii_lowercase();
                        having.push(json!({"fn": func, "prop": name(&parts[1]), "op": cmp_name(&parts[2])?, "value": value(&parts[3])?}));
                    }
                }
            }
            _ => {}
        }
    }
    if !having.is_empty() {
        m.insert("having".into(), Value::Array(having));
    }
    if !performed {
        m.insert("performed".into(), json!(false));
    }
    Ok(Value::Object(m))
}

fn ratio(p: Pair<Rule>) -> R<Value> {
    let mut m = Map::new();
    let mut pending_op = None;
    for x in p.into_inner() {
        match x.as_rule() {
            Rule::name => {
                m.insert("event".into(), json!(name(&x)));
            }
            Rule::ratio_arg => {
                let arg = first(x);
                let at = arg.clone();
                match arg.as_rule() {
                    Rule::per_arg => {
                        let n = arg.into_inner().find(|y| y.as_rule() == Rule::name).map(|y| name(&y)).unwrap_or_default();
                        set_once(&mut m, &at, "occasion", json!(n))?;
                    }
                    Rule::of_arg | Rule::match_arg => {
                        let key = if arg.as_rule() == Rule::of_arg { "of" } else { "match" };
                        let e = arg.into_inner().find(|y| y.as_rule() == Rule::expr).ok_or_else(|| pos_err(&at, "missing condition"))?;
                        let v = props(e)?;
                        set_once(&mut m, &at, key, v)?;
                    }
                    Rule::within_arg => set_once(&mut m, &at, "within", window(arg)?)?,
                    _ => {
                        let n = arg.into_inner().find(|y| y.as_rule() == Rule::integer).ok_or_else(|| pos_err(&at, "missing number"))?;
                        set_once(&mut m, &at, "min_occasions", int_value(&n)?)?;
                    }
                }
            }
            Rule::cmp_sym => pending_op = Some(cmp_name(&x)?),
            Rule::number => {
                m.insert("op".into(), json!(pending_op.unwrap_or("gte")));
                m.insert("value".into(), Value::Number(number_from_str(x.as_str()).ok_or_else(|| pos_err(&x, "bad number"))?));
            }
            _ => {}
        }
    }
    Ok(json!({ "ratio": m }))
}

// ---------------------------------------------------------------------------------------------
// AST → text

pub fn format(rule: &RuleAst) -> String {
    fmt_tree(rule, &fmt_cond)
}

fn fmt_tree<L>(t: &Tree<L>, leaf: &dyn Fn(&L) -> String) -> String {
    let child = |x: &Tree<L>| -> String {
        match x {
            Tree::All(xs) | Tree::Any(xs) if xs.len() > 1 => format!("({})", fmt_tree(x, leaf)),
            _ => fmt_tree(x, leaf),
        }
    };
    match t {
        Tree::All(xs) if xs.len() == 1 => format!("all({})", fmt_tree(&xs[0], leaf)),
        Tree::Any(xs) if xs.len() == 1 => format!("any({})", fmt_tree(&xs[0], leaf)),
        Tree::All(xs) => xs.iter().map(child).collect::<Vec<_>>().join(" and "),
        Tree::Any(xs) => xs.iter().map(child).collect::<Vec<_>>().join(" or "),
        Tree::Not(x) => format!("not {}", child(x)),
        Tree::Leaf(l) => leaf(l),
    }
}

pub fn quote_name(n: &str) -> String {
    let plain = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&n.to_ascii_lowercase().as_str());
    if plain { n.to_string() } else { format!("\"{}\"", n.replace('"', "\"\"")) }
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn fmt_scalar(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => quote_str(s),
        Scalar::Num(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }
}

fn fmt_span(s: &Span) -> String {
    format!("{} {}", s.n, s.unit.name())
}

fn fmt_compare(c: &Compare) -> String {
    let f = quote_name(&c.field);
    let v = &c.value;
    match (c.op, v) {
        (Op::IsNull, _) => format!("{f} is null"),
        (Op::NotNull, _) => format!("{f} is not null"),
        (Op::Between, Operand::Pair(a, b)) => format!("{f} between {} and {}", fmt_scalar(a), fmt_scalar(b)),
        (Op::AgeBetween, Operand::Pair(a, b)) => format!("age({f}) between {} and {}", fmt_scalar(a), fmt_scalar(b)),
        (Op::In | Op::NotIn, Operand::List(xs)) => format!(
            "{f} {}in ({})",
            if c.op == Op::NotIn { "not " } else { "" },
            xs.iter().map(fmt_scalar).collect::<Vec<_>>().join(", ")
        ),
        (Op::Contains, Operand::Scalar(s)) => format!("{f} contains {}", fmt_scalar(s)),
        (Op::StartsWith, Operand::Scalar(s)) => format!("{f} starts with {}", fmt_scalar(s)),
        (Op::EndsWith, Operand::Scalar(s)) => format!("{f} ends with {}", fmt_scalar(s)),
        (Op::Matches, Operand::Scalar(s)) => format!("{f} matches {}", fmt_scalar(s)),
        (Op::WithinLast, Operand::Span(s)) => format!("{f} within last {}", fmt_span(s)),
        (Op::NotWithinLast, Operand::Span(s)) => format!("{f} not within last {}", fmt_span(s)),
        (op, Operand::Scalar(s)) => format!("{f} {} {}", op.as_cmp().map(|o| o.sql()).unwrap_or("="), fmt_scalar(s)),
        (op, _) => format!("{f} {}", op.name()),
    }
}

fn fmt_window(w: &Window) -> String {
    match w {
        Window::Last(s) => format!("within last {}", fmt_span(s)),
        Window::Range { from, to } => {
            let mut s = "within".to_string();
            if let Some(f) = from {
                s += &format!(" from {}", quote_str(f));
            }
            if let Some(t) = to {
                s += &format!(" to {}", quote_str(t));
            }
            s
        }
    }
}

fn fmt_props(t: &PropTree) -> String {
    fmt_tree(t, &fmt_compare)
}

fn fmt_event(e: &EventCond) -> String {
    let mut args = Vec::new();
    if let Some(f) = &e.filter {
        args.push(format!("where {}", fmt_props(f)));
    }
    if let Some(w) = &e.within {
        args.push(fmt_window(w));
    }
    if let Some((op, n)) = e.count {
        args.push(format!("count {} {n}", op.sql()));
    }
    for h in &e.having {
        args.push(format!("{}({}) {} {}", h.func.name(), quote_name(&h.prop), h.op.sql(), fmt_scalar(&h.value)));
    }
    format!("{}{}({})", if e.performed { "" } else { "no " }, quote_name(&e.event), args.join(", "))
}

fn fmt_cond(c: &Cond) -> String {
    match c {
        Cond::Attr(c) => fmt_compare(c),
        Cond::Event(e) => fmt_event(e),
        Cond::Ratio(r) => {
            let mut args = vec![quote_name(&r.event), format!("per {}", quote_name(&r.occasion))];
            if let Some(of) = &r.of {
                args.push(format!("of {}", fmt_props(of)));
            }
            args.push(format!("match {}", fmt_props(&r.matches)));
            if let Some(w) = &r.within {
                args.push(fmt_window(w));
            }
            if r.min_occasions != 1 {
                args.push(format!("min_occasions {}", r.min_occasions));
            }
            format!("ratio({}) {} {}", args.join(", "), r.op.sql(), r.value)
        }
        Cond::Sequence(s) => format!(
            "sequence({}, then {}, gap {} {})",
            fmt_event(&s.first), fmt_event(&s.then), s.gap_op.sql(), fmt_span(&s.gap)
        ),
        Cond::Segment(n) => format!("segment({})", quote_str(n)),
        Cond::Rfm(r) => {
            let mut args = Vec::new();
            if !r.clusters.is_empty() {
                args.push(format!("cluster in ({})", r.clusters.iter().map(|c| quote_str(c)).collect::<Vec<_>>().join(", ")));
            }
            for (score, op, v) in &r.scores {
                args.push(format!("{} {} {v}", score.name(), op.sql()));
            }
            format!("rfm({})", args.join(", "))
        }
    }
}
