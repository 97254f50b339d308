//! Generators: the resolved model, the address plan and key material become
//! every host's files ([`FileSet`]).
//!
//! Map (one module per deployment kind; each adds the files of every host it
//! concerns and reports problems instead of stopping at the first):
//! - `wireguard`: wg-quick files of stars (hub and workers), the file set
//!   after promoting a worker, and the promotion procedures as scripts;
//! - `ipsec`: Libreswan `ipsec.conf` + `ipsec.d/<conn>.conf` + `.secrets`,
//!   strongSwan `swanctl.conf`, sysctl, cloud route tables (JSON, Terraform);
//! - `openvpn`: eduVPN-style servers per node and profile, client profiles
//!   with inline certificates, the controller's files (PHP, YAML, Apache
//!   allow-list, vpn-daemon) and the nodes' NAT;
//! - `bond`: TAP point-to-point configs both ways, enslave/release scripts,
//!   ifupdown stanzas, monit checks;
//! - `mesh`: PeerVPN `vpn.conf` per member;
//! - `firewall`: iptables/ip6tables restore files and the same policy as
//!   nftables, from the scenario's firewall intent;
//! - `dns`: zone files with the round-robin records.
//!
//! Architecture invariant: no IO, no clock, no randomness here. Key material
//! arrives through [`KeyProvider`] (the CLI passes a demo source or the
//! production store), so the same scenario, plan and keys give the same bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use vpnsim_keys::{
    CaSpec, CertRequest, CertificateAuthority, IssuedCertificate, KeyError, KeySource, Label,
    Provenance, SharedSecret, TlsCryptKey, WireGuardKeyPair, WireGuardPresharedKey,
};
use vpnsim_plan::{Attachment, Plan};
use vpnsim_topology::Scenario;
use vpnsim_topology::model::{HostId, HostM, Topology};

use crate::tree::{FileSet, RenderedFile, TreeError};

mod bond;
mod dns;
mod firewall;
mod ipsec;
mod mesh;
mod openvpn;
mod wireguard;

/// Where key material comes from. Implemented by [`KeySource`]; tests may
/// implement it over fixed keys.
pub trait KeyProvider {
    fn provenance(&self) -> Provenance;
    fn wireguard(&self, label: &Label) -> Result<WireGuardKeyPair, KeyError>;
    fn wireguard_psk(&self, label: &Label) -> Result<WireGuardPresharedKey, KeyError>;
    fn shared_secret(&self, label: &Label) -> Result<SharedSecret, KeyError>;
    fn tls_crypt(&self, label: &Label) -> Result<TlsCryptKey, KeyError>;
    fn certificate_authority(&self, spec: &CaSpec) -> Result<CertificateAuthority, KeyError>;
    fn issue(
        &self,
        ca: &CertificateAuthority,
        request: &CertRequest,
    ) -> Result<IssuedCertificate, KeyError>;
}

impl KeyProvider for KeySource {
    fn provenance(&self) -> Provenance {
        KeySource::provenance(self)
    }
    fn wireguard(&self, label: &Label) -> Result<WireGuardKeyPair, KeyError> {
        KeySource::wireguard(self, label)
    }
    fn wireguard_psk(&self, label: &Label) -> Result<WireGuardPresharedKey, KeyError> {
        KeySource::wireguard_psk(self, label)
    }
    fn shared_secret(&self, label: &Label) -> Result<SharedSecret, KeyError> {
        KeySource::shared_secret(self, label)
    }
    fn tls_crypt(&self, label: &Label) -> Result<TlsCryptKey, KeyError> {
        KeySource::tls_crypt(self, label)
    }
    fn certificate_authority(&self, spec: &CaSpec) -> Result<CertificateAuthority, KeyError> {
        KeySource::certificate_authority(self, spec)
    }
    fn issue(
        &self,
        ca: &CertificateAuthority,
        request: &CertRequest,
    ) -> Result<IssuedCertificate, KeyError> {
        KeySource::issue(self, ca, request)
    }
}

/// What to generate beyond the scenario as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Generate the WireGuard file set as it is after this worker has been
    /// promoted to leader of its star (`sim gen --promote HOST`).
    pub promote: Option<String>,
}

/// Why a file could not be generated. The generators collect every one.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Key material could not be obtained (store unreadable, bad key file).
    #[error("{what}: key `{label}`: {source}")]
    Key {
        what: String,
        label: String,
        #[source]
        source: KeyError,
    },
    /// The model leaves out something the file needs (e.g. no address
    /// planned for a host on a segment).
    #[error("{what}: {message}")]
    Missing { what: String, message: String },
    /// The option names something that does not exist or cannot be done.
    #[error("{message}")]
    Option { message: String },
    /// Two generators wrote the same file, or a path is unsafe.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// Everything the generators read.
pub struct Ctx<'a> {
    pub scenario: &'a Scenario,
    pub plan: &'a Plan,
    pub keys: &'a dyn KeyProvider,
    pub options: &'a Options,
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("scenario", &self.scenario.topology.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<'a> Ctx<'a> {
    pub fn topology(&self) -> &'a Topology {
        &self.scenario.topology
    }

    pub fn host(&self, id: HostId) -> &'a HostM {
        self.scenario.topology.host(id)
    }

    /// The planned (or declared) address of `host` on `attachment`.
    pub fn address_on(&self, host: HostId, attachment: Attachment) -> Option<IpAddr> {
        self.plan.address_on(host, attachment)
    }

    /// The comment line every file holding a key from this source must carry
    /// (`None` for production keys).
    pub fn key_marker(&self, comment: &str) -> Option<String> {
        self.keys.provenance().comment_line(comment)
    }
}

/// The files generated so far and the problems met.
#[derive(Debug, Default)]
pub struct Out {
    files: FileSet,
    errors: Vec<RenderError>,
}

impl Out {
    /// Adds a file; a duplicate path becomes an error, not a panic.
    pub fn file(
        &mut self,
        host: &str,
        path: &str,
        mode: u32,
        producer: &'static str,
        contents: String,
    ) {
        let file = RenderedFile {
            host: host.to_string(),
            path: path.to_string(),
            mode,
            producer,
            contents,
        };
        if let Err(e) = self.files.add(file) {
            self.errors.push(e.into());
        }
    }

    pub fn error(&mut self, error: RenderError) {
        self.errors.push(error);
    }

    /// Runs a key lookup, recording a failure as an error about `what`.
    pub fn key<T>(&mut self, what: &str, label: &Label, result: Result<T, KeyError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(source) => {
                self.errors.push(RenderError::Key {
                    what: what.to_string(),
                    label: label.to_string(),
                    source,
                });
                None
            }
        }
    }

    /// Builds a label, recording a failure as an error about `what`.
    pub fn label(&mut self, what: &str, result: Result<Label, KeyError>) -> Option<Label> {
        match result {
            Ok(l) => Some(l),
            Err(source) => {
                self.errors.push(RenderError::Key {
                    what: what.to_string(),
                    label: String::from("(invalid)"),
                    source,
                });
                None
            }
        }
    }
}

/// Every host's files for `scenario`, or every problem met.
pub fn generate(
    scenario: &Scenario,
    plan: &Plan,
    keys: &dyn KeyProvider,
    options: &Options,
) -> Result<FileSet, Vec<RenderError>> {
    let ctx = Ctx {
        scenario,
        plan,
        keys,
        options,
    };
    let mut out = Out::default();
    check_options(&ctx, &mut out);
    wireguard::render(&ctx, &mut out);
    ipsec::render(&ctx, &mut out);
    openvpn::render(&ctx, &mut out);
    bond::render(&ctx, &mut out);
    mesh::render(&ctx, &mut out);
    firewall::render(&ctx, &mut out);
    dns::render(&ctx, &mut out);
    if out.errors.is_empty() {
        Ok(out.files)
    } else {
        Err(out.errors)
    }
}

fn check_options(ctx: &Ctx, out: &mut Out) {
    if let Some(name) = &ctx.options.promote {
        let t = ctx.topology();
        let is_worker = t
            .stars
            .iter()
            .any(|s| s.workers.iter().any(|&w| t.host(w).name == *name));
        if !is_worker {
            let workers: BTreeMap<&str, ()> = t
                .stars
                .iter()
                .flat_map(|s| s.workers.iter().map(|&w| (t.host(w).name.as_str(), ())))
                .collect();
            let list: Vec<&str> = workers.into_keys().collect();
            out.error(RenderError::Option {
                message: format!(
                    "--promote {name}: not a worker of any WireGuard star (workers: {})",
                    if list.is_empty() {
                        "none".to_string()
                    } else {
                        list.join(", ")
                    }
                ),
            });
        }
    }
}

/// Whether a certificate entity (`pki/<purpose>/<deployment>/issued/<entity>`)
/// was issued to `host`: `sim keys rotate --host` rotates these with the
/// host's WireGuard keys. The generators name host certificates `<host>`,
/// `client-<host>` (OpenVPN clients) and `vpn-daemon-<host>` (a node's
/// vpn-daemon server); certificates of a service rather than a host
/// (`server-<profile>`, `vpn-daemon-client`) are rotated by `--label`.
pub fn issued_to_host(entity: &str, host: &str) -> bool {
    entity == host
        || entity.strip_prefix("client-") == Some(host)
        || entity.strip_prefix("vpn-daemon-") == Some(host)
}
