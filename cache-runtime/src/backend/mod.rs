//! Where entries are stored: [`memory`] (moka, typed values, in-process) and [`redis`] (bytes
//! in an envelope, shared between processes, single node or Cluster).

pub(crate) mod breaker;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod incarnation;
pub(crate) mod lease;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod single;
