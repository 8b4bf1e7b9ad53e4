//! Rule language tests: JSON reading, the text form and their round trip.
use super::ast::*;
use super::{json, parse_any, text};
use crate::error::Code;
use proptest::prelude::*;
use serde_json::{json as j, Number, Value};

fn problems(input: &str) -> Vec<(Code, String)> {
    match parse_any(input) {
        Ok(_) => vec![],
        Err(p) => p.0.into_iter().map(|p| (p.code, p.path)).collect(),
    }
}

#[test]
fn a_json_array_is_a_json_rule_of_the_wrong_kind() {
    let p = parse_any(" [{\"attr\": \"country\", \"op\": \"eq\", \"value\": \"FR\"}]").unwrap_err().0;
    assert_eq!((p[0].code, p[0].path.as_str()), (Code::InvalidParameter, "$"));
    assert!(p[0].message.contains("must be a JSON object, not array") && p[0].hint.as_deref().unwrap_or("").contains("{\"attr\""), "{:?}", p[0]);
}

#[test]
fn reads_the_brochure_rule_in_both_forms() {
    let t = "country = 'FR' and purchase_lines(where product_range = 'children' and on_sale and outlet_kind = 'airport' \
             and city = 'Rome', within last 6 months, sum(qty) >= 3, sum(line_total) > 200)";
    let r = parse_any(t).unwrap();
    let back = parse_any(&json::to_json(&r).to_string()).unwrap();
    assert_eq!(r, back);
    let Tree::All(parts) = &r else { panic!("expected all") };
    let Tree::Leaf(Cond::Event(e)) = &parts[1] else { panic!("expected event") };
    assert_eq!(e.having.len(), 2);
    assert_eq!(e.within, Some(Window::Last(Span { n: 6, unit: Unit::Months })));
}

#[test]
fn unknown_keys_and_ops_have_paths() {
    let p = problems(r#"{"all": [{"attr": "a", "op": "eq", "value": 1}, {"attr": "b", "op": "eqq", "value": 1, "x": 2}]}"#);
    assert!(p.contains(&(Code::InvalidParameter, "$.all[1].op".into())), "{p:?}");
    assert!(p.contains(&(Code::InvalidParameter, "$.all[1].x".into())), "{p:?}");
    let p = problems(r#"{"event": "e", "where": {"any": [{"prop": "p", "op": "between", "value": [5, 1]}]}}"#);
    assert_eq!(p, vec![(Code::InvalidParameter, "$.where.any[0].value".into())]);
    assert_eq!(problems(r#"{"all": []}"#), vec![(Code::InvalidParameter, "$.all".into())]);
}

#[test]
fn lengths_of_time_fit_before_any_time_in_years_1_to_9999() {
    // at most 1000 years back (PostgreSQL's dates start in 4714 BC); a longer span is refused
    // here, with the longest of each unit in the hint, not by PostgreSQL at evaluation
    for (ok, bad) in [("1000 years", "1001 years"), ("12000 months", "12001 months"), ("100000 weeks", "100001 weeks"), ("100000 days", "100001 days")] {
        assert!(parse_any(&format!("orders(within last {ok})")).is_ok(), "{ok}");
        let p = parse_any(&format!("orders(within last {bad})")).unwrap_err().0;
        assert_eq!(p.len(), 1, "{p:?}");
        let unit = bad.split(' ').nth(1).unwrap_or_default();
        assert_eq!(p[0].path, format!("$.within.last.{unit}"), "{p:?}");
        assert!(p[0].hint.as_deref().is_some_and(|h| h.contains("12000 months or 1000 years")), "{p:?}");
    }
    assert_eq!(problems(r#"{"attr": "birth_date", "op": "within_last", "value": {"years": 5000}}"#), vec![(Code::InvalidParameter, "$.value.years".into())]);
    let p = parse_any("age(birth_date) between 25 and 500").unwrap_err().0;
    assert_eq!((p[0].path.as_str(), p[0].message.as_str()), ("$.value[1]", "ages must be whole numbers from 0 to 200, not 500"));
    assert!(p[0].hint.is_some(), "{p:?}");
}

#[test]
fn rfm_conditions_are_checked() {
    let p = problems(r#"{"rfm": {"cluster": ["champions", "vips"], "r": {"op": "gte", "value": 6}, "fm": {"op": "lt", "value": 2.25}, "x": 1}}"#);
    assert_eq!(p, vec![
        (Code::InvalidParameter, "$.rfm.x".into()),
        (Code::InvalidParameter, "$.rfm.cluster[1]".into()),
        (Code::InvalidParameter, "$.rfm.r.value".into()),
        (Code::InvalidParameter, "$.rfm.fm.value".into()),
    ]);
    assert_eq!(problems(r#"{"rfm": {}}"#), vec![(Code::InvalidParameter, "$.rfm".into())]);
    assert_eq!(problems(r#"{"rfm": {"cluster": []}}"#), vec![(Code::InvalidParameter, "$.rfm.cluster".into())]);
    assert_eq!(problems("rfm(r >= 4, r <= 5)"), vec![(Code::InvalidParameter, "line 1, column 13".into())]);
    // the text form reads in any order and writes r, f, m, fm
    let r = parse_any("rfm(fm <= 2, cluster in ('lost'), R = 1)").unwrap();
    assert_eq!(text::format(&r), "rfm(cluster in ('lost'), r = 1, fm <= 2)");
}

#[test]
fn limits_are_enforced_before_work() {
    let deep = format!("{}{}{}", "{\"not\":".repeat(10_000), r#"{"attr":"a","op":"is_null"}"#, "}".repeat(10_000));
    assert_eq!(problems(&deep)[0].0, Code::TooComplex);
    let deep_text = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(problems(&deep_text)[0].0, Code::TooComplex);
    // `not not … x` nests without parentheses (100000 of them overflowed the stack)
    let nots = format!("{}a = 1", "not ".repeat(100_000));
    assert_eq!(problems(&nots)[0].0, Code::TooComplex);
    let big = format!("a in ({})", vec!["1"; 600_000].join(","));
    assert_eq!(problems(&big)[0].0, Code::TooLarge);
    let list = format!(r#"{{"attr": "a", "op": "in", "value": [{}]}}"#, vec!["1"; 100_001].join(","));
    assert_eq!(problems(&list)[0].0, Code::TooLarge);
}

#[test]
fn hostile_text_is_just_data() {
    for s in ["x\"; drop table t; --", "$$", "'; select 1; --", "a\0b"] {
        let r = Tree::Leaf(Cond::Attr(Compare { field: s.into(), op: Op::Eq, value: Operand::Scalar(Scalar::Str(s.into())) }));
        let t = text::format(&r);
        assert_eq!(text::parse(&t).unwrap(), r, "{t}");
    }
}

#[test]
fn syntax_errors_point_at_the_text() {
    let p = problems("country = 'FR' and and");
    assert_eq!(p[0].0, Code::InvalidParameter);
    assert!(p[0].1.starts_with("line 1, column"), "{p:?}");
    let Err(e) = parse_any("age(birth_date) between 25") else { panic!("parsed") };
    assert!(e.first().message.contains("expected \"and\""), "{}", e.first().message);
    assert!(!e.first().message.contains("kw_"), "{}", e.first().message);
}

#[test]
fn events_inside_where_are_refused() {
    assert!(!problems("e(where f(count > 1))").is_empty());
}

// ---- property test: every rule has a text form that reads back to it

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,8}",
        Just("count".to_string()),
        Just("and".to_string()),
        Just("Mixed Case".to_string()),
        Just("x\"; drop table t; --".to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<String>().prop_map(|s| Scalar::Str(s.replace('\0', ""))),
        any::<i64>().prop_map(|n| Scalar::Num(n.into())),
        (-1e12f64..1e12).prop_map(|f| Scalar::Num(Number::from_f64(f).unwrap_or(0.into()))),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (1i64..1000, prop::sample::select(UNITS.iter().map(|(_, u)| *u).collect::<Vec<_>>())).prop_map(|(n, unit)| Span { n, unit })
}

fn compare() -> impl Strategy<Value = Compare> {
    let num = |lo: i64, hi: i64| Scalar::Num(lo.min(hi).into());
    prop_oneof![
        (name(), prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Lte, Op::Gt, Op::Gte]), scalar())
            .prop_map(|(f, op, v)| Compare { field: f, op, value: Operand::Scalar(v) }),
        (name(), any::<i32>(), any::<i32>()).prop_map(move |(f, a, b)| Compare {
            field: f, op: Op::Between,
            value: Operand::Pair(num(a as i64, b as i64), Scalar::Num((a.max(b) as i64).into())),
        }),
        (name(), 0i64..100, 0i64..100).prop_map(|(f, a, b)| Compare {
            field: f, op: Op::AgeBetween, value: Operand::Pair(Scalar::Num(a.min(b).into()), Scalar::Num(a.max(b).into())),
        }),
        (name(), any::<bool>(), prop::collection::vec(scalar(), 1..4)).prop_map(|(f, neg, xs)| Compare {
            field: f, op: if neg { Op::NotIn } else { Op::In }, value: Operand::List(xs),
        }),
        (name(), any::<bool>()).prop_map(|(f, n)| Compare { field: f, op: if n { Op::IsNull } else { Op::NotNull }, value: Operand::None }),
        (name(), prop::sample::select(vec![Op::Contains, Op::StartsWith, Op::EndsWith, Op::Matches]), any::<String>())
            .prop_map(|(f, op, s)| Compare { field: f, op, value: Operand::Scalar(Scalar::Str(s.replace('\0', ""))) }),
        (name(), any::<bool>(), span()).prop_map(|(f, n, s)| Compare {
            field: f, op: if n { Op::NotWithinLast } else { Op::WithinLast }, value: Operand::Span(s),
        }),
    ]
}

fn tree<L: Clone + std::fmt::Debug + 'static>(leaf: impl Strategy<Value = L> + 'static) -> impl Strategy<Value = Tree<L>> {
    leaf.prop_map(Tree::Leaf).prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Tree::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Tree::Any),
            inner.prop_map(|x| Tree::Not(Box::new(x))),
        ]
    })
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        span().prop_map(Window::Last),
        (prop::option::of(Just("2026-01-01".to_string())), prop::option::of(Just("2026-02-01T10:00:00Z".to_string())))
            .prop_filter("one bound", |(a, b)| a.is_some() || b.is_some())
            .prop_map(|(from, to)| Window::Range { from, to }),
    ]
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(CMP_OPS.iter().map(|(_, o, _)| *o).collect::<Vec<_>>())
}

fn event(counts: bool) -> impl Strategy<Value = EventCond> {
    let having = (prop::sample::select(AGG_FNS.iter().map(|(_, f)| *f).collect::<Vec<_>>()), name(), cmp_op(), scalar())
        .prop_map(|(func, prop, op, value)| Having { func, prop, op, value });
    (
        name(),
        prop::option::of(tree(compare())),
        prop::option::of(window()),
        prop::option::of((cmp_op(), 0i64..1000)),
        prop::collection::vec(having, 0..3),
        any::<bool>(),
    )
        .prop_map(move |(event, filter, within, count, having, performed)| EventCond {
            event, filter, within,
            count: if counts { count } else { None },
            having: if counts { having } else { vec![] },
            performed: performed || !counts,
        })
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        compare().prop_map(Cond::Attr),
        event(true).prop_map(Cond::Event),
        (name(), name(), prop::option::of(tree(compare())), tree(compare()), cmp_op(), 0u32..=100, 1i64..10, prop::option::of(window()))
            .prop_map(|(event, occasion, of, matches, op, pct, min_occasions, within)| Cond::Ratio(RatioCond {
                event, occasion, of, matches, op, value: Number::from_f64(pct as f64 / 100.0).unwrap_or(0.into()), min_occasions, within,
            })),
        (event(false), event(false), prop::sample::select(vec![CmpOp::Gt, CmpOp::Gte, CmpOp::Lt, CmpOp::Lte]), span())
            .prop_map(|(first, then, gap_op, gap)| Cond::Sequence(SequenceCond { first, then, gap_op, gap })),
        "[a-z]{1,8}".prop_map(Cond::Segment),
        rfm().prop_map(Cond::Rfm),
    ]
}

fn rfm() -> impl Strategy<Value = RfmCond> {
    let names: Vec<String> = crate::rfm::cluster_names().map(String::from).collect();
    let test = |lo: i64, hi: i64, halves: bool| prop::option::of((cmp_op(), lo..=hi).prop_map(move |(op, v)| {
        let n = if halves && v % 2 == 1 { Number::from_f64(v as f64 / 2.0).unwrap_or(1.into()) } else if halves { Number::from(v / 2) } else { Number::from(v) };
        (op, n)
    }));
    (prop::sample::subsequence(names, 0..=3), test(1, 5, false), test(1, 5, false), test(1, 5, false), test(2, 10, true))
        .prop_filter("an rfm condition tests something", |(c, r, f, m, fm)| !c.is_empty() || r.is_some() || f.is_some() || m.is_some() || fm.is_some())
        .prop_map(|(clusters, r, f, m, fm)| RfmCond {
            clusters,
            scores: [(Score::R, r), (Score::F, f), (Score::M, m), (Score::Fm, fm)].into_iter().filter_map(|(s, t)| t.map(|(op, v)| (s, op, v))).collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn json_text_json_round_trip(rule in tree(cond())) {
        let js: Value = json::to_json(&rule);
        let from_json = json::parse_str(&js.to_string()).map_err(|e| TestCaseError::fail(format!("{e:?}\n{js}")))?;
        prop_assert_eq!(&from_json, &rule);
        let t = text::format(&rule);
        let from_text = text::parse(&t).map_err(|e| TestCaseError::fail(format!("{e:?}\n{t}")))?;
        prop_assert_eq!(&from_text, &rule, "text form: {}", t);
        prop_assert_eq!(text::to_json_value(&t).ok(), Some(js));
    }
}

#[test]
fn bare_boolean_shorthand() {
    assert_eq!(text::to_json_value("on_sale").unwrap(), j!({"attr": "on_sale", "op": "eq", "value": true}));
}
