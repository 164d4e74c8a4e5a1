//! The fixture's credentials: a CA generated at start, a server certificate it signs for
//! `localhost` and `127.0.0.1`, a random bearer token, and the kubeconfig that trusts them.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub(crate) struct Credentials {
    pub(crate) ca_pem: String,
    server_der: Vec<u8>,
    server_key_der: Vec<u8>,
}

impl Credentials {
    pub(crate) fn generate() -> Result<Credentials, String> {
        let error = |e: rcgen::Error| format!("cannot generate certificates: {e}");
        let ca_key = KeyPair::generate().map_err(error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mirrord-kube-fixture-ca");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(error)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().map_err(error)?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(error)?;
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(error)?;
        Ok(Credentials {
            ca_pem: ca_cert.pem(),
            server_der: server_cert.der().to_vec(),
            server_key_der: server_key.serialize_der(),
        })
    }

    pub(crate) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.server_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone())),
            )
            .map_err(|e| format!("bad server certificate: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// 32 random hex characters from the kernel.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut random, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A kubeconfig with context `fixture` (HTTPS, CA, token; the default) and `fixture-http`.
pub(crate) fn kubeconfig(https_url: &str, http_url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64_encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fixture
  cluster:
    server: {https_url}
    certificate-authority-data: {ca}
- name: fixture-http
  cluster:
    server: {http_url}
users:
- name: mirrord-dev
  user:
    token: {token}
contexts:
- name: fixture
  context:
    cluster: fixture
    user: mirrord-dev
    namespace: default
- name: fixture-http
  context:
    cluster: fixture-http
    user: mirrord-dev
    namespace: default
current-context: fixture
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_base64() {
        assert_eq!(super::base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(super::base64_encode(b"hello world!"), "aGVsbG8gd29ybGQh");
    }
}
