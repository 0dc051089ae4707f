"""The built-in web app and REST API (`llmid serve`): server-rendered Flask pages and `/api/v1`.

Flask is imported only by `create_app`, so the CLI and `tokens` stay importable (and fast) without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(store: Any = None, config: Any = None) -> Flask:
    """The WSGI app over `store` (a Store shared by all threads, or a URL opened once per thread)."""
    from llmid.plugin.webapp.app import create_app as _create

    return _create(store, config)
