"""How a local attempt's script reaches its shell: through a file descriptor, never argv.

The script sits in a memfd (or an unlinked temporary file where memfd is missing). A POSIX
shell gets it as stdin, reads all of it, replaces stdin with /dev/null (closing the
script) and only then runs it (:data:`BOOT`); another interpreter is given an inherited
descriptor as ``/dev/fd/N``.
"""

from __future__ import annotations

import functools
import os
import shutil

POSIX_SHELLS = frozenset({"sh", "ash", "dash", "bash", "ksh", "mksh", "zsh", "yash",
                          "busybox"})
"""Interpreters given :data:`BOOT` (``-c``); any other gets the script as ``/dev/fd/N``."""

BOOT = ('__baton_s=$({cat}) || exit 126\n'
        'eval "exec </dev/null; unset __baton_s; $__baton_s"')
"""The shell's stdin is the script: read it all, make stdin /dev/null (which closes the
script), forget the variable, run the script."""

BOOT_SMALL = ('__baton_s=; while IFS= read -r __baton_l; do __baton_s="$__baton_s$__baton_l\n'
              '"; done; __baton_s="$__baton_s$__baton_l"\n'
              'eval "exec </dev/null; unset __baton_s __baton_l; $__baton_s"')
"""The same with the shell's own ``read``: no ``cat`` to start (most of a short step's
cost), but a byte per system call, so only for short scripts (:data:`SMALL_SCRIPT`)."""

SMALL_SCRIPT = 1024
"""Scripts up to this many bytes are read with :data:`BOOT_SMALL`."""

@functools.cache
def _cat() -> str | None:
    found = shutil.which("cat", path=os.defpath + os.pathsep + os.environ.get("PATH", ""))
    return found if found and "'" not in found else None


def shell_argv(shell: str, fd: int, name: str, size: int = 0) -> tuple[list[str], bool]:
    """The argv that makes ``shell`` run the ``size``-byte script on descriptor ``fd``,
    and whether the script goes to its stdin (True) or stays inherited as ``fd``."""
    if os.path.basename(shell) in POSIX_SHELLS:
        if size <= SMALL_SCRIPT:
            return [shell, "-c", BOOT_SMALL, name], True
        cat = _cat()
        if cat is not None:
            return [shell, "-c", BOOT.format(cat=f"'{cat}'"), name], True
    return [shell, f"/dev/fd/{fd}"], False


@functools.cache
def devnull() -> int:
    """One read-only /dev/null for every attempt's stdin (Popen would open one each time)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def script_fd(script: str) -> int:
    """A readable fd holding ``script``, positioned at its start, not inheritable."""
    data = script.encode("utf-8", "surrogateescape")
    try:
        fd = os.memfd_create("baton-script", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile  # only where memfd is missing

        fd, path = tempfile.mkstemp(prefix="baton-script-")
        os.unlink(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
