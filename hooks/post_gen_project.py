"""After generation: tell the user what to do next."""

from __future__ import annotations

SLUG = "{{ cookiecutter.project_slug }}"


def main() -> None:
    print(
        f"\nCreated {SLUG}. Next:\n"
        f"  cd {SLUG} && make run    (the UI and the API on http://127.0.0.1:7860/)\n"
        "  make test    (every test, with real WebRTC peers)\n"
        "  make help    (the other targets)\n"
    )


if __name__ == "__main__":
    main()
