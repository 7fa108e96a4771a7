import pytest
from django.db import connections

from portal import metrics
from tests.servers import refused_port


@pytest.fixture
def database_down(transactional_db):
    """The portal's connection pointed where no database answers (a closed port; for SQLite, a file that can't be
    opened), as if the server had gone; put back as the test ends."""
    connection = connections["default"]
    before = dict(connection.settings_dict)
    connection.close()
    with refused_port() as port:
        if connection.vendor == "sqlite":
            connection.settings_dict["NAME"] = "/nonexistent-directory/portal.sqlite3"
        else:
            connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
        yield
        connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(before)


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = "metrics-token-for-tests-0123456789"
    return settings.METRICS_TOKEN


@pytest.fixture
def scrape(client, metrics_token):
    """GET /metrics as Prometheus would, returning the text."""

    def scrape() -> str:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
        assert response.status_code == 200, response.status_code
        return response.content.decode()

    return scrape


@pytest.fixture(autouse=True)
def only_the_portals_collectors():
    """A test that registers a collector of its own leaves the registry as it found it."""
    before = dict(metrics._collectors)
    yield
    metrics._collectors.clear()
    metrics._collectors.update(before)
