//! The on-disk layout of the metadata: `data/meta/shards` (the shard count), `data/meta/envs`
//! (the environment count, fixed when the store is created: the executor count then, so that
//! an executor's batch is one transaction in one environment), and `env-<e:03>/`, the LMDB
//! environments, each holding the tables of the shards `i` with `i % envs == e`.
//!
//! Stores written before `envs` existed kept one environment per shard (`shard-<i:03>/`, tables
//! without the shard suffix). They are taken over when such a store is opened: every record is
//! copied into the new tables (idempotent puts, so a crash during the copy just copies again),
//! `envs` is written and made durable, and only then are the old environments removed.

use super::*;

fn shard_env_dir(meta_dir: &Path, shard: usize) -> PathBuf {
    meta_dir.join(format!("shard-{shard:03}"))
}

/// Copies the tables of the old per-shard environment of `shard` (if there is one) into
/// `into`'s tables and commits (LMDB fsyncs the commit). Blocking; only while opening.
pub(super) fn take_over_shard_env(
    meta_dir: &Path,
    shard: usize,
    into: &Shard,
) -> Result<(), MetaError> {
    let dir = shard_env_dir(meta_dir, shard);
    if !dir.join("data.mdb").exists() {
        return Ok(());
    }
    let old = Environment::new()
        .set_flags(EnvironmentFlags::NO_TLS)
        .set_max_dbs(TABLES.len() as u32 + 4)
        .set_max_readers(126)
        .set_map_size(MAP_BYTES)
        .open(&dir)?;
    let mut copied = 0u64;
    let mut txn = into.env.begin_rw_txn()?;
    for (table, db) in TABLES.iter().zip(into.tables()) {
        let from = match old.open_db(Some(table)) {
            Ok(d) => d,
            // A table this old store never had (e.g. from before compaction).
            Err(lmdb::Error::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let rtxn = old.begin_ro_txn()?;
        let mut cur = rtxn.open_ro_cursor(from)?;
        for item in cur.iter_start() {
            let (k, v) = item?;
            txn.put(db, &k, &v, WriteFlags::empty())?;
            copied += 1;
        }
    }
    txn.commit()?;
    tracing::info!(shard, entries = copied, from = %dir.display(), "metadata taken over into the per-executor layout");
    Ok(())
}

/// Removes the old per-shard environments once `envs` is durable (their records are in the
/// new tables), then makes the removal durable.
pub(super) fn remove_shard_envs(meta_dir: &Path, shards: u32) -> Result<(), MetaError> {
    assert!(
        meta_dir.join("envs").exists(),
        "the new layout is recorded first"
    );
    let mut removed = false;
    for i in 0..shards as usize {
        let dir = shard_env_dir(meta_dir, i);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            removed = true;
        }
    }
    if removed {
        std::fs::File::open(meta_dir)?.sync_all()?;
    }
    Ok(())
}

impl Shard {
    /// The shard's tables, in `TABLES` order.
    pub(super) fn tables(&self) -> [Database; TABLES.len()] {
        [
            self.files,
            self.paths,
            self.days,
            self.stats,
            self.outbox,
            self.tombs,
            self.inbox,
            self.moved,
            self.hay,
            self.listing,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an old one-environment-per-shard store of `shards` shards holding `records`.
    fn write_old_layout(dir: &Path, shards: u32, records: &[FileInfo]) {
        let meta_dir = dir.join("data").join("meta");
        std::fs::create_dir_all(&meta_dir).unwrap();
        std::fs::write(meta_dir.join("shards"), format!("{shards}\n")).unwrap();
        for i in 0..shards as usize {
            let path = shard_env_dir(&meta_dir, i);
            std::fs::create_dir_all(&path).unwrap();
            let env = Environment::new()
                .set_flags(EnvironmentFlags::NO_TLS)
                .set_max_dbs(16)
                .set_map_size(1 << 24)
                .open(&path)
                .unwrap();
            let files = env
                .create_db(Some("files"), DatabaseFlags::empty())
                .unwrap();
            let paths = env
                .create_db(Some("paths"), DatabaseFlags::empty())
                .unwrap();
            let mut txn = env.begin_rw_txn().unwrap();
            for info in records
                .iter()
                .filter(|r| shard_of(&r.md5, shards as usize) == i)
            {
                let json = serde_json::to_vec(info).unwrap();
                txn.put(files, &info.md5.as_bytes(), &json, WriteFlags::empty())
                    .unwrap();
                let key = path_key(&info.rel_path());
                txn.put(
                    paths,
                    &key.as_bytes(),
                    &info.md5.as_bytes(),
                    WriteFlags::empty(),
                )
                .unwrap();
            }
            txn.commit().unwrap();
        }
    }

    fn record(n: u32) -> FileInfo {
        FileInfo {
            name: format!("f{n}.txt"),
            rename: format!("f{n}.txt"),
            path: "files/default/20261203".into(),
            md5: md5_hex(&n.to_string()),
            size: 10 + n as i64,
            time_stamp: 1_764_720_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_store_of_one_environment_per_shard_is_taken_over_whole() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<FileInfo> = (0..40).map(record).collect();
        write_old_layout(dir.path(), 4, &records);

        let meta = Meta::open(dir.path(), 16, 2).unwrap();
        assert_eq!(meta.shard_count(), 4, "the recorded shard count wins");
        for info in &records {
            assert_eq!(meta.get(&info.md5).unwrap().as_ref(), Some(info));
            let by_key = meta.get_by_path_key(&path_key(&info.rel_path())).unwrap();
            assert_eq!(by_key.as_ref(), Some(info));
        }
        let meta_dir = dir.path().join("data").join("meta");
        assert_eq!(
            std::fs::read_to_string(meta_dir.join("envs")).unwrap(),
            "2\n"
        );
        for i in 0..4 {
            assert!(
                !shard_env_dir(&meta_dir, i).exists(),
                "old shard {i} removed"
            );
        }
        drop(meta);

        // Reopened with another executor count: the recorded layout holds.
        let meta = Meta::open(dir.path(), 16, 1).unwrap();
        assert_eq!(meta.envs.len(), 2);
        assert_eq!(
            meta.get(&records[7].md5).unwrap().as_ref(),
            Some(&records[7])
        );
    }

    #[test]
    fn a_new_store_has_one_environment_per_executor_holding_its_shards() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path(), 8, 3).unwrap();
        assert_eq!(meta.envs.len(), 3);
        for (i, s) in meta.shards.iter().enumerate() {
            assert_eq!(s.env_index, i % 3);
            assert!(Arc::ptr_eq(&s.env, &meta.envs[i % 3]));
        }
        let meta_dir = dir.path().join("data").join("meta");
        let mut names: Vec<String> = std::fs::read_dir(&meta_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("env-"))
            .collect();
        names.sort();
        assert_eq!(names, ["env-000", "env-001", "env-002"]);
        drop(meta);
        // More executors than shards: one environment per shard at most.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Meta::open(dir.path(), 2, 8).unwrap().envs.len(), 2);
    }

    #[test]
    fn a_corrupt_environment_count_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        drop(Meta::open(dir.path(), 4, 1).unwrap());
        std::fs::write(dir.path().join("data/meta/envs"), "9\n").unwrap();
        assert!(matches!(
            Meta::open(dir.path(), 4, 1),
            Err(MetaError::Corrupt(_))
        ));
    }
}
