//! Inputs that are URLs: `s3://bucket/key`, `s3://bucket/prefix/` (its `*.parquet` objects,
//! like a directory), `s3://bucket/prefix/*.parquet` (a glob on the keys) and `file:///path`
//! (a local path, read like any other).
//!
//! An object is opened from ranged reads (the footer and the page headers, see
//! `mmap_format::remote`) with the checks of a local file; the query engine then reads it with
//! its own client ([`register`]), range by range, so a filter reads only the row groups and
//! pages it needs. Credentials, region and endpoint come from the AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`) and `--endpoint`.

use std::{
    collections::BTreeSet,
    io,
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use futures::{StreamExt as _, TryStreamExt as _};
use mmap_format::{reader::CaptureReader, remote::RangeSource};
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt as _, RetryConfig,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey},
    path::Path as ObjectPath,
};
use tokio::runtime::Runtime;
use url::Url;

/// The endpoint given with `--endpoint`, for every store the command makes.
static ENDPOINT: OnceLock<Option<String>> = OnceLock::new();

/// The runtime the inputs are listed and opened on (the query engine has its own).
static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// How long one request may take, connecting included, before it fails (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a request that failed for a reason that may pass (connection, 5xx, timeout).
const MAX_RETRIES: usize = 2;
/// The longest a request is retried, from its first try.
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);
/// Ranged reads of one object run this many at a time.
const CONCURRENT_READS: usize = 8;

/// Objects opened at once ([`open`]), each with up to [`CONCURRENT_READS`] requests.
const CONCURRENT_OBJECTS: usize = 4;

/// The extension of capture objects under a prefix.
const CAPTURE_EXTENSION: &str = ".parquet";

/// What an argument is: a URL of a store, a local path, or neither.
pub enum Arg {
    /// `s3://...`
    S3(Url),
    /// A local path: a `file://` URL's, or the argument as it is.
    Local(PathBuf),
}

/// Sorts an argument: `s3://` and `file://` URLs, or a local path.
pub fn classify(arg: &Path) -> anyhow::Result<Arg> {
    let Some(text) = arg.to_str() else {
        return Ok(Arg::Local(arg.to_path_buf()));
    };
    if let Some(rest) = text.strip_prefix("file://") {
        let url = Url::parse(text).map_err(|err| anyhow!("{text}: not a file URL: {err}"))?;
        if !rest.starts_with('/') {
            bail!("{text}: a file URL names an absolute path: file:///abs/path");
        }
        let path = url
            .to_file_path()
            .map_err(|()| anyhow!("{text}: not a local path"))?;
        return Ok(Arg::Local(path));
    }
    if text.starts_with("s3://") {
        let url = Url::parse(text).map_err(|err| anyhow!("{text}: not an s3:// URL: {err}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            bail!("{text}: no bucket: s3://BUCKET/KEY");
        }
        return Ok(Arg::S3(url));
    }
    if let Some((scheme, _)) = text.split_once("://")
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    {
        bail!("{text}: inputs are local paths, file:// or s3:// URLs, not {scheme}://");
    }
    Ok(Arg::Local(arg.to_path_buf()))
}

/// Fails on the first `s3://` or `file://` argument: `command` reads whole local files
/// (hashes them, rewrites them, or walks them byte by byte).
pub fn refuse(args: &[PathBuf], command: &str) -> anyhow::Result<()> {
    let url = args
        .iter()
        .filter_map(|arg| arg.to_str())
        .find(|text| text.starts_with("s3://") || text.starts_with("file://"));
    match url {
        Some(url) if url.starts_with("file://") => bail!(
            "{url}: `mmap-analyze {command}` takes local paths, not file:// URLs: give the path"
        ),
        Some(url) => bail!(
            "{url}: `mmap-analyze {command}` reads whole local files, not s3:// objects: \
             download it first (e.g. `aws s3 cp {url} .`)"
        ),
        None => Ok(()),
    }
}

/// Sets the `--endpoint` of this command (the first one set counts).
pub fn set_endpoint(endpoint: Option<&str>) {
    let _ = ENDPOINT.set(endpoint.map(str::to_owned));
}

/// The runtime of the listing and opening.
fn runtime() -> anyhow::Result<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the object store client")?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// A client of `bucket`, from the environment and `--endpoint`.
fn store(bucket: &str) -> anyhow::Result<AmazonS3> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}s", REQUEST_TIMEOUT.as_secs()),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            format!("{}s", CONNECT_TIMEOUT.as_secs()),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.,
            },
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        });
    if let Some(Some(endpoint)) = ENDPOINT.get() {
        builder = builder.with_endpoint(endpoint);
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
    }
    builder
        .build()
        .map_err(|err| anyhow!("s3://{bucket}: cannot make a client: {}", short(&err)))
}

/// The most prefixes a prefix argument lists, itself and its partition prefixes: a tree of
/// `host=`/`date=` prefixes has one per host and day.
const MAX_PARTITION_PREFIXES: usize = 100_000;

/// One object of a store: where it is and how long.
struct Object {
    url: String,
    store: Arc<AmazonS3>,
    key: ObjectPath,
    len: u64,
}

/// The objects one `s3://` argument names, in key order: the object, the `*.parquet` objects
/// under a prefix ending in `/` (or of a key that is no object but has some under `key/`), or
/// the keys a glob pattern matches.
fn expand(url: &Url) -> anyhow::Result<Vec<Object>> {
    let text = url.as_str();
    let bucket = url.host_str().unwrap_or_default();
    let store = Arc::new(store(bucket)?);
    let key = ObjectPath::from_url_path(url.path())
        .map_err(|err| anyhow!("{text}: not a valid key: {}", short(&err)))?;
    let raw_key = url.path().trim_start_matches('/');
    let runtime = runtime()?;
    let object = |meta: object_store::ObjectMeta| Object {
        url: format!("s3://{bucket}/{}", meta.location),
        store: Arc::clone(&store),
        key: meta.location,
        len: meta.size,
    };
    let captures = |metas: Vec<object_store::ObjectMeta>| -> Vec<Object> {
        let mut metas: Vec<_> = metas
            .into_iter()
            .filter(|m| m.location.as_ref().ends_with(CAPTURE_EXTENSION))
            .collect();
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        metas.into_iter().map(object).collect()
    };
    if raw_key.contains(['*', '?', '[']) {
        let pattern = glob::Pattern::new(&decoded(raw_key))
            .map_err(|err| anyhow!("{text}: bad pattern: {err}"))?;
        let literal = raw_key
            .split(['*', '?', '['])
            .next()
            .unwrap_or_default()
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir);
        let prefix = ObjectPath::from_url_path(literal)
            .map_err(|err| anyhow!("{text}: not a valid key: {}", short(&err)))?;
        let all: Vec<_> = runtime
            .block_on(store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|err| remote_error(text, &err))?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        let mut matched: Vec<_> = all
            .into_iter()
            .filter(|m| pattern.matches_with(m.location.as_ref(), options))
            .collect();
        matched.sort_by(|a, b| a.location.cmp(&b.location));
        if matched.is_empty() {
            bail!("{text}: no object matches this pattern");
        }
        return Ok(matched.into_iter().map(object).collect());
    }
    if !raw_key.is_empty() && !raw_key.ends_with('/') {
        match runtime.block_on(store.head(&key)) {
            Ok(meta) => {
                return Ok(vec![Object {
                    url: text.to_owned(),
                    ..object(meta)
                }]);
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(remote_error(text, &err)),
        }
    }
    // The objects under the prefix, and, as a local directory's, under its `key=value`
    // partition prefixes (a Hive-style tree), level by level.
    let mut metas = Vec::new();
    let mut prefixes = vec![key.clone()];
    let mut listed_prefixes = 0usize;
    while let Some(prefix) = prefixes.pop() {
        listed_prefixes += 1;
        if listed_prefixes > MAX_PARTITION_PREFIXES {
            bail!(
                "{text}: more than {MAX_PARTITION_PREFIXES} partition prefixes under it; name \
                 the partitions to read (e.g. {text}host=H/date=D/)"
            );
        }
        let listed = runtime
            .block_on(store.list_with_delimiter(Some(&prefix)))
            .map_err(|err| remote_error(text, &err))?;
        metas.extend(listed.objects);
        prefixes.extend(listed.common_prefixes.into_iter().filter(|p| {
            p.filename()
                .is_some_and(|name| mmap_format::partition::parse_dir_name(name).is_some())
        }));
    }
    let found = captures(metas);
    if found.is_empty() {
        if raw_key.is_empty() || raw_key.ends_with('/') {
            bail!("{text}: no capture objects (*{CAPTURE_EXTENSION}) under this prefix");
        }
        bail!("{text}: no such object");
    }
    Ok(found)
}

/// A key as written, percent-escapes decoded (the URL keeps them).
fn decoded(key: &str) -> String {
    percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .into_owned()
}

/// Opens every object an `s3://` argument names.
pub fn open(url: &Url) -> anyhow::Result<Vec<CaptureReader>> {
    let runtime = runtime()?;
    // Opening an object is a few round trips (its footer, then its page headers); the objects
    // of a prefix open CONCURRENT_OBJECTS at a time.
    super::open_in_order(&expand(url)?, CONCURRENT_OBJECTS, |object| {
        let source = Source { object, runtime };
        CaptureReader::open_ranges(&object.url, &source).map_err(anyhow::Error::new)
    })
}

/// Ranged reads of one object, on the opening runtime.
struct Source<'o> {
    object: &'o Object,
    runtime: &'static Runtime,
}

impl RangeSource for Source<'_> {
    fn size(&self) -> u64 {
        self.object.len
    }

    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Bytes>> {
        let store = &self.object.store;
        let key = &self.object.key;
        // One request per range, a few at a time: `get_ranges` would join ranges up to 1 MiB
        // apart and read most of the object.
        let reads = futures::stream::iter(ranges.iter().cloned())
            .map(|range| store.get_range(key, range))
            .buffered(CONCURRENT_READS)
            .try_collect::<Vec<_>>();
        self.runtime
            .block_on(reads)
            .map_err(|err| io::Error::other(remote_detail(&err)))
    }
}

/// Registers a client for every bucket the inputs are in, for the engine's scans.
pub fn register(ctx: &SessionContext, inputs: &[CaptureReader]) -> anyhow::Result<()> {
    let buckets: BTreeSet<String> = inputs
        .iter()
        .filter(|input| input.is_remote())
        .filter_map(|input| Url::parse(&input.path().to_string_lossy()).ok())
        .filter_map(|url| url.host_str().map(str::to_owned))
        .collect();
    for bucket in buckets {
        let url =
            Url::parse(&format!("s3://{bucket}")).map_err(|err| anyhow!("s3://{bucket}: {err}"))?;
        let store: Arc<dyn ObjectStore> = Arc::new(store(&bucket)?);
        ctx.register_object_store(&url, store);
    }
    Ok(())
}

/// An error of the store as one line naming the URL.
fn remote_error(url: &str, err: &object_store::Error) -> anyhow::Error {
    anyhow!("{url}: {}", remote_detail(err))
}

/// What went wrong, in a few words: the store's message is long (and holds the server's XML).
fn remote_detail(err: &object_store::Error) -> String {
    let full = format!("{err}");
    let code = [
        "NoSuchBucket",
        "NoSuchKey",
        "AccessDenied",
        "InvalidAccessKeyId",
    ]
    .into_iter()
    .find(|code| full.contains(code));
    match (err, code) {
        (_, Some("NoSuchBucket")) => "no such bucket".to_owned(),
        (object_store::Error::NotFound { .. }, _) | (_, Some("NoSuchKey")) => {
            "no such object".to_owned()
        }
        (
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
            _,
        )
        | (_, Some(_)) => format!("access denied: {}", short(err)),
        _ => short(err),
    }
}

/// The error's message and causes, cut to a readable length.
fn short(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(400) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
