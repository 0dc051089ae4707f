"""Settings of the web app (`llmid serve` flags): kept apart from the engine's Settings, which know no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmid.config import Settings


@dataclass(slots=True)
class WebConfig:
    settings: Settings = field(default_factory=Settings)
    """Engine settings: the store URL, and the pipeline options `POST /api/v1/ingest` runs with."""
    public_read: bool = False
    """Read endpoints and pages open without a token (e.g. a demo on a laptop); writes always need one."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body; bigger ones get 413 before they are read."""
    max_ingest_lines: int = 10_000
    """Most lines one ingest request may carry (a request runs the pipeline inline, so it must stay short)."""
    rate_per_minute: float = 1200.0
    """Sustained requests per minute per client (token, else address); 0 turns limiting off."""
    rate_burst: int = 200
    """Requests a client may send at once before the sustained rate applies."""
    secret_key: str | None = None
    """Signs session cookies; None keeps a random one in the store so sessions survive restarts."""
    notify: bool = True
    """Send alert notifications (API tests turn this off so fuzzed rules never reach the network)."""
    alert_interval_s: float = 30.0
    """How often `serve` checks alert rules against new incidents; 0 = only after API ingests."""
    base_url: str | None = None
    """Public URL of the app, used for links in notifications (e.g. https://llmid.example.com)."""
    page_size: int = 50
    """Records per search page."""
