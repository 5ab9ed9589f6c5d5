//! `ai-metering wallet add|balance`: credit wallets.

use ai_metering_core::store::{CreditStore, Direction, Page};
use ai_metering_core::{Currency, Money};
use serde_json::json;

use super::{Ctx, ensure_known};
use crate::cli::{Format, WalletAddArgs, WalletBalanceArgs, WalletCommand};
use crate::error::{CliError, CliResult};
use crate::output::{num, text};

/// Runs a `wallet` subcommand.
pub async fn run(ctx: &Ctx, command: &WalletCommand) -> CliResult {
    match command {
        WalletCommand::Add(args) => add(ctx, args).await,
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

async fn balance(ctx: &Ctx, args: &WalletBalanceArgs) -> CliResult {
    let currency = currency(ctx, args.currency.as_deref())?;
    let metering = ctx.metering().await?;
    ensure_known(&metering, &ctx.config, &args.billable).await?;
    let store = metering.store();
    let wallet = store.wallet(&args.billable, currency).await?;
    let txs = store
        .credit_transactions(&args.billable, currency, Page::first(args.transactions))
        .await?;
    match ctx.out.format() {
        Format::Json => ctx.out.json(&json!({
            "billable": args.billable.to_string(),
            "currency": currency,
            "balance": wallet.balance,
            "held": wallet.held,
            "available": wallet.available(),
            "transactions": txs,
        })),
        format => {
            if format == Format::Table {
                ctx.out
                    .heading(&format!("Wallet of {} ({currency})", args.billable));
                ctx.out.table(
                    &[text("Balance"), text("Held"), text("Available")],
                    &[vec![
                        ctx.out.money(wallet.balance, currency),
                        ctx.out.money(wallet.held, currency),
                        ctx.out.money(wallet.available(), currency),
                    ]],
                )?;
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
