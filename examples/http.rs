//! An HTTP/1 server and client with hyper, over hatchery's TCP streams, on loopback: the
//! same code on every backend.
//!
//! The server is [`hatchery::net::serve`]: each connection is a task of its nursery,
//! and hyper runs on it through `hyper_util::rt::TokioIo`, which takes tokio's I/O
//! traits; hatchery's streams implement them with the `tokio-io` feature, without a
//! tokio runtime (on smol too). The client sends a few requests, each under a deadline
//! of its own, and stops the server when done, which closes its connections.
//!
//! ```text
//! cargo run --example http -- --backend tokio   # or tokio-current, smol
//! ```

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HOST;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use hatchery::net::{serve, TcpListener, TcpStream};
use hatchery::{fail_after, nursery, CancelScope};

/// The requests the client sends.
const REQUESTS: usize = 5;

/// The server's one route: `GET /hello/NAME` answers a greeting, `POST /echo` its body.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let reply = match (req.method(), req.uri().path()) {
        (&Method::GET, path) if path.starts_with("/hello/") => {
            let name = &path["/hello/".len()..];
            Response::new(Full::new(Bytes::from(format!("hello, {name}"))))
        }
        (&Method::POST, "/echo") => {
            let body = req.into_body().collect().await?.to_bytes();
            Response::new(Full::new(body))
        }
        _ => {
            let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found")));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            not_found
        }
    };
    Ok(reply)
}

/// Serves one connection. A connection's failure (a client that went away) is logged,
/// and not returned: an error would stop the server (see `serve`'s policy).
async fn connection(stream: TcpStream) -> std::io::Result<()> {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(handle))
        .await;
    if let Err(e) = served {
        eprintln!("  server: connection from {peer:?} failed: {e}");
    }
    Ok(())
}

/// Sends `req` and returns the status and body, within a second.
async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, String)> {
    let exchange = async {
        sender.ready().await?; // the connection takes one request at a time
        let res = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    fail_after(Duration::from_secs(1), exchange).await?
}

/// Runs the server and the client; returns what the client received.
async fn app() -> anyhow::Result<Vec<(StatusCode, String)>> {
    let server = CancelScope::new();
    let stop_server = server.handle();
    nursery(|n| async move {
        let addr = n
            .start(|ready| async move {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                ready.started(listener.local_addr()?);
                // `None` once stopped; `Some` only with an error of `accept`.
                if let Some(Err(e)) = server.run(serve(listener, connection)).await {
                    return Err(anyhow::Error::from(e));
                }
                anyhow::Ok(())
            })
            .await?;
        println!("server listening on {addr}");

        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection's driver: ends when `sender` is dropped.
        n.spawn(async move { conn.await.map_err(anyhow::Error::from) });

        let mut got = Vec::new();
        for i in 0..REQUESTS {
            let req = Request::get(format!("/hello/request-{i}"))
                .header(HOST, addr.to_string())
                .body(Full::default())?;
            let (status, body) = send(&mut sender, req).await?;
            println!("  GET /hello/request-{i} -> {status}: {body}");
            got.push((status, body));
        }
        let req = Request::post("/echo")
            .header(HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(b"round trip")))?;
        let (status, body) = send(&mut sender, req).await?;
        println!("  POST /echo -> {status}: {body}");
        got.push((status, body));
        let req = Request::get("/nowhere")
            .header(HOST, addr.to_string())
            .body(Full::default())?;
        let (status, body) = send(&mut sender, req).await?;
        println!("  GET /nowhere -> {status}: {body}");
        got.push((status, body));

        drop(sender);
        stop_server.cancel(); // closes the server's connections, and the listener
        println!("server stopped");
        anyhow::Ok(got)
    })
    .await
    .map_err(anyhow::Error::from)
}

fn main() -> anyhow::Result<()> {
    examples::run(app()).map(drop)
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;

    /// On every backend, over real loopback sockets.
    #[hatchery::test]
    async fn serves_every_request() {
        let got = super::app().await.unwrap();
        assert_eq!(got.len(), super::REQUESTS + 2);
        for (i, (status, body)) in got.iter().take(super::REQUESTS).enumerate() {
            assert_eq!(*status, StatusCode::OK);
            assert_eq!(*body, format!("hello, request-{i}"));
        }
        assert_eq!(
            got[super::REQUESTS],
            (StatusCode::OK, "round trip".to_string())
        );
        assert_eq!(got[super::REQUESTS + 1].0, StatusCode::NOT_FOUND);
    }
}
