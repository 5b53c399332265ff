"""Assemble the image's root filesystem in the Dockerfile's builder stage (stdlib only).

Copies into OUT what `VENV/bin/python` needs to run, and nothing else: the interpreter (with its
symlink chain), the standard library without the parts a controller never imports (tests,
IDLE, tkinter, curses, dbm, sqlite3, ensurepip), the shared libraries the interpreter and every
extension module link (found with ldd), the CA bundle, /etc/passwd and /etc/group with the
non-root user, /tmp and an nsswitch.conf. No shell, no package manager, no pip: the final stage
is `FROM scratch` plus this tree plus the virtual environment.

Paths are kept exactly (symlinks as symlinks), so the same script serves python:3.11-slim
(interpreter under /usr/local) and Debian's python3 (under /usr).

    python3 image_rootfs.py base OUT VENV [UID]   interpreter, stdlib, libraries, /etc
    python3 image_rootfs.py requirements PYPROJECT EXTRAS  the dependencies (and EXTRAS' ones)
    python3 image_rootfs.py prune VENV "SERVICE..."        drop what is never imported from VENV
    python3 image_rootfs.py compile OUT DIR...    byte-compile OUT/DIR as it will run at /DIR
"""

from __future__ import annotations

import compileall
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

# Standard-library parts a controller never imports; their extension modules and the shared
# libraries only they need (ncurses, readline, gdbm, sqlite, tk, NIS with Kerberos, crypt) go
# with them.
STDLIB_SKIP = frozenset({
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3",
    "pydoc_data", "__phello__", "curses", "dbm", "sqlite3", "site-packages", "dist-packages",
    "__pycache__", "crypt.py",
})
EXTENSION_SKIP = re.compile(
    r"^(readline|_curses|_curses_panel|_dbm|_gdbm|_tkinter|_sqlite3|_test\w*|xxlimited\w*"
    r"|_xxtestfuzz|_ctypes_test|nis|_crypt|spwd|ossaudiodev)\."
)
# Loaded with dlopen, so ldd never lists it: glibc unwinds exiting threads through it.
DLOPENED = ("libgcc_s.so.1",)
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Required by the kubernetes client only for its asyncio copy (kubernetes.aio, removed too):
# the synchronous client certbotk8s uses never imports them.
ASYNC_ONLY = ("aiohttp", "aiohttp-retry", "aiohappyeyeballs", "aiosignal", "frozenlist",
              "multidict", "propcache", "yarl", "attrs")
# Generated code as large as everything else together: shipped byte-compiled only (tracebacks
# through it keep file names and line numbers, not the source lines).
SOURCELESS = ("kubernetes/client/api", "kubernetes/client/models")


def copy_path(path: str, out: Path) -> None:
    """Copy `path` (file or directory) to OUT/path. Symlinks met on the way, in the path or its
    parent directories, are recreated as symlinks and followed one step at a time, so a chain
    (python -> python3 -> python3.11) arrives whole."""
    parts = Path(path).parts[1:]
    current = Path("/")
    for i, part in enumerate(parts):
        current = current / part
        if current.is_symlink():
            link = out / current.relative_to("/")
            if not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.readlink(current))
            step = os.path.normpath(current.parent / os.readlink(current))
            copy_path(str(Path(step, *parts[i + 1:])), out)
            return
    target = out / current.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if current.is_dir():
        shutil.copytree(current, target, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    elif not target.exists():
        shutil.copy2(current, target)


def linked_libraries(binary: Path) -> set[str]:
    """Absolute paths of the shared libraries `binary` needs (ldd); fails on a missing one."""
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    if "not a dynamic executable" in done.stdout + done.stderr:
        return set()
    if done.returncode != 0 or "not found" in done.stdout:
        raise SystemExit(f"ldd {binary}: {done.stdout}{done.stderr}")
    found = set()
    for line in done.stdout.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            found.add(match.group(1))
    return found


def copy_stdlib(stdlib: Path, out: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in STDLIB_SKIP or EXTENSION_SKIP.match(n)}
        if Path(directory).name.startswith("config-"):
            skipped |= {n for n in names if n.endswith(".a")}
        return skipped

    real = Path(os.path.realpath(stdlib))
    (out / real.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
    shutil.copytree(real, out / real.relative_to("/"), symlinks=True, ignore=ignore,
                    dirs_exist_ok=True)


def write_etc(out: Path, uid: int) -> None:
    etc = out / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\n"
        f"certbotk8s:x:{uid}:{uid}:certbotk8s:/nonexistent:/sbin/nologin\n")
    (etc / "group").write_text(f"root:x:0:\ncertbotk8s:x:{uid}:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    bundle = out / CA_BUNDLE.lstrip("/")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CA_BUNDLE, bundle)  # the file, wherever a symlink points
    tmp = out / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)


def base(out: Path, venv: Path, uid: int) -> None:
    """The virtual environment `venv`, its interpreter, the stdlib, the shared libraries they
    link and /etc, byte-compiled."""
    copy_path(str(venv), out)
    for entry in (venv / "bin").iterdir():  # python -> /usr/local/bin/python3 and the like
        if entry.is_symlink() and os.path.isabs(os.readlink(entry)):
            copy_path(os.readlink(entry), out)
    interpreter = (venv / "bin" / "python").resolve()
    paths = sysconfig.get_paths()
    stdlibs = sorted({Path(paths["stdlib"]), Path(paths["platstdlib"])})
    for stdlib in stdlibs:
        copy_stdlib(stdlib, out)
    binaries = [interpreter]
    for stdlib in stdlibs:
        binaries += (out / stdlib.relative_to("/")).rglob("*.so")
    binaries += [p for p in (out / venv.relative_to("/")).rglob("*.so*")
                 if p.is_file() and not p.is_symlink()]
    libraries: set[str] = set()
    for binary in binaries:
        libraries |= linked_libraries(binary)
    for name in DLOPENED:
        libraries |= {str(p) for d in {Path(lib).parent for lib in libraries}
                      if (p := d / name).exists()}
    for library in sorted(libraries):
        copy_path(library, out)
    write_etc(out, uid)
    compile_tree(out, [str(s) for s in stdlibs] + [str(venv)])
    print(f"[rootfs] {interpreter}, stdlib {', '.join(map(str, stdlibs))}, "
          f"{len(libraries)} shared libraries")


def requirements(pyproject: Path, extras: str) -> str:
    """The project's dependencies and those of the comma-separated `extras`, one a line: the
    builder installs them before copying src/, so a code change reuses that layer."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in filter(None, extras.split(",")):
        wanted += project["optional-dependencies"][extra.strip()]
    return "\n".join(wanted)


def remove_distribution(site: Path, name: str) -> None:
    """Delete the files an installed distribution's RECORD lists, and its empty directories."""
    normal = re.sub(r"[-_.]+", "_", name).lower()
    for info in site.glob("*.dist-info"):
        if re.sub(r"[-_.]+", "_", info.name.split("-", 1)[0]).lower() != normal:
            continue
        for row in (info / "RECORD").read_text().splitlines():
            (site / row.split(",", 1)[0]).unlink(missing_ok=True)
        shutil.rmtree(info, ignore_errors=True)
    for directory in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def make_sourceless(package: Path) -> None:
    """Replace each module under `package` by its byte-code beside it (module.pyc)."""
    for source in package.rglob("*.py"):
        py_compile.compile(str(source), cfile=str(source) + "c", doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        source.unlink()
    for cache in list(package.rglob("__pycache__")):
        shutil.rmtree(cache)


def prune(venv: Path, botocore_services: set[str]) -> None:
    """Remove the kubernetes client's asyncio copy (as large as the client itself) with the
    packages only it needs, the botocore API models of services other than
    `botocore_services`, and the sources of the generated kubernetes client."""
    (site,) = venv.glob("lib/python3*/site-packages")
    shutil.rmtree(site / "kubernetes" / "aio", ignore_errors=True)
    for name in ASYNC_ONLY:
        remove_distribution(site, name)
    for package in SOURCELESS:
        make_sourceless(site / package)
    data = site / "botocore" / "data"
    if data.is_dir():
        for service in data.iterdir():
            if service.is_dir() and service.name not in botocore_services:
                shutil.rmtree(service)


def compile_tree(out: Path, directories: list[str]) -> None:
    """Byte-compile each OUT/DIR, recording /DIR as the source path; unchecked hashes: the image
    is immutable, and a read-only root filesystem could not store a recompiled file anyway."""
    for directory in directories:
        ok = compileall.compile_dir(
            out / directory.lstrip("/"), quiet=1, stripdir=str(out), prependdir="/",
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, workers=0)
        if not ok:
            raise SystemExit(f"compileall {directory} failed")


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "base":
        base(Path(argv[1]), Path(argv[2]), int(argv[3]) if len(argv) > 3 else 65532)
    elif len(argv) == 3 and argv[0] == "requirements":
        print(requirements(Path(argv[1]), argv[2]))
    elif len(argv) == 3 and argv[0] == "prune":
        prune(Path(argv[1]), set(argv[2].split()))
    elif len(argv) >= 3 and argv[0] == "compile":
        compile_tree(Path(argv[1]), argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
