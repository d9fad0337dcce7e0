//! Trusted issuers and named metadata values kept in the store.

use super::*;

impl<S: Store> ContactStore<S> {
    // ------------------------------------------------------------ issuers, meta

    /// Adds (or relabels) a trusted issuer.
    pub fn add_trusted_issuer(
        &mut self,
        key: IssuerPublicKey,
        label: &str,
    ) -> Result<(), StoreError> {
        let k = self.keys.lookup("issuer", &key.0).to_vec();
        let rec = IssuerRecord {
            key: key.0.to_vec(),
            label: label.to_owned(),
        }
        .encode_to_vec();
        let sealed = self.keys.seal.seal(Tree::Issuers, &k, &rec);
        self.backend.apply(vec![(Tree::Issuers, k, Some(sealed))])?;
        self.dirty = true;
        Ok(())
    }

    /// Removes a trusted issuer.
    pub fn remove_trusted_issuer(&mut self, key: &IssuerPublicKey) -> Result<(), StoreError> {
        let k = self.keys.lookup("issuer", &key.0).to_vec();
        self.backend.apply(vec![(Tree::Issuers, k, None)])?;
        self.dirty = true;
        Ok(())
    }

    /// Trusted issuers with their labels, ordered by key.
    pub fn trusted_issuers(&self) -> Result<Vec<(IssuerPublicKey, String)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.backend.scan_prefix(Tree::Issuers, &[])? {
            let rec = self
                .keys
                .seal
                .open(Tree::Issuers, &k, &v)
                .and_then(|p| IssuerRecord::decode(&p[..]).ok())
                .ok_or_else(|| self.damaged("an issuer record failed authentication".into()))?;
            let key = <[u8; 32]>::try_from(&rec.key[..])
                .map_err(|_| self.damaged("an issuer record has a bad key".into()))?;
            out.push((IssuerPublicKey(key), rec.label));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Sets a metadata value.
    pub fn set_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > MAX_META_VALUE_BYTES {
            return Err(StoreError::TooLarge(value.len()));
        }
        let k = self.keys.lookup("meta", name.as_bytes()).to_vec();
        let sealed = self.keys.seal.seal(Tree::Meta, &k, value);
        self.backend.apply(vec![(Tree::Meta, k, Some(sealed))])?;
        self.dirty = true;
        Ok(())
    }

    /// Reads a metadata value.
    pub fn meta(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let k = self.keys.lookup("meta", name.as_bytes()).to_vec();
        match self.backend.get(Tree::Meta, &k)? {
            None => Ok(None),
            Some(v) => self
                .keys
                .seal
                .open(Tree::Meta, &k, &v)
                .map(Some)
                .ok_or_else(|| self.damaged(format!("metadata {name:?} failed authentication"))),
        }
    }

    /// Deletes a metadata value.
    pub(crate) fn remove_meta(&mut self, name: &str) -> Result<(), StoreError> {
        let k = self.keys.lookup("meta", name.as_bytes()).to_vec();
        self.backend.apply(vec![(Tree::Meta, k, None)])?;
        self.dirty = true;
        Ok(())
    }
}
