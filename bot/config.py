"""Settings from the environment (and `.env`), parsed and validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
ALL_LANGUAGES = ("de", "en", "ar", "fa", "tr", "uk", "ru", "it", "es", "el", "fr", "ro", "pl", "hr", "sq")
RTL_LANGUAGES = frozenset({"ar", "fa"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    db_path: str = "data/welcomebot.db"
    content_dir: Path = PROJECT_DIR
    languages: tuple[str, ...] = ALL_LANGUAGES
    default_language: str = "en"
    pseudonym_key: str = ""
    log_level: str = "INFO"
    match_threshold: float = 0.38
    max_message_chars: int = 2000
    rate_limit_per_minute: int = 20
    rate_limit_burst: int = 10
    retention_handoff_days: int = 30
    retention_people_days: int = 180
    telegram_token: str = ""
    telegram_api_url: str = ""
    telegram_webhook_url: str = ""
    telegram_webhook_port: int = 8443
    telegram_webhook_secret: str = ""
    telegram_max_per_second: int = 30
    matrix_homeserver: str = ""
    matrix_user_id: str = ""
    matrix_password: str = ""
    matrix_access_token: str = ""
    matrix_allowed_servers: tuple[str, ...] = ()
    matrix_store_dir: str = "data/matrix"
    staff_matrix_room: str = ""
    staff_telegram_chat_id: str = ""
    staff_config: str = ""
    staff_language: str = "de"

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_token)

    @property
    def matrix_enabled(self) -> bool:
        return bool(
            self.matrix_homeserver and self.matrix_user_id and (self.matrix_password or self.matrix_access_token)
        )


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise SettingsError(f"{name} must be between 0 and 1, got {value}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def from_env(env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Build the settings from `env` (default: the process environment plus `.env`)."""
    if env is None:
        from dotenv import dotenv_values

        file_values = dotenv_values(dotenv or Path.cwd() / ".env")
        env = {**{k: v for k, v in file_values.items() if v is not None}, **os.environ}
    languages = _list(env, "LANGUAGES") or ALL_LANGUAGES
    unknown = [code for code in languages if len(code) != 2 or not code.isalpha()]
    if unknown:
        raise SettingsError(f"LANGUAGES holds codes that are not two-letter language codes: {', '.join(unknown)}")
    default_language = env.get("DEFAULT_LANGUAGE", "en").strip() or "en"
    if default_language not in languages:
        raise SettingsError(f"DEFAULT_LANGUAGE {default_language!r} is not one of LANGUAGES")
    content_dir = Path(env.get("WELCOMEBOT_CONTENT_DIR", "").strip() or PROJECT_DIR)
    if not (content_dir / "knowledge").is_dir():
        raise SettingsError(f"WELCOMEBOT_CONTENT_DIR {str(content_dir)!r} has no knowledge/ folder")
    chat_id = env.get("STAFF_TELEGRAM_CHAT_ID", "").strip()
    if chat_id and not chat_id.lstrip("-").isdigit():
        raise SettingsError(f"STAFF_TELEGRAM_CHAT_ID must be a numeric chat id, got {chat_id!r}")
    staff_language = env.get("STAFF_LANGUAGE", "de").strip() or "de"
    if staff_language not in languages:
        raise SettingsError(f"STAFF_LANGUAGE {staff_language!r} is not one of LANGUAGES")
    level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    settings = Settings(
        db_path=env.get("WELCOMEBOT_DB", "").strip() or Settings.db_path,
        content_dir=content_dir,
        languages=languages,
        default_language=default_language,
        pseudonym_key=env.get("WELCOMEBOT_PSEUDONYM_KEY", "").strip(),
        log_level=level,
        match_threshold=_float(env, "MATCH_THRESHOLD", Settings.match_threshold),
        max_message_chars=_int(env, "MAX_MESSAGE_CHARS", Settings.max_message_chars, 100),
        rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", Settings.rate_limit_per_minute, 1),
        rate_limit_burst=_int(env, "RATE_LIMIT_BURST", Settings.rate_limit_burst, 1),
        retention_handoff_days=_int(env, "RETENTION_HANDOFF_DAYS", Settings.retention_handoff_days, 1),
        retention_people_days=_int(env, "RETENTION_PEOPLE_DAYS", Settings.retention_people_days, 1),
        telegram_token=env.get("TELEGRAM_BOT_TOKEN", "").strip(),
        telegram_api_url=env.get("TELEGRAM_API_URL", "").strip(),
        telegram_webhook_url=env.get("TELEGRAM_WEBHOOK_URL", "").strip(),
        telegram_webhook_port=_int(env, "TELEGRAM_WEBHOOK_PORT", Settings.telegram_webhook_port, 1),
        telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET", "").strip(),
        telegram_max_per_second=_int(env, "TELEGRAM_MAX_PER_SECOND", Settings.telegram_max_per_second, 1),
        matrix_homeserver=env.get("MATRIX_HOMESERVER", "").strip(),
        matrix_user_id=env.get("MATRIX_USER_ID", "").strip(),
        matrix_password=env.get("MATRIX_PASSWORD", ""),
        matrix_access_token=env.get("MATRIX_ACCESS_TOKEN", "").strip(),
        matrix_allowed_servers=_list(env, "MATRIX_ALLOWED_SERVERS"),
        matrix_store_dir=env.get("MATRIX_STORE_DIR", "").strip() or Settings.matrix_store_dir,
        staff_matrix_room=env.get("STAFF_MATRIX_ROOM", "").strip(),
        staff_telegram_chat_id=chat_id,
        staff_config=env.get("STAFF_CONFIG", "").strip(),
        staff_language=staff_language,
    )
    _check_staff_rooms(settings)
    return settings


def _check_staff_rooms(settings: Settings) -> None:
    """A staff room needs its channel and the staff file; without them no hand-off could work."""
    if settings.staff_matrix_room and not settings.matrix_enabled:
        raise SettingsError("STAFF_MATRIX_ROOM is set, but the Matrix channel is not (MATRIX_HOMESERVER, ...)")
    if settings.staff_telegram_chat_id and not settings.telegram_enabled:
        raise SettingsError("STAFF_TELEGRAM_CHAT_ID is set, but TELEGRAM_BOT_TOKEN is not")
    if (settings.staff_matrix_room or settings.staff_telegram_chat_id) and not settings.staff_config:
        raise SettingsError("a staff room is set, so STAFF_CONFIG must name the staff file (see staff.example.yaml)")
