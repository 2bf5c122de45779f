//! Storage: where files live (`names`), their metadata (`meta`, sharded LMDB with group
//! commit), the small-file cache (`cache`), and the durable write path (`write`).

pub mod cache;
pub mod check;
pub mod import;
pub mod meta;
pub mod names;
pub mod write;
