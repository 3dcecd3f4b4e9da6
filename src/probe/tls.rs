//! TLS probe: handshake with host:port and read the certificate's expiry.
//! Also the certificate reader for HTTPS probes.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::resolve::Resolver;
use super::{timed_out, ProbeReport};
use crate::config::ServiceConfig;
use crate::domain::Outcome;

/// The certificate's notAfter, as epoch milliseconds.
pub fn not_after_ms(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp() * 1000)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

fn connector(verify: bool) -> TlsConnector {
    static VERIFYING: OnceLock<TlsConnector> = OnceLock::new();
    static ACCEPTING: OnceLock<TlsConnector> = OnceLock::new();
    let build = |verify: bool| {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let config = if verify {
            builder
                .with_root_certificates(crate::trust::root_store())
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
                .with_no_client_auth()
        };
        TlsConnector::from(Arc::new(config))
    };
    if verify {
        VERIFYING.get_or_init(|| build(true)).clone()
    } else {
        ACCEPTING.get_or_init(|| build(false)).clone()
    }
}

pub async fn probe(target: &ServiceConfig, now_ms: i64, resolver: &Resolver) -> ProbeReport {
    let started = Instant::now();
    match tokio::time::timeout(target.timeout, handshake(target, resolver)).await {
        Ok(Ok(not_after)) => judge(target, started, not_after, now_ms),
        Ok(Err(reason)) => ProbeReport::down(started.elapsed(), reason),
        Err(_) => timed_out(target, started),
    }
}

async fn handshake(target: &ServiceConfig, resolver: &Resolver) -> Result<i64, String> {
    let host = target
        .url
        .host_str()
        .unwrap_or_default()
        .trim_matches(|c| c == '[' || c == ']');
    let port = target.url.port().unwrap_or(443);
    let name =
        ServerName::try_from(host.to_string()).map_err(|e| format!("bad server name: {e}"))?;
    let tcp = resolver
        .connect(host, port)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let tls = connector(target.http.tls_verify)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let (_, session) = tls.get_ref();
    let cert = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or("the server sent no certificate")?;
    not_after_ms(cert.as_ref()).ok_or_else(|| "the certificate cannot be read".to_string())
}

fn judge(target: &ServiceConfig, started: Instant, not_after: i64, now_ms: i64) -> ProbeReport {
    let latency = started.elapsed();
    let days = (not_after - now_ms).div_euclid(86_400_000);
    let (outcome, reason) = if days < target.tls_fail_days {
        (
            Outcome::Down,
            Some(format!(
                "certificate expires in {days} days (fail under {})",
                target.tls_fail_days
            )),
        )
    } else if days < target.tls_warn_days {
        (
            Outcome::Degraded,
            Some(format!(
                "certificate expires in {days} days (warn under {})",
                target.tls_warn_days
            )),
        )
    } else {
        (Outcome::Up, None)
    };
    let mut report = match outcome {
        Outcome::Up => super::finish(target, latency, None),
        _ => ProbeReport {
            outcome,
            latency,
            status_code: None,
            reason,
            dependencies: Vec::new(),
            certificate_expires_at: None,
            facts: super::Facts {
                connected: true,
                ..super::Facts::default()
            },
        },
    };
    report.certificate_expires_at = Some(not_after);
    report
}

/// For `tls_verify = false`: any certificate is accepted, but signatures
/// are still checked, so the handshake itself is real.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
