"""A real S3-protocol server on loopback for the tests: moto's server mode (a MinIO server
build cannot be installed on these machines). The service code knows nothing of it: it
gets an endpoint URL and the standard AWS credential variables, as with any S3 store.

Import the fixtures into a test module (``from tests.s3server import s3_endpoint, bucket``).
"""

import os
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint():
    """The server's URL (one per test process), with credentials in the environment."""
    for name, value in CREDENTIALS.items():
        os.environ[name] = value
    os.environ.pop("AWS_SESSION_TOKEN", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def client(endpoint):
    """A plain boto3 client of the server (what a test uses to look behind the store)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def make_bucket(endpoint):
    """A new, empty bucket of the test's own; its name."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3_endpoint):
    """A new, empty bucket of this test's own."""
    return make_bucket(s3_endpoint)


def keys(endpoint, bucket_name, prefix=""):
    """Every key in the bucket under ``prefix``, sorted."""
    pages = client(endpoint).get_paginator("list_objects_v2").paginate(
        Bucket=bucket_name, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))
