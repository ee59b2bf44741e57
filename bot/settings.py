"""Settings: every environment variable of the public contract, validated once at start-up.

Built in ``main()`` and passed down; nothing else reads the environment. A ``.env`` file in
the working directory is honoured. Invalid settings become one ``SettingsError`` whose
message lists every problem with the variable's name, so the CLI can exit 2 without a
traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/gbram1/streamhouse/blob/8b45026/docs/runbooks"
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "streamhouse-bot"

CommaList = Annotated[list[str], NoDecode]


class SettingsError(Exception):
    """The environment does not describe a runnable bot; ``str()`` lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


_MODEL_CONFIG = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    case_sensitive=False,
    frozen=True,
)


class StreamhouseSettings(BaseSettings):
    """Where Streamhouse's systems are: all the CLI's ``diagnose`` needs (no Slack)."""

    model_config = _MODEL_CONFIG

    streamhouse_profile: Literal["runbook", "upstream"] = "runbook"
    prometheus_url: AnyHttpUrl | None = None
    kubernetes_api_url: AnyHttpUrl | None = None
    streamhouse_namespace: str = "streamhouse"
    streamhouse_database_url: SecretStr | None = None
    # Upstream only: the organization whose rows (row-level security) and schema registry
    # subjects (x-organization-id) the bot reads; discovered from the database when unset.
    streamhouse_organization_id: str | None = None
    s3_bucket: str | None = None
    schema_registry_url: AnyHttpUrl | None = None
    bot_runbook_base_url: AnyHttpUrl = AnyHttpUrl(DEFAULT_RUNBOOK_BASE_URL)
    bot_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("bot_log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def runbook_base_url(self) -> str:
        """Where runbook links point, without a trailing slash."""
        return str(self.bot_runbook_base_url).rstrip("/")


class Settings(StreamhouseSettings):
    """The bot's configuration; field names are the environment variable names, lower-cased."""

    model_config = _MODEL_CONFIG

    # Slack
    slack_bot_token: SecretStr
    slack_app_token: SecretStr | None = None
    # Checked against the app token, so it is declared after it and validated even if unset.
    slack_signing_secret: SecretStr | None = Field(default=None, validate_default=True)
    slack_api_url: AnyHttpUrl = AnyHttpUrl(DEFAULT_SLACK_API_URL)

    # The bot itself
    bot_database_url: SecretStr | None = None
    bot_data_dir: Path = DEFAULT_DATA_DIR
    bot_http_host: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    bot_http_port: int = Field(default=3000, ge=0, le=65535)
    bot_alert_channel: str | None = None
    bot_alert_channels: CommaList = Field(default_factory=list)
    # Alerts of one runbook agreeing on these labels share an incident.
    bot_alert_group_by: CommaList = Field(default_factory=lambda: ["namespace", "cluster"])
    # At most one message per this many seconds per channel, across replicas (Slack: ~1/s).
    # 1.1 s rather than 1 s keeps clear of the limit when posts reach Slack with jitter.
    bot_post_interval_s: float = Field(default=1.1, ge=0)
    bot_alertmanager_token: SecretStr | None = None
    bot_approvers: CommaList = Field(default_factory=list)
    bot_approver_group: str | None = None
    bot_dry_run: bool = False
    # Approved actions: how long a request waits for a decision, the per-target cooldown of
    # a restart, and when after an execution its verification checks run (seconds).
    bot_request_ttl_s: float = Field(default=900.0, gt=0)
    bot_restart_cooldown_s: float = Field(default=600.0, ge=0)
    bot_verify_delays_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [30.0, 120.0, 300.0], min_length=1
    )
    # Watch actions (CB-A1, TH-A1, WAL-A1) poll every interval over the runbook's window
    # (3 or 10 min); BOT_WATCH_WINDOW_S shortens every window (demos, tests).
    bot_watch_interval_s: float = Field(default=15.0, gt=0)
    bot_watch_window_s: float | None = Field(default=None, gt=0)
    # Digests: a scheduled run missed while no bot was up is posted once at start-up when
    # it is at most this many seconds old; older misses are skipped.
    bot_digest_grace_s: float = Field(default=900.0, ge=0)

    @field_validator("bot_verify_delays_s", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(item) for item in value.split(",") if item.strip()]
        return value

    @field_validator("bot_alert_channels", "bot_approvers", "bot_alert_group_by", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with 'xoxb-'")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with 'xapp-'")
        return value

    @field_validator("slack_signing_secret")
    @classmethod
    def _http_mode_needs_signing_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is None and info.data.get("slack_app_token") is None:
            raise ValueError("is required unless SLACK_APP_TOKEN selects Socket Mode")
        return value

    @property
    def socket_mode(self) -> bool:
        """True when events arrive over Socket Mode instead of signed HTTP requests."""
        return self.slack_app_token is not None

    @property
    def slack_base_url(self) -> str:
        """The Web API base URL in the form slack_sdk wants (with a trailing slash)."""
        url = str(self.slack_api_url)
        return url if url.endswith("/") else url + "/"


def load_settings(env_file: str | None = ".env") -> Settings:
    """Read settings from the process environment and ``env_file``.

    Raises ``SettingsError`` listing every problem by variable name.
    """
    try:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def load_streamhouse_settings(env_file: str | None = ".env") -> StreamhouseSettings:
    """Only the Streamhouse side of the settings (the CLI's ``diagnose`` needs no Slack)."""
    try:
        return StreamhouseSettings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"] if isinstance(part, str)]
        name = location[0].upper() if location else "settings"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required but not set"
        problems.append(f"{name}: {message}" if location else message)
    return problems
