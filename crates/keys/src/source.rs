//! [`KeySource`]: where every key of a run comes from.

use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::material::{self, DemoEntropy};
use crate::{
    CaSpec, CertRequest, CertificateAuthority, Ed25519Key, IssuedCertificate, KeyError, KeyKind,
    KeyStore, Label, Provenance, SharedSecret, TlsCryptKey, WireGuardKeyPair,
    WireGuardPresharedKey,
};

/// Where keys come from: derived from the scenario seed (`--demo-keys`) or
/// kept in a key store (`--keys KEYDIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Every key derived from the seed and its label: ChaCha20 keyed with
    /// SHA-256 of (seed, kind, label). Reproducible by anyone holding the
    /// scenario file: for tests and demos only.
    Demo { seed: u64 },
    /// Keys from the OS CSPRNG, stored 0600 in the store on first use and
    /// read back on every later run.
    Store(KeyStore),
}

impl KeySource {
    /// Demo keys from `seed`.
    pub fn demo(seed: u64) -> Self {
        KeySource::Demo { seed }
    }

    /// Production keys kept in the store at `dir` (created 0700 if missing).
    pub fn store(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        Ok(KeySource::Store(KeyStore::open(dir)?))
    }

    /// The provenance of every key this source gives.
    pub fn provenance(&self) -> Provenance {
        match self {
            KeySource::Demo { seed } => Provenance::Demo { seed: *seed },
            KeySource::Store(_) => Provenance::Production,
        }
    }

    /// The raw material of `label`, checked to be of kind `expected`.
    fn raw(&self, label: &Label, expected: KeyKind) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if label.kind() != expected {
            return Err(KeyError::WrongKind {
                label: label.to_string(),
                expected: expected.name(),
                actual: label.kind().name(),
            });
        }
        match self {
            KeySource::Demo { seed } => {
                let raw =
                    material::generate(expected, &mut DemoEntropy::new(*seed, expected, label))?;
                // Through the file format and back, as a stored key would go.
                let text = material::encode(expected, &raw);
                material::decode(expected, &text).map_err(|reason| KeyError::Corrupt {
                    path: PathBuf::from(format!("<demo {label}>")),
                    reason,
                })
            }
            KeySource::Store(store) => store.load_or_create(label),
        }
    }

    /// The WireGuard key pair of `label` (namespace `wireguard`, e.g.
    /// [`Label::wireguard`]).
    pub fn wireguard(&self, label: &Label) -> Result<WireGuardKeyPair, KeyError> {
        let raw = self.raw(label, KeyKind::WireGuardPrivate)?;
        Ok(WireGuardKeyPair::from_raw(
            label.clone(),
            self.provenance(),
            &raw,
        ))
    }

    /// The WireGuard `PresharedKey` of `label` (namespace `wireguard-psk`,
    /// e.g. [`Label::wireguard_psk`]).
    pub fn wireguard_psk(&self, label: &Label) -> Result<WireGuardPresharedKey, KeyError> {
        let raw = self.raw(label, KeyKind::WireGuardPreshared)?;
        Ok(WireGuardPresharedKey::from_raw(
            label.clone(),
            self.provenance(),
            &raw,
        ))
    }

    /// The printable shared secret of `label` (namespaces `ipsec-psk`,
    /// `peervpn-psk`; e.g. [`Label::ipsec_psk`]).
    pub fn shared_secret(&self, label: &Label) -> Result<SharedSecret, KeyError> {
        let raw = self.raw(label, KeyKind::SharedSecret)?;
        Ok(SharedSecret::from_raw(
            label.clone(),
            self.provenance(),
            &raw,
        ))
    }

    /// The OpenVPN tls-crypt key of `label` (namespace `tls-crypt`, e.g.
    /// [`Label::tls_crypt`]).
    pub fn tls_crypt(&self, label: &Label) -> Result<TlsCryptKey, KeyError> {
        let raw = self.raw(label, KeyKind::TlsCrypt)?;
        Ok(TlsCryptKey::from_raw(
            label.clone(),
            self.provenance(),
            &raw,
        ))
    }

    /// The Ed25519 key of `label` (namespace `pki`).
    pub fn ed25519(&self, label: &Label) -> Result<Ed25519Key, KeyError> {
        let raw = self.raw(label, KeyKind::Ed25519)?;
        Ed25519Key::from_raw(label.clone(), self.provenance(), &raw)
    }

    /// The CA of `spec`: its key (`pki/<purpose>/<deployment>/ca`) and its
    /// self-signed certificate. In store mode the certificate is also
    /// mirrored to `KEYDIR/pki/<purpose>/<deployment>/ca.crt`.
    pub fn certificate_authority(&self, spec: &CaSpec) -> Result<CertificateAuthority, KeyError> {
        let label = spec.label()?;
        let ca = CertificateAuthority::build(spec, self.ed25519(&label)?)?;
        if let KeySource::Store(store) = self {
            store.write_public(&store.cert_path_of(&label), &ca.cert_pem())?;
        }
        Ok(ca)
    }

    /// Issue `request` under `ca`: the holder's key
    /// (`pki/<purpose>/<deployment>/issued/<entity>`) and its certificate,
    /// valid as long as the CA. In store mode the certificate is also
    /// mirrored next to the key as `<entity>.crt`.
    pub fn issue(
        &self,
        ca: &CertificateAuthority,
        request: &CertRequest,
    ) -> Result<IssuedCertificate, KeyError> {
        let label = Label::issued(&ca.spec().purpose, &ca.spec().deployment, &request.entity)?;
        let issued = ca.issue_with(request, self.ed25519(&label)?)?;
        if let KeySource::Store(store) = self {
            store.write_public(&store.cert_path_of(&label), issued.cert_pem())?;
        }
        Ok(issued)
    }
}
