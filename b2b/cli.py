"""The ``b2b`` command line.

Each command lives in the module of its idea, which provides ``add_arguments(parser)`` and
``run(args) -> int``; a command registers itself with one line in ``COMMANDS``. Only the module
of the command being run is imported, so ``b2b --help`` stays fast. Errors a user can fix (bad
input, missing files, a folder in use, ordinary OS errors such as a full disk or a read-only
folder, memory that cannot be had) are printed as one line on stderr with exit code 2, without a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("b2b.training.command", "Train a WGAN-GP on a dataset."),
    "data": ("b2b.datasets.catalog", "Prepare datasets: the embedded Bach chorales or LPD-17."),
    "evaluate": ("b2b.evaluation.evaluate", "Compare generated music with real music: metrics, tables, figures."),
    "generate": ("b2b.sampling.generate", "Sample music from a trained generator checkpoint."),
    "export": ("b2b.sampling.export", "Export a generator with its calibrated binarization threshold."),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its arguments."""
    from b2b import __version__

    parser = argparse.ArgumentParser(
        prog="b2b", description="From Bytes to Beats: music generation with a WGAN-GP."
    )
    parser.add_argument("--version", action="version", version=f"b2b {__version__}")
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
        check_common(args)
        return int(args._module.run(args) or 0)
    except ValueError as e:
        print(f"b2b {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # FileNotFoundError, PermissionError, ENOSPC, EROFS, a folder in use ...
        print(f"b2b {args.command}: error: {_one_line(os_error_message(e))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"b2b {args.command}: error: out of memory; use smaller sizes (e.g. --batch, --n)", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if type(e).__name__ != "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            raise
        print(f"b2b {args.command}: error: out of GPU memory; use smaller sizes (e.g. --batch, --n)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"b2b {args.command}: interrupted", file=sys.stderr)
        return 130


#: ``--seed`` of every command: an integer in [0, MAX_SEED] (numpy's seeds are 32-bit).
MAX_SEED = 2**32 - 1


def check_common(args: argparse.Namespace) -> None:
    """Options several commands share, checked alike for all of them: ``--seed`` (ValueError
    naming it unless an integer in [0, :data:`MAX_SEED`])."""
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be an integer in [0, {MAX_SEED}] (2**32 - 1), got {seed}")


def os_error_message(e: OSError) -> str:
    """One line for an OSError: ``<path>: <problem>`` when it names a path, else its text."""
    if e.filename is not None and e.strerror:
        where = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else f"{e.filename}"
        return f"{where}: {e.strerror}"
    if e.strerror:
        return e.strerror
    return str(e)


def _one_line(text: str) -> str:
    """The first line of ``text`` (messages of libraries sometimes span several)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else text


if __name__ == "__main__":
    sys.exit(main())
