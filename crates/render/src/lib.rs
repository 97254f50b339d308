//! Render stage: the files each host needs, in the formats the real daemons
//! read, and a parser for each so the simulator and the labs can load the
//! files back (render ⇄ parse).
//!
//! Map: [`format`] holds the contract (`Format`: `emit` + `parse`,
//! [`format::ParseError`] with line numbers). One module per file format:
//! - [`wgquick`]: wg-quick `wg0.conf`.
//! - [`libreswan`]: Libreswan/OpenSwan `ipsec.conf`, `ipsec.d/<conn>.conf`, `.secrets`.
//! - [`swanctl`]: strongSwan `swanctl.conf`.
//! - [`openvpn`]: OpenVPN configs (server, client with inline blocks, TAP p2p).
//! - [`ifupdown`]: `/etc/network/interfaces.d` stanzas (bond, tap).
//! - [`iptables`]: `iptables-restore` / `ip6tables-restore` files.
//! - [`nftables`]: `nft -f` rulesets.
//! - [`sysctl`]: `sysctl.d` files.
//! - [`zone`]: DNS zone files (BIND master format).
//! - [`peervpn`]: PeerVPN `vpn.conf`.
//! - [`monit`]: monit control files.
//! - [`eduvpn`]: eduVPN profile configuration (PHP array, YAML) and Apache `RequireAny`.
//! - [`cloud`]: cloud route-table entries as JSON and Terraform `aws_route`.
//! - [`script`]: POSIX shell scripts (bond enslave/release, promotion procedures).
//!
//! [`hosts`] turns the model, the plan and key material into every host's
//! files, using the formats above.
//!
//! [`drift`] compares a generated tree with one collected from hosts.
//!
//! [`tree`] holds the generated tree as data (`FileSet`) and its manifest.
//!
//! Architecture invariant: render is pure. No IO, no clock, no randomness:
//! keys arrive as values, and the same inputs give byte-identical files.

pub mod cloud;
pub mod drift;
pub mod eduvpn;
pub mod format;
pub mod hosts;
pub mod ifupdown;
pub mod iptables;
pub mod libreswan;
pub mod monit;
pub mod nftables;
pub mod openvpn;
pub mod peervpn;
pub mod script;
pub mod swanctl;
pub mod sysctl;
pub mod tree;
pub mod wgquick;
pub mod zone;

pub use format::{Format, ParseError};
