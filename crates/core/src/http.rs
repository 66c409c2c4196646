//! The HTTP the lifecycle needs: parsing a serve's origin and a health probe (`GET` with an
//! optional bearer token) through hyper, bounded by a per-probe timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `(host, port, path)` of an `http://host[:port]/path` URL; `https` is not probed here.
pub fn parse_http_url(url: &str) -> Option<(String, u16, String)> {
    let uri: Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let (host, port) = origin(&uri, 80)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Some((host, port, path))
}

/// `(host, port)` of an `http(s)://host[:port]/...` URL (default ports applied). IPv6 hosts keep
/// their brackets. URLs with credentials are refused.
pub fn parse_http_origin(url: &str) -> Option<(String, u16)> {
    let uri: Uri = url.parse().ok()?;
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    origin(&uri, default_port)
}

fn origin(uri: &Uri, default_port: u16) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    // `user@host` would let a record point probes somewhere its host field does not say.
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(default_port);
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Does something accept TCP connections on `host:port` right now? `None` when the connect
/// itself did not finish within 500 ms (a timeout proves nothing either way).
pub async fn accepts_connections(host: &str, port: u16) -> Option<bool> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect((bare, port))).await {
        Ok(Ok(_)) => Some(true),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(false),
        _ => None,
    }
}

/// Why a probe did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("not an http:// URL: {0}")]
    BadUrl(String),
    #[error("connection refused")]
    Refused,
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Other(String),
}

/// `GET url` with `Authorization: Bearer <token>` when given; the response status, or why
/// there was none. The whole exchange is bounded by `timeout`.
pub async fn probe(url: &str, bearer: Option<&str>, timeout: Duration) -> Result<u16, ProbeError> {
    probe_observed(url, bearer, timeout, |_| {}).await
}

/// [`probe`], telling `connected` the local port of its connection once it is made (so a caller
/// counting the serve's connections can leave its own probe out).
pub async fn probe_observed(
    url: &str,
    bearer: Option<&str>,
    timeout: Duration,
    connected: impl FnOnce(u16),
) -> Result<u16, ProbeError> {
    let (host, port, path) =
        parse_http_url(url).ok_or_else(|| ProbeError::BadUrl(url.to_owned()))?;
    let exchange = async {
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port);
        let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ProbeError::Refused,
            _ => ProbeError::Other(e.to_string()),
        })?;
        if let Ok(local) = stream.local_addr() {
            connected(local.port());
        }
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProbeError::Other(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let mut request = Request::get(path).header("host", format!("{host}:{port}"));
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::Other(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ProbeError::Other(e.to_string()));
        driver.abort();
        Ok(response?.status().as_u16())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn urls_parse() {
        assert_eq!(
            Some(("127.0.0.1".into(), 8080)),
            parse_http_origin("http://127.0.0.1:8080/v1")
        );
        assert_eq!(
            Some(("[::1]".into(), 80)),
            parse_http_origin("http://[::1]/v1")
        );
        assert_eq!(None, parse_http_origin("http://user@evil:80/"));
        assert_eq!(None, parse_http_origin("file:///etc/passwd"));
        assert_eq!(
            Some(("127.0.0.1".into(), 9, "/v1/models".into())),
            parse_http_url("http://127.0.0.1:9/v1/models")
        );
    }

    #[tokio::test]
    async fn probe_sends_the_bearer_and_reads_the_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            request
        });
        let url = format!("http://127.0.0.1:{port}/v1/models");
        assert_eq!(
            204,
            probe(&url, Some("s3cret"), Duration::from_secs(2))
                .await
                .unwrap()
        );
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /v1/models HTTP/1.1"), "{request}");
        assert!(request
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret"));
    }

    #[tokio::test]
    async fn probe_reports_refused_and_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/");
        assert!(matches!(
            probe(&url, None, Duration::from_secs(2)).await,
            Err(ProbeError::Refused)
        ));
        // Accepts but never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/", silent.local_addr().unwrap().port());
        let hold = tokio::spawn(async move { silent.accept().await });
        let err = probe(&url, None, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Timeout(_)), "{err:?}");
        hold.abort();
    }
}
