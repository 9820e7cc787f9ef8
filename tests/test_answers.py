"""Bad answers are refused before anything is written, with one line naming the answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, bake, project_environment


def cookiecutter_cli(output_dir: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(ROOT),
            "-o",
            str(output_dir),
            *answers,
        ],
        capture_output=True,
        text=True,
        env=project_environment(),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["project_slug=Bad Slug"], "error: project_slug 'Bad Slug' is not valid"),
        (["project_slug=9lives"], "error: project_slug '9lives' is not valid"),
        (["project_slug=double--dash"], "error: project_slug 'double--dash' is not valid"),
        (["package_name=class"], "error: package_name 'class' is a Python keyword"),
        (["package_name=match"], "error: package_name 'match' is a Python keyword"),
        (["package_name=json"], "error: package_name 'json' would shadow"),
        (["package_name=fastrtc"], "error: package_name 'fastrtc' would shadow"),
        (["package_name=My-App"], "error: package_name 'My-App' is not a valid package name"),
        (["version=one"], "error: version 'one' is not a PEP 440 version"),
        (["version=1.0-beta"], "error: version '1.0-beta' is not a PEP 440 version"),
        (["author_email=nobody"], "error: author_email 'nobody' does not look like"),
        (["project_name=   "], "error: project_name is empty"),
        (
            ["modality=audio-video", "mode=send"],
            "error: modality 'audio-video' with mode 'send' is not supported by fastrtc: "
            "choose one of audio/receive, audio/send, audio/send-receive, "
            "audio-video/send-receive, video/receive, video/send, video/send-receive",
        ),
        (
            ["modality=audio-video", "mode=receive"],
            "error: modality 'audio-video' with mode 'receive' is not supported",
        ),
        (
            ["handler=reply-on-pause", "modality=video"],
            "error: handler 'reply-on-pause' needs modality 'audio' and mode 'send-receive', "
            "not video/send-receive",
        ),
        (
            ["handler=voice-agent", "modality=video"],
            "error: handler 'voice-agent' needs modality 'audio' and mode 'send-receive', "
            "not video/send-receive",
        ),
        (
            ["handler=custom", "mode=receive"],
            "error: handler 'custom' needs modality 'audio' and mode 'send-receive', "
            "not audio/receive",
        ),
    ],
)
def test_bad_answer_is_refused_and_nothing_written(
    tmp_path: Path, answers: list[str], message: str
) -> None:
    result = cookiecutter_cli(tmp_path, *answers)

    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(ours) == 1, result.stderr
    assert ours[0].startswith(message), ours[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "answers",
    [
        ["license=GPL"],
        ["python_version=3.9"],
        ["ci=travis"],
        ["include_ui=maybe"],
        ["include_cluster=maybe"],
        ["modality=text"],
        ["mode=duplex"],
    ],
)
def test_an_answer_outside_the_choices_is_refused(tmp_path: Path, answers: list[str]) -> None:
    result = cookiecutter_cli(tmp_path, *answers)

    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "answers",
    [
        {"project_name": "Voice Lab", "version": "1.0.0rc1"},
        {"project_name": 'Say "hi" \\o/', "description": "Quotes \"'\\ and more"},
        {"package_name": "voice_lab_2", "author_email": "a.b+c@example.co.uk"},
    ],
)
def test_good_answers_are_taken(tmp_path: Path, answers: dict[str, str]) -> None:
    project = bake(tmp_path, **answers)
    assert (project / "pyproject.toml").is_file()
