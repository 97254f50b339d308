//! OpenVPN over TCP: the models' messages ride real TCP connections of the
//! hosts' smoltcp stacks ([`crate::stack`]), so a TCP tunnel has TCP's
//! handshake, retransmissions, flow control and resets, and its packets
//! look like TCP to firewalls and NAT.
//!
//! The OpenVPN models stay as they are (sans-IO, messages as values). A
//! client's connect (its SYN) becomes a connection of its host's stack; a
//! TCP server's port gets a listening socket when a SYN comes. Each
//! message a model sends is one record on the connection: OpenVPN's
//! 2-byte length, then the message's bytes — an id where the ciphertext
//! would start (the message itself waits in [`World::stream_messages`]),
//! zeros for the rest, so the record has the message's real size. The
//! other end reads whole records and hands the messages to its model as
//! if they had arrived in datagrams from the connection's peer. A
//! connection that comes up is a SYN-ACK to the client model (and a SYN
//! to the server's), one that breaks is a reset to both.

use std::net::SocketAddr;

use crate::packet::{Body, Data, Packet, Payload, TcpFlags, TcpOptions};
use crate::stack::AppEvent;
use crate::world::World;

/// A model's transmission, if it belongs on a TCP connection: taken and
/// put on the stream (`None`); anything else comes back to be routed.
pub fn transmit(world: &mut World, node: usize, t: usize, p: Packet) -> Option<Packet> {
    match &p.payload {
        Payload::Tcp {
            src_port,
            dst_port,
            flags,
            ..
        } => {
            // The model's own handshake segments: the stack does the
            // handshake; a SYN asks for a connection.
            if flags.syn && !flags.ack {
                let local = SocketAddr::new(p.src, *src_port);
                let peer = SocketAddr::new(p.dst, *dst_port);
                connect(world, node, t, local, peer);
            }
            None
        }
        Payload::Udp {
            dst_port,
            body: Body::OpenVpn(m),
            ..
        } if m.is_tcp() => {
            let peer = SocketAddr::new(p.dst, *dst_port);
            let id = world.next_stream_message;
            world.next_stream_message += 1;
            let len = m.wire_len();
            world.stream_messages.insert(id, m.clone());
            let sent = match world.stack(node) {
                Some(s) => s.stream_send(t, peer, id, len),
                None => Err("the host is down".into()),
            };
            match sent {
                Ok(()) => world.poll_stack(node),
                Err(why) => {
                    world.stream_messages.remove(&id);
                    world.drop_packet(node, &p, &format!("openvpn: {why}"));
                }
            }
            None
        }
        _ => Some(p),
    }
}

/// A client model's SYN: a new connection (OpenVPN closes the one before
/// when it moves to another remote).
fn connect(world: &mut World, node: usize, t: usize, local: SocketAddr, peer: SocketAddr) {
    let Some(stack) = world.stack(node) else {
        return;
    };
    if stack.has_stream(t, peer) {
        return; // the model retransmits its SYN; the stack already does
    }
    stack.stream_close(Some(t), None);
    let bind = if local.ip().is_unspecified() {
        world.route_source(node, peer.ip())
    } else {
        Some(local.ip())
    };
    let opened = match (bind, world.stack(node)) {
        (Some(bind), Some(stack)) => stack.stream_connect(t, local, bind, peer),
        (None, _) => Err(format!("no route to {}", peer.ip())),
        (_, None) => return,
    };
    match opened {
        Ok(()) => world.poll_stack(node),
        Err(why) => {
            let name = world.nodes[node].name.clone();
            world.log(format!("{name}: openvpn: TCP connect to {peer}: {why}"));
            segment_to_model(world, node, t, peer, local, rst());
        }
    }
}

/// After client model `t` acted: only the connection it uses now stays
/// open (a restart, a move to a UDP remote or another server closes the
/// old one, and the server sees it go).
pub fn sync(world: &mut World, node: usize, t: usize) {
    let keep = match world.nodes.get(node).and_then(|n| n.tunnels.get(t)) {
        Some(tunnel) => match &tunnel.engine {
            crate::host::Engine::OpenVpnClient(c) => c.tcp_connection().map(|(_, server)| server),
            _ => return,
        },
        None => return,
    };
    let Some(stack) = world.nodes[node].stack.as_mut() else {
        return;
    };
    if stack.has_other_stream(t, keep) {
        stack.stream_retain(t, keep);
        world.poll_stack(node);
    }
}

/// A SYN arriving at `node`: when a TCP OpenVPN server of the node has
/// the port, it gets a listening socket for this client.
pub fn listen_for(world: &mut World, node: usize, p: &Packet) {
    let Payload::Tcp {
        dst_port, flags, ..
    } = &p.payload
    else {
        return;
    };
    if !flags.syn || flags.ack {
        return;
    }
    let server = world.nodes.get(node).and_then(|n| {
        n.tunnels
            .iter()
            .enumerate()
            .find_map(|(i, t)| match &t.engine {
                crate::host::Engine::OpenVpnServer(s) => {
                    let (addr, port, tcp) = s.listen();
                    (tcp && port == *dst_port
                        && addr.is_none_or(|a| a.is_unspecified() || a == p.dst))
                    .then_some((i, port, addr.filter(|a| !a.is_unspecified())))
                }
                _ => None,
            })
    });
    if let Some((t, port, addr)) = server
        && let Some(stack) = world.stack(node)
    {
        stack.stream_listen(t, port, addr);
    }
}

/// What the stack saw of a tunnel's connection.
pub fn on_event(world: &mut World, node: usize, ev: AppEvent) {
    match ev {
        AppEvent::StreamUp {
            tunnel,
            local,
            peer,
        } => {
            let client = matches!(
                world.nodes[node].tunnels.get(tunnel).map(|t| &t.engine),
                Some(crate::host::Engine::OpenVpnClient(_))
            );
            let flags = if client { syn_ack() } else { syn() };
            segment_to_model(world, node, tunnel, peer, local, flags);
        }
        AppEvent::StreamRecord {
            tunnel,
            local,
            peer,
            id,
        } => {
            let Some(msg) = world.stream_messages.remove(&id) else {
                return;
            };
            let p = crate::proto::openvpn::wrap(peer, local, msg);
            world.deliver_to_model(node, tunnel, p);
        }
        AppEvent::StreamDown {
            tunnel,
            local,
            peer,
        } => segment_to_model(world, node, tunnel, peer, local, rst()),
        _ => {}
    }
}

fn syn() -> TcpFlags {
    TcpFlags {
        syn: true,
        ..TcpFlags::default()
    }
}

fn syn_ack() -> TcpFlags {
    TcpFlags {
        syn: true,
        ack: true,
        ..TcpFlags::default()
    }
}

fn rst() -> TcpFlags {
    TcpFlags {
        rst: true,
        ..TcpFlags::default()
    }
}

/// Tells tunnel model `t` what happened to its connection, as the segment
/// it would have seen.
fn segment_to_model(
    world: &mut World,
    node: usize,
    t: usize,
    from: SocketAddr,
    to: SocketAddr,
    flags: TcpFlags,
) {
    let p = Packet {
        src: from.ip(),
        dst: to.ip(),
        ttl: 64,
        dont_fragment: true,
        payload: Payload::Tcp {
            src_port: from.port(),
            dst_port: to.port(),
            flags,
            seq: 0,
            ack: 0,
            window: 0,
            options: TcpOptions::default(),
            data: Data::default(),
        },
    };
    world.deliver_to_model(node, t, p);
}
