//! An object store in memory, for in-process tests: it keeps uploads, parts and
//! objects the way S3 does, refuses what S3 refuses (an unknown upload, a part list
//! that names a part it does not hold or with another ETag, a completion with
//! `If-None-Match: *` over an object), and can be told to fail
//! or to stall, so every error path of the handlers runs without a real store.
//!
//! Parts arrive through [`MemoryStore::put_part`], standing in for the client's PUT to
//! a part URL; objects planted by other means through [`MemoryStore::put_object`].
//! It has no bytes, so it verifies no checksum: it keeps a declared whole-object
//! checksum as the object's, the way a store that does not verify would.
//!
//! Races a client can start are played on request: a part replaced right after the
//! next listing ([`MemoryStore::replace_part_after_listing`]), and a store that
//! completes from whatever parts it holds, whatever ETags it is given
//! ([`MemoryStore::ignore_etags`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{
    AbortRule, CompletedObject, Completion, ListedObject, ObjectHead, ObjectStore, PartTag,
    StoreError, StoreFuture, StoredChecksum, StoredPart, UploadRef,
};
use crate::policy::{ObjectPlan, ObjectSetting, StoredObject};

/// How the store misbehaves, when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every call fails at once, as a store that is down.
    Down,
    /// Every call waits this long first, as a store that hangs.
    Slow(Duration),
}

/// An upload the store has started.
#[derive(Debug, Clone)]
struct Upload {
    bucket: String,
    key: String,
    object: StoredObject,
    /// ETag and size by part number.
    parts: BTreeMap<u16, (String, u64)>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    uploads: HashMap<String, Upload>,
    objects: HashMap<(String, String), ObjectHead>,
    /// The bytes of objects planted with them (others have none to read).
    contents: HashMap<(String, String), Vec<u8>>,
    fault: Option<Fault>,
    calls: usize,
    /// A part (number, new size) to store again once the next listing is answered.
    replace_after_listing: Option<(u16, u64)>,
    /// Complete from the parts held, as a store that does not compare ETags.
    ignore_etags: bool,
}

/// The in-memory store. Cheap to make; share it with `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store that behaves.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, misbehave as `fault` says (or behave again, with `None`).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state().fault = fault;
    }

    /// Once the next listing has been answered, part `number` of the listed upload is
    /// uploaded again with `size` bytes: a client racing the completion. Answers the
    /// ETag the part will then have (a client that computes it from its bytes knows it).
    pub fn replace_part_after_listing(&self, upload_id: &str, number: u16, size: u64) -> String {
        self.state().replace_after_listing = Some((number, size));
        replaced_etag(upload_id, number, size)
    }

    /// From now on, complete uploads from the parts held whatever ETags the completion
    /// names (`true`), as some stores do, or refuse other ETags as S3 does (`false`).
    pub fn ignore_etags(&self, ignore: bool) {
        self.state().ignore_etags = ignore;
    }

    /// How many store calls the service has made so far.
    pub fn calls(&self) -> usize {
        self.state().calls
    }

    /// Stores part `number` of `upload_id` with `size` bytes, as a client's PUT to its
    /// URL would; answers its ETag, or `None` for an unknown upload.
    pub fn put_part(&self, upload_id: &str, number: u16, size: u64) -> Option<String> {
        let mut state = self.state();
        let upload = state.uploads.get_mut(upload_id)?;
        let etag = format!("\"{upload_id}-{number}-{size}\"");
        upload.parts.insert(number, (etag.clone(), size));
        Some(etag)
    }

    /// Plants `object` under `key`, as if uploaded by other means.
    pub fn put_object(&self, bucket: &str, key: &str, object: StoredObject) {
        let head = ObjectHead {
            object,
            etag: Some(format!("\"planted-{key}\"")),
            last_modified: Some(SystemTime::UNIX_EPOCH),
        };
        self.state()
            .objects
            .insert((bucket.to_owned(), key.to_owned()), head);
    }

    /// Plants `object` with its `bytes` under `key` (its size is theirs).
    pub fn put_object_bytes(
        &self,
        bucket: &str,
        key: &str,
        mut object: StoredObject,
        bytes: &[u8],
    ) {
        object.size = bytes.len() as u64;
        self.put_object(bucket, key, object);
        self.state()
            .contents
            .insert((bucket.to_owned(), key.to_owned()), bytes.to_vec());
    }

    /// The object under `key`, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Option<ObjectHead> {
        self.state()
            .objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// The ids of the uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> Vec<String> {
        self.state().uploads.keys().cloned().collect()
    }

    /// Counts the call and plays the fault, if any.
    async fn enter(&self) -> Result<(), StoreError> {
        let fault = {
            let mut state = self.state();
            state.calls += 1;
            state.fault
        };
        match fault {
            Some(Fault::Down) => Err(StoreError::failed("the memory store is down")),
            Some(Fault::Slow(wait)) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The upload `upload` names, checked against its bucket and key as S3 does.
    fn upload<'s>(
        state: &'s mut State,
        upload: &UploadRef<'_>,
    ) -> Result<&'s mut Upload, StoreError> {
        state
            .uploads
            .get_mut(upload.upload_id)
            .filter(|u| u.bucket == upload.bucket && u.key == upload.key)
            .ok_or(StoreError::NoSuchUpload)
    }
}

/// The ETag of a part uploaded again by [`MemoryStore::replace_part_after_listing`].
fn replaced_etag(upload_id: &str, number: u16, size: u64) -> String {
    format!("\"{upload_id}-{number}-{size}-again\"")
}

impl ObjectStore for MemoryStore {
    fn create_upload<'a>(
        &'a self,
        bucket: &'a str,
        object: &'a ObjectPlan,
        _settings: &'a [ObjectSetting],
    ) -> StoreFuture<'a, String> {
        Box::pin(async move {
            self.enter().await?;
            let mut state = self.state();
            state.next_id += 1;
            let id = format!("upload-{}", state.next_id);
            let upload = Upload {
                bucket: bucket.to_owned(),
                key: object.key.to_string(),
                object: StoredObject {
                    size: 0,
                    content_type: object.content_type.clone(),
                    metadata: object.metadata.clone(),
                    checksum: None,
                },
                parts: BTreeMap::new(),
            };
            state.uploads.insert(id.clone(), upload);
            Ok(id)
        })
    }

    fn list_parts<'a>(&'a self, upload: UploadRef<'a>) -> StoreFuture<'a, Vec<StoredPart>> {
        Box::pin(async move {
            self.enter().await?;
            let mut state = self.state();
            let replace = state.replace_after_listing.take();
            let parts = &mut Self::upload(&mut state, &upload)?.parts;
            let listed = parts
                .iter()
                .map(|(&number, (etag, size))| StoredPart {
                    number,
                    size: *size,
                    etag: etag.clone(),
                    checksum: None,
                })
                .collect();
            if let Some((number, size)) = replace {
                parts.insert(
                    number,
                    (replaced_etag(upload.upload_id, number, size), size),
                );
            }
            Ok(listed)
        })
    }

    fn complete_upload<'a>(
        &'a self,
        upload: UploadRef<'a>,
        parts: &'a [PartTag],
        completion: Completion<'a>,
    ) -> StoreFuture<'a, CompletedObject> {
        Box::pin(async move {
            self.enter().await?;
            let mut state = self.state();
            let at = (upload.bucket.to_owned(), upload.key.to_owned());
            if completion.if_none_match && state.objects.contains_key(&at) {
                return Err(StoreError::ObjectExists);
            }
            let ignore_etags = state.ignore_etags;
            let held = Self::upload(&mut state, &upload)?;
            let mut size = 0;
            for part in parts {
                match held.parts.get(&part.number) {
                    Some((etag, part_size)) if ignore_etags || *etag == part.etag => {
                        size += part_size;
                    }
                    _ => {
                        return Err(StoreError::PartsRefused(format!(
                            "part {} is not stored with ETag {}",
                            part.number, part.etag
                        )));
                    }
                }
            }
            let mut object = held.object.clone();
            object.size = size;
            object.checksum = completion.checksum.map(|c| StoredChecksum {
                algorithm: c.algorithm(),
                value: c.value().to_owned(),
                kind: Some("FULL_OBJECT".to_owned()),
            });
            let etag = format!("\"{}-{}\"", upload.upload_id, parts.len());
            state.uploads.remove(upload.upload_id);
            let completed = CompletedObject {
                etag: Some(etag.clone()),
                checksum: object.checksum.clone(),
            };
            let head = ObjectHead {
                object,
                etag: Some(etag),
                last_modified: Some(SystemTime::UNIX_EPOCH),
            };
            state.objects.insert(at, head);
            Ok(completed)
        })
    }

    fn abort_upload<'a>(&'a self, upload: UploadRef<'a>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.enter().await?;
            let mut state = self.state();
            Self::upload(&mut state, &upload)?;
            state.uploads.remove(upload.upload_id);
            Ok(())
        })
    }

    fn delete_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.enter().await?;
            let mut state = self.state();
            let name = (bucket.to_owned(), key.to_owned());
            state.objects.remove(&name);
            state.contents.remove(&name);
            Ok(())
        })
    }

    fn read_start<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        bytes: u64,
    ) -> StoreFuture<'a, Vec<u8>> {
        Box::pin(async move {
            self.enter().await?;
            let state = self.state();
            let name = (bucket.to_owned(), key.to_owned());
            if !state.objects.contains_key(&name) {
                return Err(StoreError::NoSuchObject);
            }
            let content = state.contents.get(&name).ok_or_else(|| {
                StoreError::Unsupported("this object was planted without bytes".to_owned())
            })?;
            let end = content
                .len()
                .min(usize::try_from(bytes).unwrap_or(usize::MAX));
            Ok(content[..end].to_vec())
        })
    }

    fn copy_object<'a>(
        &'a self,
        bucket: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.enter().await?;
            let mut state = self.state();
            let from = (bucket.to_owned(), from.to_owned());
            let to = (bucket.to_owned(), to.to_owned());
            let head = state
                .objects
                .get(&from)
                .cloned()
                .ok_or(StoreError::NoSuchObject)?;
            state.objects.insert(to.clone(), head);
            if let Some(content) = state.contents.get(&from).cloned() {
                state.contents.insert(to, content);
            }
            Ok(())
        })
    }

    fn head_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, ObjectHead> {
        Box::pin(async move {
            self.enter().await?;
            self.object(bucket, key).ok_or(StoreError::NoSuchObject)
        })
    }

    fn list_objects<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
        limit: u16,
    ) -> StoreFuture<'a, Vec<ListedObject>> {
        Box::pin(async move {
            self.enter().await?;
            let state = self.state();
            let mut listed: Vec<ListedObject> = state
                .objects
                .iter()
                .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
                .map(|((_, key), head)| ListedObject {
                    key: key.clone(),
                    size: head.object.size,
                    last_modified: head.last_modified,
                })
                .collect();
            listed.sort_by(|a, b| a.key.cmp(&b.key));
            listed.truncate(usize::from(limit));
            Ok(listed)
        })
    }

    fn abort_rules<'a>(&'a self, _bucket: &'a str) -> StoreFuture<'a, Vec<AbortRule>> {
        Box::pin(async move {
            self.enter().await?;
            Err(StoreError::Unsupported(
                "the memory store keeps no lifecycle configuration".to_owned(),
            ))
        })
    }
}
