//! Integration tests of vpnsim-keys: derivation, the key store, the PKI, and
//! checks against the real tools (wg, openvpn, openssl).
//!
//! A missing tool is a failure, not a skip: `scripts/test` installs them
//! (wireguard-tools, openvpn, openssl), and a check that cannot run proves
//! nothing.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;
use vpnsim_keys::{
    CaSpec, CertRequest, CertificateAuthority, IssuedCertificate, KeyError, KeySource, KeyStore,
    Label, Provenance, SHARED_SECRET_LEN, Validity, purpose,
};

type TestResult = Result<(), Box<dyn Error>>;

// ------------------------------------------------------------------ helpers

/// Every kind of key for one small deployment, as a renderer would ask.
fn labels() -> Result<Vec<Label>, KeyError> {
    Ok(vec![
        Label::wireguard("hub", "wg0")?,
        Label::wireguard("spoke-1", "wg0")?,
        Label::wireguard_psk("star", "hub", "spoke-1")?,
        Label::ipsec_psk("sydney-hub")?,
        Label::peervpn_psk("mgmt")?,
        Label::tls_crypt("edu")?,
    ])
}

/// A printable fingerprint of one key, secret part included (tests only).
fn secret_of(source: &KeySource, label: &Label) -> Result<String, KeyError> {
    Ok(match label.namespace() {
        "wireguard" => source.wireguard(label)?.private_key(),
        "wireguard-psk" => source.wireguard_psk(label)?.base64(),
        "ipsec-psk" | "peervpn-psk" => source.shared_secret(label)?.as_str().to_owned(),
        "tls-crypt" => source.tls_crypt(label)?.block(),
        _ => source.ed25519(label)?.private_key_pem(),
    })
}

fn all_secrets(source: &KeySource) -> Result<BTreeMap<String, String>, KeyError> {
    labels()?
        .iter()
        .map(|l| Ok((l.to_string(), secret_of(source, l)?)))
        .collect()
}

struct Pki {
    ca: CertificateAuthority,
    server: IssuedCertificate,
    client: IssuedCertificate,
}

fn pki(source: &KeySource, validity: Validity) -> Result<Pki, KeyError> {
    let ca = source.certificate_authority(&CaSpec::new(purpose::OPENVPN, "edu", validity))?;
    let server = source.issue(
        &ca,
        &CertRequest::server("node-a.example.org")
            .with_ip_address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 72))),
    )?;
    let client = source.issue(&ca, &CertRequest::client("vpn-daemon-client"))?;
    Ok(Pki { ca, server, client })
}

fn mode(path: &Path) -> Result<u32, std::io::Error> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o7777)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), std::io::Error> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out)?;
        }
    }
    Ok(())
}

/// Write every file a renderer would write for this source into `dir`.
fn write_tree(source: &KeySource, dir: &Path) -> TestResult {
    for (label, secret) in all_secrets(source)? {
        let path = dir.join(label.replace('/', "_"));
        fs::write(path, secret)?;
    }
    let p = pki(source, Validity::default())?;
    fs::write(dir.join("ca.crt"), p.ca.cert_file_text())?;
    fs::write(dir.join("server.crt"), p.server.cert_file_text())?;
    fs::write(dir.join("server.key"), p.server.key_file_text())?;
    fs::write(dir.join("client.crt"), p.client.cert_file_text())?;
    fs::write(dir.join("client.key"), p.client.key_file_text())?;
    Ok(())
}

fn read_tree(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, std::io::Error> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            Ok((
                p.strip_prefix(dir).unwrap_or(&p).display().to_string(),
                fs::read(&p)?,
            ))
        })
        .collect()
}

/// The path of `name`; panics with the package to install when it is missing.
/// (Returns `Option` so call sites read naturally; it is always `Some`.)
fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    let found = dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file());
    assert!(
        found.is_some(),
        "`{name}` is not installed: run scripts/test, which installs it (Debian: wireguard-tools / openvpn / openssl)"
    );
    found
}

/// Run a command, feeding `stdin`; returns (success, stdout + stderr).
fn run(
    program: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(bool, String), Box<dyn Error>> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

fn write_private(path: &Path, text: &str) -> TestResult {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

// ------------------------------------------------------------- derivation

#[test]
fn demo_keys_are_deterministic_and_seed_dependent() -> TestResult {
    let a = all_secrets(&KeySource::demo(42))?;
    let b = all_secrets(&KeySource::demo(42))?;
    let c = all_secrets(&KeySource::demo(43))?;
    assert_eq!(a, b);
    for (label, secret) in &a {
        assert_ne!(
            Some(secret),
            c.get(label),
            "{label} does not depend on the seed"
        );
    }
    // All keys distinct from each other.
    let mut values: Vec<&String> = a.values().collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), a.len());
    Ok(())
}

#[test]
fn demo_keys_are_marked() -> TestResult {
    let source = KeySource::demo(7);
    let marker =
        "# DEMO KEY derived from scenario seed 7 -- for tests and demos only, never for production";
    assert_eq!(source.provenance(), Provenance::Demo { seed: 7 });
    assert_eq!(
        source.provenance().comment_line("#").as_deref(),
        Some(marker)
    );
    let tls = source.tls_crypt(&Label::tls_crypt("edu")?)?;
    assert!(
        tls.file_text()
            .starts_with(&format!("{marker}\n#\n# 2048 bit OpenVPN static key\n#\n"))
    );
    let p = pki(&source, Validity::default())?;
    for text in [
        p.ca.cert_file_text(),
        p.server.cert_file_text(),
        p.server.key_file_text(),
        p.client.key_file_text(),
    ] {
        assert!(
            text.starts_with(&format!("{marker}\n-----BEGIN ")),
            "{text}"
        );
    }
    assert!(p.server.provenance().is_demo());
    assert!(
        source
            .wireguard(&Label::wireguard("hub", "wg0")?)?
            .provenance()
            .is_demo()
    );
    Ok(())
}

#[test]
fn adding_a_host_changes_no_other_key() -> TestResult {
    let source = KeySource::demo(1);
    let before = all_secrets(&source)?;
    // A new host and link are derived first, then the old ones again.
    source.wireguard(&Label::wireguard("new-host", "wg0")?)?;
    source.shared_secret(&Label::ipsec_psk("new-link")?)?;
    assert_eq!(before, all_secrets(&source)?);
    Ok(())
}

#[test]
fn same_inputs_give_a_byte_identical_tree() -> TestResult {
    let (one, two, other) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    write_tree(&KeySource::demo(99), one.path())?;
    write_tree(&KeySource::demo(99), two.path())?;
    write_tree(&KeySource::demo(100), other.path())?;
    let (a, b, c) = (
        read_tree(one.path())?,
        read_tree(two.path())?,
        read_tree(other.path())?,
    );
    assert_eq!(a.len(), 11);
    assert_eq!(a, b);
    for (name, bytes) in &a {
        assert_ne!(
            Some(bytes),
            c.get(name),
            "{name} is the same under another seed"
        );
    }
    Ok(())
}

#[test]
fn wrong_kind_is_refused() -> TestResult {
    let source = KeySource::demo(1);
    let err = source
        .wireguard(&Label::ipsec_psk("t")?)
        .err()
        .ok_or("accepted")?;
    assert!(matches!(err, KeyError::WrongKind { .. }), "{err}");
    Ok(())
}

#[test]
fn debug_output_never_shows_a_secret() -> TestResult {
    let dir = tempfile::tempdir()?;
    for source in [KeySource::demo(5), KeySource::store(dir.path())?] {
        let wg = source.wireguard(&Label::wireguard("h", "wg0")?)?;
        let psk = source.wireguard_psk(&Label::wireguard_psk("s", "a", "b")?)?;
        let secret = source.shared_secret(&Label::ipsec_psk("t")?)?;
        let tls = source.tls_crypt(&Label::tls_crypt("d")?)?;
        let p = pki(&source, Validity::default())?;
        let debug = format!(
            "{source:?} {wg:?} {psk:?} {secret:?} {tls:?} {:?} {:?} {:?}",
            p.ca, p.server, p.client
        );
        let key_body = |pem: String| pem.lines().nth(1).unwrap_or_default().to_owned();
        let secrets = [
            wg.private_key(),
            psk.base64(),
            secret.as_str().to_owned(),
            tls.block().lines().nth(1).unwrap_or_default().to_owned(),
            key_body(p.ca.key().private_key_pem()),
            key_body(p.server.key_pem()),
            key_body(p.client.key_pem()),
        ];
        for s in secrets {
            assert!(s.len() >= 32);
            assert!(!debug.contains(&s), "secret in Debug output: {debug}");
        }
        assert!(debug.contains("<redacted>"));
        assert!(debug.contains(&wg.public_key()), "public keys may be shown");
    }
    Ok(())
}

// ---------------------------------------------------------------- the store

#[test]
fn store_reuses_keys_and_uses_private_modes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("keys");
    let first = all_secrets(&KeySource::store(&root)?)?;
    let p1 = pki(&KeySource::store(&root)?, Validity::default())?;
    // A second run (new store handle) reads the same keys and certificates.
    let second = all_secrets(&KeySource::store(&root)?)?;
    let p2 = pki(&KeySource::store(&root)?, Validity::default())?;
    assert_eq!(first, second);
    assert_eq!(p1.ca.cert_pem(), p2.ca.cert_pem());
    assert_eq!(p1.server.cert_pem(), p2.server.cert_pem());
    assert_eq!(p1.client.key_pem(), p2.client.key_pem());
    // Production keys are not the demo keys of any seed we use.
    assert_ne!(first, all_secrets(&KeySource::demo(0))?);
    assert_eq!(
        KeySource::store(&root)?.provenance(),
        Provenance::Production
    );
    assert!(
        p1.server
            .cert_file_text()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    let store = KeyStore::open(&root)?;
    let listed: Vec<String> = store.list()?.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            "ipsec-psk/sydney-hub",
            "peervpn-psk/mgmt",
            "pki/openvpn/edu/ca",
            "pki/openvpn/edu/issued/node-a.example.org",
            "pki/openvpn/edu/issued/vpn-daemon-client",
            "tls-crypt/edu",
            "wireguard-psk/star/hub/spoke-1",
            "wireguard/hub/wg0",
            "wireguard/spoke-1/wg0",
        ]
    );
    assert_eq!(
        store.path_of(&Label::wireguard("hub", "wg0")?),
        root.join("wireguard/hub/wg0.key")
    );
    assert_eq!(
        fs::read_to_string(root.join("pki/openvpn/edu/ca.crt"))?,
        p1.ca.cert_pem(),
        "the CA certificate is mirrored next to its key"
    );
    assert_eq!(
        fs::read_to_string(root.join("pki/openvpn/edu/issued/node-a.example.org.crt"))?,
        p1.server.cert_pem()
    );

    let mut paths = Vec::new();
    walk(&root, &mut paths)?;
    assert_eq!(mode(&root)?, 0o700);
    for path in paths {
        let name = path.display().to_string();
        assert!(
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.')),
            "temp file left: {name}"
        );
        let expected = if path.is_dir() {
            0o700
        } else if name.ends_with(".crt") {
            0o644
        } else {
            0o600
        };
        assert_eq!(mode(&path)?, expected, "{name}");
    }
    // The stored formats are the tools' own.
    let wg = fs::read_to_string(root.join("wireguard/hub/wg0.key"))?;
    assert_eq!(wg.len(), 45);
    assert!(wg.ends_with("=\n"));
    let tls = fs::read_to_string(root.join("tls-crypt/edu.key"))?;
    assert!(tls.starts_with(
        "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n"
    ));
    let ca_key = fs::read_to_string(root.join("pki/openvpn/edu/ca.key"))?;
    assert!(ca_key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let secret = fs::read_to_string(root.join("ipsec-psk/sydney-hub.secret"))?;
    assert_eq!(secret.trim_end().len(), SHARED_SECRET_LEN);
    Ok(())
}

#[test]
fn rotate_replaces_only_matching_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = KeySource::store(dir.path())?;
    let a = Label::wireguard("a", "wg0")?;
    let ab = Label::wireguard("ab", "wg0")?;
    let b = Label::wireguard("b", "wg0")?;
    let psk = Label::ipsec_psk("a")?;
    let before: Vec<String> = [&a, &ab, &b, &psk]
        .iter()
        .map(|l| secret_of(&source, l))
        .collect::<Result<_, _>>()?;
    let p_before = pki(&source, Validity::default())?;

    let store = KeyStore::open(dir.path())?;
    let rotated = store.rotate("wireguard/a")?;
    assert_eq!(rotated, vec![a.clone()]);
    let after: Vec<String> = [&a, &ab, &b, &psk]
        .iter()
        .map(|l| secret_of(&source, l))
        .collect::<Result<_, _>>()?;
    assert_ne!(before[0], after[0], "wireguard/a/wg0 rotated");
    assert_eq!(before[1..], after[1..], "nothing else changed");
    assert_eq!(mode(&store.path_of(&a))?, 0o600);

    // Nothing matches: nothing changes, no error.
    assert!(store.rotate("wireguard/zzz")?.is_empty());
    assert!(store.rotate("").is_err());
    assert!(store.rotate("bogus/x").is_err());
    assert!(store.rotate("wireguard/../x").is_err());

    // A host across namespaces: its WireGuard key and its certificate key.
    let host_rotated = store.rotate_where(|l| {
        l.components()
            .any(|c| c == "node-a.example.org" || c == "b")
    })?;
    let names: Vec<String> = host_rotated.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "pki/openvpn/edu/issued/node-a.example.org",
            "wireguard/b/wg0"
        ]
    );
    let p_after = pki(&source, Validity::default())?;
    assert_eq!(p_before.ca.cert_pem(), p_after.ca.cert_pem());
    assert_ne!(p_before.server.key_pem(), p_after.server.key_pem());
    assert_ne!(p_before.server.cert_pem(), p_after.server.cert_pem());
    assert_eq!(p_before.client.cert_pem(), p_after.client.cert_pem());

    // Rotating the CA removes the mirrored certificates it signed; the next
    // run issues new ones with the holders' unchanged keys.
    assert_eq!(store.rotate("pki/openvpn/edu/ca")?.len(), 1);
    assert!(!dir.path().join("pki/openvpn/edu/ca.crt").exists());
    assert!(
        !dir.path()
            .join("pki/openvpn/edu/issued/vpn-daemon-client.crt")
            .exists()
    );
    let p_new_ca = pki(&source, Validity::default())?;
    assert_ne!(p_after.ca.cert_pem(), p_new_ca.ca.cert_pem());
    assert_ne!(p_after.client.cert_pem(), p_new_ca.client.cert_pem());
    assert_eq!(p_after.client.key_pem(), p_new_ca.client.key_pem());
    assert!(dir.path().join("pki/openvpn/edu/ca.crt").exists());
    Ok(())
}

#[test]
fn bad_key_files_give_clear_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = KeySource::store(dir.path())?;
    let store = KeyStore::open(dir.path())?;

    // Corrupt content.
    let label = Label::wireguard("c", "wg0")?;
    let path = store.path_of(&label);
    fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    write_private(&path, "NOT-A-KEY-but-a-secret-looking-string\n")?;
    let err = source
        .wireguard(&label)
        .err()
        .ok_or("corrupt key accepted")?;
    let msg = err.to_string();
    assert!(matches!(err, KeyError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        !msg.contains("secret-looking"),
        "error quotes the file: {msg}"
    );
    assert_eq!(
        fs::read_to_string(&path)?,
        "NOT-A-KEY-but-a-secret-looking-string\n",
        "never overwritten"
    );

    // Too open.
    let label = Label::ipsec_psk("open")?;
    let first = source.shared_secret(&label)?;
    let path = store.path_of(&label);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    let err = source
        .shared_secret(&label)
        .err()
        .ok_or("0644 key accepted")?;
    let msg = err.to_string();
    assert!(
        matches!(err, KeyError::TooOpen { mode: 0o644, .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("0644")
            && msg.contains("chmod 600"),
        "{msg}"
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640))?;
    assert!(source.shared_secret(&label).is_err(), "group-readable");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    assert_eq!(
        source.shared_secret(&label)?.as_str(),
        first.as_str(),
        "fixed mode: same key again"
    );

    // A symlink is refused even when it points at a good key.
    let link_label = Label::ipsec_psk("link")?;
    symlink(&path, store.path_of(&link_label))?;
    let err = source
        .shared_secret(&link_label)
        .err()
        .ok_or("symlink accepted")?;
    assert!(matches!(err, KeyError::NotAFile { .. }), "{err}");

    // A directory where the key should be.
    let dir_label = Label::tls_crypt("dir")?;
    fs::create_dir_all(store.path_of(&dir_label))?;
    assert!(matches!(
        source.tls_crypt(&dir_label),
        Err(KeyError::NotAFile { .. })
    ));

    // A file where the store root should be.
    let file = dir.path().join("plain-file");
    fs::write(&file, "x")?;
    assert!(matches!(
        KeyStore::open(&file),
        Err(KeyError::NotAFile { .. })
    ));
    Ok(())
}

#[test]
fn concurrent_runs_agree_on_one_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || -> Result<Vec<String>, KeyError> {
                let source = KeySource::store(&root)?;
                (0..20)
                    .map(|i| {
                        Ok(source
                            .wireguard(&Label::wireguard(&format!("h{i}"), "wg0")?)?
                            .private_key())
                    })
                    .collect()
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().map_err(|_| "thread panicked")??);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    let mut all = Vec::new();
    walk(&root, &mut all)?;
    assert!(
        all.iter().all(|p| !p.to_string_lossy().contains(".tmp.")),
        "temp files left"
    );
    Ok(())
}

// --------------------------------------------------------------------- PKI

#[test]
fn certificates_are_deterministic_and_follow_the_scenario_dates() -> TestResult {
    let v = Validity::from_scenario(Some("2026-03-01"), Some("2027-02-28"))?;
    let a = pki(&KeySource::demo(3), v)?;
    let b = pki(&KeySource::demo(3), v)?;
    assert_eq!(a.ca.cert_pem(), b.ca.cert_pem());
    assert_eq!(a.server.cert_pem(), b.server.cert_pem());
    assert_eq!(a.client.cert_pem(), b.client.cert_pem());
    assert_eq!(a.server.key_pem(), b.server.key_pem());
    let c = pki(&KeySource::demo(3), Validity::default())?;
    assert_ne!(
        a.ca.cert_pem(),
        c.ca.cert_pem(),
        "dates are part of the certificate"
    );
    assert_eq!(
        a.ca.key().private_key_pem(),
        c.ca.key().private_key_pem(),
        "but not of the key"
    );
    assert!(Validity::from_scenario(Some("2026-13-01"), None).is_err());
    assert!(Validity::from_scenario(Some("2030-01-01"), Some("2029-01-01")).is_err());
    assert!(CertRequest::server("not a dns name").dns_names.is_empty());
    let bad = CertRequest::server("x").with_dns_name("bad name");
    assert!(matches!(
        KeySource::demo(3).issue(&a.ca, &bad),
        Err(KeyError::Certificate { .. })
    ));
    Ok(())
}

// ------------------------------------------------------------------ proptests

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9.-]{0,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_demo_derivation_is_deterministic(seed in any::<u64>(), host in component(), iface in component()) {
        let label = Label::wireguard(&host, &iface).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let one = KeySource::demo(seed).wireguard(&label).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let two = KeySource::demo(seed).wireguard(&label).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(one.private_key(), two.private_key());
        prop_assert_eq!(one.public_key(), two.public_key());
        let other = KeySource::demo(seed.wrapping_add(1)).wireguard(&label).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_ne!(one.private_key(), other.private_key());
    }

    #[test]
    fn prop_labels_are_independent(seed in any::<u64>(), hosts in proptest::collection::btree_set(component(), 1..8)) {
        // Each host's key is the same whether derived alone or among others,
        // and no two hosts share a key.
        let source = KeySource::demo(seed);
        let mut seen = std::collections::BTreeSet::new();
        for host in &hosts {
            let label = Label::wireguard(host, "wg0").map_err(|e| TestCaseError::fail(e.to_string()))?;
            let together = source.wireguard(&label).map_err(|e| TestCaseError::fail(e.to_string()))?.private_key();
            let alone = KeySource::demo(seed).wireguard(&label).map_err(|e| TestCaseError::fail(e.to_string()))?.private_key();
            prop_assert_eq!(&together, &alone);
            prop_assert!(seen.insert(together));
        }
    }

    #[test]
    fn prop_shared_secrets_are_safe(seed in any::<u64>(), tunnel in component()) {
        let label = Label::ipsec_psk(&tunnel).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let secret = KeySource::demo(seed).shared_secret(&label).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(secret.as_str().len(), SHARED_SECRET_LEN);
        prop_assert!(secret.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        prop_assert_eq!(secret.quoted(), format!("\"{}\"", secret.as_str()));
    }

    #[test]
    fn prop_parsers_never_panic(text in "\\PC{0,40}") {
        let _ = Label::new(&text);
        let _ = Label::check_prefix(&text);
        let _ = Validity::from_scenario(Some(&text), None);
        let _ = vpnsim_keys::Date::parse("valid_from", &text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn prop_store_second_run_reads_the_same_key(hosts in proptest::collection::btree_set(component(), 1..5)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let fail = |e: KeyError| TestCaseError::fail(e.to_string());
        let first = KeySource::store(dir.path()).map_err(fail)?;
        let second = KeySource::store(dir.path()).map_err(fail)?;
        for host in &hosts {
            let label = Label::wireguard(host, "wg0").map_err(fail)?;
            let a = first.wireguard(&label).map_err(fail)?;
            let b = second.wireguard(&label).map_err(fail)?;
            prop_assert_eq!(a.private_key(), b.private_key());
            prop_assert_eq!(a.provenance(), Provenance::Production);
        }
    }
}

// ------------------------------------------------------------- real tools

#[test]
fn wg_pubkey_agrees_with_our_public_keys() -> TestResult {
    let Some(wg) = tool("wg") else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let sources = [
        KeySource::demo(1),
        KeySource::demo(2),
        KeySource::store(dir.path().join("keys"))?,
    ];
    for source in &sources {
        for host in ["hub", "spoke-1", "spoke-2"] {
            let pair = source.wireguard(&Label::wireguard(host, "wg0")?)?;
            let (ok, out) = run(&wg, &["pubkey"], Some(&format!("{}\n", pair.private_key())))?;
            assert!(ok, "wg pubkey failed: {out}");
            assert_eq!(
                out.trim(),
                pair.public_key(),
                "{host} ({})",
                source.provenance()
            );
        }
    }
    // A key made by `wg genkey`, dropped into the store, is read as is.
    let (ok, generated) = run(&wg, &["genkey"], None)?;
    assert!(ok);
    let store = KeyStore::open(dir.path().join("keys"))?;
    let label = Label::wireguard("imported", "wg0")?;
    fs::create_dir_all(store.path_of(&label).parent().ok_or("no parent")?)?;
    write_private(&store.path_of(&label), &generated)?;
    let pair = KeySource::Store(store).wireguard(&label)?;
    assert_eq!(pair.private_key(), generated.trim());
    let (_, public) = run(&wg, &["pubkey"], Some(&generated))?;
    assert_eq!(pair.public_key(), public.trim());
    // wg itself accepts our PresharedKey format.
    let psk = KeySource::demo(1).wireguard_psk(&Label::wireguard_psk("s", "a", "b")?)?;
    let (ok, out) = run(&wg, &["pubkey"], Some(&format!("{}\n", psk.base64())))?;
    assert!(ok, "a base64 32-byte value is what wg reads: {out}");
    Ok(())
}

#[test]
fn openvpn_reads_our_tls_crypt_keys() -> TestResult {
    let Some(openvpn) = tool("openvpn") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    // Shape: the same as `openvpn --genkey tls-crypt`, hex digits aside.
    let theirs_path = dir.path().join("theirs.key");
    let (ok, out) = run(
        &openvpn,
        &["--genkey", "tls-crypt", &theirs_path.display().to_string()],
        None,
    )?;
    assert!(ok, "openvpn --genkey failed: {out}");
    let theirs = fs::read_to_string(&theirs_path)?;
    let store_source = KeySource::store(dir.path().join("keys"))?;
    let production = store_source.tls_crypt(&Label::tls_crypt("edu")?)?;
    let shape = |text: &str| {
        text.chars()
            .map(|c| {
                if c.is_ascii_hexdigit() && c.is_ascii_lowercase() || c.is_ascii_digit() {
                    'x'
                } else {
                    c
                }
            })
            .collect::<String>()
    };
    // Hex letters in the headers would be masked too: compare the masked forms.
    assert_eq!(shape(&production.file_text()), shape(&theirs));
    let demo = KeySource::demo(11).tls_crypt(&Label::tls_crypt("edu")?)?;
    assert_eq!(
        demo.file_text().lines().count(),
        theirs.lines().count() + 1,
        "demo marker line + the same"
    );

    // OpenVPN loads ours (demo with marker line, and the store's file) and
    // runs its crypto self-test with them; a damaged file fails.
    let demo_path = dir.path().join("demo.key");
    write_private(&demo_path, &demo.file_text())?;
    let stored_path = dir.path().join("keys/tls-crypt/edu.key");
    for path in [&demo_path, &stored_path] {
        let (ok, out) = run(
            &openvpn,
            &[
                "--test-crypto",
                "--secret",
                &path.display().to_string(),
                "--cipher",
                "AES-256-CBC",
                "--dev",
                "null",
                "--verb",
                "1",
            ],
            None,
        )?;
        assert!(
            ok && out.contains("SUCCEEDED"),
            "openvpn refused {}: {out}",
            path.display()
        );
    }
    let damaged = dir.path().join("damaged.key");
    write_private(&damaged, &demo.file_text().replacen("\n", "\nzz", 5))?;
    let (ok, _) = run(
        &openvpn,
        &[
            "--test-crypto",
            "--secret",
            &damaged.display().to_string(),
            "--cipher",
            "AES-256-CBC",
            "--dev",
            "null",
        ],
        None,
    )?;
    assert!(!ok, "the check would notice a bad file");

    // OpenVPN's own key, imported into the store, is read back unchanged.
    let store = KeyStore::open(dir.path().join("keys"))?;
    let label = Label::tls_crypt("imported")?;
    write_private(&store.path_of(&label), &theirs)?;
    let imported = KeySource::Store(store).tls_crypt(&label)?;
    assert_eq!(imported.file_text(), theirs);
    Ok(())
}

/// Write a demo PKI as files: ca.crt, server.crt/key, client.crt/key.
fn write_pki(dir: &Path, p: &Pki) -> TestResult {
    fs::write(dir.join("ca.crt"), p.ca.cert_file_text())?;
    fs::write(dir.join("server.crt"), p.server.cert_file_text())?;
    write_private(&dir.join("server.key"), &p.server.key_file_text())?;
    fs::write(dir.join("client.crt"), p.client.cert_file_text())?;
    write_private(&dir.join("client.key"), &p.client.key_file_text())?;
    Ok(())
}

#[test]
fn openssl_verifies_our_certificates() -> TestResult {
    let Some(openssl) = tool("openssl") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let d = |name: &str| dir.path().join(name).display().to_string();
    let p = pki(&KeySource::demo(21), Validity::default())?;
    write_pki(dir.path(), &p)?;

    let verify = |purpose: &str, cert: &str| {
        run(
            &openssl,
            &[
                "verify",
                "-CAfile",
                &d("ca.crt"),
                "-purpose",
                purpose,
                &d(cert),
            ],
            None,
        )
    };
    let (ok, out) = verify("sslserver", "server.crt")?;
    assert!(ok, "server cert: {out}");
    let (ok, out) = verify("sslclient", "client.crt")?;
    assert!(ok, "client cert: {out}");
    assert!(
        !verify("sslserver", "client.crt")?.0,
        "a client cert must not pass as a server"
    );
    assert!(
        !verify("sslclient", "server.crt")?.0,
        "a server cert must not pass as a client"
    );

    // Outside the scenario's validity the chain is refused (2036-01-01).
    let (ok, out) = run(
        &openssl,
        &[
            "verify",
            "-attime",
            "2082758400",
            "-CAfile",
            &d("ca.crt"),
            &d("server.crt"),
        ],
        None,
    )?;
    assert!(!ok && out.contains("expired"), "{out}");

    let (ok, text) = run(
        &openssl,
        &["x509", "-noout", "-text", "-in", &d("server.crt")],
        None,
    )?;
    assert!(ok, "{text}");
    for needle in [
        "Signature Algorithm: ED25519",
        "Subject: CN = node-a.example.org",
        "Issuer: CN = openvpn CA edu",
        "Not Before: Jan  1 00:00:00 2025 GMT",
        "Not After : Dec 31 23:59:59 2035 GMT",
        "TLS Web Server Authentication",
        "Digital Signature",
        "DNS:node-a.example.org",
        "IP Address:192.0.2.72",
        "CA:FALSE",
        "Authority Key Identifier",
    ] {
        assert!(
            text.contains(needle),
            "server cert lacks `{needle}`:\n{text}"
        );
    }
    let (_, text) = run(
        &openssl,
        &["x509", "-noout", "-text", "-in", &d("client.crt")],
        None,
    )?;
    assert!(
        text.contains("TLS Web Client Authentication") && !text.contains("Server Authentication"),
        "{text}"
    );
    let (_, text) = run(
        &openssl,
        &["x509", "-noout", "-text", "-in", &d("ca.crt")],
        None,
    )?;
    assert!(
        text.contains("CA:TRUE, pathlen:0") && text.contains("Certificate Sign, CRL Sign"),
        "{text}"
    );

    // The key file holds the certificate's key.
    let (ok, from_key) = run(
        &openssl,
        &["pkey", "-in", &d("server.key"), "-pubout"],
        None,
    )?;
    assert!(ok, "{from_key}");
    let (_, from_cert) = run(
        &openssl,
        &["x509", "-in", &d("server.crt"), "-noout", "-pubkey"],
        None,
    )?;
    assert_eq!(from_key, from_cert);
    Ok(())
}

/// Runs an OpenVPN server and client on 127.0.0.1 (no tun device: `--dev
/// null`) with the PKI in `dir` (ca.crt, server.*, client.*), the server
/// using `dir/ta.key` and the client `client_ta`, until both log
/// "Initialization Sequence Completed", either exits, `until` holds on the
/// logs, or ~`tenths` × 0.1 s pass. Both processes (only those two) are then
/// stopped. Returns whether both completed, and the two logs.
fn openvpn_pair(
    openvpn: &Path,
    dir: &Path,
    client_ta: &str,
    tenths: u32,
    until: impl Fn(&str, &str) -> bool,
) -> Result<(bool, String, String), Box<dyn Error>> {
    let d = |name: &str| dir.join(name).display().to_string();
    let port = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        socket.local_addr()?.port().to_string()
    };
    let common = |role: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--dev",
            "null",
            "--proto",
            "udp4",
            "--verb",
            "3",
            "--ca",
            &d("ca.crt"),
            "--ping",
            "1",
            "--ping-exit",
            "40",
            "--connect-retry-max",
            "20",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend(role.iter().map(ToString::to_string));
        args
    };
    let (server_log, client_log) = (d("server.log"), d("client.log"));
    let _ = fs::remove_file(&server_log);
    let _ = fs::remove_file(&client_log);
    let server_args = common(&[
        "--tls-server",
        "--dh",
        "none",
        "--local",
        "127.0.0.1",
        "--lport",
        &port,
        "--cert",
        &d("server.crt"),
        "--key",
        &d("server.key"),
        "--tls-crypt",
        &d("ta.key"),
        "--remote-cert-tls",
        "client",
        "--log",
        &server_log,
    ]);
    let client_args = common(&[
        "--tls-client",
        "--nobind",
        "--remote",
        "127.0.0.1",
        &port,
        "--cert",
        &d("client.crt"),
        "--key",
        &d("client.key"),
        "--tls-crypt",
        client_ta,
        "--remote-cert-tls",
        "server",
        "--verify-x509-name",
        "node-a.example.org",
        "name",
        "--log",
        &client_log,
    ]);
    let mut server = Command::new(openvpn)
        .args(&server_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut client = Command::new(openvpn)
        .args(&client_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let done = |log: &str| log.contains("Initialization Sequence Completed");
    let mut ok = false;
    for _ in 0..tenths {
        let (slog, clog) = (read(&server_log), read(&client_log));
        if done(&slog) && done(&clog) {
            ok = true;
            break;
        }
        if until(&slog, &clog) || server.try_wait()?.is_some() || client.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Stop exactly the two processes started here.
    let _ = server.kill();
    let _ = client.kill();
    let _ = server.wait();
    let _ = client.wait();
    Ok((ok, read(&server_log), read(&client_log)))
}

/// Two OpenVPN peers complete a TLS handshake with our Ed25519
/// certificates, `remote-cert-tls` EKU checks, `verify-x509-name` and our
/// tls-crypt key; a client with another tls-crypt key is dropped.
#[test]
fn openvpn_peers_handshake_with_our_pki() -> TestResult {
    let Some(openvpn) = tool("openvpn") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let source = KeySource::demo(33);
    let p = pki(&source, Validity::default())?;
    write_pki(dir.path(), &p)?;
    let ta = dir.path().join("ta.key");
    write_private(
        &ta,
        &source.tls_crypt(&Label::tls_crypt("edu")?)?.file_text(),
    )?;

    let (ok, slog, clog) = openvpn_pair(
        &openvpn,
        dir.path(),
        &ta.display().to_string(),
        300,
        |_, _| false,
    )?;
    assert!(
        ok,
        "no handshake\n--- server ---\n{slog}\n--- client ---\n{clog}"
    );
    assert!(
        clog.contains("VERIFY EKU OK") && clog.contains("VERIFY X509NAME OK"),
        "{clog}"
    );
    assert!(slog.contains("VERIFY EKU OK"), "{slog}");
    assert!(
        clog.contains("peer certificate: 256 bits ED25519"),
        "{clog}"
    );
    if std::env::var_os("KEYS_SHOW_LOGS").is_some() {
        eprintln!("--- server ---\n{slog}\n--- client ---\n{clog}");
    }

    // Another deployment's tls-crypt key: the server drops every packet.
    let wrong = dir.path().join("wrong-ta.key");
    write_private(
        &wrong,
        &source.tls_crypt(&Label::tls_crypt("other")?)?.file_text(),
    )?;
    let refused = |slog: &str, _: &str| slog.contains("tls-crypt unwrapping failed");
    let (ok, slog, _) = openvpn_pair(
        &openvpn,
        dir.path(),
        &wrong.display().to_string(),
        100,
        refused,
    )?;
    assert!(!ok && refused(&slog, ""), "{slog}");
    Ok(())
}
