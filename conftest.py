"""The test suite's fixtures live in ``tests/fixtures/``, one plugin module per concern; this file
only loads them, so that every test module (the apps' own included) can use them."""

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.secrets",
    "tests.fixtures.services",
    "tests.fixtures.jobs",
    "tests.fixtures.messaging",
    "tests.fixtures.served",
]
