"""Bad answers are refused before anything is written, with one line naming the answer."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
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
            ["handler=reply-on-pause", "media=video/send-receive"],
            "error: handler 'reply-on-pause' needs media 'audio/send-receive', "
            "not 'video/send-receive': choose handler 'echo' for video/send-receive",
        ),
        (
            ["handler=voice-agent", "media=audio-video/send-receive"],
            "error: handler 'voice-agent' needs media 'audio/send-receive', "
            "not 'audio-video/send-receive'",
        ),
        (
            ["handler=custom", "media=audio/receive"],
            "error: handler 'custom' needs media 'audio/send-receive', not 'audio/receive'",
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
    assert "1 problem with the answers: nothing generated" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Each bad answer has its line, before cookiecutter's own traceback, then a count; a package
    name derived from a bad slug is the slug's problem, not reported twice."""
    result = cookiecutter_cli(
        tmp_path,
        "project_slug=Bad Slug",
        "version=one",
        "author_email=nobody",
        "handler=custom",
        "media=video/receive",
    )

    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(" ")[1] for line in ours] == [
        "project_slug",
        "version",
        "author_email",
        "handler",
    ], result.stderr
    summary = "4 problems with the answers: nothing generated"
    assert summary in result.stderr
    traceback = result.stderr.find("Traceback")
    assert traceback == -1 or result.stderr.index(summary) < traceback
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "answers",
    [
        ["license=GPL"],
        ["python_version=3.9"],
        ["ci=travis"],
        ["include_ui=maybe"],
        ["include_cluster=maybe"],
        ["media=text"],
        # Pairs fastrtc lacks are not in the menu: cookiecutter itself refuses them.
        ["media=audio-video/send"],
        ["media=audio-video/receive"],
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


ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROMPT_WITHIN_S = 30.0


def converse(args: list[str], replies: list[str]) -> str:
    """Run ``args`` on a pseudo-terminal, typing each reply once its numbered question ends in
    ``: ``; return everything it printed, colours removed."""
    main, terminal = os.openpty()
    env = {**project_environment(), "COLUMNS": "200", "TERM": "xterm"}
    process = subprocess.Popen(args, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    shown, asked = "", 0
    deadline = time.monotonic() + PROMPT_WITHIN_S * (len(replies) + 1)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the other end closed: the program is done
                    break
                shown += ANSI.sub("", chunk.decode(errors="replace"))
            waiting = asked < len(replies) and f"[{asked + 1}/{len(replies)}]" in shown
            if waiting and shown.rstrip(" ").endswith(":"):
                os.write(main, replies[asked].encode() + b"\r")
                asked += 1
        process.wait(timeout=PROMPT_WITHIN_S)
    finally:
        process.kill()
        os.close(main)
    return shown


def test_the_prompts_ask_every_question_then_report_every_problem(tmp_path: Path) -> None:
    """Typed at cookiecutter's own prompts: every question is asked, in order, the menus offer
    only what the template takes, and every bad answer is reported at once at the end."""
    spec = json.loads((ROOT / "cookiecutter.json").read_text())
    asked = [key for key in spec if not key.startswith("_")]
    typed = {
        "project_slug": "Bad Slug",
        "version": "one",
        "media": str(spec["media"].index("audio/receive") + 1),
        "handler": str(spec["handler"].index("custom") + 1),
    }
    shown = converse(
        [sys.executable, "-m", "cookiecutter", str(ROOT), "-o", str(tmp_path)],
        [typed.get(key, "") for key in asked],
    )

    prompts = spec["__prompts__"]
    texts = [
        prompts[key]["__prompt__"] if isinstance(prompts[key], dict) else prompts[key]
        for key in asked
    ]
    positions = [shown.find(f"[{n}/{len(asked)}] {text}") for n, text in enumerate(texts, 1)]
    assert -1 not in positions, shown
    assert positions == sorted(positions), shown
    menu = shown[positions[asked.index("media")] : positions[asked.index("media") + 1]]
    offered = re.findall(r"^\s+\d+ - (\S+?):", menu, re.MULTILINE)
    assert offered == spec["media"] == list(spec["_demo_handlers"]), menu
    ours = [line for line in shown.splitlines() if line.startswith("error: ")]
    assert [line.split(" ")[1] for line in ours] == ["project_slug", "version", "handler"], shown
    assert "3 problems with the answers: nothing generated" in shown
    assert list(tmp_path.iterdir()) == []
