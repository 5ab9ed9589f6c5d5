//! How the layer finds who pays for a request (and the tenant): a [`Resolver`], which is
//! any closure over the request's [`Parts`], or one of the built-ins [`FromExtensions`]
//! (the default: what the host's auth middleware inserted) and [`FromHeader`].

use std::borrow::Cow;
use std::fmt;

use ai_metering_core::{Billable, Tenant};
use http::HeaderName;
use http::request::Parts;

/// Finds a value (a [`Billable`], a [`Tenant`]) for a request, or `None`.
///
/// Implemented for every `Fn(&Parts) -> Option<T>` closure, so a resolver is usually just
/// a closure:
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_tower::Resolver;
/// use http::request::Parts;
///
/// let by_team = |parts: &Parts| {
///     parts.headers.get("x-team").and_then(|v| v.to_str().ok()).map(|team| Billable::new("team", team))
/// };
/// let (parts, ()) = http::Request::builder().header("x-team", "acme").body(()).unwrap().into_parts();
/// assert_eq!(by_team.resolve(&parts), Some(Billable::new("team", "acme")));
/// ```
///
/// Resolvers run on every request and are synchronous: look identities up in the auth
/// middleware (which may be async) and let it insert the result in the extensions.
pub trait Resolver<T>: Send + Sync + 'static {
    /// The value for this request, or `None` when there is none.
    fn resolve(&self, parts: &Parts) -> Option<T>;

    /// The value for this request, borrowed from the request when it is there already.
    ///
    /// The layer calls this on every request, and copies the value only when it needs one
    /// of its own (not when the cached limit check decides). The default is
    /// [`resolve`](Self::resolve)'s value; [`FromExtensions`] lends the value in the
    /// extensions.
    fn resolve_borrowed<'a>(&self, parts: &'a Parts) -> Option<Cow<'a, T>>
    where
        T: Clone,
    {
        self.resolve(parts).map(Cow::Owned)
    }
}

impl<T, F> Resolver<T> for F
where
    F: Fn(&Parts) -> Option<T> + Send + Sync + 'static,
{
    fn resolve(&self, parts: &Parts) -> Option<T> {
        self(parts)
    }
}

/// Takes the value from the request extensions, where the host's auth middleware put it
/// (`request.extensions_mut().insert(billable)`). The default resolver for both the
/// billable and the tenant.
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_tower::{FromExtensions, Resolver};
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(Billable::new("user", 42));
/// let (parts, ()) = request.into_parts();
/// assert_eq!(FromExtensions.resolve(&parts), Some(Billable::new("user", 42)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FromExtensions;

impl<T: Clone + Send + Sync + 'static> Resolver<T> for FromExtensions {
    fn resolve(&self, parts: &Parts) -> Option<T> {
        parts.extensions.get::<T>().cloned()
    }

    fn resolve_borrowed<'a>(&self, parts: &'a Parts) -> Option<Cow<'a, T>> {
        parts.extensions.get::<T>().map(Cow::Borrowed)
    }
}

/// Reads the value from a request header.
///
/// As a billable resolver, the header holds `KIND:ID` (`user:42`), or only the id when a
/// kind is given with [`kind`](Self::kind). As a tenant resolver, it holds the tenant id.
/// Empty, non-UTF-8 or malformed values resolve to nothing.
///
/// **Trust**: a client can send any header. Use this only behind a gateway that sets the
/// header itself (and strips it from client requests).
///
/// ```
/// use ai_metering_core::{Billable, Tenant};
/// use ai_metering_tower::{FromHeader, Resolver};
///
/// let (parts, ()) = http::Request::builder()
///     .header("x-account", "acme")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let billable = FromHeader::new("x-account").kind("team");
/// assert_eq!(Resolver::<Billable>::resolve(&billable, &parts), Some(Billable::new("team", "acme")));
/// assert_eq!(Resolver::<Tenant>::resolve(&FromHeader::new("x-account"), &parts), Some(Tenant::new("acme")));
/// ```
#[derive(Clone)]
pub struct FromHeader {
    name: HeaderName,
    kind: Option<String>,
}

impl FromHeader {
    /// Reads the header `name`.
    ///
    /// ```
    /// let resolver = ai_metering_tower::FromHeader::new(http::HeaderName::from_static("x-billable"));
    /// # let _ = resolver;
    /// ```
    pub fn new(name: impl Into<HeaderNameArg>) -> Self {
        Self {
            name: name.into().0,
            kind: None,
        }
    }

    /// The billable kind; the header then holds only the id.
    ///
    /// ```
    /// let resolver = ai_metering_tower::FromHeader::new("x-user-id").kind("user");
    /// # let _ = resolver;
    /// ```
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    fn value<'a>(&self, parts: &'a Parts) -> Option<&'a str> {
        let value = parts.headers.get(&self.name)?.to_str().ok()?.trim();
        (!value.is_empty()).then_some(value)
    }
}

impl fmt::Debug for FromHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromHeader")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Resolver<Billable> for FromHeader {
    fn resolve(&self, parts: &Parts) -> Option<Billable> {
        let value = self.value(parts)?;
        match &self.kind {
            Some(kind) => Some(Billable::new(kind.clone(), value)),
            None => value.parse().ok(),
        }
    }
}

impl Resolver<Tenant> for FromHeader {
    fn resolve(&self, parts: &Parts) -> Option<Tenant> {
        self.value(parts).map(Tenant::new)
    }
}

/// A header name for [`FromHeader::new`]: a [`HeaderName`] or a `&'static str`.
///
/// A `&'static str` that is not a valid header name (upper case, spaces...) is lower-cased
/// first; if it is still invalid, the resolver reads a header named `invalid-header-name`,
/// which never matches a real request, so a typo shows up as "no billable" (401) rather
/// than a panic.
#[derive(Debug, Clone)]
pub struct HeaderNameArg(HeaderName);

impl From<HeaderName> for HeaderNameArg {
    fn from(name: HeaderName) -> Self {
        Self(name)
    }
}

impl From<&'static str> for HeaderNameArg {
    fn from(name: &'static str) -> Self {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .or_else(|_| HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()));
        match parsed {
            Ok(name) => Self(name),
            Err(_) => {
                tracing::error!(target: "ai_metering", header = name, "FromHeader: invalid header name; no request will match it");
                Self(HeaderName::from_static("invalid-header-name"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(header: Option<(&str, &str)>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some((name, value)) = header {
            builder = builder.header(name, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn extensions_lend_their_value_and_other_resolvers_give_their_own() {
        let mut p = parts(Some(("x-billable", "team:acme")));
        p.extensions.insert(Billable::new("user", 7));
        let lent = Resolver::<Billable>::resolve_borrowed(&FromExtensions, &p);
        assert!(matches!(lent, Some(Cow::Borrowed(b)) if *b == Billable::new("user", 7)));
        let header = FromHeader::new("x-billable");
        let owned = Resolver::<Billable>::resolve_borrowed(&header, &p);
        assert!(matches!(owned, Some(Cow::Owned(b)) if b == Billable::new("team", "acme")));
        assert!(Resolver::<Tenant>::resolve_borrowed(&FromExtensions, &p).is_none());
    }

    #[test]
    fn from_header_parses_kind_and_id() {
        let p = parts(Some(("x-billable", "team:acme")));
        let resolver = FromHeader::new("x-billable");
        assert_eq!(
            Resolver::<Billable>::resolve(&resolver, &p),
            Some(Billable::new("team", "acme"))
        );
        // Without a kind, a value that is not KIND:ID resolves to nothing.
        let p = parts(Some(("x-billable", "acme")));
        assert_eq!(Resolver::<Billable>::resolve(&resolver, &p), None);
        let p = parts(Some(("x-billable", "  ")));
        assert_eq!(
            Resolver::<Billable>::resolve(&resolver.kind("team"), &p),
            None
        );
        assert_eq!(
            Resolver::<Billable>::resolve(&FromHeader::new("x-billable"), &parts(None)),
            None
        );
    }

    #[test]
    fn invalid_header_names_never_match() {
        let resolver = FromHeader::new("not a header");
        let p = parts(Some(("x-billable", "team:acme")));
        assert_eq!(Resolver::<Billable>::resolve(&resolver, &p), None);
        // Upper case is accepted, lower-cased.
        let resolver = FromHeader::new("X-Billable");
        assert!(Resolver::<Billable>::resolve(&resolver, &p).is_some());
    }

    #[test]
    fn from_extensions_reads_the_inserted_value() {
        let mut p = parts(None);
        assert_eq!(Resolver::<Tenant>::resolve(&FromExtensions, &p), None);
        p.extensions.insert(Tenant::new("acme"));
        assert_eq!(
            Resolver::<Tenant>::resolve(&FromExtensions, &p),
            Some(Tenant::new("acme"))
        );
    }
}
