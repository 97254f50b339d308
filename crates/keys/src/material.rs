//! Key material: how each kind is drawn from entropy, written to and read
//! from its file format, and the typed values handed to renderers.
//!
//! Every kind goes through the same three steps whatever the source:
//! `generate` (raw bytes from an [`Entropy`]), `encode` (the store file's
//! text, in the format the tool that consumes it uses) and `decode` (back to
//! raw bytes). Demo keys are encoded and decoded too, so demo and production
//! keys take the same code path from the first byte on.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{KeyError, KeyKind, Label, Provenance};

/// Length of generated IPsec / PeerVPN shared secrets, in characters of
/// [`SHARED_SECRET_ALPHABET`] (62 symbols: about 5.95 bits each, 285 bits).
pub const SHARED_SECRET_LEN: usize = 48;
/// The alphabet of generated shared secrets: letters and digits only, so a
/// secret needs no escaping in `ipsec.secrets`, `swanctl.conf`, PeerVPN
/// configs, shells or YAML, quoted or not.
pub const SHARED_SECRET_ALPHABET: &[u8; 62] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Shortest shared secret accepted when reading a store file.
pub const SHARED_SECRET_MIN_LEN: usize = 32;
/// Longest shared secret accepted when reading a store file.
pub const SHARED_SECRET_MAX_LEN: usize = 256;

/// Size of an OpenVPN static key V1 (2048 bits).
pub const STATIC_KEY_LEN: usize = 256;
const STATIC_KEY_BEGIN: &str = "-----BEGIN OpenVPN Static key V1-----";
const STATIC_KEY_END: &str = "-----END OpenVPN Static key V1-----";
/// The comment header `openvpn --genkey` writes before the key.
const STATIC_KEY_HEADER: &str = "#\n# 2048 bit OpenVPN static key\n#\n";

/// PKCS#8 v1 (RFC 8410) prefix of an Ed25519 private key: SEQUENCE {
/// INTEGER 0, AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING { OCTET
/// STRING (32 bytes) } }. The seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PEM_KEY_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_KEY_END: &str = "-----END PRIVATE KEY-----";

/// Domain separation of demo derivation; bump the version to change every
/// demo key at once.
const DEMO_DOMAIN: &[u8] = b"vpnsim-keys/demo/v1\0";

// ---------------------------------------------------------------- entropy

/// A source of random bytes for key generation.
pub(crate) trait Entropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeyError>;
}

/// Deterministic entropy for demo keys: ChaCha20 keyed with
/// SHA-256(domain ‖ seed ‖ kind ‖ 0 ‖ label). Each label has its own stream,
/// so keys are independent of each other and of the order they are asked for.
pub(crate) struct DemoEntropy(ChaCha20Rng);

impl DemoEntropy {
    pub(crate) fn new(seed: u64, kind: KeyKind, label: &Label) -> Self {
        let mut hash = Sha256::new();
        hash.update(DEMO_DOMAIN);
        hash.update(seed.to_be_bytes());
        hash.update(kind.tag().as_bytes());
        hash.update([0]);
        hash.update(label.as_str().as_bytes());
        let key: [u8; 32] = hash.finalize().into();
        DemoEntropy(ChaCha20Rng::from_seed(key))
    }
}

impl Entropy for DemoEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeyError> {
        self.0.fill_bytes(buf);
        Ok(())
    }
}

/// The operating system's CSPRNG (`getrandom(2)` on Linux). The production
/// key path, and the only place this crate draws unseeded randomness.
pub(crate) struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KeyError> {
        getrandom::fill(buf).map_err(|e| KeyError::Rng(e.to_string()))
    }
}

// ------------------------------------------------------------- raw material

/// Draw the raw material of one key.
pub(crate) fn generate(
    kind: KeyKind,
    entropy: &mut dyn Entropy,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let raw = match kind {
        KeyKind::WireGuardPrivate => {
            let mut key = Zeroizing::new(vec![0u8; 32]);
            entropy.fill(&mut key)?;
            clamp(&mut key);
            key
        }
        KeyKind::WireGuardPreshared | KeyKind::Ed25519 => {
            let mut key = Zeroizing::new(vec![0u8; 32]);
            entropy.fill(&mut key)?;
            key
        }
        KeyKind::TlsCrypt => {
            let mut key = Zeroizing::new(vec![0u8; STATIC_KEY_LEN]);
            entropy.fill(&mut key)?;
            key
        }
        KeyKind::SharedSecret => {
            // Rejection sampling keeps the alphabet uniform: 248 = 4 × 62.
            let mut out = Zeroizing::new(Vec::with_capacity(SHARED_SECRET_LEN));
            let mut pool = Zeroizing::new([0u8; 64]);
            while out.len() < SHARED_SECRET_LEN {
                entropy.fill(&mut pool[..])?;
                for &b in pool.iter() {
                    if b < 248 && out.len() < SHARED_SECRET_LEN {
                        out.push(SHARED_SECRET_ALPHABET[usize::from(b % 62)]);
                    }
                }
            }
            out
        }
    };
    Ok(raw)
}

/// Curve25519 clamping exactly as `wg genkey` does it.
fn clamp(key: &mut [u8]) {
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
}

/// The store file text of a key.
pub(crate) fn encode(kind: KeyKind, raw: &[u8]) -> Zeroizing<String> {
    let text = match kind {
        KeyKind::WireGuardPrivate | KeyKind::WireGuardPreshared => {
            format!("{}\n", BASE64.encode(raw))
        }
        KeyKind::SharedSecret => format!("{}\n", String::from_utf8_lossy(raw)),
        KeyKind::TlsCrypt => format!("{STATIC_KEY_HEADER}{}", static_key_block(raw).as_str()),
        KeyKind::Ed25519 => ed25519_pem(raw).to_string(),
    };
    Zeroizing::new(text)
}

/// Parse store file text back into raw material. The error reason never
/// quotes the text.
pub(crate) fn decode(kind: KeyKind, text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    match kind {
        KeyKind::WireGuardPrivate | KeyKind::WireGuardPreshared => {
            let trimmed = text.trim();
            let raw = Zeroizing::new(BASE64.decode(trimmed).map_err(|_| {
                "expected one line of base64 (a 32-byte key as `wg genkey` writes it)".to_owned()
            })?);
            if raw.len() != 32 {
                return Err(format!("expected a 32-byte key, found {} bytes", raw.len()));
            }
            Ok(raw)
        }
        KeyKind::SharedSecret => {
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if trimmed.contains('\n') {
                return Err("expected the secret on a single line".to_owned());
            }
            if trimmed.len() < SHARED_SECRET_MIN_LEN || trimmed.len() > SHARED_SECRET_MAX_LEN {
                return Err(format!(
                    "expected {SHARED_SECRET_MIN_LEN} to {SHARED_SECRET_MAX_LEN} characters, found {}",
                    trimmed.len()
                ));
            }
            if !trimmed.bytes().all(shared_secret_char_ok) {
                return Err(
                    "a shared secret may hold printable ASCII except whitespace, quotes, \\, $, ` and #".to_owned()
                );
            }
            Ok(Zeroizing::new(trimmed.as_bytes().to_vec()))
        }
        KeyKind::TlsCrypt => parse_static_key(text),
        KeyKind::Ed25519 => parse_ed25519_pem(text),
    }
}

fn shared_secret_char_ok(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\' | b'$' | b'`' | b'#')
}

fn static_key_block(raw: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(600));
    out.push_str(STATIC_KEY_BEGIN);
    out.push('\n');
    for line in raw.chunks(16) {
        for b in line {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    out.push_str(STATIC_KEY_END);
    out.push('\n');
    out
}

fn parse_static_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut lines = text.lines().map(str::trim);
    if !lines.any(|l| l == STATIC_KEY_BEGIN) {
        return Err(format!("no `{STATIC_KEY_BEGIN}` line"));
    }
    let mut hex = Zeroizing::new(String::with_capacity(2 * STATIC_KEY_LEN));
    let mut ended = false;
    for line in lines {
        if line == STATIC_KEY_END {
            ended = true;
            break;
        }
        hex.push_str(line);
    }
    if !ended {
        return Err(format!("no `{STATIC_KEY_END}` line"));
    }
    if hex.len() != 2 * STATIC_KEY_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected {} hex digits between the markers",
            2 * STATIC_KEY_LEN
        ));
    }
    let raw = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            (digit(pair[0]) << 4) | digit(pair[1])
        })
        .collect();
    Ok(Zeroizing::new(raw))
}

fn ed25519_pkcs8(seed: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&ED25519_PKCS8_PREFIX);
    der.extend_from_slice(seed);
    der
}

fn ed25519_pem(seed: &[u8]) -> Zeroizing<String> {
    let der = ed25519_pkcs8(seed);
    Zeroizing::new(format!(
        "{PEM_KEY_BEGIN}\n{}\n{PEM_KEY_END}\n",
        BASE64.encode(der.as_slice())
    ))
}

fn parse_ed25519_pem(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut lines = text.lines().map(str::trim);
    if !lines.any(|l| l == PEM_KEY_BEGIN) {
        return Err(format!(
            "no `{PEM_KEY_BEGIN}` line (expected an Ed25519 PKCS#8 PEM key)"
        ));
    }
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == PEM_KEY_END {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("no `{PEM_KEY_END}` line"));
    }
    let der = Zeroizing::new(
        BASE64
            .decode(body.as_bytes())
            .map_err(|_| "the PEM body is not base64".to_owned())?,
    );
    if der.len() != 48 || der[..16] != ED25519_PKCS8_PREFIX {
        return Err(
            "not an Ed25519 PKCS#8 v1 private key (the only kind this store writes)".to_owned(),
        );
    }
    Ok(Zeroizing::new(der[16..].to_vec()))
}

fn array32(raw: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&raw[..32]);
    out
}

// ------------------------------------------------------------- typed values

const REDACTED: &str = "<redacted>";

/// A WireGuard key pair (Curve25519, clamped as `wg genkey` clamps).
#[derive(Clone)]
pub struct WireGuardKeyPair {
    label: Label,
    provenance: Provenance,
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl WireGuardKeyPair {
    pub(crate) fn from_raw(label: Label, provenance: Provenance, raw: &[u8]) -> Self {
        let private = array32(raw);
        // Fixed-base multiplication with precomputed tables: several times
        // faster than the Montgomery ladder of `x25519(k, 9)`, same result
        // (a 10,000-worker star derives 10,000 keys).
        let public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private)).to_bytes();
        WireGuardKeyPair {
            label,
            provenance,
            private,
            public,
        }
    }

    /// The label the key is stored and derived under.
    pub fn label(&self) -> &Label {
        &self.label
    }

    /// Demo or production.
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The private key in base64, as wg-quick's `PrivateKey =` wants it.
    pub fn private_key(&self) -> String {
        BASE64.encode(self.private.as_slice())
    }

    /// The public key in base64, as `wg pubkey` prints it and a peer's
    /// `PublicKey =` wants it.
    pub fn public_key(&self) -> String {
        BASE64.encode(self.public)
    }

    /// The raw private key.
    pub fn private_key_bytes(&self) -> &[u8; 32] {
        &self.private
    }

    /// The raw public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.public
    }
}

impl fmt::Debug for WireGuardKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireGuardKeyPair")
            .field("label", &self.label)
            .field("provenance", &self.provenance)
            .field("public_key", &self.public_key())
            .field("private_key", &REDACTED)
            .finish()
    }
}

/// A WireGuard `PresharedKey` (32 random bytes).
#[derive(Clone)]
pub struct WireGuardPresharedKey {
    label: Label,
    provenance: Provenance,
    key: Zeroizing<[u8; 32]>,
}

impl WireGuardPresharedKey {
    pub(crate) fn from_raw(label: Label, provenance: Provenance, raw: &[u8]) -> Self {
        WireGuardPresharedKey {
            label,
            provenance,
            key: array32(raw),
        }
    }

    pub fn label(&self) -> &Label {
        &self.label
    }

    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// Base64, as wg-quick's `PresharedKey =` wants it.
    pub fn base64(&self) -> String {
        BASE64.encode(self.key.as_slice())
    }

    /// The raw key.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for WireGuardPresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireGuardPresharedKey")
            .field("label", &self.label)
            .field("provenance", &self.provenance)
            .field("key", &REDACTED)
            .finish()
    }
}

/// A printable pre-shared secret for IPsec (Libreswan `ipsec.secrets`,
/// strongSwan `swanctl.conf` / `ipsec.secrets`) or a PeerVPN mesh.
/// Generated ones are [`SHARED_SECRET_LEN`] letters and digits.
#[derive(Clone)]
pub struct SharedSecret {
    label: Label,
    provenance: Provenance,
    text: Zeroizing<String>,
}

impl SharedSecret {
    pub(crate) fn from_raw(label: Label, provenance: Provenance, raw: &[u8]) -> Self {
        SharedSecret {
            label,
            provenance,
            text: Zeroizing::new(String::from_utf8_lossy(raw).into_owned()),
        }
    }

    pub fn label(&self) -> &Label {
        &self.label
    }

    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The secret as is.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The secret in double quotes, as `ipsec.secrets` (`: PSK "..."`) and
    /// `swanctl.conf` (`secret = "..."`) take it. The accepted alphabet
    /// contains no `"` or `\`, so no escaping is needed.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.text.as_str())
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("label", &self.label)
            .field("provenance", &self.provenance)
            .field("secret", &REDACTED)
            .finish()
    }
}

/// An OpenVPN static key V1 (2048 bits) used with `--tls-crypt` (eduVPN's
/// `ta.key`).
#[derive(Clone)]
pub struct TlsCryptKey {
    label: Label,
    provenance: Provenance,
    key: Zeroizing<Vec<u8>>,
}

impl TlsCryptKey {
    pub(crate) fn from_raw(label: Label, provenance: Provenance, raw: &[u8]) -> Self {
        TlsCryptKey {
            label,
            provenance,
            key: Zeroizing::new(raw.to_vec()),
        }
    }

    pub fn label(&self) -> &Label {
        &self.label
    }

    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The `-----BEGIN OpenVPN Static key V1-----` … `-----END …-----`
    /// block (16 lines of 32 hex digits between the markers, trailing
    /// newline), for an inline `<tls-crypt>` section.
    pub fn block(&self) -> String {
        static_key_block(&self.key).to_string()
    }

    /// A complete key file: the demo marker (demo keys only), the comment
    /// header `openvpn --genkey` writes, then [`Self::block`]. OpenVPN skips
    /// the comment lines.
    pub fn file_text(&self) -> String {
        let mut out = String::new();
        if let Some(line) = self.provenance.comment_line("#") {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(STATIC_KEY_HEADER);
        out.push_str(&self.block());
        out
    }

    /// The raw 256 bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for TlsCryptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCryptKey")
            .field("label", &self.label)
            .field("provenance", &self.provenance)
            .field("key", &REDACTED)
            .finish()
    }
}

/// An Ed25519 signing key (a CA's or a certificate holder's).
#[derive(Clone)]
pub struct Ed25519Key {
    label: Label,
    provenance: Provenance,
    seed: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl Ed25519Key {
    pub(crate) fn from_raw(
        label: Label,
        provenance: Provenance,
        raw: &[u8],
    ) -> Result<Self, KeyError> {
        let seed = array32(raw);
        let pair = rcgen_pair(&seed).map_err(|reason| KeyError::Certificate {
            label: label.to_string(),
            reason,
        })?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key_raw());
        Ok(Ed25519Key {
            label,
            provenance,
            seed,
            public,
        })
    }

    pub fn label(&self) -> &Label {
        &self.label
    }

    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the
    /// format OpenSSL, OpenVPN and Go's `crypto/tls` read.
    pub fn private_key_pem(&self) -> String {
        ed25519_pem(self.seed.as_slice()).to_string()
    }

    /// A complete key file: the demo marker line (demo keys only) followed by
    /// [`Self::private_key_pem`]. PEM readers skip text before `-----BEGIN`.
    pub fn file_text(&self) -> String {
        match self.provenance.comment_line("#") {
            Some(line) => format!("{line}\n{}", self.private_key_pem()),
            None => self.private_key_pem(),
        }
    }

    /// The raw 32-byte public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.public
    }

    pub(crate) fn key_pair(&self) -> Result<rcgen::KeyPair, KeyError> {
        rcgen_pair(&self.seed).map_err(|reason| KeyError::Certificate {
            label: self.label.to_string(),
            reason,
        })
    }
}

fn rcgen_pair(seed: &[u8; 32]) -> Result<rcgen::KeyPair, String> {
    let der = ed25519_pkcs8(seed);
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der.as_slice().into(), &rcgen::PKCS_ED25519)
        .map_err(|e| format!("cannot load Ed25519 key: {e}"))
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("label", &self.label)
            .field("provenance", &self.provenance)
            .field("public_key", &BASE64.encode(self.public))
            .field("private_key", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> Label {
        Label::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn encode_decode_round_trip_every_kind() -> Result<(), KeyError> {
        for kind in KeyKind::ALL {
            let l = label(&format!(
                "{}/x",
                match kind {
                    KeyKind::WireGuardPrivate => "wireguard",
                    KeyKind::WireGuardPreshared => "wireguard-psk",
                    KeyKind::SharedSecret => "ipsec-psk",
                    KeyKind::TlsCrypt => "tls-crypt",
                    KeyKind::Ed25519 => "pki",
                }
            ));
            let raw = generate(kind, &mut DemoEntropy::new(7, kind, &l))?;
            let text = encode(kind, &raw);
            let back = decode(kind, &text).map_err(|r| KeyError::label(l.as_str(), r))?;
            assert_eq!(raw.as_slice(), back.as_slice(), "{kind}");
        }
        Ok(())
    }

    #[test]
    fn shared_secret_alphabet_and_length() -> Result<(), KeyError> {
        for i in 0..50u64 {
            let raw = generate(
                KeyKind::SharedSecret,
                &mut DemoEntropy::new(i, KeyKind::SharedSecret, &label("ipsec-psk/t")),
            )?;
            assert_eq!(raw.len(), SHARED_SECRET_LEN);
            assert!(raw.iter().all(|b| b.is_ascii_alphanumeric()));
        }
        Ok(())
    }

    #[test]
    fn wireguard_keys_are_clamped() -> Result<(), KeyError> {
        for i in 0..50u64 {
            let raw = generate(
                KeyKind::WireGuardPrivate,
                &mut DemoEntropy::new(i, KeyKind::WireGuardPrivate, &label("wireguard/h/wg0")),
            )?;
            assert_eq!(raw[0] & 7, 0);
            assert_eq!(raw[31] & 0xc0, 0x40);
        }
        Ok(())
    }

    #[test]
    fn static_key_shape() -> Result<(), KeyError> {
        let l = label("tls-crypt/d");
        let raw = generate(
            KeyKind::TlsCrypt,
            &mut DemoEntropy::new(1, KeyKind::TlsCrypt, &l),
        )?;
        let key = TlsCryptKey::from_raw(l, Provenance::Demo { seed: 1 }, &raw);
        let block = key.block();
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines.len(), 18);
        assert_eq!(lines[0], STATIC_KEY_BEGIN);
        assert_eq!(lines[17], STATIC_KEY_END);
        assert!(lines[1..17].iter().all(|l| {
            l.len() == 32
                && l.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        assert!(
            key.file_text()
                .starts_with("# DEMO KEY derived from scenario seed 1 ")
        );
        Ok(())
    }

    #[test]
    fn decode_errors_do_not_quote_content() {
        let secret = "SUPERSECRETVALUE-SUPERSECRETVALUE";
        for kind in KeyKind::ALL {
            if let Err(reason) = decode(kind, &format!("{secret} trailing junk\n")) {
                assert!(!reason.contains("SUPERSECRET"), "{kind}: {reason}");
            }
        }
        assert!(decode(KeyKind::WireGuardPrivate, "AAAA\n").is_err());
        assert!(decode(KeyKind::SharedSecret, "short\n").is_err());
        assert!(
            decode(
                KeyKind::SharedSecret,
                "with\"quote-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
            )
            .is_err()
        );
        assert!(
            decode(
                KeyKind::TlsCrypt,
                "-----BEGIN OpenVPN Static key V1-----\nabcd\n-----END OpenVPN Static key V1-----\n"
            )
            .is_err()
        );
        assert!(
            decode(
                KeyKind::Ed25519,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }
}
