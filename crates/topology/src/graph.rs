//! The topology as a graph: which hosts can exchange packets at all, ignoring
//! addresses and routes. Nodes are hosts and the segments they attach to
//! (subnets, links, site routers, overlays); an edge means "attached".
//!
//! Routing-aware questions (does A reach B?) belong to `verify`; this graph
//! answers structural ones cheaply: which hosts and segments are cut points,
//! which hosts are connected at all.

use std::collections::BTreeSet;

use petgraph::graph::UnGraph;

use crate::model::{BondId, HostId, LinkId, MeshId, OverlayId, Segment, SiteId, SubnetId, Topology};

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
}

impl NetworkGraph {
    /// Builds the graph. Overlays attach their members to one overlay node
    /// per star/mesh/bond; IPsec tunnels and OpenVPN profiles attach pairs.
    pub fn build(t: &Topology) -> Self {
        let mut g = UnGraph::new_undirected();
        let mut index = std::collections::BTreeMap::new();
        let mut node = |g: &mut UnGraph<Node, ()>, n: Node| *index.entry(n).or_insert_with(|| g.add_node(n));
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
            .map(|(i, m)| (OverlayId::Mesh(MeshId(i as u32)), m.members.iter().map(|m| m.host).collect::<Vec<_>>()))
            .chain(t.bonds.iter().enumerate().map(|(i, b)| (OverlayId::Bond(BondId(i as u32)), b.hosts.to_vec())));
        for (overlay, hosts) in shared_segments {
            let o = node(&mut g, Node::Overlay(overlay));
            for h in hosts {
                let h = node(&mut g, Node::Host(h));
                g.add_edge(o, h, ());
            }
        }
        NetworkGraph { graph: g }
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
