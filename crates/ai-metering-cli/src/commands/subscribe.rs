//! `ai-metering subscribe TYPE:ID PLAN`: a billable's first subscription.

use ai_metering_core::plan::{BillingMode, Subscription};
use ai_metering_core::store::{PlanStore, SubscriptionStore};
use serde_json::json;

use super::Ctx;
use crate::cli::{Format, SubscribeArgs};
use crate::error::{CliError, CliResult};

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &SubscribeArgs) -> CliResult {
    ctx.out.no_csv("subscribe")?;
    let metering = ctx.metering().await?;
    let store = metering.store();
    let plan = store.plan(&args.plan).await?.ok_or_else(|| {
        CliError::failure(format!(
            "Plan '{}' not found: `ai-metering plans list` shows the plans.",
            args.plan
        ))
    })?;
    let now = metering.now();
    if let Some((_, current)) = store.current_subscription(&args.billable, now).await? {
        return Err(CliError::failure(format!(
            "{} already has an active subscription (plan '{}'): use `ai-metering migrate-plan {} {}` to change it.",
            args.billable,
            current.plan.as_deref().unwrap_or("none"),
            args.billable,
            plan.slug
        )));
    }
    let mode = if args.credits {
        BillingMode::Credits
    } else {
        BillingMode::Plan
    };
    let subscription =
        Subscription::new(args.billable.clone(), plan.slug.clone(), now).with_billing_mode(mode);
    let id = store.insert_subscription(&subscription).await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&json!({
            "billable": args.billable.to_string(),
            "plan": plan.slug,
            "subscription": id.0,
            "billing_mode": if args.credits { "credits" } else { "plan" },
        }));
    }
    ctx.out.success(&format!(
        "Subscribed {} to plan '{}'{} from now on.",
        args.billable,
        plan.slug,
        if args.credits { " in credits mode" } else { "" }
    ));
    Ok(())
}
