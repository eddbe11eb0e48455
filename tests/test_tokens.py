import os
import stat
import threading

import pytest

from receiver.provider.tokens import (
    SECRET_BYTES, TokenError, load_or_create_secret, make_token, verify_token,
)

SECRET = b"k" * 32
TASK = "b235b0c2-8081-499d-97a6-3bc21824c55a"


def test_token_is_an_hmac_of_the_task():
    token = make_token(TASK, secret=SECRET)
    assert len(token) == 64 and int(token, 16) >= 0
    assert token == make_token(TASK, secret=SECRET)
    assert token != make_token("9bfd2482-90e7-466a-b655-6f0a61bfb9f6", secret=SECRET)
    assert token != make_token(TASK, secret=b"j" * 32)
    assert token != make_token(TASK, secret=SECRET, purpose="upload")


def test_right_token_verifies():
    verify_token(make_token(TASK, secret=SECRET), TASK, secret=SECRET)


@pytest.mark.parametrize("token,status", [
    (None, 401), ("", 401), ("0" * 64, 403), ("x" * 10_000, 403), ("é" * 64, 403),
    (make_token("9bfd2482-90e7-466a-b655-6f0a61bfb9f6", secret=SECRET), 403),
    (make_token(TASK, secret=SECRET).upper(), 403),
    (make_token(TASK, secret=SECRET)[:-1], 403),
])
def test_wrong_or_missing_token_is_refused(token, status):
    with pytest.raises(TokenError) as info:
        verify_token(token, TASK, secret=SECRET)
    assert info.value.status == status


def test_secret_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "webhook-secret"
    first = load_or_create_secret(str(path))
    assert len(first) == SECRET_BYTES
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(str(path)) == first


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    path = str(tmp_path / "webhook-secret")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(load_or_create_secret(path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and len(seen) == 8
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_truncated_secret_is_an_error_not_silently_replaced(tmp_path):
    path = tmp_path / "webhook-secret"
    path.write_text("abcd\n")
    with pytest.raises(RuntimeError, match="too short"):
        load_or_create_secret(str(path))
