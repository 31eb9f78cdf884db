//! A loopback webhook receiver for tests: it keeps every request it gets and answers 200.

use std::io::Read;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, BufReader};

use super::http::{read_message, response_bytes, Message};

/// A loopback receiver that keeps every request it gets and answers 200.
pub async fn receiver() -> (String, Arc<Mutex<Vec<Message>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                while let Ok(Some(req)) = read_message(&mut reader, false, false).await {
                    kept.lock().unwrap().push(req);
                    let ok = response_bytes(200, &[], b"");
                    if reader.get_mut().write_all(&ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, got)
}

pub fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .unwrap();
    out
}
