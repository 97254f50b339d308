//! Certificates: one CA per purpose and deployment, server and client
//! certificates under it, all Ed25519.
//!
//! Why Ed25519 in both modes: EdDSA signatures are deterministic (RFC 8032),
//! so a certificate is a pure function of the CA key, the holder's key and
//! the request. With serial numbers taken from a hash of those inputs and
//! validity dates from the scenario, the same keys give byte-identical PEM on
//! every run and no clock is read. In demo mode that makes the whole tree
//! reproducible from the seed; in production mode it means re-running never
//! re-issues a certificate by accident (the keys come from the store, so the
//! certificates come out the same). ECDSA (P-256) was not chosen because its
//! signatures here are randomized. OpenSSL 3 and OpenVPN 2.6 (OpenSSL build)
//! accept Ed25519 certificates, and so does Go's `crypto/tls` (vpn-daemon);
//! an OpenVPN client built with mbed TLS 2 would not.
//!
//! Validity: from 00:00:00 UTC of `valid_from` to 23:59:59 UTC of
//! `valid_until`, both from the scenario; [`DEFAULT_VALID_FROM`] and
//! [`DEFAULT_VALID_UNTIL`] when the scenario gives none. Issued certificates
//! share their CA's validity (as vpn-ca's `-not-after CA`).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest as _, Sha256};

use crate::{Ed25519Key, KeyError, Label, Provenance};

/// Certificates start at 00:00:00 UTC of this date when the scenario has no
/// `valid_from`.
pub const DEFAULT_VALID_FROM: &str = "2025-01-01";
/// Certificates end at 23:59:59 UTC of this date when the scenario has no
/// `valid_until`.
pub const DEFAULT_VALID_UNTIL: &str = "2035-12-31";

/// A calendar date (UTC), written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A date from its parts, checked as [`Date::parse`] checks text.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, KeyError> {
        Date::parse("date", &format!("{year:04}-{month:02}-{day:02}"))
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }

    /// Parse `YYYY-MM-DD` (years 1970 to 9999, real calendar days).
    /// `field` names the scenario field in the error.
    pub fn parse(field: &'static str, text: &str) -> Result<Date, KeyError> {
        let err = |reason: &str| KeyError::InvalidDate {
            field,
            value: text.to_owned(),
            reason: reason.to_owned(),
        };
        let bytes = text.as_bytes();
        if !text.is_ascii() || bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(err("expected YYYY-MM-DD"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<u16, KeyError> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected YYYY-MM-DD"));
            }
            part.parse().map_err(|_| err("expected YYYY-MM-DD"))
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1970..=9999).contains(&year) {
            return Err(err("year must be between 1970 and 9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(err("month must be 01 to 12"));
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day < 1 || day > days {
            return Err(err("no such day in that month"));
        }
        Ok(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The validity period of a CA and everything it issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Validity {
    from: Date,
    until: Date,
}

impl Validity {
    /// A period; `from` must be before `until`.
    pub fn new(from: Date, until: Date) -> Result<Self, KeyError> {
        if from >= until {
            return Err(KeyError::InvalidDate {
                field: "valid_until",
                value: until.to_string(),
                reason: format!("must be after valid_from {from}"),
            });
        }
        Ok(Validity { from, until })
    }

    /// From the scenario's `valid_from` / `valid_until` (`YYYY-MM-DD`), each
    /// defaulting to [`DEFAULT_VALID_FROM`] / [`DEFAULT_VALID_UNTIL`].
    pub fn from_scenario(
        valid_from: Option<&str>,
        valid_until: Option<&str>,
    ) -> Result<Self, KeyError> {
        let from = Date::parse("valid_from", valid_from.unwrap_or(DEFAULT_VALID_FROM))?;
        let until = Date::parse("valid_until", valid_until.unwrap_or(DEFAULT_VALID_UNTIL))?;
        Validity::new(from, until)
    }

    /// First day (valid from 00:00:00 UTC).
    pub fn from(self) -> Date {
        self.from
    }

    /// Last day (valid until 23:59:59 UTC).
    pub fn until(self) -> Date {
        self.until
    }

    fn apply(self, params: &mut CertificateParams) {
        let (from, until) = (self.from, self.until);
        // `Date::parse` only lets real calendar dates through, which is what
        // `date_time_ymd` requires.
        params.not_before = rcgen::date_time_ymd(i32::from(from.year), from.month, from.day);
        params.not_after = rcgen::date_time_ymd(i32::from(until.year), until.month, until.day)
            + Duration::from_secs(86_399);
    }
}

impl Default for Validity {
    /// [`DEFAULT_VALID_FROM`] to [`DEFAULT_VALID_UNTIL`].
    fn default() -> Self {
        Validity {
            from: Date {
                year: 2025,
                month: 1,
                day: 1,
            },
            until: Date {
                year: 2035,
                month: 12,
                day: 31,
            },
        }
    }
}

/// What a CA is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaSpec {
    /// [`crate::purpose::OPENVPN`], [`crate::purpose::VPN_DAEMON`], or
    /// another label component.
    pub purpose: String,
    /// The deployment (OpenVPN instance, eduVPN installation) it serves.
    pub deployment: String,
    /// The CA certificate's subject CN.
    pub common_name: String,
    pub validity: Validity,
}

impl CaSpec {
    /// A CA with CN `<purpose> CA <deployment>`.
    pub fn new(purpose: &str, deployment: &str, validity: Validity) -> Self {
        CaSpec {
            purpose: purpose.to_owned(),
            deployment: deployment.to_owned(),
            common_name: format!("{purpose} CA {deployment}"),
            validity,
        }
    }

    /// The label of the CA's key: `pki/<purpose>/<deployment>/ca`.
    pub fn label(&self) -> Result<Label, KeyError> {
        Label::ca(&self.purpose, &self.deployment)
    }
}

/// Which side of a TLS connection a certificate authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertUsage {
    /// Extended key usage serverAuth (TLS Web Server Authentication), as
    /// OpenVPN's `remote-cert-tls server` and the vpn-daemon's clients check.
    Server,
    /// Extended key usage clientAuth (TLS Web Client Authentication), as
    /// `remote-cert-tls client` and the vpn-daemon check.
    Client,
}

impl CertUsage {
    fn name(self) -> &'static str {
        match self {
            CertUsage::Server => "server",
            CertUsage::Client => "client",
        }
    }
}

/// A certificate to issue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertRequest {
    /// The holder's name in the key label (`pki/<purpose>/<deployment>/issued/<entity>`).
    pub entity: String,
    /// The subject CN.
    pub common_name: String,
    pub usage: CertUsage,
    /// SAN DNS names.
    pub dns_names: Vec<String>,
    /// SAN IP addresses.
    pub ip_addresses: Vec<IpAddr>,
}

impl CertRequest {
    /// A server certificate with CN `entity` and, as vpn-ca does, the same
    /// name as a SAN DNS name (when it is a valid DNS name).
    pub fn server(entity: &str) -> Self {
        CertRequest {
            entity: entity.to_owned(),
            common_name: entity.to_owned(),
            usage: CertUsage::Server,
            dns_names: if is_dns_name(entity) {
                vec![entity.to_owned()]
            } else {
                Vec::new()
            },
            ip_addresses: Vec::new(),
        }
    }

    /// A client certificate with CN `entity` and no SAN.
    pub fn client(entity: &str) -> Self {
        CertRequest {
            entity: entity.to_owned(),
            common_name: entity.to_owned(),
            usage: CertUsage::Client,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// Add a SAN DNS name (kept sorted and unique).
    pub fn with_dns_name(mut self, name: &str) -> Self {
        if !self.dns_names.iter().any(|n| n == name) {
            self.dns_names.push(name.to_owned());
            self.dns_names.sort();
        }
        self
    }

    /// Add a SAN IP address (kept sorted and unique).
    pub fn with_ip_address(mut self, ip: IpAddr) -> Self {
        if !self.ip_addresses.contains(&ip) {
            self.ip_addresses.push(ip);
            self.ip_addresses.sort();
        }
        self
    }

    /// Set the subject CN.
    pub fn with_common_name(mut self, common_name: &str) -> Self {
        self.common_name = common_name.to_owned();
        self
    }
}

fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A certificate authority: its key and self-signed certificate.
#[derive(Clone)]
pub struct CertificateAuthority {
    spec: CaSpec,
    key: Ed25519Key,
    params: CertificateParams,
    cert_pem: String,
    cert_der: Vec<u8>,
}

impl CertificateAuthority {
    /// Build the CA from its key (the key's label must be `spec.label()`).
    pub(crate) fn build(spec: &CaSpec, key: Ed25519Key) -> Result<Self, KeyError> {
        let label = key.label().clone();
        let cert_err = |reason: String| KeyError::Certificate {
            label: label.to_string(),
            reason,
        };
        if spec.common_name.trim().is_empty() {
            return Err(cert_err("the CA's common name is empty".to_owned()));
        }
        let mut params = CertificateParams::default();
        spec.validity.apply(&mut params);
        params.distinguished_name = distinguished_name(&spec.common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(serial(&[
            b"ca",
            label.as_str().as_bytes(),
            &key.public_key_bytes(),
            spec.common_name.as_bytes(),
            spec.validity.from.to_string().as_bytes(),
            spec.validity.until.to_string().as_bytes(),
        ]));
        let pair = key.key_pair()?;
        let cert = params
            .self_signed(&pair)
            .map_err(|e| cert_err(format!("cannot sign the CA certificate: {e}")))?;
        Ok(CertificateAuthority {
            spec: spec.clone(),
            key,
            params,
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        })
    }

    /// Issue a certificate for `key` (whose label names the entity).
    pub(crate) fn issue_with(
        &self,
        request: &CertRequest,
        key: Ed25519Key,
    ) -> Result<IssuedCertificate, KeyError> {
        let label = key.label().clone();
        let cert_err = |reason: String| KeyError::Certificate {
            label: label.to_string(),
            reason,
        };
        if request.common_name.trim().is_empty() {
            return Err(cert_err("the common name is empty".to_owned()));
        }
        let mut params = CertificateParams::default();
        self.spec.validity.apply(&mut params);
        params.distinguished_name = distinguished_name(&request.common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match request.usage {
            CertUsage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            CertUsage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        let mut dns_names = request.dns_names.clone();
        dns_names.sort();
        dns_names.dedup();
        let mut ips = request.ip_addresses.clone();
        ips.sort();
        ips.dedup();
        for name in &dns_names {
            if !is_dns_name(name) {
                return Err(cert_err(format!(
                    "`{name}` is not a valid DNS name for a SAN"
                )));
            }
            let ia5 = name
                .clone()
                .try_into()
                .map_err(|e| cert_err(format!("SAN `{name}`: {e}")))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        params
            .subject_alt_names
            .extend(ips.iter().copied().map(SanType::IpAddress));
        let canonical = format!(
            "{}\0{}\0{}\0{}\0{}",
            request.common_name,
            request.usage.name(),
            dns_names.join(","),
            ips.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            self.spec.validity.from,
        ) + &format!("\0{}", self.spec.validity.until);
        params.serial_number = Some(serial(&[
            b"leaf",
            self.key.label().as_str().as_bytes(),
            &self.key.public_key_bytes(),
            label.as_str().as_bytes(),
            &key.public_key_bytes(),
            canonical.as_bytes(),
        ]));
        let ca_pair = self.key.key_pair()?;
        let issuer = Issuer::from_params(&self.params, ca_pair);
        let pair = key.key_pair()?;
        let cert = params
            .signed_by(&pair, &issuer)
            .map_err(|e| cert_err(format!("cannot sign: {e}")))?;
        Ok(IssuedCertificate {
            entity: request.entity.clone(),
            usage: request.usage,
            provenance: key.provenance().combine(self.key.provenance()),
            key,
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            ca_cert_pem: self.cert_pem.clone(),
        })
    }

    pub fn spec(&self) -> &CaSpec {
        &self.spec
    }

    /// The label of the CA key.
    pub fn label(&self) -> &Label {
        self.key.label()
    }

    pub fn provenance(&self) -> Provenance {
        self.key.provenance()
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// A `ca.crt` file: the demo marker line (demo CAs only), then the PEM.
    pub fn cert_file_text(&self) -> String {
        with_marker(self.provenance(), &self.cert_pem)
    }

    /// The CA's signing key. Rendered files never need it (a CA key stays
    /// where the CA is run); it is here for tools that sign elsewhere.
    pub fn key(&self) -> &Ed25519Key {
        &self.key
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("spec", &self.spec)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A certificate with its holder's key.
#[derive(Clone)]
pub struct IssuedCertificate {
    entity: String,
    usage: CertUsage,
    provenance: Provenance,
    key: Ed25519Key,
    cert_pem: String,
    cert_der: Vec<u8>,
    ca_cert_pem: String,
}

impl IssuedCertificate {
    pub fn entity(&self) -> &str {
        &self.entity
    }

    pub fn usage(&self) -> CertUsage {
        self.usage
    }

    /// The label of the holder's key.
    pub fn label(&self) -> &Label {
        self.key.label()
    }

    /// Demo if the holder's key or the CA's key is a demo key.
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The issuing CA's certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The holder's key.
    pub fn key(&self) -> &Ed25519Key {
        &self.key
    }

    /// The holder's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.private_key_pem()
    }

    /// A certificate file: the demo marker line (demo only), then the PEM.
    pub fn cert_file_text(&self) -> String {
        with_marker(self.provenance, &self.cert_pem)
    }

    /// A private key file: the demo marker line (demo only), then the PEM.
    pub fn key_file_text(&self) -> String {
        with_marker(self.provenance, &self.key.private_key_pem())
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("entity", &self.entity)
            .field("usage", &self.usage)
            .field("provenance", &self.provenance)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn with_marker(provenance: Provenance, pem: &str) -> String {
    match provenance.comment_line("#") {
        Some(line) => format!("{line}\n{pem}"),
        None => pem.to_owned(),
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A 16-byte positive serial number from a hash of the certificate's inputs:
/// unique per (issuer, holder key, content), stable across runs.
fn serial(parts: &[&[u8]]) -> SerialNumber {
    let mut hash = Sha256::new();
    hash.update(b"vpnsim-keys/serial/v1\0");
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Positive, and no leading zero byte, so the DER INTEGER is 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(Date::parse("f", "2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "25-01-01",
            "2025-1-01",
            "１９７０-01-01",
            "1969-12-31",
            "2025/01/01",
        ] {
            assert!(Date::parse("f", bad).is_err(), "{bad}");
        }
        assert!(Validity::from_scenario(Some("2026-01-01"), Some("2025-01-01")).is_err());
        assert_eq!(
            Validity::from_scenario(None, None).ok(),
            Some(Validity::default())
        );
        assert_eq!(Validity::default().from().to_string(), DEFAULT_VALID_FROM);
        assert_eq!(Validity::default().until().to_string(), DEFAULT_VALID_UNTIL);
    }

    #[test]
    fn serials_are_positive_16_bytes() {
        for i in 0u8..100 {
            let s = serial(&[&[i]]).to_bytes();
            assert_eq!(s.len(), 16);
            assert!(s[0] >= 0x40 && s[0] < 0x80);
        }
    }
}
