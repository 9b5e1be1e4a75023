//! The streams through the I/O traits of the ecosystem, on every backend:
//! `futures_io`'s, and tokio's (the `tokio-io` feature) on smol too.

use crate::common;

use std::io;

use common::{pair, V4};
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};
use hatchery::nursery;

#[hatchery::test]
async fn futures_io_traits_copy_through_a_proxy() {
    // client -> proxy (copies its halves) -> server, and back.
    let (mut client, proxy_in) = pair(V4).await;
    let (proxy_out, mut server) = pair(V4).await;
    nursery(|n| async move {
        let (in_read, in_write) = proxy_in.into_split();
        let (out_read, out_write) = proxy_out.into_split();
        n.spawn(async move { futures_lite::io::copy(in_read, out_write).await });
        n.spawn(async move { futures_lite::io::copy(out_read, in_write).await });
        n.spawn(async move {
            let mut buf = Vec::new();
            server.read_to_end(&mut buf).await?; // until the client's close
            server.write_all(&buf).await?;
            server.close().await // half-close: the copy back ends
        });
        client.write_all(b"through the proxy").await?;
        futures_lite::AsyncWriteExt::close(&mut client).await?;
        let mut back = Vec::new();
        futures_lite::AsyncReadExt::read_to_end(&mut client, &mut back).await?;
        assert_eq!(back, b"through the proxy");
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

#[hatchery::test]
async fn tokio_io_traits_on_every_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, mut server) = pair(V4).await;
    AsyncWriteExt::write_all(&mut client, b"tokio traits")
        .await
        .unwrap();
    AsyncWriteExt::shutdown(&mut client).await.unwrap();
    let mut got = String::new();
    AsyncReadExt::read_to_string(&mut server, &mut got)
        .await
        .unwrap();
    assert_eq!(got, "tokio traits");
    let (mut reader, mut writer) = server.into_split();
    AsyncWriteExt::write_all(&mut writer, b"halves")
        .await
        .unwrap();
    drop(writer);
    let mut got = Vec::new();
    AsyncReadExt::read_to_end(&mut client, &mut got)
        .await
        .unwrap();
    assert_eq!(got, b"halves");
    let mut rest = Vec::new();
    assert_eq!(
        AsyncReadExt::read_to_end(&mut reader, &mut rest)
            .await
            .unwrap(),
        0
    );
}

/// A poll-based read in a cancelled scope is a checkpoint too: it reads nothing.
#[hatchery::test]
async fn a_trait_read_in_a_cancelled_scope_reads_nothing() {
    let (mut client, mut server) = pair(V4).await;
    client.write_all(b"kept").await.unwrap();
    hatchery::sleep(hatchery_tests::ms(20)).await;
    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    let mut buf = [0; 4];
    let out = scope
        .run(futures_lite::AsyncReadExt::read(&mut server, &mut buf))
        .await;
    assert!(out.is_none());
    futures_lite::AsyncReadExt::read_exact(&mut server, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"kept");
}
