"""The pytest plugin's switch: options, ini settings, and the fixtures only when asked for.

Installed as the ``pytest11`` entry point ``cachefleet``. pytest loads every pytest11 entry point
of an environment unless plugin autoloading is disabled, so this module adds only inert options;
the ``cachefleet`` fixture (``cachefleet.pytest_fixtures``) is registered only when the run asks
for it, one of:

- ``pytest -p cachefleet`` (also in ``addopts``, or with PYTEST_DISABLE_PLUGIN_AUTOLOAD set:
  ``-p`` loads an entry point by its name then);
- ``pytest --cachefleet``;
- the ini setting ``cachefleet = true``;
- ``pytest_plugins = ["cachefleet.pytest_fixtures"]`` in a conftest (works without the entry point).

A project that has Cachefleet installed for another reason sees no fixture and no server.
"""

from __future__ import annotations

import os

import pytest

FIXTURES = "cachefleet.pytest_fixtures"
_NAMES = ("cachefleet", "cachefleet.pytest_plugin")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cachefleet", "Cachefleet (a real ElastiCache-compatible server for tests)")
    group.addoption("--cachefleet", action="store_true", default=False,
                    help="Enable the cachefleet fixture (the same as -p cachefleet).")
    group.addoption("--cachefleet-engine", default=None, metavar="ENGINE",
                    help="Engine of the groups the fixture creates: valkey (default) or redis.")
    group.addoption("--cachefleet-engine-version", default=None, metavar="VERSION",
                    help="Engine version (such as 8.1 or 7.0); default: the newest installed.")
    group.addoption("--cachefleet-max-nodes", default=None, metavar="N",
                    help="The fixture server's node quota per region (cachefleet up --max-nodes); default 300.")
    parser.addini("cachefleet", "Enable the cachefleet fixture.", type="bool", default=False)
    parser.addini("cachefleet_engine", "Default of --cachefleet-engine.", default="valkey")
    parser.addini("cachefleet_engine_version", "Default of --cachefleet-engine-version.", default="")
    parser.addini("cachefleet_max_nodes", "Default of --cachefleet-max-nodes.", default="")


def enabled(config: pytest.Config) -> bool:
    """Whether this run asked for the fixture."""
    requested = list(config.option.plugins or []) + [
        name.strip() for name in os.environ.get("PYTEST_PLUGINS", "").split(",")
    ]
    return (
        any(name in _NAMES for name in requested)
        or bool(config.getoption("cachefleet"))
        or bool(config.getini("cachefleet"))
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if enabled(config) and not config.pluginmanager.has_plugin(FIXTURES):
        config.pluginmanager.import_plugin(FIXTURES)
