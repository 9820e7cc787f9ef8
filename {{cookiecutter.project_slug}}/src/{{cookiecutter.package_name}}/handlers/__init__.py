"""The stream's handler (``build_handler``) and its typed contract (``io``)."""

from .{{ cookiecutter.__handler_module }} import build_handler

__all__ = ["build_handler"]
