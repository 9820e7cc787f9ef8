"""``python -m {{ cookiecutter.package_name }}``: serve the app with the settings from the environment."""

import math

import uvicorn

from .app import create_app
from .settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Open event streams end when their connections close; then the lifespan closes peers.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
    )


if __name__ == "__main__":
    main()
