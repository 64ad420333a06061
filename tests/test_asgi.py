"""The ASGI application Daphne serves answers HTTP through Django."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

from foundation_site.asgi import application


@pytest.mark.django_db(transaction=True)
def test_the_asgi_app_serves_the_admin_login_page():
    communicator = HttpCommunicator(
        application, "GET", "/admin/login/", headers=[(b"host", b"localhost")]
    )
    response = async_to_sync(communicator.get_response)(timeout=10)
    assert response["status"] == 200
    assert b"Log in" in response["body"]
