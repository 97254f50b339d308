//! Key labels: the stable name of every secret.
//!
//! A label is a `/`-separated path such as `wireguard/hub/wg0`. Its first
//! component (the namespace) fixes the [`KeyKind`]; the whole label is both
//! the input of demo derivation and the file name in a [`KeyStore`]
//! (`KEYDIR/<label>.<ext>`). Each key depends only on its own label, so
//! adding a host or a link never changes any other key.
//!
//! [`KeyStore`]: crate::KeyStore

use std::fmt;

use crate::KeyError;

/// The kind of secret a label holds. The label's namespace decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// WireGuard Curve25519 private key (namespace `wireguard`, file `.key`,
    /// base64 as `wg genkey` writes it).
    WireGuardPrivate,
    /// WireGuard `PresharedKey` (namespace `wireguard-psk`, file `.psk`,
    /// base64 as `wg genpsk` writes it).
    WireGuardPreshared,
    /// Printable pre-shared secret for IPsec (`ipsec-psk`) and PeerVPN
    /// (`peervpn-psk`); file `.secret`.
    SharedSecret,
    /// OpenVPN static key V1 used for `tls-crypt` (namespace `tls-crypt`,
    /// file `.key` in OpenVPN's own format).
    TlsCrypt,
    /// Ed25519 signing key of a CA or a certificate holder (namespace `pki`,
    /// file `.key`, PKCS#8 PEM).
    Ed25519,
}

impl KeyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::WireGuardPrivate,
        KeyKind::WireGuardPreshared,
        KeyKind::SharedSecret,
        KeyKind::TlsCrypt,
        KeyKind::Ed25519,
    ];

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::WireGuardPrivate => "WireGuard private",
            KeyKind::WireGuardPreshared => "WireGuard preshared",
            KeyKind::SharedSecret => "shared secret",
            KeyKind::TlsCrypt => "OpenVPN tls-crypt",
            KeyKind::Ed25519 => "Ed25519",
        }
    }

    /// File name extension (without the dot) of this kind in a key store.
    pub fn extension(self) -> &'static str {
        match self {
            KeyKind::WireGuardPrivate | KeyKind::TlsCrypt | KeyKind::Ed25519 => "key",
            KeyKind::WireGuardPreshared => "psk",
            KeyKind::SharedSecret => "secret",
        }
    }

    /// Domain-separation tag mixed into demo derivation, so that two kinds
    /// never share key bytes even under the same label.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            KeyKind::WireGuardPrivate => "wireguard-private",
            KeyKind::WireGuardPreshared => "wireguard-preshared",
            KeyKind::SharedSecret => "shared-secret",
            KeyKind::TlsCrypt => "openvpn-static-key-v1",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    /// The kind stored under a namespace (a label's first component).
    pub fn for_namespace(namespace: &str) -> Option<KeyKind> {
        Some(match namespace {
            ns::WIREGUARD => KeyKind::WireGuardPrivate,
            ns::WIREGUARD_PSK => KeyKind::WireGuardPreshared,
            ns::IPSEC_PSK | ns::PEERVPN_PSK => KeyKind::SharedSecret,
            ns::TLS_CRYPT => KeyKind::TlsCrypt,
            ns::PKI => KeyKind::Ed25519,
            _ => return None,
        })
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Label namespaces (first components).
pub mod ns {
    pub const WIREGUARD: &str = "wireguard";
    pub const WIREGUARD_PSK: &str = "wireguard-psk";
    pub const IPSEC_PSK: &str = "ipsec-psk";
    pub const PEERVPN_PSK: &str = "peervpn-psk";
    pub const TLS_CRYPT: &str = "tls-crypt";
    pub const PKI: &str = "pki";
    /// Every namespace, sorted.
    pub const ALL: [&str; 6] = [
        IPSEC_PSK,
        PEERVPN_PSK,
        PKI,
        TLS_CRYPT,
        WIREGUARD,
        WIREGUARD_PSK,
    ];
}

/// Well-known PKI purposes (the second component of a `pki/...` label).
pub mod purpose {
    /// The OpenVPN server/client PKI of a deployment.
    pub const OPENVPN: &str = "openvpn";
    /// The eduVPN vpn-daemon control channel (server cert per node, client
    /// cert on the controller).
    pub const VPN_DAEMON: &str = "vpn-daemon";
}

/// Longest component accepted (a DNS name fits; file systems allow 255
/// bytes and the store adds an extension and a temporary-file prefix).
pub const MAX_COMPONENT_LEN: usize = 200;
/// Most components accepted in one label.
pub const MAX_COMPONENTS: usize = 8;

/// The stable name of one secret, e.g. `wireguard/hub/wg0`.
///
/// Components are non-empty ASCII without whitespace, `/`, `\`, `:` or
/// control characters, and do not start with `.` (so `.` and `..` cannot
/// escape the store, and the store's `.`-prefixed temporary files never look
/// like keys). Labels are not secret: `Debug` and `Display` print them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

impl Label {
    /// Parse a label written as `a/b/c`. The namespace must be one of
    /// [`ns::ALL`].
    pub fn new(text: &str) -> Result<Self, KeyError> {
        let components: Vec<&str> = text.split('/').collect();
        if components.len() < 2 {
            return Err(KeyError::label(
                text,
                "a label has a namespace and at least one more component, e.g. `wireguard/hub/wg0`",
            ));
        }
        if components.len() > MAX_COMPONENTS {
            return Err(KeyError::label(
                text,
                format!("more than {MAX_COMPONENTS} components"),
            ));
        }
        for component in &components {
            check_component(text, component)?;
        }
        if KeyKind::for_namespace(components[0]).is_none() {
            return Err(KeyError::label(
                text,
                format!(
                    "unknown namespace `{}`; expected one of {}",
                    components[0],
                    ns::ALL.join(", ")
                ),
            ));
        }
        Ok(Label(text.to_owned()))
    }

    /// Build a label from components (each checked as in [`Label::new`]).
    pub fn from_components<I, S>(components: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parts: Vec<String> = components
            .into_iter()
            .map(|c| c.as_ref().to_owned())
            .collect();
        // Check components one by one first so that a `/` inside one is
        // reported as such instead of silently adding a level.
        let joined = parts.join("/");
        for part in &parts {
            check_component(&joined, part)?;
        }
        Label::new(&joined)
    }

    /// `wireguard/<host>/<iface>`: a host's WireGuard interface key.
    pub fn wireguard(host: &str, iface: &str) -> Result<Self, KeyError> {
        Label::from_components([ns::WIREGUARD, host, iface])
    }

    /// `wireguard-psk/<scope>/<a>/<b>`: the `PresharedKey` of one peer pair
    /// within `scope` (a star or interface name). The pair is sorted, so
    /// both ends get the same label whichever asks.
    pub fn wireguard_psk(scope: &str, peer_a: &str, peer_b: &str) -> Result<Self, KeyError> {
        let (lo, hi) = if peer_a <= peer_b {
            (peer_a, peer_b)
        } else {
            (peer_b, peer_a)
        };
        Label::from_components([ns::WIREGUARD_PSK, scope, lo, hi])
    }

    /// `ipsec-psk/<tunnel>`: an IPsec tunnel's pre-shared secret.
    pub fn ipsec_psk(tunnel: &str) -> Result<Self, KeyError> {
        Label::from_components([ns::IPSEC_PSK, tunnel])
    }

    /// `peervpn-psk/<mesh>`: a PeerVPN mesh's `psk`.
    pub fn peervpn_psk(mesh: &str) -> Result<Self, KeyError> {
        Label::from_components([ns::PEERVPN_PSK, mesh])
    }

    /// `tls-crypt/<deployment>`: an OpenVPN deployment's tls-crypt key (the
    /// eduVPN `ta.key` shared by every node of a merged profile).
    pub fn tls_crypt(deployment: &str) -> Result<Self, KeyError> {
        Label::from_components([ns::TLS_CRYPT, deployment])
    }

    /// `pki/<purpose>/<deployment>/ca`: the signing key of a CA.
    pub fn ca(purpose: &str, deployment: &str) -> Result<Self, KeyError> {
        Label::from_components([ns::PKI, purpose, deployment, "ca"])
    }

    /// `pki/<purpose>/<deployment>/issued/<entity>`: the key of a
    /// certificate holder under that CA.
    pub fn issued(purpose: &str, deployment: &str, entity: &str) -> Result<Self, KeyError> {
        Label::from_components([ns::PKI, purpose, deployment, "issued", entity])
    }

    /// The label as written (`a/b/c`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The namespace (first component).
    pub fn namespace(&self) -> &str {
        self.components().next().unwrap_or_default()
    }

    /// The kind of key this label holds.
    pub fn kind(&self) -> KeyKind {
        // `new` guarantees a known namespace.
        KeyKind::for_namespace(self.namespace()).unwrap_or(KeyKind::SharedSecret)
    }

    /// Check a label prefix as [`KeyStore::rotate`] takes it: one or more
    /// valid components (a trailing `/` is ignored), the first a known
    /// namespace.
    ///
    /// [`KeyStore::rotate`]: crate::KeyStore::rotate
    pub fn check_prefix(prefix: &str) -> Result<(), KeyError> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(KeyError::label(
                prefix,
                "empty prefix: name a namespace, host, tunnel or deployment",
            ));
        }
        let components: Vec<&str> = trimmed.split('/').collect();
        for component in &components {
            check_component(prefix, component)?;
        }
        if KeyKind::for_namespace(components[0]).is_none() {
            return Err(KeyError::label(
                prefix,
                format!(
                    "unknown namespace `{}`; expected one of {}",
                    components[0],
                    ns::ALL.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Component-wise prefix test: `wireguard/a` matches `wireguard/a/wg0`
    /// but not `wireguard/ab/wg0`. A trailing `/` in `prefix` is ignored.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return false;
        }
        let mut mine = self.components();
        prefix.split('/').all(|p| mine.next() == Some(p))
    }
}

fn check_component(label: &str, component: &str) -> Result<(), KeyError> {
    if component.is_empty() {
        return Err(KeyError::label(label, "empty component"));
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(KeyError::label(
            label,
            format!("component longer than {MAX_COMPONENT_LEN} bytes"),
        ));
    }
    if component.starts_with('.') {
        return Err(KeyError::label(
            label,
            format!("component `{component}` starts with `.`"),
        ));
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | '\\' | ':'))
    {
        return Err(KeyError::label(
            label,
            format!(
                "component `{}` contains {:?}; allowed: printable ASCII except / \\ :",
                component.escape_debug(),
                bad
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({:?})", self.0)
    }
}

impl std::str::FromStr for Label {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Label::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_give_expected_labels() -> Result<(), KeyError> {
        assert_eq!(
            Label::wireguard("hub", "wg0")?.as_str(),
            "wireguard/hub/wg0"
        );
        assert_eq!(
            Label::wireguard_psk("star", "b", "a")?.as_str(),
            "wireguard-psk/star/a/b"
        );
        assert_eq!(
            Label::wireguard_psk("star", "a", "b")?,
            Label::wireguard_psk("star", "b", "a")?
        );
        assert_eq!(
            Label::ipsec_psk("sydney-hub")?.as_str(),
            "ipsec-psk/sydney-hub"
        );
        assert_eq!(
            Label::ca(purpose::VPN_DAEMON, "edu")?.as_str(),
            "pki/vpn-daemon/edu/ca"
        );
        assert_eq!(
            Label::issued(purpose::OPENVPN, "edu", "node-a.example.org")?.as_str(),
            "pki/openvpn/edu/issued/node-a.example.org"
        );
        assert_eq!(Label::ca("openvpn", "d")?.kind(), KeyKind::Ed25519);
        assert_eq!(Label::tls_crypt("d")?.kind(), KeyKind::TlsCrypt);
        Ok(())
    }

    #[test]
    fn rejects_escapes_and_junk() {
        for bad in [
            "wireguard",
            "wireguard/../x",
            "wireguard/./x",
            "wireguard/.hidden/x",
            "wireguard//x",
            "wireguard/a b/x",
            "wireguard/a\\b",
            "wireguard/a:b",
            "wireguard/a\n",
            "nope/a",
            "/wireguard/a",
            "wireguard/a/",
        ] {
            assert!(Label::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Label::wireguard("a/b", "wg0").is_err());
        assert!(Label::wireguard("a", "..").is_err());
    }

    #[test]
    fn prefix_is_component_wise() -> Result<(), KeyError> {
        let l = Label::wireguard("a", "wg0")?;
        assert!(l.has_prefix("wireguard"));
        assert!(l.has_prefix("wireguard/a"));
        assert!(l.has_prefix("wireguard/a/"));
        assert!(l.has_prefix("wireguard/a/wg0"));
        assert!(!l.has_prefix("wireguard/ab"));
        assert!(!l.has_prefix("wire"));
        assert!(!l.has_prefix(""));
        assert!(!l.has_prefix("wireguard/a/wg0/x"));
        Ok(())
    }
}
