//! The first thing a go-fastdfs user does: upload with curl -F and download it again.
mod common;
use common::*;
use serde_json::json;

#[test]
fn upload_then_download_returns_the_same_bytes() {
    let s = Server::start(json!({}));
    let r = upload_json(&s, "hello.txt", b"hello world\n");
    assert_eq!(r["md5"], "6f5902ac237024bdd0c176cb93063dc4");
    let path = r["path"].as_str().unwrap();
    let (code, body) = call(agent().get(&s.url(path)));
    assert_eq!((code, body.as_str()), (200, "hello world\n"));
}
