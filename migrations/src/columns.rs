//! Column shapes shared by the migrations, so that every table spells them alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema;

/// Length of `billable_type`, `billable_id`, tenant and user ids.
pub const ID_LEN: u32 = 255;

/// The auto-increment `BIGINT` primary key.
pub fn id<T: IntoIden>(name: T) -> ColumnDef {
    schema::big_pk_auto(name)
}

/// A required short string (ids, names).
pub fn key<T: IntoIden>(name: T) -> ColumnDef {
    schema::string_len(name, ID_LEN)
}

/// An optional short string.
pub fn key_null<T: IntoIden>(name: T) -> ColumnDef {
    schema::string_len_null(name, ID_LEN)
}

/// A required exact amount of money: the canonical text of a decimal.
pub fn money<T: IntoIden>(name: T) -> ColumnDef {
    schema::string_len(name, 64)
}

/// An optional exact amount of money.
pub fn money_null<T: IntoIden>(name: T) -> ColumnDef {
    schema::string_len_null(name, 64)
}

/// A three-letter ISO 4217 currency code.
pub fn currency<T: IntoIden>(name: T) -> ColumnDef {
    schema::string_len(name, 3)
}

/// A required UTC instant.
pub fn instant<T: IntoIden>(name: T) -> ColumnDef {
    schema::timestamp_with_time_zone(name)
}

/// An optional UTC instant.
pub fn instant_null<T: IntoIden>(name: T) -> ColumnDef {
    schema::timestamp_with_time_zone_null(name)
}

/// A token count (or other non-negative count), default 0.
pub fn count<T: IntoIden>(name: T) -> ColumnDef {
    schema::big_integer(name).default(0).take()
}

/// A JSON object stored as text.
pub fn json_text<T: IntoIden>(name: T) -> ColumnDef {
    schema::text(name)
}
