//! TLS for `https://` base URLs: rustls with ring (no cmake, as everywhere in Aurora), and one of the two root
//! stores Aurora's callers trust — the platform's (what reqwest's `rustls-no-provider` uses:
//! rustls-platform-verifier, which on Linux reads the system's CA bundle) or only the CA files configuration
//! names (aurora-ingest's `ca_file`; none named trusts nothing).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::client::WantsClientCert;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{self, ClientConfig, ConfigBuilder, RootCertStore};
use tokio_rustls::TlsConnector;

use super::Error;

/// Which certificate authorities an `https://` server's certificate may chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The platform's, through rustls-platform-verifier.
    Platform,
    /// Only those in these PEM files; an empty list trusts no server.
    PemFiles(Vec<PathBuf>),
}

/// The connector for `roots`; the files are read now, so that a missing CA is a configuration error.
pub(super) fn connector(roots: &Roots) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder: ConfigBuilder<ClientConfig, WantsClientCert> = match roots {
        Roots::Platform => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| Error::Tls(format!("the platform's CA certificates: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        Roots::PemFiles(files) => {
            let mut store = RootCertStore::empty();
            for file in files {
                let failed = |e: &dyn std::fmt::Display| Error::Tls(format!("{}: {e}", file.display()));
                let certs = CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| failed(&e))?;
                for cert in certs {
                    store.add(cert).map_err(|e| failed(&e))?;
                }
            }
            builder.with_root_certificates(store)
        }
    };
    Ok(TlsConnector::from(Arc::new(builder.with_no_client_auth())))
}
