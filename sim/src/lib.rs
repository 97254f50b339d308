//! The simulator: a deterministic discrete-event network that runs the
//! files `render` produced, parsed back, on a virtual clock.
//!
//! Map:
//! - [`time`]: virtual instants and spans (nanoseconds); the only clock.
//! - [`rng`]: the run's one seeded random generator.
//! - [`packet`]: packets with wire sizes; tunnel messages are the models'.
//! - [`pcap`]: capture files (LINKTYPE_RAW) of what crossed each link.
//! - [`proto`]: sans-IO protocol models (WireGuard, IPsec, OpenVPN,
//!   bonding, PeerVPN) driven by the engine; each reports its sessions.
//! - [`engine`]: the event queue (ordered by time, then scheduling order)
//!   and trace lines.
//! - [`net`]: segments (links, subnets) with latency, jitter, loss,
//!   bandwidth, MTU, up/down.
//! - [`host`]: nodes (hosts, site routers): interfaces, routes, iptables
//!   evaluation, conntrack, NAT.
//! - [`load`]: building the network from the topology's physical layer and
//!   each host from its rendered files; promotion scripts.
//! - [`tunnels`]: constructors and the resolver for the protocol models
//!   (WireGuard, Libreswan, OpenVPN and bonds are wired in [`load`]).
//! - [`world`]: the packet pipeline, models' actions, faults, and the
//!   tunnel sessions the models report ([`world::SessionChange`]).
//! - [`wire`]: packets as bytes and back (for the stacks and pcap files).
//! - [`stack`]: each host's own smoltcp TCP/IP stack and the measurement
//!   applications on it (ping, connect test, UDP datagrams and streams,
//!   bulk transfer, services).
//! - [`monit`]: the monit daemon of a host, run from its control files:
//!   poll cycles, ICMP tests through the host's stack, restarts of the
//!   OpenVPN processes its programs name.
//! - [`probe`]: probes, UDP streams and bulk transfers, their samples and
//!   evidence.
//! - [`carrier`]: OpenVPN over TCP on the hosts' stacks.
//! - [`run`]: the public entry point [`run::run`], the timeline,
//!   expectations and the [`run::RunResult`].
//!
//! Architecture invariant: no wall clock, no unseeded randomness, no IO;
//! hosts are built from rendered files parsed back, never from the model.

pub mod carrier;
pub mod engine;
pub mod host;
pub mod load;
pub mod monit;
pub mod net;
pub mod packet;
pub mod pcap;
pub mod probe;
pub mod proto;
pub mod rng;
pub mod run;
pub mod stack;
pub mod time;
pub mod tunnels;
pub mod wire;
pub mod world;

pub use load::{AddressEntry, Addressing};
pub use run::{RunOptions, RunResult, SimError, run};
