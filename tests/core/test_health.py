from __future__ import annotations

import pytest
from django.db import connections


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_is_200_when_database_queue_and_channel_layer_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "queue", "channel_layer"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_naming_the_database_when_it_is_down(client):
    connection = connections["default"]
    connection.close()
    real_host, real_port = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    # Point the live connection at an address where no PostgreSQL listens.
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", 1
    try:
        response = client.get("/readyz")
    finally:
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = real_host, real_port

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "database" in body["failing"]
    assert body["checks"]["database"]["ok"] is False
    assert "connection" in body["checks"]["database"]["error"].lower()
    assert body["checks"]["channel_layer"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_naming_the_channel_layer_when_redis_is_unreachable(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["channel_layer"]


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_at_once_while_the_channel_layer_is_reconnecting_and_200_when_back(client):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    # What agentdeck.core.channel_layers reports while its LISTEN / Pub/Sub connection is down.
    layer.receive_outage_description = lambda: (
        "channel layer LISTEN connection (PostgreSQL): reconnecting for 3.0 s (5 attempt(s)); "
        "last error: OperationalError: the connection is lost"
    )
    try:
        response = client.get("/readyz")
    finally:
        del layer.receive_outage_description
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["channel_layer"]
    assert "reconnecting for 3.0 s" in body["checks"]["channel_layer"]["error"]
    assert body["checks"]["channel_layer"]["ms"] < 100  # no round trip waited out
    assert client.get("/readyz").status_code == 200
