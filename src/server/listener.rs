//! The listening sockets and the accept loops: one thread per listener hands
//! each client to the session pool, or answers 421 at once when it is full.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::connection::{serve, ServerContext};
use super::pool::Pool;
use super::ServerError;
use crate::config::Listener;
use crate::log::Escaped;
use crate::smtp::reply::{self, Reply};

/// How long a client that finds every place taken waits for one: sessions
/// that said their 221 may still be closing (see [`Pool::run_within`]).
const FULL_POOL_GRACE: Duration = Duration::from_millis(100);

/// A session thread with no client for this long ends.
const IDLE_THREAD_LIFETIME: Duration = Duration::from_secs(60);
/// How long the listener waits to tell a client the pool is full.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct BoundListener {
    pub config: Listener,
    pub socket: TcpListener,
}

/// Binds every configured listener, or says which one failed.
pub fn bind_all(listeners: &[Listener]) -> Result<Vec<BoundListener>, ServerError> {
    listeners
        .iter()
        .map(|config| {
            TcpListener::bind(config.addr)
                .map(|socket| BoundListener {
                    config: config.clone(),
                    socket,
                })
                .map_err(|error| ServerError::Listen {
                    addr: config.addr,
                    error,
                })
        })
        .collect()
}

/// Sessions of clients outside relay_networks, per address and in all,
/// shared by all listeners.
#[derive(Default)]
pub struct ClientCounts {
    sessions: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a client gets no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlace {
    /// Its address has `max_connections_per_ip` sessions.
    ForAddress,
    /// Outsiders hold every place not reserved for relay_networks.
    ForOutsiders,
}

/// One client's place among the sessions; given back when dropped.
pub struct ClientSlot {
    counts: Arc<ClientCounts>,
    ip: IpAddr,
}

impl ClientCounts {
    /// A place for one more session from `ip`, if it has fewer than
    /// `per_ip` and outsiders have fewer than `total` in all.
    pub fn try_take(
        counts: &Arc<ClientCounts>,
        ip: IpAddr,
        per_ip: usize,
        total: usize,
    ) -> Result<ClientSlot, NoPlace> {
        let mut sessions = counts.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.by_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
            return Err(NoPlace::ForAddress);
        }
        if sessions.total >= total {
            return Err(NoPlace::ForOutsiders);
        }
        *sessions.by_ip.entry(ip).or_insert(0) += 1;
        sessions.total += 1;
        Ok(ClientSlot {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut sessions = self
            .counts
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = sessions.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                sessions.by_ip.remove(&self.ip);
            }
            sessions.total -= 1;
        }
    }
}

/// Starts an accept thread for each listener; sessions share one pool, which
/// is returned so that shutdown can wait for it to empty. `max_connections`
/// and `reserved_connections` are fixed here: SIGHUP does not change them.
pub fn start(listeners: Vec<BoundListener>, ctx: Arc<ServerContext>) -> std::io::Result<Arc<Pool>> {
    let config = ctx.config.get();
    let pool = Arc::new(Pool::new(config.max_connections, IDLE_THREAD_LIFETIME));
    let places = Places {
        outsiders: config.outsider_connections(),
        counts: Arc::new(ClientCounts::default()),
    };
    for listener in listeners {
        let ctx = Arc::clone(&ctx);
        let pool = Arc::clone(&pool);
        let places = places.clone();
        thread::Builder::new()
            .name(format!("listen {}", listener.config.addr))
            .spawn(move || accept_loop(listener, &ctx, &pool, &places))?;
    }
    Ok(pool)
}

/// The places of clients outside relay_networks: the pool's places but the
/// `reserved_connections`, so that the box itself and the LAN always find
/// one, however many strangers hold sessions.
#[derive(Clone)]
struct Places {
    outsiders: usize,
    counts: Arc<ClientCounts>,
}

fn accept_loop(listener: BoundListener, ctx: &Arc<ServerContext>, pool: &Pool, places: &Places) {
    loop {
        let (stream, peer) = match listener.socket.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                log::error!("accept on {}: {e}", listener.config.addr);
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let config = ctx.config.get();
        if ctx.stopping.load(Ordering::SeqCst) {
            refuse(&stream, &reply::shutting_down(&config.hostname));
            continue;
        }
        // Clients that may relay (the box itself, the LAN) are not limited
        // per address, as Postfix exempts $mynetworks, and may take the
        // reserved places.
        let ip = peer.ip().to_canonical();
        let slot = if config.may_relay(ip) {
            None
        } else {
            let taken = ClientCounts::try_take(
                &places.counts,
                ip,
                config.max_connections_per_ip,
                places.outsiders,
            );
            match taken {
                Ok(slot) => Some(slot),
                Err(NoPlace::ForAddress) => {
                    log::warn!("too many connections from {ip}, refused");
                    refuse(
                        &stream,
                        &reply::too_many_connections_from_ip(&config.hostname),
                    );
                    continue;
                }
                Err(NoPlace::ForOutsiders) => {
                    log::warn!("no place left outside the reserved ones, refused {peer}");
                    refuse(&stream, &reply::too_many_connections(&config.hostname));
                    continue;
                }
            }
        };
        let session_ctx = Arc::clone(ctx);
        // The session owns one handle of the socket; the panic guard keeps
        // another to say 421 (not on a TLS listener, where clear text would
        // only be garbage to the client).
        let (job_stream, guard_stream) = match (stream.try_clone(), stream.try_clone()) {
            (Ok(job), Ok(guard)) => (job, (!listener.config.implicit_tls).then_some(guard)),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("cannot use a client socket: {e}");
                continue;
            }
        };
        let listener_config = listener.config.clone();
        let hostname = config.hostname.clone();
        let registered = match stream.try_clone() {
            Ok(clone) => clone,
            Err(e) => {
                log::error!("cannot use a client socket: {e}");
                continue;
            }
        };
        let job = Box::new(move || {
            let _slot = slot;
            let _registration = session_ctx.register(registered);
            guard_session(guard_stream.as_ref(), &hostname, || {
                serve(job_stream, &listener_config, &session_ctx)
            })
        });
        if pool.run_within(job, FULL_POOL_GRACE).is_err() {
            log::warn!("too many connections, refused {peer}");
            refuse(&stream, &reply::too_many_connections(&config.hostname));
        }
    }
}

/// Runs a session; a panic in it ends that session with a 421, not the server.
fn guard_session(stream: Option<&TcpStream>, hostname: &str, session: impl FnOnce()) {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(session));
    if let Err(panic) = run {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let peer = stream
            .and_then(|s| s.peer_addr().ok())
            .map(|a| a.to_string())
            .unwrap_or_default();
        // A panic message may quote what the client sent.
        log::error!("session with {peer} panicked: {}", Escaped(&what));
        if let Some(mut writer) = stream {
            let _ = writer.write_all(reply::internal_error(hostname).to_wire().as_bytes());
        }
    }
}

/// RFC 5321 3.8: a server that cannot serve a client now says 421 and closes.
fn refuse(stream: &TcpStream, reply: &Reply) {
    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
    let mut writer = stream;
    let _ = writer.write_all(reply.to_wire().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn outsiders_are_limited_per_address_and_in_all() {
        let counts = Arc::new(ClientCounts::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let take = |ip| ClientCounts::try_take(&counts, ip, 2, 3);
        let a1 = take(a).unwrap();
        let _a2 = take(a).unwrap();
        assert_eq!(take(a).err(), Some(NoPlace::ForAddress));
        let _b1 = take(b).unwrap();
        assert_eq!(take(c).err(), Some(NoPlace::ForOutsiders));
        // A place given back is free for anyone.
        drop(a1);
        let _c1 = take(c).unwrap();
        assert_eq!(take(b).err(), Some(NoPlace::ForOutsiders));
    }

    #[test]
    fn a_panicking_session_gets_421() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        guard_session(Some(&server), "mx.test", || panic!("crafted header"));
        drop(server);
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(
            reply,
            "421 4.3.0 mx.test Error: internal error, closing connection\r\n"
        );
    }
}
