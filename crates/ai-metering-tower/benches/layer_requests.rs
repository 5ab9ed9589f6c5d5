//! Sends a given number of requests through one of the layer benches' routers, so that
//! callgrind can count the instructions of one request: `scripts/layer-instructions.sh`
//! counts only the request loop (`drive`), in two runs with different counts, and divides
//! the difference of the totals by the difference of the counts.
//!
//! ```text
//! layer_requests ROUTER COUNT
//! # ROUTER: bare | quota_layer_cached | quota_layer_cached_original | quota_layer_cached_ietf
//! #         | quota_layer_cached_no_headers | tower_governor
//! ```
//!
//! Without arguments (as `cargo bench` and `cargo test --benches` run it) it sends one
//! request through each router and checks that each answered 200.

#![allow(clippy::expect_used)] // a measuring tool: failing fast is the point

use std::process::ExitCode;

use tower::ServiceExt;

mod support;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = support::runtime();
    let routers = support::Routers::new(&runtime);
    let (names, count) = match args.as_slice() {
        [] => (support::Routers::NAMES.to_vec(), 1),
        [name, count] => match count.parse::<u64>() {
            Ok(count) => (vec![name.as_str()], count),
            Err(_) => {
                eprintln!("COUNT must be a whole number, not {count:?}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: layer_requests ROUTER COUNT");
            return ExitCode::from(2);
        }
    };
    for name in names {
        let Some(router) = routers.by_name(name) else {
            eprintln!(
                "unknown router {name:?}: one of {}",
                support::Routers::NAMES.join(", ")
            );
            return ExitCode::from(2);
        };
        // One request first, outside `drive`: whatever a router sets up on first use
        // (tower-governor's clock calibrates itself, for a wall-clock time) is not counted.
        if let Err(status) =
            drive(&runtime, router, 1).and_then(|()| drive(&runtime, router, count))
        {
            eprintln!("{name} answered {status}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Sends `count` requests through `router`, each built, answered and dropped: with
/// callgrind's `--toggle-collect=*layer_requests::drive*`, the only instructions counted.
#[inline(never)]
fn drive(
    runtime: &tokio::runtime::Runtime,
    router: &axum::Router,
    count: u64,
) -> Result<(), http::StatusCode> {
    for _ in 0..count {
        let response = runtime
            .block_on(router.clone().oneshot(support::request()))
            .expect("the router is infallible");
        if !response.status().is_success() {
            return Err(response.status());
        }
    }
    Ok(())
}
