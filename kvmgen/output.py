"""Every file kvmgen writes goes through here: one write path, no lost or clobbered data.

- ``-`` is standard output: written, flushed and checked; a reader that went away
  (``| head``) raises :class:`OutputClosed`, which ends the command quietly with
  exit 141 instead of claiming success.
- A path that resolves to one of the command's inputs (itself, a symlink or a hard
  link to it) is refused before anything is written.
- A regular file is written to a temporary file beside it and renamed over it at
  the end, so a failure half-way never leaves a truncated file under the name.
- A device, FIFO or socket (``/dev/null``, ``/dev/full``, a named pipe) is written
  in place, never replaced, and its errors are checked all the same.
- Every ``OSError`` becomes one :class:`OutputError` naming the path and the reason
  (exit 2).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from kvmgen.errors import ExitCode, KvmgenError

STDOUT = "-"


class OutputError(KvmgenError):
    """An output could not be written (exit 2); the message names it and says why."""


class OutputClosed(KvmgenError):
    """Standard output's reader went away (a broken pipe): stop quietly, exit 141."""

    exit_code = ExitCode.BROKEN_PIPE


def describe_target(target: str, what: str | None = None) -> str:
    """How messages name an output: ``--json out.json``, ``standard output``."""
    name = "standard output" if target == STDOUT else target
    return f"{what} {name}" if what and target != STDOUT else name


def _reason(error: OSError, target: str) -> str:
    reason = error.strerror or str(error)
    if error.errno == 2 and target != STDOUT:
        parent = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(parent):
            return f"{reason} (the directory {os.path.dirname(target) or parent} does not exist)"
    return reason


def fail(target: str, error: OSError, what: str | None = None) -> OutputError:
    """The one-line error for an ``OSError`` while writing ``target``."""
    return OutputError(f"{describe_target(target, what)}: cannot write: {_reason(error, target)}")


def refuse_inputs(target: str, inputs: Iterable[str | None], what: str | None = None) -> None:
    """Refuse an output that is one of the inputs (same path, symlink or hard link)."""
    if target == STDOUT:
        return
    real = os.path.realpath(target)
    for source in inputs:
        if not source or source == STDOUT:
            continue
        same = os.path.realpath(source) == real
        if not same and os.path.exists(target) and os.path.exists(source):
            with contextlib.suppress(OSError):
                same = os.path.samefile(source, target)
        if same:
            raise OutputError(
                f"{describe_target(target, what)}: refusing to write over the input {source}"
            )


def preflight(
    target: str | None, what: str | None = None, inputs: Iterable[str | None] = ()
) -> None:
    """Refuse before any work an output that cannot be written as given.

    The same checks :func:`open_output` makes first (not an input, not a
    directory, its directory exists), so a long replay does not end in an error
    it could have met at the start. A full disk still shows only when writing.
    """
    if not target or target == STDOUT:
        return
    refuse_inputs(target, inputs, what)
    if os.path.isdir(target):
        raise OutputError(f"{describe_target(target, what)}: cannot write: it is a directory")
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        error = FileNotFoundError(2, "No such file or directory")
        raise fail(target, error, what)


def _special(target: str) -> bool:
    """Whether ``target`` exists and is not a regular file or directory (write in place)."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def open_output(
    target: str,
    *,
    what: str | None = None,
    inputs: Iterable[str | None] = (),
    text: bool = False,
) -> Iterator[IO[Any]]:
    """A handle for ``target`` (``-`` = standard output); committed when the block ends.

    ``what`` names the option in messages (``--json``); ``inputs`` are the
    command's input paths, which the output may not be. With ``text`` the handle
    takes ``str`` (UTF-8, ``\\n`` line ends). If the block raises, a file is left
    as it was before.
    """
    if target == STDOUT:
        with _stdout(text) as handle:
            yield handle
        return
    preflight(target, what, inputs)
    if _special(target):
        with _in_place(target, what, text) as handle:
            yield handle
        return
    with _replacing(target, what, text) as handle:
        yield handle


def write_output(
    target: str,
    data: bytes | str,
    *,
    what: str | None = None,
    inputs: Iterable[str | None] = (),
) -> None:
    """Write ``data`` to ``target`` through :func:`open_output`."""
    with open_output(target, what=what, inputs=inputs, text=isinstance(data, str)) as handle:
        handle.write(data)


@contextlib.contextmanager
def _stdout(text: bool) -> Iterator[IO[Any]]:
    stream: IO[Any] = sys.stdout if text else sys.stdout.buffer
    try:
        yield stream
        stream.flush()
    except BrokenPipeError:
        raise OutputClosed("") from None
    except OSError as error:
        raise fail(STDOUT, error) from None
    if _reader_gone(stream):
        raise OutputClosed("")


def _reader_gone(stream: IO[Any]) -> bool:
    """Whether standard output is a pipe whose reader left before taking everything.

    Output small enough to sit in the pipe's buffer raises no error when the
    reader leaves early (``| head -c 10``). So, as a larger output would block in
    ``write``, wait until the pipe is drained (success) or its reader has closed
    it with bytes still unread (the output was cut short).
    """
    import fcntl
    import select
    import struct
    import termios

    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while True:
            (unread,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))
            if unread == 0:
                return False
            if any(events & select.POLLERR for _, events in poller.poll(20)):
                return True
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _in_place(target: str, what: str | None, text: bool) -> Iterator[IO[Any]]:
    try:
        handle = _open(target, text)
    except OSError as error:
        raise fail(target, error, what) from None
    try:
        yield handle
        handle.flush()
    except BrokenPipeError:
        raise OutputClosed("") from None
    except OSError as error:
        raise fail(target, error, what) from None
    finally:
        with contextlib.suppress(OSError):
            handle.close()


@contextlib.contextmanager
def _replacing(target: str, what: str | None, text: bool) -> Iterator[IO[Any]]:
    directory = os.path.dirname(os.path.abspath(target))
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(target)}.", suffix=".partial", dir=directory
        )
    except OSError as error:
        raise fail(target, error, what) from None
    try:
        handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n") if text else os.fdopen(fd, "wb")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file 0600; an output gets the usual umask-derived mode.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except OSError as error:
        _remove(temporary)
        raise fail(target, error, what) from None
    except BaseException:
        _remove(temporary)
        raise


def _open(target: str, text: bool) -> IO[Any]:
    if text:
        return open(target, "w", encoding="utf-8", newline="\n")
    return open(target, "wb")


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
