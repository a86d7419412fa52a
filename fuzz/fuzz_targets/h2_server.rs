//! Arbitrary HTTP/2 frames from a client (after the connection preface)
//! against the server configuration and flood guard the engine uses: the
//! connection may fail, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate_net::http2::guard::FloodGuard;
use streamgate_net::http2::{server_builder, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        // Read the server's answers all along, so its writes never block
        // its reads.
        let drained = tokio::spawn(async move {
            let mut answers = Vec::new();
            let _ = from_server.read_to_end(&mut answers).await;
        });
        let served = tokio::spawn(async move {
            let io = FloodGuard::new(server, 50);
            let Ok(mut conn) = server_builder(&Limits::default())
                .handshake::<_, bytes::Bytes>(io)
                .await
            else {
                return;
            };
            while let Some(Ok((request, mut respond))) = conn.accept().await {
                drop(request);
                let _ = respond.send_response(http::Response::new(()), true);
            }
        });
        let _ = to_server.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let _ = to_server.write_all(data).await;
        let _ = to_server.shutdown().await;
        let _ = served.await;
        let _ = drained.await;
    });
});
