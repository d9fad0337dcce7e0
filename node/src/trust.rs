//! The issuers this node trusts: one list, shared by the node and the mesh.
//!
//! The daemon fills it from the configuration (and keeps the store's copy in
//! line for the offline commands); every check of a certificate or an
//! announcement reads it here, so a change reaches the node and the mesh at
//! once.

use std::sync::{Arc, RwLock};

use meshtrace_protocol::IssuerPublicKey;

/// The trusted issuers' public keys. Cloning gives another handle on the
/// same list.
#[derive(Clone, Debug, Default)]
pub struct TrustedIssuers {
    keys: Arc<RwLock<Vec<IssuerPublicKey>>>,
}

impl TrustedIssuers {
    /// A list holding `keys` (duplicates are kept once).
    pub fn new(keys: impl IntoIterator<Item = IssuerPublicKey>) -> TrustedIssuers {
        let t = TrustedIssuers::default();
        t.replace(keys);
        t
    }

    /// The keys, in the order they were given.
    pub fn keys(&self) -> Vec<IssuerPublicKey> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the whole list.
    pub(crate) fn replace(&self, keys: impl IntoIterator<Item = IssuerPublicKey>) {
        let mut list: Vec<IssuerPublicKey> = Vec::new();
        for k in keys {
            if !list.contains(&k) {
                list.push(k);
            }
        }
        match self.keys.write() {
            Ok(mut k) => *k = list,
            Err(poisoned) => *poisoned.into_inner() = list,
        }
    }

    /// True when no issuer is trusted (no report can be verified).
    pub(crate) fn is_empty(&self) -> bool {
        self.keys().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_list_and_duplicates_are_kept_once() {
        let a = TrustedIssuers::new([IssuerPublicKey([1; 32]), IssuerPublicKey([1; 32])]);
        let b = a.clone();
        assert_eq!(b.keys(), vec![IssuerPublicKey([1; 32])]);
        a.replace([IssuerPublicKey([2; 32])]);
        assert_eq!(b.keys(), vec![IssuerPublicKey([2; 32])]);
        a.replace([]);
        assert!(b.is_empty());
    }
}
