//! Read transactions kept for reuse. An LMDB read transaction costs an allocation of its
//! handle (with a slot per table: about 4 KiB here) and, with `NO_TLS`, a lock of the reader
//! table to find a slot; a reset one keeps both, and renewing it takes neither. Lookups by md5
//! or path key (every dedup check, every GET that misses the record cache) take one from their
//! environment's pool and give it back reset.

use lmdb::{Environment, InactiveTransaction, RoTransaction};
use std::sync::Mutex;

/// Idle transactions kept per environment at most (about one per thread that reads).
const KEPT: usize = 64;

/// A reset transaction of an environment that outlives the pool (see `Pool`).
struct Idle(InactiveTransaction<'static>);

// SAFETY: the environments are opened with NO_TLS, so a read transaction is not tied to the
// thread that began it; the pool hands each one to a single user at a time.
unsafe impl Send for Idle {}

/// The idle read transactions of one environment.
///
/// Invariant: every transaction in it belongs to the environment `Meta` keeps in `envs` at the
/// same index, and the pools are dropped before `envs` (field order in `Meta`), so no
/// transaction outlives its environment; the `'static` lifetimes below stand for that.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

/// An active read transaction, given back to its pool (reset) when dropped.
pub(super) struct ReadTxn<'p> {
    txn: Option<RoTransaction<'static>>,
    pool: &'p Pool,
}

impl Pool {
    /// A read transaction of `env` (which must be this pool's environment).
    pub(super) fn begin<'p>(&'p self, env: &'p Environment) -> lmdb::Result<ReadTxn<'p>> {
        let idle = self.idle.lock().expect("txn pool lock").pop();
        let txn = match idle.map(|i| i.0.renew()) {
            Some(Ok(t)) => t,
            // A handle that cannot be renewed is gone (renew aborted it): begin anew.
            Some(Err(_)) | None => {
                let t = env.begin_ro_txn()?;
                // SAFETY: see the invariant on `Pool`: `env` outlives every use of `t`
                // (the guard borrows `env` for 'p; the pool drops before the environment).
                unsafe { std::mem::transmute::<RoTransaction<'_>, RoTransaction<'static>>(t) }
            }
        };
        Ok(ReadTxn {
            txn: Some(txn),
            pool: self,
        })
    }
}

impl std::ops::Deref for ReadTxn<'_> {
    type Target = RoTransaction<'static>;

    fn deref(&self) -> &Self::Target {
        self.txn.as_ref().expect("active until dropped")
    }
}

impl Drop for ReadTxn<'_> {
    fn drop(&mut self) {
        let Some(t) = self.txn.take() else { return };
        let mut idle = self.pool.idle.lock().expect("txn pool lock");
        if idle.len() < KEPT {
            idle.push(Idle(t.reset()));
        }
    }
}
