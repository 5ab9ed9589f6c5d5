//! Who may see what: the [`Gate`] the host supplies and the [`Access`] it grants.

use std::fmt;

use ai_metering_core::Tenant;
use http::request::Parts;

/// What a request may see, as decided by the host's [`Gate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Nothing: the dashboard answers 403 Forbidden.
    Deny,
    /// Everything, every tenant's data included (an operator).
    AllowAll,
    /// Only the usage recorded under this tenant: every query is restricted to it, and
    /// billables without usage in it are not found.
    Tenant(Tenant),
}

/// Decides, from the request's head, what the request may see.
///
/// Implemented for every closure `Fn(&Parts) -> Access`, so a host usually passes a closure
/// that reads its own session data (an extension its auth middleware inserted, a header...):
///
/// ```
/// use ai_metering_dashboard::{Access, DashboardConfig};
/// use ai_metering_core::Tenant;
///
/// let config = DashboardConfig::new().with_gate(|parts: &http::request::Parts| {
///     match parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
///         Some(tenant) => Access::Tenant(Tenant::new(tenant)),
///         None => Access::Deny,
///     }
/// });
/// assert!(config.has_gate());
/// ```
pub trait Gate: Send + Sync + 'static {
    /// The access granted to a request with this head.
    fn check(&self, parts: &Parts) -> Access;
}

impl<F> Gate for F
where
    F: Fn(&Parts) -> Access + Send + Sync + 'static,
{
    fn check(&self, parts: &Parts) -> Access {
        self(parts)
    }
}

/// The data a granted request may see: every tenant, or one. Handlers receive it from the
/// access middleware through the request extensions.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    tenant: Option<Tenant>,
}

impl Scope {
    /// The scope of a granted access; `None` for [`Access::Deny`].
    pub(crate) fn of(access: Access) -> Option<Self> {
        match access {
            Access::Deny => None,
            Access::AllowAll => Some(Self { tenant: None }),
            Access::Tenant(tenant) => Some(Self {
                tenant: Some(tenant),
            }),
        }
    }

    /// The one tenant the viewer is limited to, if any.
    pub(crate) fn tenant(&self) -> Option<&Tenant> {
        self.tenant.as_ref()
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(t) => write!(f, "Scope(tenant {t})"),
            None => f.write_str("Scope(all)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with(header: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri("/");
        if let Some(h) = header {
            b = b.header("x-tenant", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn closures_are_gates() {
        let gate = |p: &Parts| match p.headers.get("x-tenant") {
            Some(v) => Access::Tenant(Tenant::new(v.to_str().unwrap())),
            None => Access::Deny,
        };
        assert_eq!(gate.check(&parts_with(None)), Access::Deny);
        assert_eq!(
            gate.check(&parts_with(Some("acme"))),
            Access::Tenant(Tenant::new("acme"))
        );
    }

    #[test]
    fn deny_has_no_scope_and_tenant_scope_keeps_its_tenant() {
        assert!(Scope::of(Access::Deny).is_none());
        assert_eq!(Scope::of(Access::AllowAll).unwrap().tenant(), None);
        let s = Scope::of(Access::Tenant(Tenant::new("t1"))).unwrap();
        assert_eq!(s.tenant(), Some(&Tenant::new("t1")));
    }
}
