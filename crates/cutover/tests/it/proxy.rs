//! A TCP proxy between Cutover and a service, for fault injection: `cut` drops every open
//! connection and refuses new ones until `restore`; `stall` stops forwarding without closing
//! anything, as a silent partition does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    stalled: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (stalled, _) = watch::channel(false);
        let accept_up = up.clone();
        let accept_cuts = cuts.subscribe();
        let accept_stalled = stalled.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !accept_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                if *accept_stalled.borrow() {
                    // accepted, and never answered
                    tokio::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await
                    });
                    continue;
                }
                let mut cut = accept_cuts.clone();
                cut.mark_unchanged();
                let mut stall = accept_stalled.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    let stalled = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                        _ = cut.changed() => false,
                        _ = stall.wait_for(|stalled| *stalled) => true,
                    };
                    if stalled {
                        // both ends stay open, and nothing passes any more
                        let _held = (inbound, outbound);
                        std::future::pending::<()>().await
                    }
                });
            }
        });
        Proxy { port, up, cuts, stalled }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.stalled.send_replace(false);
    }

    /// Stops forwarding on every connection, open or new, without closing or refusing any.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }
}

/// A forwarder that can go away entirely, as a stopped server does: `stop` closes its port and
/// drops every connection, so that connecting is refused (`ECONNREFUSED`, which a connection
/// pool keeps retrying until its acquire timeout); `restart` opens the same port again.
pub struct Port {
    pub port: u16,
    target: &'static str,
    serving: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl Port {
    pub async fn start(target: &'static str) -> Port {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut port = Port { port: listener.local_addr().unwrap().port(), target, serving: None };
        port.serve(listener);
        port
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let (stopping, mut stop) = watch::channel(false);
        let serving = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { break };
                        connections.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    _ = stop.changed() => break,
                }
            }
            drop(listener);
            // every connection is closed before `stop` returns
            connections.shutdown().await;
        });
        self.serving = Some((stopping, serving));
    }

    /// Closes the port and every connection through it; returns once they are all closed, so
    /// that nothing the caller does next can still pass.
    pub async fn stop(&mut self) {
        if let Some((stopping, serving)) = self.serving.take() {
            let _ = stopping.send(true);
            let _ = serving.await;
        }
    }

    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}
