//! Bind parameters of compiled queries as datums: values in their column's type (converted once
//! by the type's input function, as a cast in the statement would be in this session) and window
//! bounds computed from as_of, so the planner sees every value as a constant.
use super::error::report;
use pgrx::datum::{Date, DatumWithOid, Interval, Timestamp, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use segplan_core::compile::Param;
use std::ffi::CString;

/// `$1` (as_of, in years 1 to 9999: every window before it then fits), then the query's own
/// parameters.
pub fn args(as_of: TimestampWithTimeZone, params: &[Param]) -> Vec<DatumWithOid<'static>> {
    let as_of = super::error::timely(as_of, "as_of");
    let mut out: Vec<DatumWithOid<'static>> = Vec::with_capacity(params.len() + 1);
    out.push(as_of.into());
    out.extend(params.iter().map(|p| bind(as_of, p)));
    out
}

/// One parameter; relative bounds are computed from `as_of`.
pub fn bind(as_of: TimestampWithTimeZone, p: &Param) -> DatumWithOid<'static> {
    match p {
        Param::Text(s) => s.clone().into(),
        Param::TextArray(v) => v.clone().into(),
        Param::Typed { text, type_sql } => {
            let oid = resolve(type_sql);
            // SAFETY: the datum was made by the input function of type `oid`, in the current memory context
            unsafe { DatumWithOid::new(input(text, oid), oid) }
        }
        Param::TypedArray { texts, type_sql } => typed_array(texts, resolve(type_sql)),
        Param::AsOfMinus(span) => (as_of - interval(span)).into(),
        Param::AsOfDateMinus(span) => {
            let t: Timestamp = Date::from(as_of) - interval(span);
            t.into()
        }
    }
}

fn interval(span: &str) -> Interval {
    // SAFETY: made by interval_in
    unsafe { Interval::from_polymorphic_datum(input(span, pg_sys::INTERVALOID), false, pg_sys::INTERVALOID) }.unwrap_or_else(|| unreachable!("interval_in returned NULL"))
}

/// The type named by a `format_type()` string (its type modifier is not applied: a value longer
/// than a varchar(n) column or finer than a numeric(p, s) one then simply matches nothing).
fn resolve(type_sql: &str) -> pg_sys::Oid {
    let name = CString::new(type_sql).unwrap_or_else(|_| unreachable!("type names come from format_type()"));
    let (mut oid, mut typmod) = (pg_sys::InvalidOid, -1);
    // SAFETY: a valid C string and out pointers; an unknown name raises a PostgreSQL error
    unsafe { pg_sys::parseTypeString(name.as_ptr(), &mut oid, &mut typmod, false) };
    oid
}

fn input(text: &str, oid: pg_sys::Oid) -> pg_sys::Datum {
    let Ok(c) = CString::new(text) else {
        report(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "a value contains a NUL character", format!("value: {:?}", text), Some("remove the NUL (\\u0000) character".into()))
    };
    let (mut func, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    // SAFETY: `oid` is a type; the input function reads a C string and raises on bad input
    unsafe {
        pg_sys::getTypeInputInfo(oid, &mut func, &mut ioparam);
        pg_sys::OidInputFunctionCall(func, c.as_ptr().cast_mut(), ioparam, -1)
    }
}

fn typed_array(texts: &[String], elem: pg_sys::Oid) -> DatumWithOid<'static> {
    let mut datums: Vec<pg_sys::Datum> = texts.iter().map(|t| input(t, elem)).collect();
    let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
    // SAFETY: `elem` is a type; construct_array copies the datums into a new array in the current memory context
    unsafe {
        let array_type = pg_sys::get_array_type(elem);
        if array_type == pg_sys::InvalidOid {
            report(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, "in and not_in need a type with arrays", format!("type oid {elem:?} has no array type"), Some("compare with eq, or use a column of another type".into()))
        }
        pg_sys::get_typlenbyvalalign(elem, &mut len, &mut byval, &mut align);
        let a = pg_sys::construct_array(datums.as_mut_ptr(), datums.len() as i32, elem, len.into(), byval, align);
        DatumWithOid::new(pg_sys::Datum::from(a), array_type)
    }
}
