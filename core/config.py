"""Typed settings for the whole bot, loaded once at start-up from a TOML file and the environment.

Environment variables override the file: ``VISIONBOT_TELEGRAM__TOKEN`` sets ``[telegram] token``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_PATH = Path("config.toml")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Section):
    id: str = "Qwen/Qwen3-VL-2B-Instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    threads: int = Field(default=0, ge=0)
    max_new_tokens: int = Field(default=512, ge=1, le=8192)
    temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    do_sample: bool = True
    seed: int | None = None
    system_prompt: str = ""
    quantization: Literal["none", "int8-dynamic"] = "int8-dynamic"
    prefix_cache_mb: int = Field(default=512, ge=0)


class ImageSettings(_Section):
    max_pixels: int = Field(default=448 * 448, ge=32 * 32)
    max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_decoded_pixels: int = Field(default=50_000_000, ge=1_000_000)
    max_images_per_message: int = Field(default=4, ge=1, le=16)


class HistorySettings(_Section):
    max_turns: int = Field(default=20, ge=1)
    max_tokens: int = Field(default=4096, ge=256)
    max_text_chars: int = Field(default=4000, ge=100)
    describe_prompt: str = "Describe this image."


class StorageSettings(_Section):
    url: str = "sqlite:///data/visionbot.db"


class QueueSettings(_Section):
    max_waiting: int = Field(default=32, ge=1)


class TelegramSettings(_Section):
    token: SecretStr | None = None
    allowed_user_ids: list[int] = Field(default_factory=list)
    allowed_chat_ids: list[int] = Field(default_factory=list)
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    edit_interval_s: float = Field(default=1.5, ge=0.0)
    album_wait_s: float = Field(default=1.0, ge=0.0)
    poll_timeout_s: int = Field(default=30, ge=0, le=50)


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    mode: Literal["socket", "http"] = "socket"
    http_listen: str = "127.0.0.1"
    http_port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port (tests)
    allowed_user_ids: list[str] = Field(default_factory=list)
    allowed_channel_ids: list[str] = Field(default_factory=list)
    api_base_url: str = "https://slack.com/api/"
    update_interval_s: float = Field(default=1.5, ge=0.0)


class WebSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    api_keys: list[SecretStr] = Field(default_factory=list)
    allow_public_without_key: bool = False
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    allow_remote_image_urls: bool = False

    @model_validator(mode="after")
    def _public_needs_a_key(self) -> WebSettings:
        # Checked with the settings, so `visionbot run` refuses before spending minutes loading
        # the model.
        public = self.enabled and not is_loopback(self.host)
        if public and not self.api_keys and not self.allow_public_without_key:
            raise PydanticCustomError(
                "public_without_key",
                "host {host} would let anyone on the network use the model. Set [web] "
                "api_keys (VISIONBOT_WEB__API_KEYS='[\"...\"]'), or [web] "
                "allow_public_without_key = true if that is really intended",
                {"host": repr(self.host)},
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (a host name other than localhost may not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything visionbot can be told; see config.example.toml for each key's meaning."""

    model_config = SettingsConfigDict(
        env_prefix="VISIONBOT_", env_nested_delimiter="__", extra="forbid"
    )

    model: ModelSettings = Field(default_factory=ModelSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then VISIONBOT_* variables, then the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"config: unknown setting '{key}' (check spelling against config.example.toml)"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"config: '{key}': {first['msg']}{shown}"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (if it exists) and the environment; ConfigError on errors."""
    toml_path = path if path is not None else DEFAULT_CONFIG_PATH
    if path is not None and not path.exists():
        raise ConfigError(f"config: file {path} does not exist (copy config.example.toml)")
    file_config = SettingsConfigDict(toml_file=toml_path if toml_path.exists() else None)
    source = type(
        "FileSettings", (Settings,), {"model_config": {**Settings.model_config, **file_config}}
    )
    try:
        settings = source(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except (OSError, ValueError) as error:  # TOML syntax errors surface as ValueError
        raise ConfigError(f"config: cannot read {toml_path}: {error}") from None
    return settings
