"""`python -m app` / `attnserve`: serve a model folder (the built-in default model unless --model)."""

from __future__ import annotations

import sys

from .config import Settings
from .logs import configure_logging
from .main import create_app
from .server import serve


def main(argv: list[str] | None = None) -> None:
    settings = Settings(_cli_parse_args=sys.argv[1:] if argv is None else argv,
                        _cli_prog_name="attnserve")  # type: ignore[call-arg]
    configure_logging(settings.log_level)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
