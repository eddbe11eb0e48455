"""``s3://bucket/prefix`` settings read without boto3: the gunicorn master parses
``RUNWARE_ARCHIVE_REPLICA`` before its workers fork and patch ssl, and must not have
imported boto3 (hence urllib3) by then (receiver/production.py says why)."""

from urllib.parse import urlsplit


def parse_location(location):
    """``s3://bucket/prefix`` -> ``(bucket, "prefix/")`` (prefix may be empty).

    :raises ValueError: not an ``s3://`` URL with a bucket.
    """
    parts = urlsplit(location)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{location!r} is not s3://bucket or s3://bucket/prefix")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""
