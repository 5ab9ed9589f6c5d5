//! [`install_tls_provider`]: the TLS crypto provider of the HTTP client.

/// Makes `ring` the process's rustls crypto provider, unless one is installed already.
///
/// The billing crate's reqwest uses rustls without a built-in provider (the default one,
/// aws-lc-rs, is slow to build). [`StripeBillingDriver`](crate::stripe::StripeBillingDriver)
/// calls this before building its client; call it yourself before building a
/// `reqwest::Client` to pass to
/// [`http_client`](crate::stripe::StripeDriverBuilder::http_client). A provider the
/// application installed first is kept.
///
/// ```
/// ai_metering_billing::install_tls_provider();
/// let client = reqwest::Client::new();
/// # drop(client);
/// ```
pub fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one in between, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_installed_and_installing_twice_is_harmless() {
        install_tls_provider();
        install_tls_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let built = reqwest::Client::builder().build();
        assert!(built.is_ok(), "{built:?}");
    }
}
