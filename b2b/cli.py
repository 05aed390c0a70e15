"""The ``b2b`` command line.

Each command lives in the module of its idea, which provides ``add_arguments(parser)`` and
``run(args) -> int``; a command registers itself with one line in ``COMMANDS``. Only the module
of the command being run is imported, so ``b2b --help`` stays fast. Errors a user can fix (bad input, missing files) are printed as one line on stderr
with exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("b2b.train", "Train a WGAN-GP on a dataset."),
    "data": ("b2b.data", "Prepare datasets: the embedded Bach chorales or LPD-17."),
    "evaluate": ("b2b.evaluate", "Compare generated music with real music: metrics, tables, figures."),
    "generate": ("b2b.generate", "Sample music from a trained generator checkpoint."),
    "export": ("b2b.export", "Export a generator with its calibrated binarization threshold."),
}


class UserError(Exception):
    """An error caused by the user's input; the CLI prints its message without a traceback."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="b2b", description="From Bytes to Beats: music generation with a WGAN-GP."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``b2b`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as e:
        print(f"b2b {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"b2b {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
