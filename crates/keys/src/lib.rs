//! Keys, pre-shared secrets and certificates for every rendered host.
//!
//! Two sources, one API ([`KeySource`]):
//!
//! - **Production** (`--keys KEYDIR`, [`KeySource::Store`]): every secret is
//!   drawn from the OS CSPRNG (`getrandom`) the first time its label is
//!   asked for, written to `KEYDIR` (files 0600, directories 0700, via a
//!   temporary file and a link, never half-written) and read back on every later run, so
//!   regenerating configs never rotates a key. [`KeyStore::rotate`] (the
//!   backend of `sim keys rotate`) is the only way to change one. Existing
//!   files that are group/world-accessible, symlinks or unparsable are
//!   refused with an error naming the path.
//! - **Demo** (`--demo-keys`, [`KeySource::Demo`]): every secret derived from
//!   the scenario seed, independently per label: ChaCha20 keyed with
//!   SHA-256("vpnsim-keys/demo/v1\0" ‖ seed ‖ kind ‖ 0 ‖ label). Adding a host
//!   never changes another key. Every value carries
//!   [`Provenance::Demo`], and [`Provenance::comment_line`] gives the
//!   `# DEMO KEY derived from scenario seed N -- for tests and demos only,
//!   never for production` line each file holding one must carry.
//!
//! Key kinds ([`KeyKind`], fixed by the label's namespace):
//!
//! | namespace / label | value | store file |
//! |---|---|---|
//! | `wireguard/<host>/<iface>` | [`WireGuardKeyPair`] (Curve25519, clamped like `wg genkey`) | `.key`, base64 line |
//! | `wireguard-psk/<scope>/<a>/<b>` | [`WireGuardPresharedKey`] | `.psk`, base64 line |
//! | `ipsec-psk/<tunnel>`, `peervpn-psk/<mesh>` | [`SharedSecret`] (48 letters/digits) | `.secret`, one line |
//! | `tls-crypt/<deployment>` | [`TlsCryptKey`] (OpenVPN static key V1) | `.key`, OpenVPN format |
//! | `pki/<purpose>/<deployment>/ca` | CA key ([`CertificateAuthority`]) | `.key` PKCS#8 PEM, `.crt` mirror |
//! | `pki/<purpose>/<deployment>/issued/<entity>` | holder key ([`IssuedCertificate`]) | `.key` PKCS#8 PEM, `.crt` mirror |
//!
//! Certificates ([`pki`]) are Ed25519 in both modes and deterministic:
//! signatures (RFC 8032), serial numbers (hash of the inputs) and validity
//! (scenario dates) read no clock and no RNG, so the same keys and scenario
//! give byte-identical PEM.
//!
//! No secret is printed: every key type has a `Debug` that redacts it, and
//! errors describe bad key files without quoting them.

mod error;
pub mod label;
mod material;
pub mod pki;
mod provenance;
mod source;
mod store;

pub use error::KeyError;
pub use label::{KeyKind, Label, ns, purpose};
pub use material::{
    Ed25519Key, SHARED_SECRET_ALPHABET, SHARED_SECRET_LEN, STATIC_KEY_LEN, SharedSecret,
    TlsCryptKey, WireGuardKeyPair, WireGuardPresharedKey,
};
pub use pki::{
    CaSpec, CertRequest, CertUsage, CertificateAuthority, DEFAULT_VALID_FROM, DEFAULT_VALID_UNTIL,
    Date, IssuedCertificate, Validity,
};
pub use provenance::{DEMO_MARKER, Provenance};
pub use source::KeySource;
pub use store::{DIR_MODE, KeyStore, PUBLIC_FILE_MODE, SECRET_FILE_MODE};
