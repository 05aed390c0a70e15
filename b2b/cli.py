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
import contextlib
import importlib
import os
import signal
import sys
import threading
from typing import Any

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


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised in the main thread so that every ``finally`` runs (locks released,
    temporaries removed, earlier outputs kept) as on Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def _usable_streams() -> None:
    """Standard streams as a shell may give them: a closed one (``2>&-``: Python's ``None``) is
    replaced by the null device so that progress bars and messages never fail, and text that
    cannot be encoded (a path's undecodable bytes, kept by Python as surrogates) is escaped."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))
        elif hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Run the ``b2b`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 done, 2 an error a user can fix (one line on stderr), 130 Ctrl-C, 143 SIGTERM
    (one line each; locks released, earlier outputs kept, a training run resumable from its last
    checkpoint), 141 standard output closed by its reader (a broken pipe; the outputs are written).
    """
    _usable_streams()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        check_common(args)
        return int(args._module.run(args) or 0)
    except Terminated:
        print(f"b2b {args.command}: terminated (SIGTERM); outputs of earlier runs are kept"
              + ("; continue the run with --resume" if args.command == "train" else ""), file=sys.stderr)
        return 143
    except BrokenPipeError:  # whoever read our standard output has gone (b2b generate | head -1)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


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


def unshadow() -> None:
    """Make ``b2b`` the package this file belongs to when a folder named ``b2b`` shadowed it.

    ``python -m b2b`` (and ``python -m b2b.cli``) put the current folder first on ``sys.path``. Run
    from the folder that holds a clone named ``b2b`` (or any folder of that name), Python imports
    that folder as a namespace package before the installed b2b: an editable install (``pip install
    -e .``, as ``scripts/setup.sh`` does) is found by a finder that comes after the path's own, so
    the clone's folder would win and ``from b2b import __version__`` fail. The shadowing entries of
    ``sys.path`` are dropped and b2b is imported again, from the install. ``b2b/__main__.py`` calls
    it before anything imports b2b; this module imports no b2b module at its top for that reason.
    """
    pkg = sys.modules.get("b2b")
    if pkg is None or getattr(pkg, "__file__", None) is not None:
        return  # a regular package: nothing shadowed it
    from pathlib import Path

    here = Path(__file__).resolve().parent
    shadows = {str(Path(p).resolve()) for p in getattr(pkg, "__path__", [])} - {str(here)}
    sys.path[:] = [p for p in sys.path if str((Path(p or ".") / "b2b").resolve()) not in shadows]
    del sys.modules["b2b"]
    importlib.import_module("b2b")


if __name__ == "__main__":
    unshadow()
    sys.exit(main())
