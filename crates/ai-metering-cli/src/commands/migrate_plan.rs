//! `ai-metering migrate-plan TYPE:ID TO_PLAN`: move a billable's current subscription to
//! another plan.
//!
//! Works non-interactively with `--yes` (and refuses clearly without a terminal). The move
//! is `Metering::change_subscription_plan`: it records the previous plan and the instant of
//! the change, and emits `PlanChanged`. In the current period, the new plan's limits apply to
//! the usage from now on; what was used before counted against the old plan.

use ai_metering_core::Metering;
use ai_metering_core::plan::Subscription;
use ai_metering_core::store::{PlanStore, Store, SubscriptionId, SubscriptionStore};
use serde_json::json;

use super::Ctx;
use crate::cli::{Format, MigratePlanArgs};
use crate::error::{CliError, CliResult};
use crate::prompt::confirm;

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &MigratePlanArgs) -> CliResult {
    ctx.out.no_csv("migrate-plan")?;
    let metering = ctx.metering().await?;
    let store = metering.store();
    let billable = &args.billable;
    let target = store
        .plan(&args.to_plan)
        .await?
        .ok_or_else(|| CliError::failure(format!("Plan '{}' not found.", args.to_plan)))?;
    if let Some(from) = &args.from_plan
        && store.plan(from).await?.is_none()
    {
        return Err(CliError::failure(format!("Plan '{from}' not found.")));
    }
    let now = metering.now();
    let (id, subscription) = store
        .current_subscription(billable, now)
        .await?
        .ok_or_else(|| {
            CliError::failure(format!("No active subscription found for {billable}."))
        })?;
    let current = subscription.plan.clone();
    let current_text = current.as_deref().unwrap_or("none");
    if let Some(from) = &args.from_plan
        && current.as_deref() != Some(from.as_str())
    {
        return Err(CliError::failure(format!(
            "Current plan does not match '{from}'. Current plan is '{current_text}'."
        )));
    }
    if current.as_deref() == Some(target.slug.as_str()) {
        ctx.out
            .warn(&format!("{billable} is already on plan '{}'.", target.slug));
        if ctx.out.format() == Format::Json {
            ctx.out.json(
                &json!({"billable": billable.to_string(), "changed": false, "plan": target.slug}),
            )?;
        }
        return Ok(());
    }
    if !target.active {
        ctx.out.warn(&format!(
            "Plan '{}' is inactive: no limits will apply to {billable}.",
            target.slug
        ));
    }
    ctx.out.line(&format!("Entity: {billable}"));
    ctx.out.line(&format!("Current plan: {current_text}"));
    ctx.out
        .line(&format!("Target plan: {} ({})", target.slug, target.name));
    let question = format!(
        "Move {billable} from '{current_text}' to '{}'?",
        target.slug
    );
    if !confirm(&question, args.yes)? {
        ctx.out.line("Plan migration cancelled.");
        return Ok(());
    }
    move_to_plan(&metering, id, &subscription, &target.slug).await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&json!({
            "billable": billable.to_string(),
            "changed": true,
            "from": current,
            "to": target.slug,
            "event": "plan_changed",
        }));
    }
    ctx.out.success(&format!(
        "Moved {billable} from '{current_text}' to '{}'. This period, its limits apply to the usage from now on.",
        target.slug
    ));
    Ok(())
}

/// Moves subscription `id` to plan `to` now, only if it is still `shown`: a webhook (say, a
/// cancellation) may have changed it while the question was open, and overwriting the
/// whole row would undo that change.
async fn move_to_plan<S: Store>(
    metering: &Metering<S>,
    id: SubscriptionId,
    shown: &Subscription,
    to: &str,
) -> CliResult<()> {
    if metering
        .change_subscription_plan(id, shown, to, metering.now())
        .await?
        .is_some()
    {
        return Ok(());
    }
    Err(CliError::failure(format!(
        "The subscription of {} changed while the migration was being confirmed; \
         nothing was written. Run the command again.",
        shown.billable
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::Billable;
    use ai_metering_core::store::{AdminStore, MemoryStore, ReportStore};
    use chrono::{TimeZone, Utc};

    #[tokio::test]
    async fn a_subscription_changed_meanwhile_is_not_overwritten() {
        let store = MemoryStore::new();
        store
            .upsert_plan(&ai_metering_core::plan::Plan::new("pro", "Pro"))
            .await
            .unwrap();
        let metering = Metering::new(store.clone());
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let shown = Subscription::new(Billable::new("user", 1), "basic", start);
        let id = store.insert_subscription(&shown).await.unwrap();
        // A webhook ends the subscription while the operator reads the question.
        let cancelled = shown.clone().ending_at(start + chrono::Duration::days(3));
        store.update_subscription(id, &cancelled).await.unwrap();

        let err = move_to_plan(&metering, id, &shown, "pro")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("changed while"), "{err}");
        let stored = store.subscriptions(&shown.billable).await.unwrap();
        assert_eq!(
            stored,
            vec![(id, cancelled.clone())],
            "the cancellation stands"
        );

        // Shown the current state, the move goes through and records the previous plan.
        move_to_plan(&metering, id, &cancelled, "pro")
            .await
            .unwrap();
        let (_, moved) = store
            .subscriptions(&shown.billable)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(moved.plan.as_deref(), Some("pro"));
        assert_eq!(moved.previous_plan.as_deref(), Some("basic"));
        assert!(moved.plan_changed_at.is_some());
        assert_eq!(moved.ends_at, cancelled.ends_at);
    }
}
