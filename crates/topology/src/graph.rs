//! The topology as a graph: which hosts can exchange packets at all, ignoring
//! addresses and routes. Nodes are hosts and the segments they attach to
//! (subnets, links, site routers, overlays); an edge means "attached".
//!
//! Routing-aware questions (does A reach B?) belong to `verify`; this graph
//! answers structural ones cheaply: which hosts and segments are cut points,
//! which hosts are connected at all.

use std::collections::BTreeSet;

use petgraph::graph::UnGraph;

use crate::model::{
    BondId, HostId, LinkId, MeshId, OverlayId, Segment, SiteId, SubnetId, Topology,
};

/// What a graph node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Host(HostId),
    Subnet(SubnetId),
    Link(LinkId),
    /// The implicit router of a site (VPC router) that joins its subnets.
    SiteRouter(SiteId),
    /// A tunnel or overlay segment.
    Overlay(OverlayId),
}

/// Undirected attachment graph of a topology.
#[derive(Debug, Clone)]
pub struct NetworkGraph {
    graph: UnGraph<Node, ()>,
    /// Host → node index (hosts are added first, in ID order).
    hosts: Vec<petgraph::graph::NodeIndex>,
}

impl NetworkGraph {
    /// Builds the graph. Overlays attach their members to one overlay node
    /// per star/mesh/bond; IPsec tunnels and OpenVPN profiles attach pairs.
    pub fn build(t: &Topology) -> Self {
        let mut g = UnGraph::new_undirected();
        let mut index = std::collections::BTreeMap::new();
        let mut node =
            |g: &mut UnGraph<Node, ()>, n: Node| *index.entry(n).or_insert_with(|| g.add_node(n));
        for id in t.host_ids() {
            node(&mut g, Node::Host(id));
        }
        for (i, subnet) in t.subnets.iter().enumerate() {
            let s = node(&mut g, Node::Subnet(SubnetId(i as u32)));
            let r = node(&mut g, Node::SiteRouter(subnet.site));
            g.add_edge(s, r, ());
        }
        for (i, site) in t.sites.iter().enumerate() {
            if let Some(uplink) = site.uplink {
                let r = node(&mut g, Node::SiteRouter(SiteId(i as u32)));
                let l = node(&mut g, Node::Link(uplink));
                g.add_edge(r, l, ());
            }
        }
        for id in t.host_ids() {
            let h = node(&mut g, Node::Host(id));
            for iface in &t.host(id).interfaces {
                let seg = match iface.segment {
                    Segment::Subnet(s) => Node::Subnet(s),
                    Segment::Link(l) => Node::Link(l),
                };
                let s = node(&mut g, seg);
                g.add_edge(h, s, ());
            }
        }
        // Stars, tunnels and client connections are point-to-point: host–host
        // edges, so a hub or a node shows up as the cut point it is.
        let mut connect = |g: &mut UnGraph<Node, ()>, a: HostId, b: HostId| {
            let (a, b) = (node(g, Node::Host(a)), node(g, Node::Host(b)));
            g.add_edge(a, b, ());
        };
        for star in &t.stars {
            for w in &star.workers {
                connect(&mut g, star.hub, *w);
            }
        }
        for ipsec in &t.ipsec {
            for tunnel in &ipsec.tunnels {
                connect(&mut g, tunnel.left, tunnel.right);
            }
        }
        for dep in &t.openvpn {
            for node_host in dep.nodes() {
                connect(&mut g, dep.controller, node_host);
            }
            for (client, profile) in &dep.clients {
                connect(&mut g, *client, dep.profiles[*profile].node);
            }
        }
        let shared_segments = t
            .meshes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                (
                    OverlayId::Mesh(MeshId(i as u32)),
                    m.members.iter().map(|m| m.host).collect::<Vec<_>>(),
                )
            })
            .chain(
                t.bonds
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (OverlayId::Bond(BondId(i as u32)), b.hosts.to_vec())),
            );
        for (overlay, hosts) in shared_segments {
            let o = node(&mut g, Node::Overlay(overlay));
            for h in hosts {
                let h = node(&mut g, Node::Host(h));
                g.add_edge(o, h, ());
            }
        }
        let hosts = t
            .host_ids()
            .filter_map(|h| index.get(&Node::Host(h)).copied())
            .collect();
        NetworkGraph { graph: g, hosts }
    }

    /// Whether any chain of links, subnets and tunnels joins two hosts,
    /// whatever the addresses and routes say.
    pub fn connected(&self, a: HostId, b: HostId) -> bool {
        match (self.hosts.get(a.index()), self.hosts.get(b.index())) {
            (Some(a), Some(b)) => petgraph::algo::has_path_connecting(&self.graph, *a, *b, None),
            _ => false,
        }
    }

    /// Hosts whose removal disconnects the graph.
    pub fn cut_hosts(&self) -> BTreeSet<HostId> {
        petgraph::algo::articulation_points::articulation_points(&self.graph)
            .into_iter()
            .filter_map(|n| match self.graph[n] {
                Node::Host(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_hub_is_a_cut_point_and_strangers_are_apart() {
        let text = "[scenario]\nname = \"g\"\nseed = 1\n[sites.s]\nkind = \"home\"\n[links.l]\nkind = \"wan\"\n\
            [hosts.hub]\nsite = \"s\"\n[hosts.w1]\nsite = \"s\"\n[hosts.w2]\nsite = \"s\"\n[hosts.alone]\nsite = \"s\"\n\
            [wireguard.star]\ncidr = \"10.5.4.0/24\"\nhub = \"hub\"\nworkers = [\"w1\", \"w2\"]\n";
        let s = crate::load_str("g.toml", text).unwrap_or_else(|e| panic!("{e:?}"));
        let t = &s.topology;
        let id = |n: &str| t.host_id(n).unwrap_or_else(|| panic!("{n}"));
        let g = NetworkGraph::build(t);
        assert!(g.connected(id("w1"), id("w2")));
        assert!(!g.connected(id("w1"), id("alone")));
        assert_eq!(g.cut_hosts(), BTreeSet::from([id("hub")]));
    }
}
