//! TLS for the webhook server: a private CA and serving certificates (rcgen), loading and
//! checking certificates before the server binds, a rustls config (TLS 1.2+, ALPN h2 and
//! http/1.1), and hot reload of the certificate from disk without dropping connections.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Certificate problems. Messages name the flag or file at fault.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{flag} {path}: {source}")]
    Read {
        flag: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} {path}: {message}")]
    Invalid {
        flag: &'static str,
        path: String,
        message: String,
    },
    #[error("--tls-cert {cert} and --tls-key {key} do not belong together: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the serving certificate and key live.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Facts about a loaded certificate, for logs and errors.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub not_after: String,
    pub dns_names: Vec<String>,
}

/// A loaded, checked serving certificate.
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    /// PEM of the last certificate in the chain file (the issuing CA when bundled).
    pub chain_pem: String,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("info", &self.info)
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a certificate chain and key and checks them: parseable, not expired, key matches.
pub fn load(paths: &CertPaths) -> Result<LoadedCert, TlsError> {
    let cert_path = paths.cert.display().to_string();
    let key_path = paths.key.display().to_string();
    let cert_pem = std::fs::read(&paths.cert).map_err(|source| TlsError::Read {
        flag: "--tls-cert",
        path: cert_path.clone(),
        source,
    })?;
    let key_pem = std::fs::read(&paths.key).map_err(|source| TlsError::Read {
        flag: "--tls-key",
        path: key_path.clone(),
        source,
    })?;
    let bad_cert = |message: String| TlsError::Invalid {
        flag: "--tls-cert",
        path: cert_path.clone(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad_cert(format!("not a PEM certificate: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(bad_cert("no CERTIFICATE block found".into()));
    };
    let info = inspect(leaf).map_err(bad_cert)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        flag: "--tls-key",
        path: key_path.clone(),
        message: format!("not a PEM private key: {e}"),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Invalid {
            flag: "--tls-key",
            path: key_path.clone(),
            message: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain.clone(), signing);
    ck.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert_path.clone(),
        key: key_path.clone(),
        message: e.to_string(),
    })?;
    let chain_pem = chain
        .last()
        .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
        .unwrap_or_default();
    Ok(LoadedCert {
        key: Arc::new(ck),
        info,
        chain_pem,
    })
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

fn inspect(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        return Err(format!("certificate expired at {}", validity.not_after));
    }
    if validity.not_before > now {
        return Err(format!(
            "certificate is not valid before {}",
            validity.not_before
        ));
    }
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    dns_names.push((*d).to_string())
                }
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    let addr = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    dns_names.extend(addr);
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        not_after: validity.not_after.to_string(),
        dns_names,
    })
}

/// Serves the current certificate; swapped atomically on reload.
#[derive(Debug)]
pub struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl Resolver {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Resolver {
            current: ArcSwap::new(key),
        })
    }

    /// Replaces the certificate for new handshakes; open connections keep theirs.
    pub fn swap(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A rustls server config: TLS 1.2 and 1.3, ALPN h2 then http/1.1, ring provider.
pub fn server_config(resolver: Arc<Resolver>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A cheap fingerprint of the files: modification time and length of both.
pub fn fingerprint(paths: &CertPaths) -> Option<(SystemTime, u64, SystemTime, u64)> {
    let c = std::fs::metadata(&paths.cert).ok()?;
    let k = std::fs::metadata(&paths.key).ok()?;
    Some((c.modified().ok()?, c.len(), k.modified().ok()?, k.len()))
}

/// Watches the files and swaps the certificate when they change. A bad new certificate is
/// logged and the previous one stays in service. `before_swap` runs (and is awaited) before a
/// new certificate is served, so clients can be told to trust its CA first; `on_reload` is
/// told about each successful swap.
pub async fn watch<B, BF>(
    paths: CertPaths,
    resolver: Arc<Resolver>,
    interval: Duration,
    mut before_swap: B,
    mut on_reload: impl FnMut(&LoadedCert) + Send,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    B: FnMut(&LoadedCert) -> BF + Send,
    BF: std::future::Future<Output = ()> + Send,
{
    let mut last = fingerprint(&paths);
    let mut last_failed: Option<_> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let now = fingerprint(&paths);
        if now.is_none() || now == last || now == last_failed {
            continue;
        }
        match load(&paths) {
            Ok(loaded) => {
                before_swap(&loaded).await;
                resolver.swap(loaded.key.clone());
                tracing::info!(cert = %paths.cert.display(), subject = %loaded.info.subject, not_after = %loaded.info.not_after, "serving certificate reloaded");
                on_reload(&loaded);
                last = now;
                last_failed = None;
            }
            Err(e) => {
                // Files can be caught mid-write; a later change retries.
                tracing::warn!(error = %e, "new certificate rejected; keeping the current one");
                last_failed = now;
            }
        }
    }
}

/// A generated CA.
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ca")
    }
}

impl Ca {
    /// A new self-signed CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "meshd");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads an existing CA from PEM files.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    /// A serving certificate for `names` (DNS names or IP addresses), valid for `days`.
    pub fn issue(&self, names: &[String], days: i64) -> Result<(String, String), TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for n in names {
            let san = match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.clone().try_into()?),
            };
            params.subject_alt_names.push(san);
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "meshd".into()),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The DNS names and addresses meshd's serving certificate covers.
pub fn default_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "istiod.istio-system.svc".to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ]
}

/// Writes a file; private keys get mode 0600 before any byte is written.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The files `certs generate` (and first start of `serve`) writes.
#[derive(Debug, Clone)]
pub struct GeneratedFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `ca.crt`, `ca.key`, `tls.crt`, `tls.key` into `dir`. An existing CA there is reused.
pub fn generate_into(
    dir: &Path,
    service: &str,
    namespace: &str,
) -> Result<GeneratedFiles, TlsError> {
    let files = GeneratedFiles {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    let existing = match (
        std::fs::read_to_string(&files.ca_cert),
        std::fs::read_to_string(&files.ca_key),
    ) {
        (Ok(c), Ok(k)) => Ca::load(&c, &k).ok(),
        _ => None,
    };
    let ca = match existing {
        Some(ca) => ca,
        None => {
            let ca = Ca::generate("meshd-ca")?;
            write_file(&files.ca_key, &ca.key_pem, true)?;
            write_file(&files.ca_cert, &ca.cert_pem, false)?;
            ca
        }
    };
    let (cert, key) = ca.issue(&default_sans(service, namespace), 365)?;
    write_file(&files.key, &key, true)?;
    write_file(&files.cert, &cert, false)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_load_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate_into(dir.path(), "meshd", "istio-system").unwrap();
        let loaded = load(&CertPaths {
            cert: files.cert.clone(),
            key: files.key.clone(),
        })
        .unwrap();
        assert!(loaded
            .info
            .dns_names
            .iter()
            .any(|n| n == "meshd.istio-system.svc"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for k in [&files.key, &files.ca_key] {
                assert_eq!(
                    std::fs::metadata(k).unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
        }
        // A second run reuses the CA.
        let ca_before = std::fs::read_to_string(&files.ca_cert).unwrap();
        generate_into(dir.path(), "meshd", "istio-system").unwrap();
        assert_eq!(ca_before, std::fs::read_to_string(&files.ca_cert).unwrap());
    }

    #[test]
    fn errors_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let missing = CertPaths {
            cert: dir.path().join("nope.crt"),
            key: dir.path().join("nope.key"),
        };
        assert!(load(&missing)
            .unwrap_err()
            .to_string()
            .starts_with("--tls-cert"));
        std::fs::write(dir.path().join("bad.crt"), "garbage").unwrap();
        std::fs::write(dir.path().join("bad.key"), "garbage").unwrap();
        let bad = CertPaths {
            cert: dir.path().join("bad.crt"),
            key: dir.path().join("bad.key"),
        };
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("--tls-cert") && e.contains("bad.crt"), "{e}");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = generate_into(a.path(), "meshd", "ns").unwrap();
        let fb = generate_into(b.path(), "meshd", "ns").unwrap();
        let e = load(&CertPaths {
            cert: fa.cert,
            key: fb.key,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("do not belong together"), "{e}");
    }
}
