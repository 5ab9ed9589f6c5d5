//! [`UsageFilter`] as an SQL condition on `ai_usages`, following
//! [`UsageFilter::matches`] (the reference semantics).

use ai_metering_core::store::UsageFilter;
use sea_orm::ColumnTrait;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, LikeExpr};

use crate::codec::instant;
use crate::entity::usage::Column;

/// The condition selecting the rows `filter` matches.
///
/// `search` matches the model, the feature or the metadata's JSON text, case-insensitively:
/// PostgreSQL folds case fully, SQLite folds ASCII letters only.
pub(crate) fn condition(filter: &UsageFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(b) = &filter.billable {
        c = c
            .add(Column::BillableType.eq(b.kind.as_str()))
            .add(Column::BillableId.eq(b.id.as_str()));
    }
    if let Some(user) = &filter.user_id {
        c = c.add(Column::UserId.eq(user.as_str()));
    }
    if let Some(tenant) = &filter.tenant {
        c = c.add(Column::TenantId.eq(tenant.as_str()));
    }
    if let Some(provider) = &filter.provider {
        c = c.add(Column::Provider.eq(provider.as_str()));
    }
    if let Some(model) = &filter.model {
        c = c.add(Column::Model.eq(model.as_str()));
    }
    if let Some(feature) = &filter.feature {
        c = c.add(Column::Feature.eq(feature.as_str()));
    }
    if let Some(from) = filter.from {
        c = c.add(Column::OccurredAt.gte(instant(from)));
    }
    if let Some(until) = filter.until {
        c = c.add(Column::OccurredAt.lt(instant(until)));
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        let like = |col: Column| {
            Expr::expr(Func::lower(Expr::col(col)))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        c = c.add(
            Condition::any()
                .add(like(Column::Model))
                .add(like(Column::Feature))
                .add(like(Column::Metadata)),
        );
    }
    c
}

/// Escapes the LIKE wildcards `%` and `_` (and the escape character) in `text`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("plain"), "plain");
    }
}
