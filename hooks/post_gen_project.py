"""After generation: remove the files the answers exclude, then print the next steps.

Choices are made here by removing whole files, not by Jinja conditionals in the code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# The answers, as cookiecutter renders them into this script.
ANSWERS: dict[str, Any] = json.loads(r"""{{ cookiecutter | tojson }}""")
SLUG = ANSWERS["project_slug"]
PACKAGE = ANSWERS["package_name"]

# What each answer leaves out, as whole files and folders.
EXCLUDED = [
    (
        not ANSWERS["include_ui"],
        [
            f"src/{PACKAGE}/ui.py",
            f"src/{PACKAGE}/api/ui_calls.py",
            "tests/test_ui.py",
            "tests/test_browser.py",
        ],
    ),
    (
        not ANSWERS["include_docker"],
        [
            "Dockerfile",
            ".dockerignore",
            "docker-compose.yml",
            "deploy",
            "tests/test_docker.py",
            "tests/test_load_balancer.py",
        ],
    ),
    (ANSWERS["ci"] != "github-actions", [".github"]),
]
# The load generator times the handler's echo of the audio it hears: only the audio echo and
# the custom skeleton send that back.
EXCLUDED.append(
    (
        ANSWERS["__handler_module"] not in ("echo", "custom"),
        [f"src/{PACKAGE}/loadtest.py", "tests/test_loadtest.py"],
    )
)
# What a handler raises is counted for fastrtc's stream handlers; the test needs media back.
EXCLUDED.append(
    (
        ANSWERS["__handler_module"] not in ("echo", "custom", "reply_on_pause", "av_echo"),
        ["tests/test_handler_errors.py"],
    )
)
# One handler is kept, with its tests: the module the answers name (``__handler_module``):
# the demo of the chosen modality and mode for "echo", else the handler's own.
HANDLERS = [
    *(name for modes in ANSWERS["_demo_handlers"].values() for name in modes.values()),
    "reply_on_pause",
    "custom",
]
EXCLUDED += [
    (
        name != ANSWERS["__handler_module"],
        [f"src/{PACKAGE}/handlers/{name}.py", f"tests/test_{name}.py"],
    )
    for name in HANDLERS
]


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def main() -> None:
    project = Path.cwd()
    licenses = project / "licenses"
    if ANSWERS["license"] != "none":
        (licenses / ANSWERS["license"]).rename(project / "LICENSE")
    shutil.rmtree(licenses)
    for excluded, paths in EXCLUDED:
        if excluded:
            for path in paths:
                remove(project / path)
    serves = "the UI and the API" if ANSWERS["include_ui"] else "the API"
    print(
        f"\nCreated {SLUG}. Next:\n"
        f"  cd {SLUG} && make run    ({serves} on http://127.0.0.1:7860/)\n"
        "  make test    (every test, with real WebRTC peers)\n"
        "  make help    (the other targets)\n"
    )


if __name__ == "__main__":
    main()
