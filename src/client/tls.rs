//! TLS for the outgoing client's `https://` URLs (peers of a cluster with `enable_https`,
//! an `https://` auth_url, tus callbacks): rustls over glommio's sockets, or over a blocking
//! socket for the callbacks' threads.
//!
//! Which servers are believed: a certificate equal to one of the node's own
//! (`conf/server.crt`: a cluster often shares one self-signed certificate, which no chain
//! check accepts as a leaf), else a chain to a trust anchor for the URL's host (the anchors are
//! the certificates of `conf/server.crt`, a cluster's own CA, and the system's bundle), unless
//! `tls_verify_peers` is off (any certificate: go-fastdfs clusters with a self-signed
//! certificate per node). Set at start ([`init`]) and again when the node's certificate is
//! read again ([`trust_own`], [`reload`]): connections opened after that use the new trust,
//! open ones keep theirs. Before [`init`] (unit tests) only the system's bundle is trusted.

use futures_rustls::rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The system's CA bundle (Debian's `ca-certificates`).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What [`init`] was given (no `dir` before it), and the configuration made of it.
struct Trust {
    dir: Option<PathBuf>,
    verify: bool,
    config: Arc<rustls::ClientConfig>,
}

static TRUST: RwLock<Option<Trust>> = RwLock::new(None);

#[allow(deprecated)] // ring: see crate::tls::load
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .map(|it| it.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Builds the client configuration for the runtime dir `dir`; `verify` is
/// `tls_verify_peers`.
pub fn init(dir: &Path, verify: bool) {
    let config = build(&pem_certs(&dir.join("conf/server.crt")), verify);
    *TRUST.write().expect("client tls") = Some(Trust {
        dir: Some(dir.to_path_buf()),
        verify,
        config,
    });
}

/// The node's own certificates are now `own` (the chain its TLS listeners serve since a
/// reload): connections opened from now on believe them instead of the old ones.
pub fn trust_own(own: &[CertificateDer<'static>]) {
    let verify = match TRUST.read().expect("client tls").as_ref() {
        Some(t) => t.verify,
        None => return,
    };
    // Built outside the lock: executors take it for every new connection.
    let config = build(own, verify);
    if let Some(t) = TRUST.write().expect("client tls").as_mut() {
        t.config = config;
    }
}

/// Reads `conf/server.crt` again (a node without `enable_https` that trusts it for its
/// `https://` peers or callbacks).
pub fn reload() {
    let dir = TRUST
        .read()
        .expect("client tls")
        .as_ref()
        .and_then(|t| t.dir.clone());
    if let Some(dir) = dir {
        trust_own(&pem_certs(&dir.join("conf/server.crt")));
    }
}

fn build(own: &[CertificateDer<'static>], verify: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in own
        .iter()
        .cloned()
        .chain(pem_certs(Path::new(SYSTEM_BUNDLE)))
    {
        let _ = roots.add(c);
    }
    let provider = provider();
    // No anchors at all (no own certificate, no system bundle): no chain is believed.
    let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .ok();
    let verifier = Verifier {
        own: own.to_vec(),
        chain,
        verify,
        provider: provider.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring offers TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The client configuration for `https://` URLs (blocking users: tus callbacks).
pub fn config() -> Arc<rustls::ClientConfig> {
    if let Some(t) = TRUST.read().expect("client tls").as_ref() {
        return t.config.clone();
    }
    let mut trust = TRUST.write().expect("client tls");
    let t = trust.get_or_insert_with(|| Trust {
        dir: None,
        verify: true,
        config: build(&[], true),
    });
    t.config.clone()
}

/// The connector for `https://` URLs (async users: the peer pool).
pub fn connector() -> futures_rustls::TlsConnector {
    futures_rustls::TlsConnector::from(config())
}

/// The name a server's certificate must carry for `host` (a name or an IP literal).
pub fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad TLS server name"))
}

/// The node's own certificates as leaves, else the chain check, else (verification off)
/// anything; the handshake's signatures are always checked against the presented key.
#[derive(Debug)]
struct Verifier {
    own: Vec<CertificateDer<'static>>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    verify: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.verify || self.own.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => chain.verify_server_cert(end_entity, intermediates, name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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
