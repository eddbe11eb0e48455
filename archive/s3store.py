"""The image store in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, Garage…).

boto3 does all the talking (signing, retries, presigned URLs); nothing here is particular
to one server. Each name of :class:`archive.images.ImageStore` is the key ``<prefix><name>``.
An original is published by one ``PutObject`` of the complete, verified local file with
its ``x-amz-checksum-sha256``, so the server stores it only if every byte arrived (a PUT is
all or nothing: no reader sees half an object). Objects carry their ``Content-Type`` and a
year of ``Cache-Control: immutable``, as ``/files/…`` answers, for presigned redirects.

Uploads straight into the bucket: :meth:`S3Store.upload_endpoint` presigns a PUT of
``<prefix>incoming/<taskUUID>`` for the provider; the worker later takes that object, and
it becomes an original only through :meth:`~archive.images.ImageStore.add_file`, verified
like any other. The ``incoming/`` objects are deleted once taken; a bucket lifecycle rule
on that prefix (README) cleans up what a crash leaves.
"""

import base64
import collections
import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from archive.images import CONTENT_TYPES, TEMP_MAX_AGE, BadImage, ImageStore

YEAR = 365 * 24 * 3600
CACHE_CONTROL = f"public, max-age={YEAR}, immutable"
INCOMING = "incoming/"
SPOOL = 8 << 20  # bytes of an object read back kept in memory before spilling to disk
MISSING = {"404", "NoSuchKey", "NotFound"}
SEEN = 50_000  # names remembered as stored (a few MB)
RECENT = 8  # originals just stored kept on local disk (images/.recent) for their thumbnail


def s3_client(endpoint=None, *, pool=16):
    """A boto3 S3 client: credentials and region from the standard AWS variables (or
    files, or an instance role); ``endpoint`` for a store other than AWS, which is then
    addressed path-style (``http://host/bucket/key``: no DNS name per bucket needed)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(signature_version="s3v4", max_pool_connections=pool,
                    retries={"max_attempts": 5, "mode": "standard"},
                    s3={"addressing_style": "path" if endpoint else "auto"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None,
                                          region_name=region, config=config)


class S3Store(ImageStore):
    """Originals and thumbnails as objects of ``bucket`` under ``prefix``.

    :param data_dir: the data folder, where downloads are staged before they are kept.
    :param endpoint: the store's URL when it is not AWS (``RUNWARE_ARCHIVE_S3_ENDPOINT``).
    """

    kind = "s3"

    def __init__(self, data_dir, bucket, prefix="", *, endpoint=None, **kwargs):
        super().__init__(data_dir, **kwargs)
        self.bucket, self.prefix, self.endpoint = bucket, prefix, endpoint
        self._clients, self._lock = {}, threading.Lock()
        self._taken = {}  # task -> ETag of the incoming object last taken
        self._seen = collections.OrderedDict()  # names known to be stored, oldest first
        self._recent = collections.OrderedDict()  # name -> local copy, oldest first
        self.recent_dir = os.path.join(self.root, "images", ".recent")
        os.makedirs(self.recent_dir, exist_ok=True)
        _sweep(self.recent_dir, TEMP_MAX_AGE)  # what processes before this one left

    @property
    def client(self):
        """This process's client (a forked worker must not share its parent's sockets)."""
        pid = os.getpid()
        with self._lock:
            if pid not in self._clients:
                self._clients = {pid: s3_client(self.endpoint)}
            return self._clients[pid]

    def key(self, name):
        """The object key of ``name``."""
        return self.prefix + name

    def _exists(self, name):
        # An object under a content address never changes, so one seen is remembered (a
        # page of thumbnails then costs no HEAD each); it is forgotten when deleted here,
        # and a deletion elsewhere is one no catalogue row references, which /files/ and
        # /thumbs/ check first.
        if name in self._seen:
            return True
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if _code(exc) in MISSING:
                return False
            raise
        self._remember(name)
        return True

    def _remember(self, name):
        with self._lock:
            self._seen[name] = True
            while len(self._seen) > SEEN:
                self._seen.popitem(last=False)

    def _put(self, tmp_path, name, sha256):
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        with open(tmp_path, "rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body,
                                   ContentType=_content_type(name), CacheControl=CACHE_CONTROL,
                                   ChecksumSHA256=checksum)
        self._remember(name)

    def _publish(self, tmp_path, name, sha256):
        # One PUT either way: the same key always holds the same bytes, so storing them
        # again is harmless and renews LastModified, as a HEAD and then a copy would.
        self._put(tmp_path, name, sha256)
        self._keep_recent(tmp_path, name)

    def _keep_recent(self, tmp_path, name):
        """Keep a local link to the last few originals stored: the fetcher makes each
        one's thumbnail right after, and need not GET the bytes it just sent."""
        local = os.path.join(self.recent_dir, name.rsplit("/", 1)[-1])
        with contextlib.suppress(OSError):
            if not os.path.exists(local):
                os.replace(tmp_path, local)  # same file system: a rename, not a copy
            with self._lock:
                self._recent[name] = local
                self._recent.move_to_end(name)
                while len(self._recent) > RECENT:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._recent.popitem(last=False)[1])

    def _open(self, name):
        local = self._recent.get(name)
        if local:
            with contextlib.suppress(FileNotFoundError):
                return open(local, "rb")  # the same bytes as the object, just stored
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if _code(exc) in MISSING:
                raise FileNotFoundError(name) from None
            raise
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL, dir=self.tmp)
        with contextlib.closing(answer["Body"]) as body:
            for chunk in body.iter_chunks(1 << 20):
                spool.write(chunk)
        spool.seek(0)
        return spool

    def _delete(self, name):
        self._seen.pop(name, None)
        local = self._recent.pop(name, None)
        if local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local)
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def _touch(self, name):
        # S3 has no utime: a copy onto itself with its metadata restated renews LastModified.
        self.client.copy_object(Bucket=self.bucket, Key=self.key(name),
                                CopySource={"Bucket": self.bucket, "Key": self.key(name)},
                                MetadataDirective="REPLACE", ContentType=_content_type(name),
                                CacheControl=CACHE_CONTROL)

    def listing(self, prefix):
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key(prefix))
        return [(item["Key"][len(self.prefix):], item["LastModified"].timestamp())
                for page in pages for item in page.get("Contents", ())]

    def source(self, name):
        return self._open(name)

    def presigned_url(self, name, *, expires):
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(name)},
            ExpiresIn=int(expires))

    def upload_endpoint(self, task_uuid, *, expires):
        url = self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self.key(INCOMING + task_uuid)},
            ExpiresIn=int(expires))
        parts = urlsplit(url)
        return url, urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def incoming_tasks(self):
        return [name[len(INCOMING):] for name, _ in self.listing(INCOMING)
                if "/" not in name[len(INCOMING):]]

    def take_incoming(self, task_uuid):
        key = self.key(INCOMING + task_uuid)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in MISSING:
                return None
            raise
        f, tmp = self.temp_file()
        try:
            with f, contextlib.closing(answer["Body"]) as body:
                _receive(body, f, answer, self.max_bytes)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            self._taken[task_uuid] = answer["ETag"]
        return tmp

    def drop_incoming(self, task_uuid):
        etag = self._taken.pop(task_uuid, None)
        key = self.key(INCOMING + task_uuid)
        try:  # only the object taken: a later image's PUT meanwhile stays, for next time
            self.client.delete_object(Bucket=self.bucket, Key=key,
                                      **({"IfMatch": etag} if etag else {}))
        except ClientError as exc:
            if _code(exc) == "PreconditionFailed" or _code(exc) in MISSING:
                return  # replaced meanwhile, or already taken by another worker
            if _code(exc) not in ("NotImplemented", "InvalidArgument"):
                raise
            self.client.delete_object(Bucket=self.bucket, Key=key)  # no conditional deletes

    def check(self):
        """Raise unless the bucket answers (for /healthz)."""
        self.client.head_bucket(Bucket=self.bucket)


def _receive(body, out, answer, max_bytes):
    """Copy an incoming object's body to ``out``, checking it is whole: no more than
    ``max_bytes``, the length the bucket announced, and (for a one-part PUT, whose ETag is
    the MD5 of its bytes) the MD5 it recorded.

    :raises BadImage: too large, or not the bytes the bucket holds.
    """
    size, md5 = 0, hashlib.md5(usedforsecurity=False)
    for chunk in body.iter_chunks(1 << 20):
        size += len(chunk)
        if size > max_bytes:
            raise BadImage(f"over the {max_bytes}-byte limit")
        md5.update(chunk)
        out.write(chunk)
    if size != answer.get("ContentLength", size):
        raise BadImage(f"{size} of {answer['ContentLength']} bytes arrived")
    etag = answer.get("ETag", "").strip('"')
    if re.fullmatch(r"[0-9a-f]{32}", etag) and etag != md5.hexdigest():
        raise BadImage("the bytes read do not match the object's MD5 (ETag)")


def _sweep(folder, older_than):
    cutoff = time.time() - older_than
    for entry in os.scandir(folder):
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)


def _code(exc):
    return str(exc.response.get("Error", {}).get("Code", ""))


def _content_type(name):
    return CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
