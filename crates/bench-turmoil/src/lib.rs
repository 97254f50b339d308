//! The workload of `vpnsim-sim`'s `star_figures` bench written for tokio's
//! turmoil, so both simulators run side by side on one machine: a hub and
//! N workers over a network with 30 ms latency; every worker sends a
//! 32-byte keepalive to the hub every 25 s (WireGuard's persistent
//! keepalive) and a 128-byte ping (an 84-byte ICMP echo in a WireGuard data
//! message) every second, which the hub answers.
//!
//! turmoil simulates hosts as tokio tasks with UDP sockets; it has no
//! WireGuard, routing, NAT or firewalls, so this measures the cost of the
//! event machinery for the same message pattern, not a like-for-like model.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

use turmoil::net::UdpSocket;

const PORT: u16 = 55820;
const PING: usize = 128;
const KEEPALIVE: usize = 32;

/// Pings sent and answered by the workers of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub answered: u64,
}

/// Runs the star for `seconds` simulated seconds with `workers` workers.
pub fn run_star(workers: usize, seconds: u64) -> turmoil::Result<Counts> {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(seconds + 5))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(30))
        .max_message_latency(Duration::from_millis(30))
        // turmoil's default UDP socket capacity (64 datagrams) drops the
        // hub's burst of pings; the simulator's hosts have no such limit.
        .udp_capacity(workers.max(64) * 2)
        .rng_seed(1)
        .build();
    sim.host("hub", || async {
        let socket = UdpSocket::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            if n == PING {
                socket.send_to(&buf[..n], from).await?;
            }
        }
    });
    let sent = Rc::new(Cell::new(0u64));
    let answered = Rc::new(Cell::new(0u64));
    for w in 0..workers {
        let (sent, answered) = (sent.clone(), answered.clone());
        sim.client(format!("w{w}"), async move {
            let socket = UdpSocket::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
            let hub = (turmoil::lookup("hub"), PORT);
            let mut buf = [0u8; 2048];
            for second in 0..seconds {
                if second % 25 == 0 {
                    socket.send_to(&[0u8; KEEPALIVE], hub).await?;
                }
                socket.send_to(&[1u8; PING], hub).await?;
                sent.set(sent.get() + 1);
                let deadline = tokio::time::sleep(Duration::from_secs(1));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        got = socket.recv_from(&mut buf) => {
                            if got?.0 == PING {
                                answered.set(answered.get() + 1);
                            }
                        }
                    }
                }
            }
            Ok(())
        });
    }
    sim.run()?;
    Ok(Counts {
        sent: sent.get(),
        answered: answered.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ping_of_a_small_star_is_answered_after_the_latency() {
        let counts = run_star(3, 5).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counts.sent, 15);
        assert_eq!(
            counts.answered, 15,
            "60 ms round trips fit in the 1 s between pings"
        );
    }
}
