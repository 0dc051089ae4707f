"""Settings precedence: flags > LLMID_* environment > TOML file > embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmid.config import Settings, load_settings
from llmid.errors import ConfigError


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings() == Settings()


def test_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmid.toml").write_text('window_seconds = 60\nstore = "sqlite:///file.db"\nbatch_size = 10\n')
    monkeypatch.setenv("LLMID_WINDOW_SECONDS", "120")
    s = load_settings({"store": "sqlite:///flag.db"})
    assert s.store == "sqlite:///flag.db"  # flag beats file
    assert s.window_seconds == 120.0  # env beats file
    assert s.batch_size == 10  # file beats default


def test_llmid_table_and_explicit_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[llmid]\nquiet = true\n")
    assert load_settings(config_path=str(f)).quiet is True


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("nonsense = 1\n", {}, "Unknown setting"),
        ("window_seconds = [\n", {}, "Cannot read config file"),
        ("", {"LLMID_BATCH_SIZE": "many"}, "Invalid value"),
        ("", {"LLMID_QUIET": "perhaps"}, "Invalid value"),
    ],
)
def test_bad_settings_are_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str,
                                env: dict[str, str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmid.toml").write_text(content)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_path=str(tmp_path / "nope.toml"))
