//! `ai-metering wallet add|grant|balance`: credit wallets and their grants.

use ai_metering_core::grants::Rollover;
use ai_metering_core::store::{CreditStore, Direction, NewGrant, Page, ReportStore, WalletGrant};
use ai_metering_core::{Currency, Money};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Ctx, ensure_known};
use crate::cli::{Format, WalletAddArgs, WalletBalanceArgs, WalletCommand, WalletGrantArgs};
use crate::error::{CliError, CliResult};
use crate::output::{num, text};

/// Runs a `wallet` subcommand.
pub async fn run(ctx: &Ctx, command: &WalletCommand) -> CliResult {
    match command {
        WalletCommand::Add(args) => add(ctx, args).await,
        WalletCommand::Grant(args) => grant(ctx, args).await,
        WalletCommand::Balance(args) => balance(ctx, args).await,
    }
}

fn currency(ctx: &Ctx, given: Option<&str>) -> CliResult<Currency> {
    match given {
        None => Ok(ctx.config.currency),
        Some(code) => Currency::new(code).map_err(|e| CliError::usage(e.to_string())),
    }
}

async fn add(ctx: &Ctx, args: &WalletAddArgs) -> CliResult {
    ctx.out.no_csv("wallet add")?;
    let currency = currency(ctx, args.currency.as_deref())?;
    let metering = ctx.metering().await?;
    ensure_known(&metering, &ctx.config, &args.billable).await?;
    let amount = Money::new(args.amount, currency);
    let tx = metering
        .add_credits(&args.billable, amount, &args.reason)
        .await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&tx);
    }
    ctx.out.success(&format!(
        "Added {} to {}: balance {}.",
        ctx.out.money(args.amount, currency),
        args.billable,
        ctx.out.money(tx.balance_after, currency)
    ));
    Ok(())
}

async fn grant(ctx: &Ctx, args: &WalletGrantArgs) -> CliResult {
    ctx.out.no_csv("wallet grant")?;
    let currency = currency(ctx, args.currency.as_deref())?;
    let metering = ctx.metering().await?;
    ensure_known(&metering, &ctx.config, &args.billable).await?;
    let mut spec = NewGrant::new(
        Money::new(args.amount, currency),
        args.starts.unwrap_or_else(|| metering.now()),
    )
    .with_priority(args.priority);
    if let Some(at) = args.expires {
        spec = spec.expiring_at(at);
    }
    if let (Some(min), Some(max)) = (args.rollover_min, args.rollover_max) {
        spec = spec.with_rollover(Rollover { min, max });
    }
    spec.validate()
        .map_err(|e| CliError::usage(e.message().to_owned()))?;
    let (stored, tx) = metering
        .add_grant(&args.billable, &spec, &args.reason)
        .await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&json!({ "grant": stored, "transaction": tx }));
    }
    ctx.out.success(&format!(
        "Granted {} to {} (grant {}): balance {}.",
        ctx.out.money(args.amount, currency),
        args.billable,
        stored.grant.id.0,
        ctx.out.money(tx.balance_after, currency)
    ));
    Ok(())
}

/// What a grant is at `now`: `active`, `used` (nothing left), `expired` or `upcoming`.
fn grant_status(g: &WalletGrant, now: DateTime<Utc>) -> &'static str {
    if g.grant.effective_at > now {
        "upcoming"
    } else if g.grant.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else if g.grant.remaining.is_zero() {
        "used"
    } else {
        "active"
    }
}

async fn balance(ctx: &Ctx, args: &WalletBalanceArgs) -> CliResult {
    let currency = currency(ctx, args.currency.as_deref())?;
    let metering = ctx.metering().await?;
    ensure_known(&metering, &ctx.config, &args.billable).await?;
    let store = metering.store();
    let now = metering.now();
    let wallet = store.wallet_at(&args.billable, currency, now).await?;
    let grants = store.grants(&args.billable, currency).await?;
    let txs = store
        .credit_transactions(&args.billable, currency, Page::first(args.transactions))
        .await?;
    match ctx.out.format() {
        Format::Json => ctx.out.json(&json!({
            "billable": args.billable.to_string(),
            "currency": currency,
            "balance": wallet.balance,
            "held": wallet.held,
            "unusable": wallet.unusable,
            "available": wallet.available(),
            "grants": grants
                .iter()
                .map(|g| {
                    let mut v = json!(g);
                    v["status"] = json!(grant_status(g, now));
                    v
                })
                .collect::<Vec<_>>(),
            "transactions": txs,
        })),
        format => {
            if format == Format::Table {
                ctx.out
                    .heading(&format!("Wallet of {} ({currency})", args.billable));
                ctx.out.table(
                    &[
                        text("Balance"),
                        text("Held"),
                        text("Expired"),
                        text("Available"),
                    ],
                    &[vec![
                        ctx.out.money(wallet.balance, currency),
                        ctx.out.money(wallet.held, currency),
                        ctx.out.money(wallet.unusable, currency),
                        ctx.out.money(wallet.available(), currency),
                    ]],
                )?;
                if !grants.is_empty() {
                    ctx.out.heading("Grants (in the order they are spent)");
                    let rows: Vec<Vec<String>> = grants
                        .iter()
                        .map(|g| {
                            let w = &g.grant;
                            vec![
                                w.id.0.to_string(),
                                ctx.out.money(w.amount, currency),
                                ctx.out.money(w.remaining, currency),
                                ctx.out.money(w.held, currency),
                                w.priority.to_string(),
                                w.expires_at.map_or_else(
                                    || "never".to_owned(),
                                    |e| e.format("%Y-%m-%d %H:%M:%S").to_string(),
                                ),
                                w.rollover.map_or_else(
                                    || "none".to_owned(),
                                    |r| {
                                        format!(
                                            "{}..{}",
                                            ctx.out.money(r.min, currency),
                                            ctx.out.money(r.max, currency)
                                        )
                                    },
                                ),
                                grant_status(g, now).to_owned(),
                            ]
                        })
                        .collect();
                    ctx.out.table(
                        &[
                            num("Grant"),
                            num("Amount"),
                            num("Remaining"),
                            num("Held"),
                            num("Priority"),
                            text("Expires"),
                            text("Rollover"),
                            text("Status"),
                        ],
                        &rows,
                    )?;
                }
                if txs.is_empty() {
                    ctx.out.line("No transactions yet.");
                    return Ok(());
                }
                ctx.out.heading("Latest transactions");
            }
            let rows: Vec<Vec<String>> = txs
                .iter()
                .map(|t| {
                    let sign = match t.direction {
                        Direction::Credit => "+",
                        Direction::Debit => "-",
                    };
                    vec![
                        t.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        format!(
                            "{sign}{}",
                            ctx.out.money(t.amount.amount, t.amount.currency)
                        ),
                        t.reason.clone(),
                        ctx.out.money(t.balance_after, t.amount.currency),
                    ]
                })
                .collect();
            ctx.out.table(
                &[
                    text("When"),
                    num("Amount"),
                    text("Reason"),
                    num("Balance After"),
                ],
                &rows,
            )
        }
    }
}
