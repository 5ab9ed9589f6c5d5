//! What the test environment provides, and the one place that decides whether a test may
//! skip when it is missing.
//!
//! Two things are optional on a developer's machine: a PostgreSQL server
//! ([`POSTGRES_URL_VAR`]) and the shared reference files next to the repository
//! (`../shared`, [`shared_path`]). A test asks for them here:
//!
//! - when present, it gets the URL or the path;
//! - when missing and *required*, the call panics, so the test fails. PostgreSQL is required
//!   under [`REQUIRE_POSTGRES_VAR`]`=1`, the shared files under [`REQUIRE_FIXTURES_VAR`]`=1`,
//!   and both whenever `CI` is set (to anything but `false` or `0`);
//! - when missing and not required, the skip is written straight to the process's standard
//!   error (`SKIPPED <test>: <reason>`), which `cargo test` does not capture, so it shows in
//!   plain `cargo test` output next to the test's `ok`.
//!
//! ```
//! if let Some(url) = ai_metering_test_env::postgres_url("my_test") {
//!     // connect to `url`...
//! #   let _ = url;
//! }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable naming the PostgreSQL server the tests may use (`postgres://...`). Tests
/// create databases of their own on it.
pub const POSTGRES_URL_VAR: &str = "AI_METERING_TEST_POSTGRES_URL";

/// When `1` (or `true`), a test that needs PostgreSQL fails instead of skipping.
pub const REQUIRE_POSTGRES_VAR: &str = "AI_METERING_REQUIRE_POSTGRES";

/// When `1` (or `true`), a test that reads the shared fixtures fails when they are missing.
pub const REQUIRE_FIXTURES_VAR: &str = "AI_METERING_REQUIRE_FIXTURES";

/// The PostgreSQL server URL from [`POSTGRES_URL_VAR`], or `None` after reporting that
/// `test` skips its PostgreSQL part.
///
/// # Panics
///
/// When the variable is unset or blank and PostgreSQL is required (see the crate docs).
pub fn postgres_url(test: &str) -> Option<String> {
    match resolve_postgres(&env) {
        Resolved::Present(url) => Some(url),
        Resolved::Skip(reason) => {
            skip(test, &reason);
            None
        }
        Resolved::Fail(reason) => panic!("{test}: {reason}"),
    }
}

/// A new, empty PostgreSQL database `name` on the server of [`postgres_url`] (dropped and
/// created again on each run), as a URL; `None` after reporting that `test` skips its
/// PostgreSQL part.
///
/// # Panics
///
/// When PostgreSQL is required and missing (as [`postgres_url`]), or the server refuses to
/// drop or create the database.
#[cfg(feature = "postgres")]
#[allow(clippy::expect_used)] // a test's setup: failing loudly is the point
pub async fn fresh_postgres_database(test: &str, name: &str) -> Option<String> {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

    let server = postgres_url(test)?;
    let admin = Database::connect(server.as_str())
        .await
        .expect("the PostgreSQL server accepts a connection");
    for sql in [
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
        format!(r#"CREATE DATABASE "{name}""#),
    ] {
        admin
            .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .expect("the test database is dropped and created");
    }
    admin.close().await.expect("the admin connection closes");
    let (base, _) = server
        .rsplit_once('/')
        .expect("a PostgreSQL URL ends with a database name");
    Some(format!("{base}/{name}"))
}

/// The shared reference folder next to the repository (`<repository>/../shared`).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// `relative` inside [`shared_dir`] when it exists, or `None` after reporting that `test`
/// skips it.
///
/// # Panics
///
/// When the path does not exist and the shared fixtures are required (see the crate docs).
pub fn shared_path(test: &str, relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    match resolve_fixture(&env, &path, path.exists()) {
        Resolved::Present(()) => Some(path),
        Resolved::Skip(reason) => {
            skip(test, &reason);
            None
        }
        Resolved::Fail(reason) => panic!("{test}: {reason}"),
    }
}

/// Reports that `test` skipped something, on the process's standard error, where
/// `cargo test` shows it (its output capture only takes `print!` and `eprint!`).
pub fn skip(test: &str, reason: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "SKIPPED {test}: {reason}");
}

/// What a test gets for one requirement.
#[derive(Debug, PartialEq, Eq)]
enum Resolved<T> {
    Present(T),
    Skip(String),
    Fail(String),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A flag variable is on when set to anything but empty, `0` or `false`.
fn flag(env: &dyn Fn(&str) -> Option<String>, name: &str) -> bool {
    env(name).is_some_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}

fn resolve_postgres(env: &dyn Fn(&str) -> Option<String>) -> Resolved<String> {
    if let Some(url) = env(POSTGRES_URL_VAR).filter(|u| !u.trim().is_empty()) {
        return Resolved::Present(url);
    }
    if flag(env, REQUIRE_POSTGRES_VAR) || flag(env, "CI") {
        Resolved::Fail(format!(
            "PostgreSQL is required ({REQUIRE_POSTGRES_VAR} or CI is set) but {POSTGRES_URL_VAR} is not set"
        ))
    } else {
        Resolved::Skip(format!(
            "PostgreSQL part not run: {POSTGRES_URL_VAR} is not set"
        ))
    }
}

fn resolve_fixture(
    env: &dyn Fn(&str) -> Option<String>,
    path: &Path,
    exists: bool,
) -> Resolved<()> {
    if exists {
        Resolved::Present(())
    } else if flag(env, REQUIRE_FIXTURES_VAR) || flag(env, "CI") {
        Resolved::Fail(format!(
            "the shared fixtures are required ({REQUIRE_FIXTURES_VAR} or CI is set) but {} does not exist",
            path.display()
        ))
    } else {
        Resolved::Skip(format!("shared fixtures not found at {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_set_url_is_used_whatever_else_is_set() {
        let url = "postgres://u@h/db";
        for extra in [("CI", "true"), (REQUIRE_POSTGRES_VAR, "1"), ("X", "")] {
            assert_eq!(
                resolve_postgres(&with(&[(POSTGRES_URL_VAR, url), extra])),
                Resolved::Present(url.to_owned())
            );
        }
    }

    #[test]
    fn a_missing_url_skips_only_outside_ci() {
        assert!(matches!(resolve_postgres(&with(&[])), Resolved::Skip(_)));
        assert!(matches!(
            resolve_postgres(&with(&[(POSTGRES_URL_VAR, "  ")])),
            Resolved::Skip(_)
        ));
        assert!(matches!(
            resolve_postgres(&with(&[("CI", "false"), (REQUIRE_POSTGRES_VAR, "0")])),
            Resolved::Skip(_)
        ));
        for required in [("CI", "true"), ("CI", "1"), (REQUIRE_POSTGRES_VAR, "1")] {
            assert!(matches!(
                resolve_postgres(&with(&[required])),
                Resolved::Fail(_)
            ));
        }
        // Requiring fixtures does not require PostgreSQL.
        assert!(matches!(
            resolve_postgres(&with(&[(REQUIRE_FIXTURES_VAR, "1")])),
            Resolved::Skip(_)
        ));
    }

    #[test]
    fn missing_fixtures_skip_only_outside_ci() {
        let path = Path::new("/nowhere");
        assert_eq!(
            resolve_fixture(&with(&[("CI", "true")]), path, true),
            Resolved::Present(())
        );
        assert!(matches!(
            resolve_fixture(&with(&[]), path, false),
            Resolved::Skip(_)
        ));
        for required in [("CI", "true"), (REQUIRE_FIXTURES_VAR, "1")] {
            assert!(matches!(
                resolve_fixture(&with(&[required]), path, false),
                Resolved::Fail(_)
            ));
        }
        assert!(matches!(
            resolve_fixture(&with(&[(REQUIRE_POSTGRES_VAR, "1")]), path, false),
            Resolved::Skip(_)
        ));
    }
}
