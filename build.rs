//! Build-time facts about this machine that decide which tests can run:
//! `cfg(ktls_kernel)` when the kernel takes TLS over (`TCP_ULP "tls"` on
//! a loopback connection works). The kTLS test needs it; elsewhere it is
//! reported as skipped, with the reason, rather than passing unexercised.

use std::os::fd::AsRawFd;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(ktls_kernel)");
    println!("cargo:rerun-if-changed=build.rs");
    if ktls() {
        println!("cargo:rustc-cfg=ktls_kernel");
    }
}

fn ktls() -> bool {
    let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(client) = listener.local_addr().and_then(std::net::TcpStream::connect) else {
        return false;
    };
    let _server = listener.accept();
    let name = b"tls";
    // SAFETY: setsockopt reads `name.len()` bytes from a live buffer.
    unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        ) == 0
    }
}
