"""Finding 11 of the review: restarting `make run` lost every secret stored in OpenBao (its dev
server kept nothing), while the metadata stayed in the database. Now OpenBao keeps its data under
.run/openbao (Raft storage), initialised and unsealed by scripts/services: a secret written, then
OpenBao restarted by the project's script, is read back by an agent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from secrets_app import services, value_cache
from secrets_app.backends import vault
from tests.fixtures.services import needs_project_services

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def services_script(*args: str) -> None:
    subprocess.run(
        ["scripts/services", *args], cwd=ROOT, check=True, capture_output=True, timeout=120
    )


@pytest.fixture
def restartable_openbao(settings):
    if not (ROOT / ".run" / "openbao" / "bao.pid").exists() or not settings.VAULT_ADDR.endswith(
        f":{os.environ.get('FOUNDATION_BAO_PORT', '17200')}"
    ):
        needs_project_services("OpenBao here is not the one scripts/services runs")


def test_a_secret_survives_a_restart_of_openbao(
    restartable_openbao, client, admin_user, make_agent, vault_prefix
):
    _, token = make_agent(grants=["kept/*"])
    services.create_secret("kept/db", "survives-restarts", actor=admin_user, backend="vault")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/api/v1/secrets/kept/db", **headers).json()["value"] == "survives-restarts"
    services_script("stop", "openbao")
    services_script("start", "openbao")
    vault.reset_client()  # the old connection went with the old process
    value_cache.forget()  # read from OpenBao itself, not from the site's memory
    answer = client.get("/api/v1/secrets/kept/db", **headers)
    assert answer.status_code == 200
    assert answer.json()["value"] == "survives-restarts"


def test_a_vault_that_lost_a_secret_says_so_and_is_reconciled(
    client, admin_user, make_agent, vault_prefix, settings
):
    """Finding 11, the other half: Vault restored from an older snapshot (here: the secret
    destroyed behind the site's back) used to answer "does not exist" to the agent, and a new
    value was a 500 (Vault's numbering restarted at 1)."""
    from io import StringIO

    from django.core.management import call_command

    from audit_app.models import AuditLog
    from secrets_app.exceptions import BackendOutOfSync
    from secrets_app.models import SecretMetadata, SecretVersion

    _, token = make_agent(grants=["lost/*"])
    secret = services.create_secret("lost/key", "one", actor=admin_user, backend="vault")
    services.set_value(secret, "two", actor=admin_user)
    vault.client().secrets.kv.v2.delete_metadata_and_all_versions(
        path=vault.path_for(secret), mount_point=settings.SECRETS_VAULT_MOUNT
    )
    value_cache.forget()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    answer = client.get("/api/v1/secrets/lost/key", **headers)
    assert answer.status_code == 503
    assert "administrator must reconcile" in answer.json()["detail"]
    secret.refresh_from_db()
    with pytest.raises(BackendOutOfSync, match="vault numbered the new value version 1"):
        services.set_value(secret, "three", actor=admin_user)
    # Reported, then mended: the site takes Vault's word (which now holds the failed write's
    # version 1), and drops the history of the versions Vault lost.
    out = StringIO()
    call_command("reconcile_vault", stdout=out)
    assert "lost/key: the site says version 2, vault 1" in out.getvalue()
    assert SecretMetadata.objects.get(pk=secret.pk).current_version == 2  # a report only
    call_command("reconcile_vault", "--apply", stdout=StringIO())
    secret.refresh_from_db()
    assert secret.current_version == 1
    assert list(SecretVersion.objects.filter(secret=secret).values_list("version", flat=True)) == [
        1
    ]
    row = AuditLog.objects.get(event_type="secrets.reconcile")
    assert row.metadata == {"site_version": 2, "vault_version": 1, "history_dropped": 1}
    assert services.set_value(secret, "four", actor=admin_user) == 2
    value_cache.forget()
    assert client.get("/api/v1/secrets/lost/key", **headers).json()["value"] == "four"
