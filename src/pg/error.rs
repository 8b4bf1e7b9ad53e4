//! Problems from the core become Postgres errors with SQLSTATE, DETAIL and HINT.
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use segplan_core::error::{Code, Problem, Problems};

fn sqlstate(code: Code) -> PgSqlErrorCode {
    match code {
        Code::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        Code::TooLarge => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        Code::TooComplex => PgSqlErrorCode::ERRCODE_STATEMENT_TOO_COMPLEX,
        Code::NotSupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        Code::UndefinedTable => PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        Code::UndefinedColumn => PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
    }
}

/// Raises the first problem; DETAIL says where, and how many more there are.
pub fn raise(problems: &Problems) -> ! {
    let p = problems.first();
    let mut detail = p.detail();
    if problems.0.len() > 1 {
        detail += &format!(" (and {} more problems: segplan.validate(rule) lists them all)", problems.0.len() - 1);
    }
    report(sqlstate(p.code), &p.message, detail, p.hint.clone())
}

/// Raises the first problem of a configuration; DETAIL lists every problem with its path.
pub fn raise_all(problems: &Problems) -> ! {
    let p = problems.first();
    let detail = problems.0.iter().map(|x| format!("{}: {}", x.path, x.message)).collect::<Vec<_>>().join("; ");
    report(sqlstate(p.code), &p.message, detail, p.hint.clone())
}

pub fn raise_one(p: Problem) -> ! {
    raise(&Problems::from(p))
}

/// Raises an error with an explicit SQLSTATE.
pub fn report(code: PgSqlErrorCode, message: &str, detail: String, hint: Option<String>) -> ! {
    let mut r = ErrorReport::new(code, format!("segplan: {message}"), "segplan").set_detail(detail);
    if let Some(h) = hint {
        r = r.set_hint(h);
    }
    r.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// An argument that may not be NULL: NULL is 22004 naming it.
pub fn required<T>(v: Option<T>, name: &str) -> T {
    v.unwrap_or_else(|| null_at(name, format!("pass a value for {name}")))
}

/// Days from 2000-01-01 (PostgreSQL's epoch) back to 0001-01-02 and on to 9999-12-30: times are
/// read in local time, with years of four digits and a day either side for the zone.
const FIRST_DAY: i64 = -730_118;
const LAST_DAY: i64 = 2_921_938;

/// A time the caller gives (a rule's as_of, a send's time, a schedule's bounds): ±infinity and
/// years past 9999 or before 1 have no local time to read and no window that fits before them
/// (22023 naming the argument).
pub fn timely(t: TimestampWithTimeZone, name: &str) -> TimestampWithTimeZone {
    let micros = pg_sys::TimestampTz::from(t);
    if !(FIRST_DAY * 86_400_000_000..(LAST_DAY + 1) * 86_400_000_000).contains(&micros) {
        raise_one(Problem::invalid(name, format!("{name} must be a time from 0001-01-02 to 9999-12-30, not {t}")).hint("give a date and time such as now() or '2026-12-01 09:00'"));
    }
    t
}

/// An array argument that may hold no NULLs and may not be NULL itself (22004 with the position).
pub fn required_all<T>(v: Option<Vec<Option<T>>>, name: &str) -> Vec<T> {
    let all = required(v, name);
    all.into_iter().enumerate().map(|(i, x)| x.unwrap_or_else(|| null_at(&format!("{name}[{}]", i + 1), format!("remove the NULL from {name}")))).collect()
}

fn null_at(name: &str, hint: String) -> ! {
    report(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, &format!("{name} must not be NULL"), format!("at {name}"), Some(hint))
}

pub fn internal(what: &str, e: impl std::fmt::Display) -> ! {
    report(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, what, e.to_string(), None)
}

/// A WARNING with a hint (the statement goes on).
pub fn warn(message: &str, detail: String, hint: &str) {
    ErrorReport::new(PgSqlErrorCode::ERRCODE_WARNING, format!("segplan: {message}"), "segplan")
        .set_detail(detail)
        .set_hint(hint)
        .report(PgLogLevel::WARNING);
}

/// Runs `f` in a subtransaction, the way PL/pgSQL runs an EXCEPTION block: on an error its work is
/// rolled back and the error comes back as `(message, detail)` instead of ending the statement.
pub fn in_subtransaction<T>(f: impl FnOnce() -> T) -> Result<T, (String, Option<String>)> {
    unsafe {
        let cxt = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        let f = std::panic::AssertUnwindSafe(f);
        let result = PgTryBuilder::new(move || {
            let whole = f;
            Ok((whole.0)())
        })
            .catch_others(|e| {
                Err(match e {
                    CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => (r.message().to_string(), r.detail().map(String::from)),
                    CaughtError::RustPanic { ereport, .. } => (ereport.message().to_string(), None),
                })
            })
            .execute();
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(cxt);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}
