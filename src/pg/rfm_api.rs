//! RFM: configuration, the scores query behind `segplan.rfm_scores()` / `rfm_summary()`
//! (sql/finalize.sql runs it as the caller), the aggregate that folds purchases per contact in one
//! pass and the function that scores its result, and the cluster grid.
use super::agg::{state_of, with_state, AggState};
use super::catalog::current_model;
use super::error::{internal, raise, raise_one, report, required, timely};
use super::datum::InPlace;
use pgrx::datum::{AnyNumeric, Date, Internal, Interval, TimestampWithTimeZone};
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::pgrx_sql_entity_graph::metadata::{ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin};
use pgrx::prelude::*;
use pgrx::{varlena, JsonB, PgSqlErrorCode};
use segplan_core::compile;
use segplan_core::error::Problem;
use segplan_core::model::{self, TypeKind};
use segplan_core::numeric::{self, Decimal, NumericError};
use segplan_core::rfm::{self, AmountOverflow, Purchases, Totals, CLUSTERS, GRID};
use std::hash::Hash;

/// Sets where RFM reads purchases; checked against the model before it is kept.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn configure_rfm(
    event: Option<&str>,
    amount_property: Option<&str>,
    occasion_property: default!(Option<&str>, "NULL"),
    lookback: default!(Option<Interval>, "'2 years'"),
    as_of: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> JsonB {
    let (event, amount_property, window) = (required(event, "event"), required(amount_property, "amount_property"), required(lookback, "lookback"));
    let micros = window.months() as i128 * 30 * 86_400_000_000 + window.days() as i128 * 86_400_000_000 + window.micros() as i128;
    if micros <= 0 {
        raise_one(Problem::invalid("lookback", "the look-back window must be positive").hint("for example interval '2 years'"));
    }
    // as for a rule's window: from any as_of in years 1 to 9999 it starts within PostgreSQL's dates
    if micros > 12_000 * 30 * 86_400_000_000 {
        raise_one(Problem::invalid("lookback", format!("the look-back window is at most 1000 years, not {window}")).hint("for example interval '2 years'"));
    }
    let as_of = as_of.map(|t| timely(t, "as_of"));
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO segplan.rfm_config (event, amount_property, occasion_property, \"window\", as_of) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (singleton) DO UPDATE SET event = excluded.event, amount_property = excluded.amount_property, \
             occasion_property = excluded.occasion_property, \"window\" = excluded.\"window\", as_of = excluded.as_of, \
             configured_at = excluded.configured_at, configured_by = excluded.configured_by",
            None,
            &[event.into(), amount_property.into(), occasion_property.into(), window.into(), as_of.into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| internal("saving the RFM configuration failed", e));
    // a bad configuration raises here and the statement's rollback removes it again
    let model = current_model();
    compile::rfm_scores(&model, "text", "configure_rfm").unwrap_or_else(|p| raise(&p));
    let cfg = model.rfm.unwrap_or_else(|| internal("the RFM configuration was not saved", ""));
    JsonB(model::rfm_json(&cfg))
}

/// rfm_scores' and rfm_summary's as_of when it is in years 1 to 9999 (22023 otherwise: the window
/// back from it must fit in PostgreSQL's dates).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _rfm_as_of(as_of: TimestampWithTimeZone) -> TimestampWithTimeZone {
    timely(as_of, "as_of")
}

/// The scores query for the caller to run (`$1` as_of, then `params`), keys cast to `key_cast`.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn _rfm_query(key_cast: &str) -> TableIterator<'static, (name!(sql, String), name!(params, Vec<String>))> {
    let model = current_model();
    if key_cast == "bigint" && model.contacts.as_ref().is_some_and(|c| c.key.kind != TypeKind::Integer) {
        raise_one(Problem::invalid("rfm_scores", "contact keys are not integers")
            .hint("use segplan.rfm_scores_text(), which returns the keys as text"));
    }
    let q = compile::rfm_scores(&model, key_cast, "rfm").unwrap_or_else(|p| raise(&p));
    let params = q
        .params
        .into_iter()
        .map(|p| match p {
            compile::Param::Text(s) => s,
            other => internal("the RFM query has a parameter that is not text", format!("{other:?}")),
        })
        .collect();
    TableIterator::once((q.sql, params))
}

/// The cluster grid: each row a rectangle of R scores and fm (the average of F and M).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn rfm_clusters() -> TableIterator<
    'static,
    (name!(cluster, String), name!(r_min, i32), name!(r_max, i32), name!(fm_min, f64), name!(fm_max, f64), name!(description, String)),
> {
    let rows: Vec<_> = CLUSTERS
        .iter()
        .flat_map(|(name, what)| {
            GRID.iter().filter(move |c| c.cluster == *name).map(move |c| {
                (name.to_string(), c.r.0, c.r.1, c.fm2.0 as f64 / 2.0, c.fm2.1 as f64 / 2.0, what.to_string())
            })
        })
        .collect();
    TableIterator::new(rows)
}

/// The RFM aggregate's state: purchases per contact, keyed by integer or by text.
#[derive(Default, Clone)]
enum Keyed {
    #[default]
    None,
    Int(Purchases<i64>),
    Text(Purchases<String>),
}

/// Folds one purchase (or one occasion: `occasions` is 1, or 0 for purchases without an occasion)
/// into the state. Amounts are read in place and summed exactly (see `segplan_core::numeric`).
fn step<K: Hash + Eq + Clone + std::fmt::Display>(
    state: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    contact: K,
    day: Date,
    occasions: i64,
    amount: Option<InPlace<AnyNumeric>>,
    keyed: fn(&mut Keyed) -> &mut Purchases<K>,
) -> Internal {
    let amount = amount.map(|a| a.with_stored(fcinfo, numeric::decode)).transpose().unwrap_or_else(|e| match e {
        NumericError::NotFinite => report(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "an RFM amount is not a finite number",
            format!("contact {contact} has a purchase amount of NaN or infinity"),
            Some("exclude such purchases from the event source (a view), or configure RFM with another amount".into()),
        ),
        NumericError::OutOfRange => overflow(&contact),
        NumericError::Malformed => internal("an RFM amount could not be read", format!("contact {contact}")),
    });
    with_state(state, fcinfo, |s: &mut AggState<Keyed>| {
        s.seen = true;
        let occasions = u32::try_from(occasions.max(0)).unwrap_or(u32::MAX);
        keyed(&mut s.value).add(contact, day.to_pg_epoch_days(), occasions, amount).unwrap_or_else(|AmountOverflow(k)| overflow(&k))
    })
}

fn overflow(contact: &dyn std::fmt::Display) -> ! {
    report(
        PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        "an RFM amount total is out of range",
        format!("the purchases of contact {contact} add up to more than 38 significant digits"),
        Some("check the amount property; RFM sums amounts exactly up to 38 digits".into()),
    )
}

fn int_keys(k: &mut Keyed) -> &mut Purchases<i64> {
    if !matches!(k, Keyed::Int(_)) {
        *k = Keyed::Int(Purchases::default());
    }
    match k {
        Keyed::Int(p) => p,
        _ => unreachable!("just set"),
    }
}

fn text_keys(k: &mut Keyed) -> &mut Purchases<String> {
    if !matches!(k, Keyed::Text(_)) {
        *k = Keyed::Text(Purchases::default());
    }
    match k {
        Keyed::Text(p) => p,
        _ => unreachable!("just set"),
    }
}

#[pg_extern(immutable, parallel_safe, name = "_rfm_step")]
fn rfm_step_int(
    state: Internal,
    contact: Option<i64>,
    day: Option<Date>,
    occasions: i64,
    amount: Option<InPlace<AnyNumeric>>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    match (contact, day) {
        (Some(c), Some(d)) => step(state, fcinfo, c, d, occasions, amount, int_keys),
        _ => state,
    }
}

#[pg_extern(immutable, parallel_safe, name = "_rfm_step")]
fn rfm_step_text(
    state: Internal,
    contact: Option<&str>,
    day: Option<Date>,
    occasions: i64,
    amount: Option<InPlace<AnyNumeric>>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    match (contact, day) {
        (Some(c), Some(d)) => step(state, fcinfo, c.to_string(), d, occasions, amount, text_keys),
        _ => state,
    }
}

#[pg_extern(immutable, parallel_safe)]
fn _rfm_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let Some(other) = state_of::<Keyed>(&b).map(|s| &s.value) else { return a };
    with_state(a, fcinfo, |s: &mut AggState<Keyed>| {
        s.seen = true;
        match other {
            Keyed::Int(p) => int_keys(&mut s.value).merge(p).unwrap_or_else(|AmountOverflow(k)| overflow(&k)),
            Keyed::Text(p) => text_keys(&mut s.value).merge(p).unwrap_or_else(|AmountOverflow(k)| overflow(&k)),
            Keyed::None => {}
        }
    })
}

/// The state as bytes: a tag (0 none, 1 integer keys, 2 text keys) and the amounts' scale (2),
/// then per contact its key (8 bytes, or a 4-byte length and UTF-8), last day (4), occasions (4),
/// display scale (1) and amount units (16).
#[pg_extern(immutable, parallel_safe, strict)]
fn _rfm_serialize(mut state: Internal) -> Vec<u8> {
    fn totals(out: &mut Vec<u8>, t: &Totals) {
        out.extend(t.last_day.to_le_bytes());
        out.extend(t.occasions().to_le_bytes());
        out.push(t.display_scale());
        out.extend(t.units().to_le_bytes());
    }
    let mut out = Vec::new();
    // folding the buffered purchases in changes no total: the state stays good for more input
    let value = unsafe { state.get_mut::<AggState<Keyed>>() }.filter(|s| s.seen).map(|s| &mut s.value);
    match value {
        Some(Keyed::Int(p)) => {
            p.fold().unwrap_or_else(|AmountOverflow(k)| overflow(&k));
            out.reserve(3 + p.len() * 33);
            out.push(1);
            out.extend(p.scale.to_le_bytes());
            for (k, t) in p.totals() {
                out.extend(k.to_le_bytes());
                totals(&mut out, t);
            }
        }
        Some(Keyed::Text(p)) => {
            p.fold().unwrap_or_else(|AmountOverflow(k)| overflow(&k));
            out.push(2);
            out.extend(p.scale.to_le_bytes());
            for (k, t) in p.totals() {
                out.extend((k.len() as u32).to_le_bytes());
                out.extend(k.as_bytes());
                totals(&mut out, t);
            }
        }
        _ => out.push(0),
    }
    if out.len() > MAX_STATE_BYTES {
        report(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "too many purchasing contacts for one RFM computation",
            format!("the purchases per contact take {} MB; at most {} MB fit", out.len() >> 20, MAX_STATE_BYTES >> 20),
            Some("shorten the RFM window (segplan.configure_rfm) or split the contacts by a view".into()),
        );
    }
    out
}

/// A bytea holds at most 1 GB.
const MAX_STATE_BYTES: usize = (1 << 30) - 1024;

/// What [`_rfm_serialize`] wrote: the amounts' scale, the contacts and their totals.
enum Lists {
    None,
    Int(u16, Vec<i64>, Vec<Totals>),
    Text(u16, Vec<String>, Vec<Totals>),
}

/// `None` for bytes `_rfm_serialize` did not write (`_rfm_scores` takes any bytea).
fn read_lists(b: &[u8]) -> Option<Lists> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = b.split_at_checked(n)?;
        *b = rest;
        Some(head)
    }
    fn arr<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
        take(b, N)?.try_into().ok()
    }
    fn entries<K>(mut rest: &[u8], key: impl Fn(&mut &[u8]) -> Option<K>) -> Option<(Vec<K>, Vec<Totals>)> {
        let (mut keys, mut totals) = (Vec::with_capacity(rest.len() / 33), Vec::with_capacity(rest.len() / 33));
        while !rest.is_empty() {
            keys.push(key(&mut rest)?);
            let (last_day, occasions) = (i32::from_le_bytes(arr(&mut rest)?), u32::from_le_bytes(arr(&mut rest)?));
            let display = u8::from_le_bytes(arr(&mut rest)?);
            totals.push(Totals::new(last_day, occasions, i128::from_le_bytes(arr(&mut rest)?), display));
        }
        Some((keys, totals))
    }
    let (&tag, mut rest) = b.split_first()?;
    if tag == 0 {
        return rest.is_empty().then_some(Lists::None);
    }
    let scale = u16::from_le_bytes(arr(&mut rest)?);
    if scale > numeric::MAX_SCALE {
        return None;
    }
    match tag {
        1 => entries(rest, |b| Some(i64::from_le_bytes(arr(b)?))).map(|(keys, totals)| Lists::Int(scale, keys, totals)),
        2 => entries(rest, |b| {
            let n = u32::from_le_bytes(arr(b)?) as usize;
            String::from_utf8(take(b, n)?.to_vec()).ok()
        })
        .map(|(keys, totals)| Lists::Text(scale, keys, totals)),
        _ => None,
    }
}

fn purchases<K: Hash + Eq + Clone + std::fmt::Display>(scale: u16, keys: Vec<K>, totals: Vec<Totals>) -> Purchases<K> {
    let mut p = Purchases::with_scale(scale);
    for (k, t) in keys.into_iter().zip(totals) {
        p.push(k, t).unwrap_or_else(|AmountOverflow(k)| overflow(&k));
    }
    p
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _rfm_deserialize(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let restored = match read_lists(bytes) {
        Some(Lists::Int(scale, keys, totals)) => Keyed::Int(purchases(scale, keys, totals)),
        Some(Lists::Text(scale, keys, totals)) => Keyed::Text(purchases(scale, keys, totals)),
        Some(Lists::None) => Keyed::None,
        None => internal("a parallel worker's RFM state could not be read", format!("{} bytes", bytes.len())),
    };
    with_state(Internal::default(), fcinfo, |s: &mut AggState<Keyed>| {
        s.seen = !matches!(restored, Keyed::None);
        s.value = restored;
    })
}

/// k, recency_days, frequency, monetary, r, f, m, cluster
type ScoreRow<K> = (K, i32, i64, StoredNumeric, i32, i32, i32, &'static str);

/// Scores the contacts of an RFM aggregate as of `day` (see `segplan_core::rfm`).
fn scored<K: 'static>(scale: u16, keys: Vec<K>, totals: Vec<Totals>, day: Date) -> impl Iterator<Item = ScoreRow<K>> {
    let scores = rfm::score(&totals, day.to_pg_epoch_days());
    keys.into_iter().zip(totals).zip(scores).map(move |((k, t), s)| {
        (k, s.recency_days, i64::from(t.occasions()), StoredNumeric(rfm::amount(&t, scale)), s.r, s.f, s.m, s.cluster)
    })
}

/// A `numeric` result written straight into Postgres memory from an exact decimal.
pub struct StoredNumeric(Decimal);

impl IntoDatum for StoredNumeric {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let payload = numeric::encode(self.0);
        unsafe {
            let len = pg_sys::VARHDRSZ + payload.len();
            let ptr = pg_sys::palloc(len).cast::<pg_sys::varlena>();
            varlena::set_varsize_4b(ptr, len as i32);
            std::ptr::copy_nonoverlapping(payload.as_ptr(), varlena::vardata_4b(ptr).cast_mut().cast(), payload.len());
            Some(pg_sys::Datum::from(ptr))
        }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::NUMERICOID
    }
}

unsafe impl BoxRet for StoredNumeric {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

unsafe impl SqlTranslatable for StoredNumeric {
    const TYPE_IDENT: &'static str = AnyNumeric::TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = AnyNumeric::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = AnyNumeric::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = AnyNumeric::RETURN_SQL;
}

/// RFM scores of the contacts in an `_rfm_agg` result: the key in `k` (integer keys) or in
/// `k_text` (any other), the other NULL.
#[pg_extern(immutable, parallel_safe, strict)]
fn _rfm_scores(
    purchases: &[u8],
    day: Date,
) -> TableIterator<
    'static,
    (
        name!(k, Option<i64>),
        name!(k_text, Option<String>),
        name!(recency_days, i32),
        name!(frequency, i64),
        name!(monetary, StoredNumeric),
        name!(r, i32),
        name!(f, i32),
        name!(m, i32),
        name!(cluster, &'static str),
    ),
> {
    let rows: Box<dyn Iterator<Item = _>> = match read_lists(purchases) {
        Some(Lists::Int(scale, keys, totals)) => Box::new(scored(scale, keys, totals, day).map(|(k, a, b, c, d, e, f, g)| (Some(k), None, a, b, c, d, e, f, g))),
        Some(Lists::Text(scale, keys, totals)) => Box::new(scored(scale, keys, totals, day).map(|(k, a, b, c, d, e, f, g)| (None, Some(k), a, b, c, d, e, f, g))),
        Some(Lists::None) => Box::new(std::iter::empty()),
        None => report(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "not an RFM aggregate result",
            format!("{} bytes that segplan._rfm_agg did not write", purchases.len()),
            Some("segplan._rfm_scores is internal: use segplan.rfm_scores() or rfm(...) conditions".into()),
        ),
    };
    TableIterator::new(rows)
}
