//! The address plan as text tables and as JSON.
//!
//! [`PlanReport`] is built once from the scenario, the plan and the site
//! matrix, with every ID replaced by the name users wrote; the text and the
//! JSON are two renderings of it, so they can never disagree.

use serde::{Serialize, Serializer};
use vpnsim_plan::{Attachment, Plan, Planned};
use vpnsim_topology::{Diagnostic, Scenario};
use vpnsim_verify::reach::{Reach, SiteMatrix};

use crate::table::{Align, Table};
use crate::to_json;

/// A count that may exceed what JSON numbers carry exactly: written as a
/// number up to `u64::MAX`, as a decimal string beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u128);

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(self.0) {
            Ok(n) => serializer.serialize_u64(n),
            Err(_) => serializer.serialize_str(&self.0.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    pub range: String,
    pub owner: String,
    pub kind: String,
    pub size: Count,
    pub used: Count,
    pub free: Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressRow {
    pub host: String,
    pub interface: String,
    /// What the address is on, e.g. `subnet sydney-fns-a`, `wireguard cluster`.
    pub on: String,
    /// Address with prefix length, e.g. `10.11.4.5/24`.
    pub address: String,
    /// `declared` or `allocated`.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRangeRow {
    pub deployment: String,
    pub profile: String,
    pub range: String,
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin6: Option<String>,
}

/// Everything `sim plan` shows, with names instead of IDs.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport<'a> {
    pub scenario: String,
    pub file: String,
    pub ula: String,
    pub pools: Vec<PoolRow>,
    pub addresses: Vec<AddressRow>,
    pub client_ranges: Vec<ClientRangeRow>,
    pub matrix: &'a SiteMatrix,
    /// What planning found wrong (exhausted pools).
    pub findings: &'a [Diagnostic],
}

/// The serde name of a unit enum value (`client-range`, `allocated`, `all`).
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from("?"),
    }
}

/// `subnet sydney-fns-a`, `link internet`, `openvpn vpn profile node-a`.
pub fn attachment_name(scenario: &Scenario, attachment: Attachment) -> String {
    let t = &scenario.topology;
    let named =
        |kind: &str, name: Option<&String>| format!("{kind} {}", name.map_or("?", |n| n.as_str()));
    match attachment {
        Attachment::Subnet(id) => named("subnet", t.subnets.get(id.index()).map(|s| &s.name)),
        Attachment::Link(id) => named("link", t.links.get(id.index()).map(|l| &l.name)),
        Attachment::Star(id) => named("wireguard", t.stars.get(id.index()).map(|s| &s.name)),
        Attachment::Mesh(id) => named("mesh", t.meshes.get(id.index()).map(|m| &m.name)),
        Attachment::Bond(id) => named("bond", t.bonds.get(id.index()).map(|b| &b.name)),
        Attachment::Profile(dep, profile) => {
            let dep = t.openvpn.get(dep.index());
            let profile = dep
                .and_then(|d| d.profiles.get(profile as usize))
                .map(|p| &p.id);
            format!(
                "{} profile {}",
                named("openvpn", dep.map(|d| &d.name)),
                profile.map_or("?", |p| p.as_str())
            )
        }
    }
}

impl<'a> PlanReport<'a> {
    /// Builds the report. `file` is the path as the user gave it.
    pub fn new(
        file: &str,
        scenario: &Scenario,
        planned: &'a Planned,
        matrix: &'a SiteMatrix,
    ) -> Self {
        let t = &scenario.topology;
        let plan: &Plan = &planned.plan;
        let host_name = |id: vpnsim_topology::model::HostId| {
            t.hosts
                .get(id.index())
                .map_or_else(|| "?".into(), |h| h.name.clone())
        };
        let pools = plan
            .pools
            .iter()
            .map(|p| PoolRow {
                range: p.range.to_string(),
                owner: p.owner.clone(),
                kind: name_of(&p.kind),
                size: Count(p.size),
                used: Count(p.used),
                free: Count(p.free()),
            })
            .collect();
        let addresses = plan
            .addresses
            .iter()
            .map(|a| AddressRow {
                host: host_name(a.host),
                interface: a.interface.clone(),
                on: attachment_name(scenario, a.attachment),
                address: a.with_prefix().to_string(),
                origin: name_of(&a.origin),
            })
            .collect();
        let client_ranges = plan
            .client_ranges
            .iter()
            .map(|r| {
                let dep = t.openvpn.get(r.deployment.index());
                let profile = dep.and_then(|d| d.profiles.get(r.profile as usize));
                ClientRangeRow {
                    deployment: dep.map_or_else(|| "?".into(), |d| d.name.clone()),
                    profile: profile.map_or_else(|| "?".into(), |p| p.id.clone()),
                    range: r.range.to_string(),
                    origin: name_of(&r.origin),
                    range6: r.range6.map(|n| n.to_string()),
                    origin6: r.range6.map(|_| name_of(&r.origin6)),
                }
            })
            .collect();
        PlanReport {
            scenario: t.name.clone(),
            file: file.to_string(),
            ula: plan.ula.to_string(),
            pools,
            addresses,
            client_ranges,
            matrix,
            findings: &planned.findings,
        }
    }

    /// The plan as one pretty JSON object.
    pub fn json(&self) -> String {
        to_json(self)
    }

    /// The plan as aligned text tables.
    pub fn text(&self) -> String {
        let mut out = format!(
            "Address plan of scenario `{}` ({})\n\n",
            self.scenario, self.file
        );
        out.push_str(&format!("ULA prefix: {}\n\n", self.ula));
        out.push_str("Pools:\n");
        out.push_str(&self.pools_table());
        out.push_str("\nAddresses:\n");
        out.push_str(&self.addresses_table());
        out.push_str("\nClient ranges:\n");
        out.push_str(&self.client_ranges_table());
        out.push_str("\nSite reachability under static routing (row reaches column):\n");
        out.push_str(&matrix_table(self.matrix));
        out
    }

    fn pools_table(&self) -> String {
        let mut t = Table::new(&[
            ("RANGE", Align::Left),
            ("OWNER", Align::Left),
            ("KIND", Align::Left),
            ("SIZE", Align::Right),
            ("USED", Align::Right),
            ("FREE", Align::Right),
        ]);
        for p in &self.pools {
            t.row(vec![
                p.range.clone(),
                p.owner.clone(),
                p.kind.clone(),
                count_text(p.size.0),
                count_text(p.used.0),
                count_text(p.free.0),
            ]);
        }
        or_none(&t)
    }

    fn addresses_table(&self) -> String {
        let mut t = Table::new(&[
            ("HOST", Align::Left),
            ("INTERFACE", Align::Left),
            ("ADDRESS", Align::Left),
            ("ORIGIN", Align::Left),
            ("ON", Align::Left),
        ]);
        for a in &self.addresses {
            t.row(vec![
                a.host.clone(),
                a.interface.clone(),
                a.address.clone(),
                a.origin.clone(),
                a.on.clone(),
            ]);
        }
        or_none(&t)
    }

    fn client_ranges_table(&self) -> String {
        let mut t = Table::new(&[
            ("DEPLOYMENT", Align::Left),
            ("PROFILE", Align::Left),
            ("RANGE", Align::Left),
            ("ORIGIN", Align::Left),
            ("RANGE6", Align::Left),
            ("ORIGIN6", Align::Left),
        ]);
        for r in &self.client_ranges {
            t.row(vec![
                r.deployment.clone(),
                r.profile.clone(),
                r.range.clone(),
                r.origin.clone(),
                r.range6.clone().unwrap_or_else(|| "-".into()),
                r.origin6.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        or_none(&t)
    }
}

/// A count for the text tables: decimal below 2^32; above, IPv6-sized
/// counts as a power of two give or take a little (`2^64`, `2^64-2`), which
/// is exact and keeps the table narrow. JSON always has the exact number.
pub fn count_text(n: u128) -> String {
    if n < 1 << 32 {
        return n.to_string();
    }
    let bits = 128 - n.leading_zeros();
    if n.is_power_of_two() {
        return format!("2^{}", bits - 1);
    }
    let below = u128::MAX >> (128 - bits); // 2^bits - 1
    match below - n {
        d if d < 1 << 16 => format!("2^{bits}-{}", d + 1),
        _ => n.to_string(),
    }
}

fn or_none(table: &Table) -> String {
    if table.is_empty() {
        String::from("  (none)\n")
    } else {
        table.render("  ")
    }
}

/// Site × site table; the corner cell says which way to read it, `-` marks
/// a site with a single host against itself.
pub fn matrix_table(matrix: &SiteMatrix) -> String {
    if matrix.sites.is_empty() {
        return String::from("  (no sites)\n");
    }
    let corner = "FROM \\ TO";
    let mut columns: Vec<(&str, Align)> = vec![(corner, Align::Left)];
    columns.extend(matrix.sites.iter().map(|s| (s.as_str(), Align::Left)));
    let mut t = Table::new(&columns);
    for (i, site) in matrix.sites.iter().enumerate() {
        let mut row = vec![site.clone()];
        let cells = matrix.cells.get(i).map(Vec::as_slice).unwrap_or_default();
        row.extend((0..matrix.sites.len()).map(|j| match cells.get(j) {
            Some(Reach::NoPairs) => "-".into(),
            Some(cell) => name_of(cell),
            None => "?".into(),
        }));
        t.row(row);
    }
    t.render("  ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnsim_verify::reach::Reach;

    #[test]
    fn counts_beyond_u64_are_strings() {
        assert_eq!(serde_json::to_string(&Count(7)).unwrap_or_default(), "7");
        assert_eq!(
            serde_json::to_string(&Count(u128::MAX)).unwrap_or_default(),
            format!("\"{}\"", u128::MAX)
        );
    }

    #[test]
    fn large_counts_are_powers_of_two() {
        assert_eq!(count_text(253), "253");
        assert_eq!(count_text(1 << 64), "2^64");
        assert_eq!(count_text((1 << 64) - 2), "2^64-2");
        assert_eq!(count_text(u128::MAX), "2^128-1");
        assert_eq!(count_text((1 << 40) + 7), "1099511627783");
        assert_eq!(count_text((1 << 32) - 1), "4294967295");
    }

    #[test]
    fn matrix_reads_row_to_column() {
        let matrix = SiteMatrix {
            sites: vec!["hq".into(), "branch".into()],
            cells: vec![
                vec![Reach::All, Reach::Partial],
                vec![Reach::None, Reach::All],
            ],
        };
        let text = matrix_table(&matrix);
        assert_eq!(
            text,
            "  FROM \\ TO  hq    branch\n  hq         all   partial\n  branch     none  all\n"
        );
        let empty = SiteMatrix {
            sites: vec![],
            cells: vec![],
        };
        assert_eq!(matrix_table(&empty), "  (no sites)\n");
    }

    #[test]
    fn plan_of_a_small_scenario() {
        let text = r#"
[scenario]
name = "tiny"
seed = 7

[sites.hq]
kind = "datacenter"
cidrs = ["10.1.0.0/16"]

[subnets.lan]
site = "hq"
cidr = "10.1.0.0/24"

[hosts.gw]
site = "hq"
interfaces = [{ name = "eth0", subnet = "lan" }]

[hosts.app]
site = "hq"
interfaces = [{ name = "eth0", subnet = "lan", address = "10.1.0.50" }]
"#;
        let scenario = match vpnsim_topology::load_str("tiny.toml", text) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let planned = vpnsim_plan::plan(&scenario);
        let matrix = SiteMatrix {
            sites: vec!["hq".into()],
            cells: vec![vec![Reach::All]],
        };
        let report = PlanReport::new("tiny.toml", &scenario, &planned, &matrix);
        let text = report.text();
        assert!(
            text.contains("gw    eth0       10.1.0.2/24   allocated  subnet lan"),
            "{text}"
        );
        assert!(
            text.contains("app   eth0       10.1.0.50/24  declared   subnet lan"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap_or_default();
        for key in [
            "scenario",
            "ula",
            "pools",
            "addresses",
            "client_ranges",
            "matrix",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["addresses"][0]["host"], "app");
        insta::assert_snapshot!("tiny_plan", text);
    }
}
