import pytest

from integrations.stella.client import close_connections
from surveys.models import Account
from tests.factories import AccountFactory
from tests.helpers import WORKSPACE_ID


@pytest.fixture
def account(db) -> Account:
    return AccountFactory(intercom_workspace_id=WORKSPACE_ID)


@pytest.fixture(autouse=True)
def fixtures_are_never_too_old(settings):
    """The fixtures' notifications carry fixed times, some from 2019: the replay window's own tests set it back."""
    settings.INTERCOM_WEBHOOK_MAX_AGE_DAYS = 36500


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_kept_alive_connections():
    """A kept-alive connection holds the live server's request thread, and its database session, open."""
    yield
    close_connections()
