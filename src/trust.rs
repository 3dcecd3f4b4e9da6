//! The certificate authorities beacon's outgoing TLS trusts (HTTP and TLS
//! probes, webhooks, SMTP): the web PKI's, built in (webpki-roots, so a
//! machine with no trust store still checks public certificates), and the
//! machine's own trust store, so that a private CA an operator installed
//! (`update-ca-certificates`, a bundle mounted over the container image's
//! `/etc/ssl/certs/ca-certificates.crt`, or `SSL_CERT_FILE`) is trusted as
//! curl and the services beacon watches trust it. The S3 client of the
//! backups reads the same store.

use std::sync::OnceLock;

use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::RootCertStore;

/// The machine's trust store, read once: `SSL_CERT_FILE` / `SSL_CERT_DIR`
/// when set, else the system's bundle (`/etc/ssl/certs/ca-certificates.crt`
/// on Debian and in beacon's image). Certificates rustls cannot use are
/// left out; a missing store is no error (the web PKI's remain).
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "reading the system's trust store");
        }
        let mut check = RootCertStore::empty();
        let usable: Vec<_> = loaded
            .certs
            .into_iter()
            .filter(|cert| check.add(cert.clone()).is_ok())
            .collect();
        tracing::debug!(
            certificates = usable.len(),
            "trusting the system's store besides the web PKI"
        );
        usable
    })
}

/// The web PKI's roots and the system's, for a rustls client.
pub fn root_store() -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.add_parsable_certificates(system_roots().iter().cloned());
    roots
}

/// A reqwest client builder that trusts the system's store besides the
/// web PKI it has built in.
pub fn with_system_roots(mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    for cert in system_roots() {
        // Each was accepted by rustls above, so reqwest's own check passes.
        if let Ok(cert) = reqwest::Certificate::from_der(cert.as_ref()) {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
}
