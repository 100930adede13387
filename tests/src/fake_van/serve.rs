//! Runs an axum router on its own hyper connection loop, so a handler can make the server
//! hang up on a request without answering (the `DropConnection` fault).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Put into a response's extensions to close the TCP connection instead of sending it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HangUp;

#[derive(Debug)]
struct HungUp;

impl std::fmt::Display for HungUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake server hung up on purpose")
    }
}

impl std::error::Error for HungUp {}

/// Binds `addr`; `0.0.0.0`/`::` are reported as loopback so base URLs stay usable.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let mut local = listener.local_addr()?;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok((listener, local))
}

/// Serves `router` on `listener` from a background task until the runtime stops.
pub(crate) fn spawn(listener: TcpListener, router: Router) {
    tokio::spawn(accept_loop(listener, router));
}

async fn accept_loop(listener: TcpListener, router: Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(TokioIo::new(stream), router.clone()));
    }
}

/// Serves `router` over one accepted connection (plain TCP or TLS) until it closes.
pub(crate) async fn serve_connection<I>(io: I, router: Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let response: Response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            // hyper closes the connection without writing anything when the
            // service fails, which is exactly a dropped connection to the client.
            if response.extensions().get::<HangUp>().is_some() {
                Err(HungUp)
            } else {
                Ok(response)
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}
