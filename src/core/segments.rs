//! Stored segments inside rules: `{"segment": "vip"}` stands for the segment's *current* rule, so
//! a reference is never stale. Expansion replaces every reference by that rule, recursively,
//! refusing cycles, unknown names and expansions beyond the rule limits.
use crate::error::{choices, Code, Problem, Problems, MAX_DEPTH};
use crate::rule::{Cond, Rule, Tree};
use std::collections::HashMap;

/// The most conditions a rule may have once its segments are expanded (a segment referenced
/// twice counts twice), so references cannot multiply a rule without bound.
pub const MAX_EXPANDED_LEAVES: usize = 10_000;

/// A valid name for a segment, policy or event source: usable unquoted as an SQL identifier.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub fn name_problem(path: &str, name: &str) -> Problem {
    Problem::invalid(path, format!("invalid segment name \"{name}\""))
        .hint("use lower-case letters, digits and underscores, starting with a letter or underscore (at most 63)")
}

/// The names a rule references directly, in order, without repeats.
pub fn references(rule: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    walk(rule, &mut |c| {
        if let Cond::Segment(n) = c {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    });
    out
}

fn walk(t: &Rule, f: &mut dyn FnMut(&Cond)) {
    match t {
        Tree::All(xs) | Tree::Any(xs) => xs.iter().for_each(|x| walk(x, f)),
        Tree::Not(x) => walk(x, f),
        Tree::Leaf(c) => f(c),
    }
}

fn depth(t: &Rule) -> usize {
    match t {
        Tree::All(xs) | Tree::Any(xs) => 1 + xs.iter().map(depth).max().unwrap_or(0),
        Tree::Not(x) => 1 + depth(x),
        Tree::Leaf(_) => 1,
    }
}

/// Replaces every segment reference by the segment's rule (`lookup`: its current rule, `None`
/// when there is no such segment). `within` names the segment being saved, if any: a reference
/// back to it is a cycle.
pub fn expand(rule: &Rule, within: Option<&str>, lookup: &mut dyn FnMut(&str) -> Option<Rule>) -> Result<Rule, Problems> {
    let mut x = Expander { lookup, memo: HashMap::new(), stack: within.map(|w| vec![w.to_string()]).unwrap_or_default(), problems: Vec::new(), leaves: 0 };
    let out = x.tree(rule, "$");
    if x.leaves > MAX_EXPANDED_LEAVES {
        return Err(Problem::new(Code::TooLarge, "$", format!("with its segments expanded the rule has more than {MAX_EXPANDED_LEAVES} conditions"))
            .hint("reference fewer segments, or the same segment fewer times").into());
    }
    if !x.problems.is_empty() {
        return Err(Problems(x.problems));
    }
    if depth(&out) > MAX_DEPTH {
        return Err(Problem::new(Code::TooComplex, "$", format!("with its segments expanded the rule is nested more than {MAX_DEPTH} levels deep"))
            .hint("flatten the segments it references").into());
    }
    Ok(out)
}

struct Expander<'a> {
    lookup: &'a mut dyn FnMut(&str) -> Option<Rule>,
    memo: HashMap<String, Option<Rule>>,
    stack: Vec<String>,
    problems: Vec<Problem>,
    leaves: usize,
}

impl Expander<'_> {
    fn tree(&mut self, t: &Rule, path: &str) -> Rule {
        if self.leaves > MAX_EXPANDED_LEAVES {
            return t.clone();
        }
        match t {
            Tree::All(xs) => Tree::All(xs.iter().enumerate().map(|(i, x)| self.tree(x, &format!("{path}.all[{i}]"))).collect()),
            Tree::Any(xs) => Tree::Any(xs.iter().enumerate().map(|(i, x)| self.tree(x, &format!("{path}.any[{i}]"))).collect()),
            Tree::Not(x) => Tree::Not(Box::new(self.tree(x, &format!("{path}.not")))),
            Tree::Leaf(Cond::Segment(name)) => self.segment(name, &format!("{path}.segment")),
            Tree::Leaf(_) => {
                self.leaves += 1;
                t.clone()
            }
        }
    }

    fn segment(&mut self, name: &str, path: &str) -> Rule {
        let keep = Tree::Leaf(Cond::Segment(name.to_string()));
        if let Some(i) = self.stack.iter().position(|s| s == name) {
            let mut chain = self.stack[i..].to_vec();
            chain.push(name.to_string());
            self.problems.push(Problem::invalid(path, format!("segment \"{name}\" refers to itself: {}", chain.join(" → ")))
                .hint("a segment cannot include itself, directly or through other segments"));
            return keep;
        }
        if !self.memo.contains_key(name) {
            let r = (self.lookup)(name);
            self.memo.insert(name.to_string(), r);
        }
        let Some(Some(rule)) = self.memo.get(name).cloned() else {
            let known: Vec<String> = self.memo.iter().filter(|(_, r)| r.is_some()).map(|(n, _)| n.clone()).collect();
            self.problems.push(Problem::invalid(path, format!("unknown segment \"{name}\""))
                .hint(if known.is_empty() {
                    "save it first with segplan.save_segment(name, rule); the segplan.segments view lists the saved ones".to_string()
                } else {
                    format!("the segplan.segments view lists the saved ones (referenced here: {})", choices(known.iter().map(|s| s.as_str())))
                }));
            return keep;
        };
        self.stack.push(name.to_string());
        let out = self.tree(&rule, path);
        self.stack.pop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::parse_any;

    fn lookup_in<'a>(defs: &'a [(&'a str, &'a str)]) -> impl FnMut(&str) -> Option<Rule> + 'a {
        move |n| defs.iter().find(|(k, _)| *k == n).map(|(_, r)| parse_any(r).unwrap())
    }

    #[test]
    fn references_are_replaced_by_the_current_rules() {
        let defs = [("fr", "country = 'FR'"), ("vip", "segment('fr') and tier = 'gold'")];
        let r = parse_any("segment('vip') or age(b) between 1 and 2").unwrap();
        let out = expand(&r, None, &mut lookup_in(&defs)).unwrap();
        assert_eq!(crate::rule::text::format(&out), "(country = 'FR' and tier = 'gold') or age(b) between 1 and 2");
        assert_eq!(references(&parse_any("segment('a') and not segment('b') and segment('a')").unwrap()), vec!["a", "b"]);
    }

    #[test]
    fn cycles_and_unknown_names_are_refused_with_paths() {
        let defs = [("a", "segment('b')"), ("b", "x = 1 and segment('a')")];
        let e = expand(&parse_any("segment('b')").unwrap(), Some("a"), &mut lookup_in(&defs)).unwrap_err();
        assert_eq!(e.0[0].path, "$.segment.all[1].segment");
        assert!(e.0[0].message.contains("a → b → a"), "{}", e.0[0].message);
        let e = expand(&parse_any("x = 1 and segment('nope')").unwrap(), None, &mut lookup_in(&defs)).unwrap_err();
        assert_eq!((e.0[0].path.as_str(), e.0[0].message.as_str()), ("$.all[1].segment", "unknown segment \"nope\""));
    }

    #[test]
    fn expansion_is_bounded() {
        // each level references the next twice: 2^20 conditions if expanded blindly
        let defs: Vec<(String, String)> = (0..20).map(|i| (format!("s{i}"), format!("segment('s{}') or segment('s{}')", i + 1, i + 1))).collect();
        let mut lookup = |n: &str| -> Option<Rule> {
            if n == "s20" { return parse_any("x = 1").ok() }
            defs.iter().find(|(k, _)| k == n).map(|(_, r)| parse_any(r).unwrap())
        };
        let e = expand(&parse_any("segment('s0')").unwrap(), None, &mut lookup).unwrap_err();
        assert_eq!(e.0[0].code, Code::TooLarge);
        assert!(valid_name("vip_fr_2") && !valid_name("Vip") && !valid_name("1a") && !valid_name("a-b") && !valid_name(""));
    }
}
