//! Generator for DNS zone files: the `[dns]` names of a scenario (e.g. the
//! round-robin name of reference 001 that merges two eduVPN profiles onto
//! two nodes) as BIND master files, through [`crate::zone`].
//!
//! Zones: the model lists names, not zones, so names are grouped by their
//! last two labels (`nodes.frkovpn.tuxed.net` is in zone `tuxed.net`, as in
//! the reference's snippet `nodes.frkovpn IN A ...`; `vpn.example` is its
//! own zone). The model names no server either, so every zone goes to the
//! pseudo-host `_dns` as `etc/bind/db.<zone>` (mode 0644, no secrets).
//!
//! Each zone: `$ORIGIN`, `$TTL 300`, an SOA and an NS record, then per name
//! (the apex first, then in name order) its A records, then its AAAA records, in the scenario's
//! order; a name's TTL is written only when it differs from 300. The name
//! server and SOA MNAME are the placeholder `ns.vpnsim.invalid.` (the
//! reserved `.invalid` top-level domain never resolves) because the
//! scenario format has no field for a zone's name servers; RNAME is
//! `hostmaster.<zone>`. The SOA serial is [`Zone::content_serial`]: a hash
//! of the zone's records, so it is the same on every run and changes when a
//! record does.

use std::collections::BTreeMap;

use vpnsim_topology::model::DnsM;

use super::{Ctx, Out, RenderError};
use crate::format::Format;
use crate::tree::MODE_CONFIG;
use crate::zone::{Comment, Name, RData, Record, Soa, Ttl, Zone};

const PRODUCER: &str = "zone";
/// The host that carries zone files while the model names no DNS server.
pub const DNS_HOST: &str = "_dns";
/// The default TTL of every generated zone (and the scenario's default).
const DEFAULT_TTL: u32 = 300;
/// Placeholder for the zone's name server (see the module doc).
const NAME_SERVER: &str = "ns.vpnsim.invalid";

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    let mut zones: BTreeMap<String, Vec<&DnsM>> = BTreeMap::new();
    for dns in &ctx.topology().dns {
        zones.entry(zone_of(&dns.name)).or_default().push(dns);
    }
    for (zone, mut names) in zones {
        // The apex first, then the names below it in name order.
        names.sort_by_key(|d| {
            (
                d.name.trim_end_matches('.').to_ascii_lowercase() != zone,
                d.name.to_ascii_lowercase(),
            )
        });
        if let Some(text) = zone_file(ctx, out, &zone, &names) {
            out.file(
                DNS_HOST,
                &format!("etc/bind/db.{zone}"),
                MODE_CONFIG,
                PRODUCER,
                text,
            );
        }
    }
}

/// The zone a name belongs to: its last two labels, lower case.
fn zone_of(name: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

fn ttl(out: &mut Out, what: &str, seconds: u32) -> Option<Ttl> {
    let t = Ttl::new(seconds);
    if t.is_none() {
        out.error(RenderError::Missing {
            what: what.to_owned(),
            message: format!("ttl {seconds} is above 2147483647"),
        });
    }
    t
}

fn zone_file(ctx: &Ctx, out: &mut Out, zone: &str, names: &[&DnsM]) -> Option<String> {
    let what = format!("dns zone {zone}");
    let bad_name = |out: &mut Out, e: crate::zone::InvalidValue| {
        out.error(RenderError::Missing {
            what: what.clone(),
            message: e.to_string(),
        });
    };
    let origin = Name::new(zone).map_err(|e| bad_name(out, e)).ok()?;
    let ns = Name::new(NAME_SERVER).map_err(|e| bad_name(out, e)).ok()?;
    let rname = Name::new(&format!("hostmaster.{zone}"))
        .map_err(|e| bad_name(out, e))
        .ok()?;
    let default = ttl(out, &what, DEFAULT_TTL)?;
    let timers = [3600, 900, 604_800, DEFAULT_TTL].map(Ttl::new);
    let [Some(refresh), Some(retry), Some(expire), Some(minimum)] = timers else {
        return None;
    };
    let mut records = vec![
        Record {
            owner: origin.clone(),
            ttl: None,
            data: RData::Soa(Soa {
                mname: ns.clone(),
                rname,
                serial: 0,
                refresh,
                retry,
                expire,
                minimum,
            }),
        },
        Record {
            owner: origin.clone(),
            ttl: None,
            data: RData::Ns(ns),
        },
    ];
    let mut ok = true;
    for dns in names {
        let name_what = format!("dns.{}", dns.name);
        let owner = match Name::new(&dns.name) {
            Ok(n) => n,
            Err(e) => {
                out.error(RenderError::Missing {
                    what: name_what,
                    message: e.to_string(),
                });
                ok = false;
                continue;
            }
        };
        let record_ttl = if dns.ttl == DEFAULT_TTL {
            None
        } else {
            match ttl(out, &name_what, dns.ttl) {
                Some(t) => Some(t),
                None => {
                    ok = false;
                    continue;
                }
            }
        };
        let data = dns
            .a
            .iter()
            .map(|a| RData::A(*a))
            .chain(dns.aaaa.iter().map(|a| RData::Aaaa(*a)));
        records.extend(data.map(|data| Record {
            owner: owner.clone(),
            ttl: record_ttl,
            data,
        }));
    }
    if !ok {
        return None;
    }
    let header = [
        format!(
            "vpnsim: scenario {}, DNS zone {zone} (the [dns] names below it)",
            ctx.topology().name
        ),
        format!(
            "The scenario names no name server: {NAME_SERVER}. is a placeholder for the zone's real ones."
        ),
    ]
    .iter()
    .filter_map(|t| Comment::new(t.as_str()).ok())
    .collect();
    let mut zone = Zone {
        header,
        origin,
        default_ttl: Some(default),
        records,
    };
    let serial = zone.content_serial();
    if let Some(RData::Soa(soa)) = zone.records.first_mut().map(|r| &mut r.data) {
        soa.serial = serial;
    }
    Some(zone.emit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_the_last_two_labels() {
        assert_eq!(zone_of("nodes.frkovpn.tuxed.net"), "tuxed.net");
        assert_eq!(zone_of("Vpn.Example."), "vpn.example");
        assert_eq!(zone_of("localhost"), "localhost");
    }
}
