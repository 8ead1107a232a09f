//! Invalidation of one key, a namespace or everything, in every process.

use std::sync::Arc;

use super::*;
use crate::Error;
use crate::namespace::Namespace;
use crate::stats::Counters;
use crate::tiered::Pending;

impl Cache {
    pub(crate) async fn invalidate_key_in(
        &self,
        ns: &Arc<Namespace>,
        key: &str,
    ) -> Result<(), Error> {
        Counters::bump(&ns.stats.invalidations);
        let epochs = &self.inner.key_epochs;
        epochs.bump(key);
        if let Some(local) = &self.inner.local {
            local.remove(key).await;
        }
        let result = match self.inner.remote {
            Some(_) => crate::tiered::apply(self, Pending::Key(key.to_owned())).await,
            None => Ok(()),
        };
        // Reads that overlapped the removal may have seen the old value: retire them too.
        epochs.bump(key);
        if let Some(local) = &self.inner.local {
            local.remove(key).await;
        }
        result
    }

    /// Drops every entry of `namespace`, in every process, in O(1).
    pub async fn invalidate_namespace(&self, namespace: &str) -> Result<(), Error> {
        let ns = self.namespace(namespace);
        Counters::bump(&ns.stats.invalidations);
        if self.inner.remote.is_none() {
            ns.generation.bump();
            return Ok(());
        }
        ns.generation.forget();
        let result = crate::tiered::apply(self, Pending::Namespace(namespace.to_owned())).await;
        // A lookup that overlapped may have learnt the old generation: forget it again.
        ns.generation.forget();
        result
    }

    /// Drops every entry of this cache, in every process.
    pub async fn invalidate_all(&self) -> Result<(), Error> {
        Counters::bump(&self.inner.counters.invalidations);
        if let Some(local) = &self.inner.local {
            local.clear();
        }
        if self.inner.remote.is_none() {
            self.inner.all_gen.bump();
            return Ok(());
        }
        self.inner.all_gen.forget();
        let result = crate::tiered::apply(self, Pending::All).await;
        self.inner.all_gen.forget();
        if let Some(local) = &self.inner.local {
            local.clear();
        }
        result
    }
}
