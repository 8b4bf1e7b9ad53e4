//! How the bitmap types live in PostgreSQL: a value is the portable roaring bytes themselves, as in
//! pg_roaringbitmap (so `::bytea` is a binary cast, and a bitmap stored by one reads in the other).
//!
//! - [`portable_datum!`] gives a type its datum conversions: written straight into the value's
//!   memory, read back without re-validating (the bytes were validated when they came in: text
//!   input and `bytea` casts check them; every other value is written by this code).
//! - [`InPlace`] is an argument left undecoded: cardinality, intersections and membership are read
//!   from the bytes ([`segplan_core::frozen`]). For the per-row membership tests
//!   (`rb_contains(bm, id)`, `bm @> id`, `id <@ bm`) a bitmap stored out of line (TOAST) is fetched
//!   once per call site and kept in the call site's memory (`fn_extra`, freed with the statement's
//!   function cache), keyed by its TOAST pointer — which names the same bytes for the whole
//!   statement, since the row holding them stays visible to the statement's snapshot.
//! - [`Stored`] is a result computed from stored bytes (an intersection), written straight into
//!   the value's memory.
use super::error::report;
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::pgrx_sql_entity_graph::metadata::{ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin};
use pgrx::prelude::*;
use pgrx::{varlena, PgMemoryContexts, PgSqlErrorCode};
use segplan_core::bitmap::{self, RoaringBitmap, RoaringTreemap};
use segplan_core::frozen::Computed;
use std::marker::PhantomData;

/// A bitmap SQL type (its name, for errors).
pub trait Named {
    const NAME: &'static str;
}

/// A bitmap kept as portable bytes.
pub trait Portable: Sized {
    const NAME: &'static str;
    fn size(&self) -> usize;
    fn write(&self, out: &mut [u8]);
    /// Reads bytes this code wrote or validated.
    fn read_trusted(bytes: &[u8]) -> Result<Self, String>;
}

impl Portable for RoaringBitmap {
    const NAME: &'static str = "roaringbitmap";
    fn size(&self) -> usize {
        self.serialized_size()
    }
    fn write(&self, mut out: &mut [u8]) {
        // the slice has exactly serialized_size() bytes: cannot fail
        let _ = self.serialize_into(&mut out);
    }
    fn read_trusted(bytes: &[u8]) -> Result<Self, String> {
        bitmap::from_trusted_bytes(bytes)
    }
}

impl Portable for RoaringTreemap {
    const NAME: &'static str = "roaringbitmap64";
    fn size(&self) -> usize {
        self.serialized_size()
    }
    fn write(&self, mut out: &mut [u8]) {
        let _ = self.serialize_into(&mut out);
    }
    fn read_trusted(bytes: &[u8]) -> Result<Self, String> {
        bitmap::from_trusted_bytes64(bytes)
    }
}

/// A varlena value of `bytes` bytes in the current memory context, filled by `fill`.
fn new_varlena(bytes: usize, what: &str, fill: impl FnOnce(&mut [u8])) -> pg_sys::Datum {
    // a varlena holds at most 1 GB
    if bytes > (1 << 30) - 1 - pg_sys::VARHDRSZ {
        report(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            &format!("the {what} is too large to be a value"),
            format!("{bytes} bytes; a value holds at most 1 GB"),
            Some("split the range of values, or count with the *_cardinality functions instead of building the bitmap".into()),
        );
    }
    unsafe {
        let total = bytes + pg_sys::VARHDRSZ;
        let ptr = pg_sys::palloc(total).cast::<u8>();
        varlena::set_varsize_4b(ptr.cast(), total as i32);
        fill(std::slice::from_raw_parts_mut(ptr.add(pg_sys::VARHDRSZ), bytes));
        pg_sys::Datum::from(ptr)
    }
}

/// The most bytes a value's text may have (PostgreSQL allocates at most 1 GB, with the NUL).
const MAX_TEXT: usize = (1 << 30) - 2;

/// Writes a bitmap of `count` values as text: `{…}` of `values`, or `hex` (its portable bytes,
/// `size` of them) when the output format is `bytea`. Over 1 GB: 54000.
pub fn write_text<V: std::fmt::Display>(buffer: &mut pgrx::StringInfo, name: &str, count: u64, size: usize, hex: impl FnOnce() -> String, values: impl Iterator<Item = V>) {
    let text = if super::bitmap_type::output_as_bytea() {
        (size.saturating_mul(2) + 2 <= MAX_TEXT).then(hex)
    } else {
        segplan_core::ranges::format_list(values, MAX_TEXT, &mut || {
            pgrx::check_for_interrupts!();
        })
    };
    match text {
        Some(t) => buffer.push_str(&t),
        None => report(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            &format!("the {name} is too large to write as text"),
            format!("{count} values ({size} bytes); text holds at most 1 GB"),
            Some(read_in_parts(name)),
        ),
    }
}

/// `rb_` or `rb64_`: the prefix of a bitmap type's functions.
fn prefix(name: &str) -> &'static str {
    if name.ends_with("64") { "rb64_" } else { "rb_" }
}

/// The hint for a bitmap too large to hand over whole.
fn read_in_parts(name: &str) -> String {
    format!("read its values with {p}iterate(…), or part of it with {p}range(…, start, end)", p = prefix(name))
}

/// A bitmap whose values make an int4[] or int8[].
pub trait ArrayValues: Portable {
    /// the element (i32 or i64: the unsigned values' bit patterns)
    type Elem: Copy + SqlTranslatable;
    const ELEM_TYPE: pg_sys::Oid;
    fn count(&self) -> u64;
    fn fill(&self, out: &mut [Self::Elem]);
}

impl ArrayValues for RoaringBitmap {
    type Elem = i32;
    const ELEM_TYPE: pg_sys::Oid = pg_sys::INT4OID;
    fn count(&self) -> u64 {
        self.len()
    }
    fn fill(&self, out: &mut [i32]) {
        out.iter_mut().zip(self.iter()).for_each(|(o, v)| *o = v as i32);
    }
}

impl ArrayValues for RoaringTreemap {
    type Elem = i64;
    const ELEM_TYPE: pg_sys::Oid = pg_sys::INT8OID;
    fn count(&self) -> u64 {
        self.len()
    }
    fn fill(&self, out: &mut [i64]) {
        out.iter_mut().zip(self.iter()).for_each(|(o, v)| *o = v as i64);
    }
}

/// A bitmap's values returned as an array, written straight into the array's memory (no datum
/// per value, as pg_roaringbitmap's `rb_to_array`). More values than PostgreSQL's arrays hold:
/// 54000.
pub struct AsArray<B>(pub B);

/// A one-dimensional array without NULLs: its header takes 24 bytes (ARR_OVERHEAD_NONULLS(1)).
const ARRAY_HEADER: usize = 24;

unsafe impl<B: ArrayValues> BoxRet for AsArray<B> {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        let size = std::mem::size_of::<B::Elem>();
        // MaxArraySize, and the 1 GB an allocation may take (MaxAllocSize)
        const MAX_ALLOC: usize = 0x3fff_ffff;
        let most = (MAX_ALLOC / std::mem::size_of::<pg_sys::Datum>()).min((MAX_ALLOC - ARRAY_HEADER) / size) as u64;
        let n = self.0.count();
        if n > most {
            report(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                &format!("the {} has too many values for an array", B::NAME),
                format!("{n} values; an array of them holds at most {most}"),
                Some(read_in_parts(B::NAME)),
            );
        }
        let n = n as usize;
        // an empty array has no dimensions
        let header = if n == 0 { 16 } else { ARRAY_HEADER };
        unsafe {
            let total = header + n * size;
            let ptr = pg_sys::palloc0(total).cast::<u8>();
            varlena::set_varsize_4b(ptr.cast(), total as i32);
            let a = ptr.cast::<pg_sys::ArrayType>();
            (*a).ndim = (n > 0) as i32;
            (*a).dataoffset = 0;
            (*a).elemtype = B::ELEM_TYPE;
            if n > 0 {
                // dims[0] and lbound[0] follow the fixed header
                ptr.add(16).cast::<i32>().write(n as i32);
                ptr.add(20).cast::<i32>().write(1);
                self.0.fill(std::slice::from_raw_parts_mut(ptr.add(ARRAY_HEADER).cast::<B::Elem>(), n));
            }
            fcinfo.return_raw_datum(pg_sys::Datum::from(ptr))
        }
    }
}

unsafe impl<B: ArrayValues> SqlTranslatable for AsArray<B> {
    const TYPE_IDENT: &'static str = <Vec<B::Elem> as SqlTranslatable>::TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = <Vec<B::Elem> as SqlTranslatable>::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = <Vec<B::Elem> as SqlTranslatable>::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = <Vec<B::Elem> as SqlTranslatable>::RETURN_SQL;
}

/// Refuses a range operation whose result would take more memory than a bitmap may (54000).
pub fn check_range(name: &str, r: &std::ops::RangeInclusive<u64>) {
    let bytes = segplan_core::ranges::range_bytes(r);
    if bytes > segplan_core::ranges::MAX_BYTES {
        report(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            &format!("the range is too large for a {name}"),
            format!("[{}, {}] would take up to {bytes} bytes in memory; a bitmap may take at most 1 GB", r.start(), r.end()),
            Some(format!("split the range, or count with {}range_cardinality(…) instead", prefix(name))),
        );
    }
}

/// A 64-bit bitmap that would take more memory than a bitmap may once read (54000).
pub fn too_large_to_read(bytes: u64) -> ! {
    report(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        "the roaringbitmap64 is too large to read",
        format!("its containers would take {bytes} bytes in memory (runs are read as arrays or bitsets); a bitmap may take at most 1 GB"),
        Some("split it by range where it comes from (e.g. pg_roaringbitmap's rb64_range) and load the parts".into()),
    )
}

pub fn into_datum<T: Portable>(b: &T) -> pg_sys::Datum {
    new_varlena(b.size(), T::NAME, |out| b.write(out))
}

/// Runs `read` on the bytes of a (possibly toasted or compressed) varlena datum.
///
/// # Safety
/// `datum` is a non-null varlena.
pub(super) unsafe fn with_detoasted<R>(datum: pg_sys::Datum, read: impl FnOnce(&[u8]) -> R) -> R {
    let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
    let detoasted = pg_sys::pg_detoast_datum_packed(ptr);
    let out = read(varlena::varlena_to_byte_slice(detoasted));
    if detoasted != ptr {
        pg_sys::pfree(detoasted.cast());
    }
    out
}

/// A stored value that is not in the format: only damage on disk gets here.
pub fn damaged(what: &str, bytes: usize, problem: &str) -> ! {
    report(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        &format!("a stored {what} value is damaged"),
        format!("{bytes} bytes: {problem}"),
        Some("restore the row from a backup, or build the bitmap again".into()),
    )
}

fn not_portable<T: Named>(bytes: &[u8]) -> ! {
    damaged(T::NAME, bytes.len(), "not in the portable roaring format")
}

/// # Safety
/// `datum` is a non-null value of the type whose bitmap is `T`.
pub unsafe fn from_datum<T: Portable>(datum: pg_sys::Datum) -> T {
    with_detoasted(datum, |bytes| T::read_trusted(bytes).unwrap_or_else(|e| damaged(T::NAME, bytes.len(), &e)))
}

/// The datum conversions of a bitmap type `$ty($inner)` (see the module's comment).
#[macro_export]
macro_rules! portable_datum {
    ($ty:ident, $inner:ty) => {
        impl $crate::pg::datum::Named for $ty {
            const NAME: &'static str = <$inner as $crate::pg::datum::Portable>::NAME;
        }

        impl pgrx::datum::IntoDatum for $ty {
            fn into_datum(self) -> Option<pgrx::pg_sys::Datum> {
                Some($crate::pg::datum::into_datum(&self.0))
            }
            fn type_oid() -> pgrx::pg_sys::Oid {
                pgrx::wrappers::rust_regtypein::<Self>()
            }
        }

        unsafe impl pgrx::callconv::BoxRet for $ty {
            unsafe fn box_into<'fcx>(self, fcinfo: &mut pgrx::callconv::FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
                unsafe { fcinfo.return_raw_datum($crate::pg::datum::into_datum(&self.0)) }
            }
        }

        impl pgrx::datum::FromDatum for $ty {
            unsafe fn from_polymorphic_datum(datum: pgrx::pg_sys::Datum, is_null: bool, _: pgrx::pg_sys::Oid) -> Option<Self> {
                (!is_null).then(|| $ty(unsafe { $crate::pg::datum::from_datum(datum) }))
            }
        }

        unsafe impl pgrx::datum::UnboxDatum for $ty {
            type As<'dat> = Self where Self: 'dat;
            unsafe fn unbox<'dat>(datum: pgrx::datum::Datum<'dat>) -> Self::As<'dat> where Self: 'dat {
                $ty(unsafe { $crate::pg::datum::from_datum(datum.sans_lifetime()) })
            }
        }

        unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for $ty {
            unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
            }
        }
    };
}

/// An undecoded `T` (one of the bitmap types) argument.
pub struct InPlace<T> {
    datum: pg_sys::Datum,
    of: PhantomData<T>,
}

impl<T> FromDatum for InPlace<T> {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        (!is_null).then_some(InPlace { datum, of: PhantomData })
    }
}

unsafe impl<'fcx, T> ArgAbi<'fcx> for InPlace<T> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

unsafe impl<T: SqlTranslatable> SqlTranslatable for InPlace<T> {
    const TYPE_IDENT: &'static str = T::TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = T::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = T::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = T::RETURN_SQL;
}

/// The last out-of-line bitmap a call site fetched.
struct Fetched {
    toast: (pg_sys::Oid, pg_sys::Oid),
    bytes: Vec<u8>,
}

impl<T> InPlace<T> {
    /// The value's portable bytes, read by `read`; `None` from `read` means they are not in the
    /// format (damage on disk), an error.
    pub fn read<R>(&self, read: impl FnOnce(&[u8]) -> Option<R>) -> R
    where
        T: Named,
    {
        unsafe { with_detoasted(self.datum, |bytes| read(bytes).unwrap_or_else(|| not_portable::<T>(bytes))) }
    }

    /// The portable bytes of this value and `other`, read by `read`.
    pub fn read_pair<R>(&self, other: &InPlace<T>, read: impl FnOnce(&[u8], &[u8]) -> Option<R>) -> R
    where
        T: Named,
    {
        unsafe {
            with_detoasted(self.datum, |x| {
                with_detoasted(other.datum, |y| read(x, y).unwrap_or_else(|| damaged(T::NAME, x.len() + y.len(), "one of the two values is not in the portable roaring format")))
            })
        }
    }

    /// Like [`InPlace::read`], for a call made once per row of a statement (see the module's
    /// comment).
    pub fn read_cached<R>(&self, fcinfo: pg_sys::FunctionCallInfo, read: impl FnOnce(&[u8]) -> Option<R>) -> R
    where
        T: Named,
    {
        self.with_stored(fcinfo, |bytes| read(bytes).unwrap_or_else(|| not_portable::<T>(bytes)))
    }
}

impl<T> InPlace<T> {
    /// Runs `read` on the value's bytes, for a call made once per row of a statement: an
    /// out-of-line value is fetched once per call site. (Also used for `numeric` amounts, read in
    /// place by the RFM aggregates.)
    pub fn with_stored<R>(&self, fcinfo: pg_sys::FunctionCallInfo, read: impl FnOnce(&[u8]) -> R) -> R {
        unsafe {
            let ptr = self.datum.cast_mut_ptr::<pg_sys::varlena>();
            if !(varlena::varatt_is_1b_e(ptr) && varlena::vartag_external(ptr) == pg_sys::vartag_external::VARTAG_ONDISK as u8) {
                return with_detoasted(self.datum, read);
            }
            let pointer: pg_sys::varatt_external = std::ptr::read_unaligned(varlena::vardata_1b_e(ptr).cast());
            let toast = (pointer.va_toastrelid, pointer.va_valueid);
            let flinfo = (*fcinfo).flinfo;
            let mut cached = (*flinfo).fn_extra.cast::<Fetched>();
            if cached.is_null() {
                let fresh = Fetched { toast: (pg_sys::InvalidOid, pg_sys::InvalidOid), bytes: Vec::new() };
                cached = PgMemoryContexts::For((*flinfo).fn_mcxt).leak_and_drop_on_delete(fresh);
                (*flinfo).fn_extra = cached.cast();
            }
            let cached = &mut *cached;
            if cached.toast != toast {
                cached.bytes = with_detoasted(self.datum, <[u8]>::to_vec);
                cached.toast = toast;
            }
            read(&cached.bytes)
        }
    }
}

/// A result of type `T` computed from stored bytes, written into the value's memory directly.
pub struct Stored<T> {
    computed: Computed,
    of: PhantomData<T>,
}

impl<T> Stored<T> {
    pub fn new(computed: Computed) -> Stored<T> {
        Stored { computed, of: PhantomData }
    }
}

unsafe impl<T: Named> BoxRet for Stored<T> {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        let datum = new_varlena(self.computed.size(), T::NAME, |out| self.computed.write(out));
        unsafe { fcinfo.return_raw_datum(datum) }
    }
}

unsafe impl<T: SqlTranslatable> SqlTranslatable for Stored<T> {
    const TYPE_IDENT: &'static str = T::TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = T::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = T::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = T::RETURN_SQL;
}
