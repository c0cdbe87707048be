"""clipq from the command line: scenes and matcher recommendations, and image collections.

``clipq scenes`` and ``clipq plan`` run in-process (the worker extra) or against ``--server``;
``clipq ingest``, ``search``, ``evaluate``, ``import`` and ``models`` talk to a running service.
A problem the service or the core reports is one clear line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clipcore.errors import ClipqError
from clipq.cli import collections, imports, models, plans, scenes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clipq", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    scenes.add_parser(commands)
    plans.add_parser(commands)
    collections.add_parsers(commands)
    imports.add_parser(commands)
    models.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ClipqError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
