//! The cluster's credentials, generated for each cluster: a CA, one serving certificate it signs
//! for the API server and the node's kubelet API (loopback names only), the service-account
//! signing key, and the bearer tokens of the token file.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// Files written by [`write`].
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_public_key: PathBuf,
}

/// Generates the CA, the serving certificate and the service-account key into `dir`.
pub(crate) fn write(dir: &Path) -> Result<Credentials, String> {
    let error = |e: rcgen::Error| format!("cannot generate the cluster's certificates: {e}");
    let ca_key = KeyPair::generate().map_err(error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mirrord-test-cluster-ca");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(error)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().map_err(error)?;
    let mut serving_params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])
    .map_err(error)?;
    serving_params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    serving_params
        .subject_alt_names
        .push(SanType::IpAddress(crate::SERVICE_IP.into()));
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving_params
        .signed_by(&serving_key, &issuer)
        .map_err(error)?;
    let service_account_key = KeyPair::generate().map_err(error)?;

    let credentials = Credentials {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("serving.crt"),
        serving_key: dir.join("serving.key"),
        service_account_key: dir.join("service-account.key"),
        service_account_public_key: dir.join("service-account.pub"),
    };
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&credentials.ca_cert, ca_cert.pem())?;
    write(&credentials.serving_cert, serving_cert.pem())?;
    write(&credentials.serving_key, serving_key.serialize_pem())?;
    write(
        &credentials.service_account_key,
        service_account_key.serialize_pem(),
    )?;
    write(
        &credentials.service_account_public_key,
        service_account_key.public_key_pem(),
    )?;
    Ok(credentials)
}

/// 32 random hex characters from the kernel.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut random, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
