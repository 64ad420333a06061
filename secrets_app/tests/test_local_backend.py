"""The local backend's envelope encryption, and rotating its master key."""

from __future__ import annotations

import base64
import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit_app.models import AuditLog
from secrets_app import services
from secrets_app.crypto import Keyring, key_id
from secrets_app.exceptions import BackendUnavailable, MasterKeyError
from secrets_app.models import LocalSecretValue

pytestmark = pytest.mark.django_db


def new_key() -> bytes:
    return os.urandom(32)


def test_nothing_is_stored_in_plaintext(admin_user):
    secret = services.create_secret("k", "plaintext-canary-123", actor=admin_user, backend="local")
    row = LocalSecretValue.objects.get(secret=secret)
    stored = bytes(row.ciphertext) + bytes(row.wrapped_key) + bytes(row.nonce)
    assert b"plaintext-canary-123" not in stored
    assert len(bytes(row.ciphertext)) == len("plaintext-canary-123") + 16  # GCM tag


def test_each_version_has_its_own_data_key(admin_user):
    secret = services.create_secret("k", "same", actor=admin_user, backend="local")
    services.set_value(secret, "same", actor=admin_user)
    one, two = LocalSecretValue.objects.filter(secret=secret).order_by("version")
    assert bytes(one.wrapped_key) != bytes(two.wrapped_key)
    assert bytes(one.ciphertext) != bytes(two.ciphertext)


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(admin_user):
    a = services.create_secret("a", "value-a", actor=admin_user, backend="local")
    b = services.create_secret("b", "value-b", actor=admin_user, backend="local")
    row_a = LocalSecretValue.objects.get(secret=a)
    LocalSecretValue.objects.filter(secret=b).update(
        nonce=row_a.nonce,
        ciphertext=row_a.ciphertext,
        wrapped_key=row_a.wrapped_key,
        key_nonce=row_a.key_nonce,
    )
    with pytest.raises(MasterKeyError, match="failed authentication"):
        services.read_value(b)


def test_without_the_master_key_the_local_backend_is_unavailable(settings, admin_user):
    secret = services.create_secret("k", "v", actor=admin_user, backend="local")
    settings.FOUNDATION_MASTER_KEY = None
    with pytest.raises(BackendUnavailable, match="FOUNDATION_MASTER_KEY"):
        services.read_value(secret)


def test_a_value_under_an_unknown_master_key_names_the_key_not_the_value(settings, admin_user):
    secret = services.create_secret("k", "v", actor=admin_user, backend="local")
    old_id = key_id(settings.FOUNDATION_MASTER_KEY)
    settings.FOUNDATION_MASTER_KEY = new_key()
    with pytest.raises(MasterKeyError, match=old_id):
        services.read_value(secret)


def test_rotate_master_key_rewraps_every_data_key(settings, admin_user):
    old = settings.FOUNDATION_MASTER_KEY
    secrets = [
        services.create_secret(f"s{i}", f"value-{i}", actor=admin_user, backend="local")
        for i in range(5)
    ]
    services.set_value(secrets[0], "value-0b", actor=admin_user)
    ciphertexts = {r.pk: bytes(r.ciphertext) for r in LocalSecretValue.objects.all()}

    # Step 1: the new key is current, the old one still known; both kinds of rows read.
    new = new_key()
    settings.FOUNDATION_MASTER_KEY = new
    settings.FOUNDATION_PREVIOUS_MASTER_KEYS = [old]
    assert services.read_value(secrets[1]) == "value-1"

    # Step 2: re-wrap (in small batches, to exercise resumption).
    out = StringIO()
    call_command("rotate_master_key", "--batch-size", "2", stdout=out)
    assert "re-wrapped 6 data key(s)" in out.getvalue()
    assert set(LocalSecretValue.objects.values_list("key_id", flat=True)) == {key_id(new)}
    # Only the wrapping changed: the value ciphertexts are the same bytes.
    assert {r.pk: bytes(r.ciphertext) for r in LocalSecretValue.objects.all()} == ciphertexts

    # Step 3: the old key is gone and everything still reads.
    settings.FOUNDATION_PREVIOUS_MASTER_KEYS = []
    assert services.read_value(secrets[0]) == "value-0b"
    assert services.read_value(secrets[0], 1) == "value-0"
    assert [services.read_value(s) for s in secrets[1:]] == [f"value-{i}" for i in range(1, 5)]

    # A second run has nothing left to do.
    again = StringIO()
    call_command("rotate_master_key", stdout=again)
    assert "re-wrapped 0 data key(s)" in again.getvalue()
    row = AuditLog.objects.filter(event_type="secrets.master_key").first()
    assert row is not None
    assert row.success is True


def test_rotate_master_key_without_the_old_key_fails_and_changes_nothing(settings, admin_user):
    services.create_secret("k", "v", actor=admin_user, backend="local")
    before = list(LocalSecretValue.objects.values_list("wrapped_key", "key_id"))
    settings.FOUNDATION_MASTER_KEY = new_key()
    settings.FOUNDATION_PREVIOUS_MASTER_KEYS = []
    with pytest.raises(CommandError, match="FOUNDATION_PREVIOUS_MASTER_KEYS"):
        call_command("rotate_master_key", stdout=StringIO())
    after = list(LocalSecretValue.objects.values_list("wrapped_key", "key_id"))
    assert [(bytes(w), k) for w, k in after] == [(bytes(w), k) for w, k in before]
    assert AuditLog.objects.get(event_type="secrets.master_key").success is False


def test_a_keyring_needs_a_32_byte_key():
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring(b"short")
    ring = Keyring(new_key())
    assert ring.current_id in repr(ring)
    assert base64.b64encode(ring.current).decode() not in repr(ring)
