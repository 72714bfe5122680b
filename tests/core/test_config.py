"""Settings: defaults, the TOML file, environment overrides, and readable errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import ConfigError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("VISIONBOT_")]:
        monkeypatch.delenv(key)
    settings = load_settings(EXAMPLE)
    assert settings.model.id == "Qwen/Qwen3-VL-2B-Instruct"
    assert (
        settings.model.max_new_tokens,
        settings.model.temperature,
        settings.model.top_p,
        settings.model.do_sample,
    ) == (512, 0.7, 0.9, True)
    assert settings.telegram.token is None


def test_file_values_and_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[model]\nid = "/models/qwen"\ndo_sample = false\n')
    monkeypatch.setenv("VISIONBOT_TELEGRAM__TOKEN", "123:secret")
    settings = load_settings(path)
    assert settings.model.id == "/models/qwen" and settings.model.do_sample is False
    assert settings.telegram.token is not None
    assert settings.telegram.token.get_secret_value() == "123:secret"
    assert "123:secret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[model]\ntemperature = -1\n", "'model.temperature'"),
        ('[model]\nmax_new_tokens = "lots"\n', "'model.max_new_tokens'"),
        ("[images]\nmax_pixel = 5\n", "unknown setting 'images.max_pixel'"),
        ("[storage]\nurl = 5\n", "'storage.url'"),
        ("[model\nid = 1\n", "cannot read"),
    ],
)
def test_invalid_settings_name_the_key_in_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    message = str(error.value)
    assert expected in message
    assert "\n" not in message.strip()


def test_missing_config_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONBOT_QUEUE__MAX_WAITING", "zero")
    with pytest.raises(ConfigError, match=r"'queue\.max_waiting'"):
        load_settings(None)
