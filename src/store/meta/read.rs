//! Opening the shards (schema: environments, tables, the shard count) and every read:
//! records by md5 or path key, days, queues, tombstones, statistics. Reads run on any thread.

use super::apply::{decode_stat, outbox_key};
use super::*;

/// Day-index entries read per transaction by [`Meta::for_each_of_day`].
pub const DAY_PAGE_RECORDS: usize = 1024;

/// The shard count (written on first start, fixed after) and the environment count (the
/// executors' at the layout's first start, at most one per shard), from `meta_dir`.
fn shard_counts(
    meta_dir: &Path,
    shards_wanted: u32,
    workers: usize,
) -> Result<(u32, u32), MetaError> {
    let count_file = meta_dir.join("shards");
    let count = match read_count(&count_file)? {
        Some(n) => n,
        None => {
            std::fs::write(&count_file, format!("{shards_wanted}\n"))?;
            std::fs::File::open(&count_file)?.sync_all()?;
            std::fs::File::open(meta_dir)?.sync_all()?;
            shards_wanted
        }
    };
    assert!(count >= 1, "shard count is positive");
    let envs_file = meta_dir.join("envs");
    let env_count = read_count(&envs_file)?.unwrap_or((workers as u32).clamp(1, count));
    if env_count < 1 || env_count > count {
        return Err(MetaError::Corrupt(format!(
            "{} says {env_count} environments for {count} shards",
            envs_file.display()
        )));
    }
    Ok((count, env_count))
}

/// The number a layout file holds (`data/meta/shards`, `data/meta/envs`), or None when the
/// file cannot be read (not written yet); a file that is no number is corrupt.
fn read_count(file: &Path) -> Result<Option<u32>, MetaError> {
    match std::fs::read_to_string(file) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| MetaError::Corrupt(format!("{} is not a number", file.display()))),
        Err(_) => Ok(None),
    }
}

/// Opens (creating) one LMDB environment sized for `per_env` shards.
fn open_env(path: &Path, per_env: u32) -> Result<Arc<Environment>, MetaError> {
    std::fs::create_dir_all(path)?;
    let env = Environment::new()
        .set_flags(EnvironmentFlags::NO_TLS)
        .set_max_dbs(TABLES.len() as u32 * per_env + 2)
        .set_max_readers(1022)
        .set_map_size(MAP_BYTES * per_env as usize)
        .open(path)?;
    Ok(Arc::new(env))
}

/// Opens (creating) shard `i`'s tables in its environment.
fn open_shard(
    env: &Arc<Environment>,
    env_index: usize,
    paths: lmdb::Database,
    i: u32,
) -> Result<Shard, MetaError> {
    let db = |table: &str| env.create_db(Some(&format!("{table}-{i:03}")), DatabaseFlags::empty());
    Ok(Shard {
        files: db("files")?,
        paths,
        days: db("days")?,
        stats: db("stats")?,
        outbox: db("outbox")?,
        tombs: db("tombs")?,
        inbox: db("inbox")?,
        moved: db("moved")?,
        hay: db("hay")?,
        listing: db("listing")?,
        env: env.clone(),
        env_index,
    })
}

/// On the first start of the shared-environment layout, takes over the records of the
/// one-environment-per-shard layout, if there is one, then records the environment count
/// (durably). A crash before the count is recorded copies again: every copy is a put of the
/// same value.
fn record_layout(meta_dir: &Path, shards: &[Shard], env_count: u32) -> Result<(), MetaError> {
    let envs_file = meta_dir.join("envs");
    if envs_file.exists() {
        return Ok(());
    }
    for (i, shard) in shards.iter().enumerate() {
        super::layout::take_over_shard_env(meta_dir, i, shard)?;
    }
    std::fs::write(&envs_file, format!("{env_count}\n"))?;
    std::fs::File::open(&envs_file)?.sync_all()?;
    std::fs::File::open(meta_dir)?.sync_all()?;
    Ok(())
}

impl Meta {
    /// Opens (creating on first start) the shards under `<dir>/data/meta`.
    pub fn open(dir: &Path, shards_wanted: u32, workers: usize) -> Result<Arc<Meta>, MetaError> {
        assert!(workers >= 1, "at least one executor");
        let root = dir.to_path_buf();
        let meta_dir = dir.join("data").join("meta");
        std::fs::create_dir_all(&meta_dir)?;
        let (count, env_count) = shard_counts(&meta_dir, shards_wanted, workers)?;
        let per_env = count.div_ceil(env_count);
        let envs = (0..env_count)
            .map(|e| open_env(&meta_dir.join(format!("env-{e:03}")), per_env))
            .collect::<Result<Vec<_>, _>>()?;
        let path_dbs = envs
            .iter()
            .enumerate()
            .map(|(e, env)| {
                let of_env: Vec<u32> = (0..count).filter(|i| i % env_count == e as u32).collect();
                super::paths::open(env, &of_env)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shards = (0..count)
            .map(|i| {
                let env_index = (i % env_count) as usize;
                open_shard(&envs[env_index], env_index, path_dbs[env_index], i)
            })
            .collect::<Result<Vec<_>, _>>()?;
        record_layout(&meta_dir, &shards, env_count)?;
        super::layout::remove_shard_envs(&meta_dir, count)?;
        for shard in &shards {
            super::hay::ensure_built(shard)?;
            super::listing::ensure_built(shard)?;
            super::days::ensure_ordered(shard)?;
        }
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
                (tx, Some(rx))
            })
            .unzip();
        let journal_dbs = envs
            .iter()
            .map(|e| e.create_db(Some("journal"), DatabaseFlags::empty()))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = Arc::new(Meta {
            root,
            txn_pools: envs.iter().map(|_| Default::default()).collect(),
            envs,
            shards,
            overlays: journal::Overlays::new(senders.len()),
            intent_files: Default::default(),
            senders,
            receivers: Mutex::new(receivers),
            journal_dbs,
            path_dbs,
            files_epoch: Default::default(),
            #[cfg(test)]
            hold_drains: Default::default(),
        });
        // Journaled records first: a plain upload acknowledged from the journal has its file
        // in place, which the intents' recovery would otherwise take back as unrecorded.
        meta.replay_journals()?;
        meta.recover_intents()?;
        Ok(meta)
    }

    /// Moves whenever a stored file goes or is replaced: a delete moves it before its commit
    /// is visible (a plain file's name already freed); a replaced file's old content is
    /// unlinked and then the epoch moves. Executors drop their caches of file bytes and
    /// descriptors when it moved, so no GET serves a file whose record says it is gone.
    pub fn files_epoch(&self) -> u64 {
        self.files_epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Moves `files_epoch` (stored files changed outside a commit: compaction, relocation).
    pub fn files_changed(&self) {
        self.files_epoch
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Where a merged file's bytes are now: (container, offset of the marker); None when the
    /// record is not a merged one or its locator does not parse.
    pub fn location(&self, info: &FileInfo) -> Result<Option<(u64, u64)>, MetaError> {
        if !info.is_merged() {
            return Ok(None);
        }
        let s = &self.shards[shard_of(&info.md5, self.shards.len())];
        let txn = self.read_txn(s.env_index)?;
        super::hay::location_in(s, &*txn, info)
    }

    /// Live merged files and bytes per container of `dir` (`files/haystack/<peer_id>`), from
    /// the container index (no record is read).
    pub fn container_usage(&self, dir: &str) -> Result<BTreeMap<u64, (u64, u64)>, MetaError> {
        super::hay::usage(&self.shards, dir)
    }

    /// The live merged files whose bytes are in container `n` of `dir`: (md5, offset of the
    /// marker, size with the marker), in offset order.
    pub fn merged_in(&self, dir: &str, n: u64) -> Result<Vec<(String, u64, u64)>, MetaError> {
        super::hay::files_in(&self.shards, dir, n)
    }

    /// Files and S3 folder markers under `files/` in byte order of their paths: up to `limit`
    /// of those whose listing key (`listing::listing_key`) starts with `prefix` and is at
    /// least `from`, with what each is.
    pub fn list_page(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, super::listing::Listed)>, MetaError> {
        super::listing::page(&self.shards, prefix, from, limit)
    }

    /// When the S3 folder marker `rel` (`files/<bucket>/<dirs>/`) was put (unix ms), if it is
    /// in the listing index.
    pub fn folder(&self, rel: &str) -> Result<Option<i64>, MetaError> {
        let shard = shard_of(&path_key(rel), self.shards.len());
        super::listing::folder(&self.shards[shard], rel)
    }

    /// What is known here of the S3 folder marker `rel`: put (`true`) or removed (its
    /// tombstone), and when (unix ms).
    pub fn folder_state(&self, rel: &str) -> Result<Option<(bool, i64)>, MetaError> {
        let s = &self.shards[shard_of(&path_key(rel), self.shards.len())];
        let txn = s.env.begin_ro_txn()?;
        super::listing::folder_state(s, &txn, rel)
    }

    /// The paths of every S3 folder marker here and of every removed one (its tombstone), in
    /// no particular order; reads the whole listing index (a repair's).
    pub fn folder_paths(&self) -> Result<Vec<String>, MetaError> {
        super::listing::folder_paths(&self.shards)
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Takes the op channel of executor `worker` (it owns shards `s % workers == worker`).
    pub fn take_owned(&self, worker: usize) -> Option<mpsc::Receiver<Pending>> {
        self.receivers
            .lock()
            .expect("receivers lock")
            .get_mut(worker)?
            .take()
    }

    // ---------- reads (any thread) ----------

    /// A read transaction of environment `env`, from its pool of idle ones.
    pub(super) fn read_txn(&self, env: usize) -> Result<super::txns::ReadTxn<'_>, MetaError> {
        Ok(self.txn_pools[env].begin(&self.envs[env])?)
    }

    pub fn get(&self, md5: &str) -> Result<Option<FileInfo>, MetaError> {
        if md5.is_empty() {
            return Ok(None);
        }
        let shard = &self.shards[shard_of(md5, self.shards.len())];
        let lmdb = || {
            let txn = self.read_txn(shard.env_index)?;
            match txn.get(shard.files, &md5.as_bytes()) {
                Ok(bytes) => decode(bytes).map(Some),
                Err(lmdb::Error::NotFound) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        self.overlays.read_through(lmdb, |o| o.by_md5(md5))
    }

    /// The record of an md5 whose content is here (`is_live`).
    pub fn get_live(&self, md5: &str) -> Result<Option<FileInfo>, MetaError> {
        Ok(self.get(md5)?.filter(|i| self.is_live(i)))
    }

    /// The record an id names: its md5, else a path key (peers and go-fastdfs clients send
    /// either as `md5`).
    pub fn get_by_id(&self, id: &str) -> Result<Option<FileInfo>, MetaError> {
        if let Some(info) = self.get(id)? {
            return Ok(Some(info));
        }
        if id.len() == 32 {
            return self.get_by_path_key(id);
        }
        Ok(None)
    }

    /// `get_by_id` for content that is here (`is_live`).
    pub fn get_live_by_id(&self, id: &str) -> Result<Option<FileInfo>, MetaError> {
        Ok(self.get_by_id(id)?.filter(|i| self.is_live(i)))
    }

    /// Looks up a record by its path key (MD5 of `files/.../name`).
    pub fn get_by_path_key(&self, key: &str) -> Result<Option<FileInfo>, MetaError> {
        self.overlays
            .read_through(|| self.lmdb_by_path_key(key), |o| o.by_path_key(key))
    }

    fn lmdb_by_path_key(&self, key: &str) -> Result<Option<FileInfo>, MetaError> {
        // One path index per environment (`paths.rs`); the record is in its md5's shard, in
        // the same environment.
        for (e, &paths) in self.path_dbs.iter().enumerate() {
            let txn = self.read_txn(e)?;
            let md5 = match txn.get(paths, &key.as_bytes()) {
                Ok(m) => m,
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            let id = std::str::from_utf8(md5)
                .map_err(|_| MetaError::Corrupt("a path entry's md5 is not UTF-8".into()))?;
            let shard = &self.shards[shard_of(id, self.shards.len())];
            debug_assert_eq!(
                shard.env_index, e,
                "a path entry lives in its record's environment"
            );
            match txn.get(shard.files, &md5) {
                Ok(bytes) => return decode(bytes).map(Some),
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// md5s of files of day `YYYYMMDD` (sorted).
    pub fn md5s_by_date(&self, date: &str) -> Result<Vec<String>, MetaError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            for md5 in super::days::md5s(shard, &txn, date)? {
                out.push(String::from_utf8_lossy(&md5).into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Calls `f` with every record of day `date` (`YYYYMMDD`), shard by shard in storing
    /// order, reading [`DAY_PAGE_RECORDS`] index entries per transaction: memory stays
    /// bounded however many records the day has (`G/backup`). Stops at `f`'s first error.
    pub fn for_each_of_day(
        &self,
        date: &str,
        mut f: impl FnMut(FileInfo) -> Result<(), MetaError>,
    ) -> Result<(), MetaError> {
        for shard in &self.shards {
            let mut after = Vec::new();
            loop {
                let page = {
                    let txn = shard.env.begin_ro_txn()?;
                    super::days::page(shard, &txn, date, &after, DAY_PAGE_RECORDS)?
                };
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = last.clone();
                for (_, md5) in &page {
                    if let Some(info) = self.get(&String::from_utf8_lossy(md5))? {
                        f(info)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` outbox entries of `peer` in `shard` whose md5 sorts after `after`.
    pub fn outbox_page(
        &self,
        shard: usize,
        peer: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, OutboxEntry)>, MetaError> {
        let s = &self.shards[shard];
        let prefix = outbox_key(peer, "");
        let start = outbox_key(peer, after);
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.outbox)?;
        let mut out = Vec::new();
        for item in cur.iter_from(&start) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let md5 = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if md5.as_str() <= after {
                continue;
            }
            if let Some(e) = OutboxEntry::decode(v) {
                out.push((md5, e));
            }
        }
        Ok(out)
    }

    /// Entries queued for `peer` over all shards, and the oldest one's queue time (ms).
    pub fn outbox_depth(&self, peer: &str) -> Result<(u64, Option<i64>), MetaError> {
        let prefix = outbox_key(peer, "");
        let (mut n, mut oldest) = (0u64, None::<i64>);
        for s in &self.shards {
            let txn = s.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(s.outbox)?;
            for item in cur.iter_from(&prefix) {
                let (k, v) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                n += 1;
                if let Some(e) = OutboxEntry::decode(v) {
                    oldest = Some(oldest.map_or(e.queued_at, |o| o.min(e.queued_at)));
                }
            }
        }
        Ok((n, oldest))
    }

    /// Up to `limit` announced files of `shard` still to fetch, md5 after `after`.
    pub fn inbox_page(
        &self,
        shard: usize,
        after: &str,
        limit: usize,
    ) -> Result<Vec<super::Inboxed>, MetaError> {
        let s = &self.shards[shard];
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.inbox)?;
        let mut out = Vec::new();
        // LMDB refuses an empty key for a positioned cursor.
        let iter = if after.is_empty() {
            cur.iter_start()
        } else {
            cur.iter_from(after.as_bytes())
        };
        for item in iter {
            let (k, v) = item?;
            if out.len() >= limit {
                break;
            }
            if k <= after.as_bytes() {
                continue;
            }
            out.push(super::Inboxed::decode(v)?);
        }
        Ok(out)
    }

    /// Announced files not fetched yet, over all shards.
    pub fn inbox_depth(&self) -> Result<u64, MetaError> {
        let mut n = 0;
        for s in &self.shards {
            let txn = s.env.begin_ro_txn()?;
            n += txn.stat(s.inbox)?.entries() as u64;
        }
        Ok(n)
    }

    /// When the md5 was deleted here (seconds), if it was.
    pub fn tombstone(&self, md5: &str) -> Result<Option<i64>, MetaError> {
        if md5.is_empty() {
            return Ok(None);
        }
        let s = &self.shards[shard_of(md5, self.shards.len())];
        let txn = s.env.begin_ro_txn()?;
        match txn.get(s.tombs, &md5.as_bytes()) {
            Ok(v) => Ok(Some(v.try_into().map(i64::from_le_bytes).unwrap_or(0))),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Per-day (count, bytes) summed over shards.
    pub fn day_stats(&self) -> Result<BTreeMap<String, (i64, i64)>, MetaError> {
        let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(shard.stats)?;
            for item in cur.iter_start() {
                let (k, v) = item?;
                let (c, b) = decode_stat(v);
                let e = out
                    .entry(String::from_utf8_lossy(k).into_owned())
                    .or_default();
                e.0 += c;
                e.1 += b;
            }
        }
        Ok(out)
    }

    /// Every record, in shard then key order, for scans (search, check).
    pub fn for_each(&self, mut f: impl FnMut(FileInfo) -> bool) -> Result<(), MetaError> {
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(shard.files)?;
            for item in cur.iter_start() {
                let (_, v) = item?;
                if !f(decode(v)?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    // ---------- writes ----------

    /// Synchronously removes records by md5 (`fastdfs check --repair`; server stopped).
    pub fn remove_records(&self, md5s: &[String]) -> Result<(), MetaError> {
        for md5 in md5s {
            let s = &self.shards[shard_of(md5, self.shards.len())];
            let mut txn = s.env.begin_rw_txn()?;
            let old = match txn.get(s.files, &md5.as_bytes()) {
                Ok(b) => decode(b)?,
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            self.unindex(s, &mut txn, &old)?;
            txn.commit()?;
        }
        Ok(())
    }

    /// One synchronous transaction inserting records without files to move (import). Only
    /// for use before the executors start; records whose md5 is already live are skipped.
    pub fn insert_records(&self, shard: usize, records: Vec<FileInfo>) -> Result<(), MetaError> {
        let s = &self.shards[shard];
        let mut txn = s.env.begin_rw_txn()?;
        let (mut dirs, mut placed) = (BTreeSet::new(), Vec::new());
        for info in records {
            assert_eq!(
                shard_of(&info.md5, self.shards.len()),
                shard,
                "record in its shard"
            );
            let origin = Origin::Local { notify: Vec::new() };
            let put = Put {
                info: Arc::new(info),
                staged: None,
                dedup: true,
                origin,
                expect: Expect::Nothing,
            };
            self.apply_insert(s, &mut txn, put, &mut dirs, &mut placed)?;
        }
        txn.commit()?;
        Ok(())
    }
}
