//! The render crate's one integration-test binary. Each module feeds files
//! of one family to the real tools (wg, iptables-restore, nft,
//! named-checkzone, php, ipsec, openvpn) and asserts they are accepted;
//! `netns` is the throwaway network namespace those tests run in.

mod bond;
mod dns;
mod eduvpn;
mod firewall;
mod ipsec;
mod netns;
mod openvpn;
mod scenarios;
mod wireguard;
