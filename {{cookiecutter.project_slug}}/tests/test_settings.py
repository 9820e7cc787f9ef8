"""Bad settings: one line per variable (its name, the value given, what is expected), secrets
hidden, exit status 1 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
{% if cookiecutter.handler in ["reply-on-pause", "voice-agent"] %}
from {{ cookiecutter.package_name }}.handlers.pauses import PauseSettings
{%- endif %}
{%- if cookiecutter.handler == "voice-agent" %}
from {{ cookiecutter.package_name }}.handlers.voice_agent.settings import VoiceSettings
{%- endif %}
from {{ cookiecutter.package_name }}.settings import Settings, load

SECRET = "s3cret-value-nobody-may-read"


class WithSecret(BaseSettings):
    """Settings with a constrained secret, as an app may add (``APP_TOKEN``)."""

    model_config = SettingsConfigDict(env_prefix="APP_")

    token: SecretStr = Field(min_length=64)


@pytest.fixture(autouse=True)
def no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads the variables it sets, and no ``.env`` file."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)


def exit_message(
    monkeypatch: pytest.MonkeyPatch, settings: type[BaseSettings], **variables: str
) -> str:
    """What ``load`` exits with, given the variables."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load(settings)
    message = exited.value.code
    assert isinstance(message, str), message  # printed to stderr, exit status 1
    return message


@pytest.mark.parametrize(
    ("settings", "variables", "expected"),
    [
        (
            Settings,
            {"APP_CONCURRENCY_LIMIT": "0"},
            "error: APP_CONCURRENCY_LIMIT='0': should be greater than or equal to 1",
        ),
        (
            Settings,
            {"APP_ICE_SERVERS": "not json"},
            "error: APP_ICE_SERVERS='not json': should be JSON (Expecting value at character 0)",
        ),
        (
            Settings,
            {"APP_LOG_FORMAT": "xml"},
            "error: APP_LOG_FORMAT='xml': should be 'text' or 'json'",
        ),
        (
            Settings,
            {"APP_ICE_SERVERS": '[{"credential": "pw"}]'},
            "error: APP_ICE_SERVERS[0].urls: required",
        ),
        (
            Settings,
            {"APP_TURN_URLS": '["http://turn.example.com"]', "APP_TURN_SECRET": SECRET},
            "error: APP_TURN_URLS[0]='http://turn.example.com': should match pattern '^turns?:'",
        ),
        (
            Settings,
            {"APP_TURN_SECRET": SECRET},
            "error: APP_TURN_URLS and APP_TURN_SECRET go together: set both or neither",
        ),
        (
            Settings,
            {"APP_PORT": "http", "APP_TIME_LIMIT": "-1"},
            "error: APP_PORT='http': should be a valid integer, unable to parse string as an "
            "integer\nerror: APP_TIME_LIMIT='-1': should be greater than 0",
        ),
        (
            WithSecret,
            {"APP_TOKEN": SECRET},
            "error: APP_TOKEN=(hidden): should have at least 64 items after validation, not 28",
        ),
{%- if cookiecutter.handler in ["reply-on-pause", "voice-agent"] %}
        (
            PauseSettings,
            {"APP_PAUSE_DETECTOR": "webrtcvad"},
            "error: APP_PAUSE_DETECTOR='webrtcvad': should be 'energy' or 'silero'",
        ),
{%- endif %}
{%- if cookiecutter.handler == "voice-agent" %}
        (
            VoiceSettings,
            {"APP_LLM_MAX_TOKENS": "many", "APP_LLM_API_KEY": SECRET},
            "error: APP_LLM_MAX_TOKENS='many': should be a valid integer, unable to parse "
            "string as an integer",
        ),
{%- endif %}
    ],
    ids=lambda value: "-".join(value) if isinstance(value, dict) else "",
)
def test_a_bad_setting_is_one_line_naming_its_variable_value_and_expectation(
    monkeypatch: pytest.MonkeyPatch,
    settings: type[BaseSettings],
    variables: dict[str, str],
    expected: str,
) -> None:
    message = exit_message(monkeypatch, settings, **variables)

    assert message == expected
    assert SECRET not in message


def test_the_app_exits_with_the_line_and_no_traceback(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("APP_")},
        "APP_CONCURRENCY_LIMIT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}"],
        env=env,
        cwd=tmp_path,  # no .env
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1, done
    assert "error: APP_CONCURRENCY_LIMIT='0': should be greater than or equal to 1" in (
        done.stderr.splitlines()
    ), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
