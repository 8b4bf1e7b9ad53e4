//! Statements segplan runs on every count (the reader's snapshot and change log, the shared
//! cache's lookup, insert and trim), planned once per session and kept (`SPI_keepplan`): parsing
//! and planning READER_SQL took longer than running it, about half of a warm count. PostgreSQL's
//! plan cache re-plans a kept statement when a table it reads changes (or is re-created with the
//! extension), and runs it as SPI would run its text (read-only until the transaction writes).
use pgrx::datum::DatumWithOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// by the statement's text (a constant of segplan's) and its parameters' types
    static KEPT: RefCell<HashMap<(&'static str, Vec<u32>), Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// `sql` planned for the types of `args`, once in this session.
fn kept(client: &SpiClient, sql: &'static str, args: &[DatumWithOid]) -> SpiResult<Rc<OwnedPreparedStatement>> {
    let key = (sql, args.iter().map(|a| a.oid().to_u32()).collect::<Vec<u32>>());
    if let Some(p) = KEPT.with(|k| k.borrow().get(&key).cloned()) {
        return Ok(p);
    }
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let plan = Rc::new(client.prepare(sql, &types)?.keep());
    KEPT.with(|k| k.borrow_mut().insert(key, plan.clone()));
    Ok(plan)
}

/// `client.select(sql, None, args)` with the kept plan.
pub fn select<'c>(client: &SpiClient<'c>, sql: &'static str, args: &[DatumWithOid]) -> SpiResult<SpiTupleTable<'c>> {
    let plan = kept(client, sql, args)?;
    client.select(&*plan, None, args)
}

/// `client.update(sql, None, args)` with the kept plan.
pub fn update<'c>(client: &mut SpiClient<'c>, sql: &'static str, args: &[DatumWithOid]) -> SpiResult<SpiTupleTable<'c>> {
    let plan = kept(client, sql, args)?;
    client.update(&*plan, None, args)
}
