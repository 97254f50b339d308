//! Where the protocol models plug in: one constructor per kind of rendered
//! tunnel file.
//!
//! - WireGuard: [`wireguard`] builds a [`Device`] from a host's wg-quick
//!   file, endpoint names resolved through the tree's zone files.
//! - IPsec, OpenVPN, bonding: not wired yet (their models are being
//!   written); their files are not read by the engine in this version.

use std::collections::BTreeMap;
use std::net::IpAddr;

use vpnsim_render::wgquick::WgQuickConf;

use crate::proto::wireguard::Device;

/// The WireGuard device for `iface` from its wg-quick file.
pub fn wireguard(
    conf: &WgQuickConf,
    iface: &str,
    dns: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<Device, String> {
    Device::from_conf(conf, iface, |name| resolve(dns, name))
}

/// The first address of `name` in the zone files (trailing dot ignored).
pub fn resolve(dns: &BTreeMap<String, Vec<IpAddr>>, name: &str) -> Option<IpAddr> {
    dns.get(name.trim_end_matches('.'))
        .and_then(|a| a.first())
        .copied()
}
