//! Benchmark tool (bench/scale.sh): fills a runtime dir with `COUNT` merged small files
//! directly through the store, as `enable_merge_small_file` uploads would have left them:
//! containers `files/haystack/<peer_id>/<N>` (marker + content, each up to 1 GiB) and one
//! record per file in the metadata (records, path keys, days, container index). Every file's
//! content is distinct (its number is in its first bytes), so dedup never folds two.
//!
//! usage: fastdfs-fill <runtime-dir> <count> <content-bytes> <peer-id> <urls-file> <url-every>
//! Writes every `url-every`-th file's URL path to `urls-file` (for wrk).

use fastdfs::json::FileInfo;
use fastdfs::store::haystack;
use fastdfs::store::meta::{shard_of, Meta};
use md5::{Digest, Md5};
use std::io::Write;
use std::path::PathBuf;

const CONTAINER_BYTES: u64 = 1 << 30;
const BATCH: usize = 20_000;
const SHARDS: u32 = fastdfs::config::SHARDS_DEFAULT;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!(
            "usage: {} <runtime-dir> <count> <content-bytes> <peer-id> <urls-file> <url-every>",
            args[0]
        );
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[1]);
    let count: u64 = args[2].parse().expect("count");
    let content_bytes: usize = args[3].parse().expect("content-bytes");
    let peer_id = &args[4];
    let every: u64 = args[6].parse().expect("url-every");
    assert!(content_bytes >= 8, "room for the file's number");
    let meta = Meta::open(&dir, SHARDS, 1).expect("metadata store");
    let rel_dir = haystack::dir_of(peer_id);
    std::fs::create_dir_all(dir.join(&rel_dir)).expect("container dir");
    let mut urls = std::io::BufWriter::new(std::fs::File::create(&args[5]).expect("urls file"));
    let shards = meta.shard_count();
    let mut pending: Vec<Vec<FileInfo>> = vec![Vec::new(); shards];
    let (mut container, mut offset) = (100u64, 0u64);
    let open = |n: u64| {
        std::io::BufWriter::with_capacity(
            4 << 20,
            std::fs::File::create(dir.join(&rel_dir).join(n.to_string())).expect("container"),
        )
    };
    let mut out = open(container);
    let mut content = vec![b'x'; content_bytes];
    let now = chrono::Local::now().timestamp();
    let started = std::time::Instant::now();
    for i in 0..count {
        let record_bytes = content_bytes as u64 + 1;
        if offset + record_bytes > CONTAINER_BYTES {
            let f = out.into_inner().expect("flush");
            f.sync_data().expect("fdatasync");
            container += 1;
            offset = 0;
            out = open(container);
        }
        content[..8].copy_from_slice(&i.to_le_bytes());
        out.write_all(&[haystack::MARKER]).expect("write");
        out.write_all(&content).expect("write");
        let md5 = fastdfs::codec::hex(&Md5::digest(&content));
        let info = FileInfo {
            name: format!("{i}.bin"),
            rename: format!("{container},{offset},{record_bytes},.bin"),
            path: rel_dir.clone(),
            md5,
            size: record_bytes as i64,
            peers: Some(vec![]),
            scene: "default".into(),
            time_stamp: now,
            offset: offset as i64,
            s3: None,
        };
        if i % every == 0 {
            let rel = info.rel_path();
            let url = rel.strip_prefix("files/").expect("under files/");
            writeln!(urls, "/group1/{url}").expect("urls");
        }
        offset += record_bytes;
        let shard = shard_of(&info.md5, shards);
        pending[shard].push(info);
        if pending[shard].len() >= BATCH {
            meta.insert_records(shard, std::mem::take(&mut pending[shard]))
                .expect("insert");
        }
        if (i + 1) % 1_000_000 == 0 {
            eprintln!(
                "{} files, {:.0} files/s",
                i + 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    out.into_inner()
        .expect("flush")
        .sync_data()
        .expect("fdatasync");
    for (shard, records) in pending.into_iter().enumerate() {
        if !records.is_empty() {
            meta.insert_records(shard, records).expect("insert");
        }
    }
    urls.flush().expect("urls");
    eprintln!(
        "filled {count} files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
