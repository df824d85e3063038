//! TLS to a kestrel server trusted through `--tls-ca FILE`. Certificates issued by a CA in
//! the file are verified as usual (chain and host name); a certificate that is itself in
//! the file is trusted as pinned, so the usual self-signed certificate (`openssl req
//! -x509`, which marks itself a CA) works, as it does with `curl --cacert`. A pinned
//! certificate is trusted for whatever host serves it: the user named that exact
//! certificate.

use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

use crate::cmd::UsageError;

#[derive(Debug)]
struct PinnedOrCa {
    pinned: Vec<CertificateDer<'static>>,
    ca: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedOrCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.ca
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A channel to the https `url`, trusting the certificates in the PEM file `ca` (see the
/// module documentation).
pub async fn connect(url: &str, ca: &std::path::Path) -> anyhow::Result<Channel> {
    let bad = |m: String| UsageError(format!("--tls-ca {}: {m}", ca.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()).into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| bad(e.to_string()))?;
    }
    let ca_verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| bad(e.to_string()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedOrCa {
            pinned: certs,
            ca: ca_verifier,
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);

    let uri: tonic::codegen::http::Uri = url
        .parse()
        .map_err(|e| UsageError(format!("--server {url:?}: not a URL ({e})")))?;
    let host = uri.host().unwrap_or_default().to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| UsageError(format!("--server {url:?}: {e}")))?;
    // tonic speaks plain HTTP/2 over the stream this connector hands it, already TLS.
    let plain = url.replacen("https://", "http://", 1);
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (config, name, host) = (config.clone(), name.clone(), host.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Endpoint::from_shared(plain)
        .map_err(|e| UsageError(format!("--server {url:?}: not a URL ({e})")))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .with_context(|| format!("cannot reach the kestrel server at {url}"))
}
