"""Build skutui's Debian package: ``./run package [DIR]`` runs this with the project's
virtualenv and writes DIR/skutui_VERSION_ARCH.deb.

The package carries its own virtualenv in /opt/skutui, made on Debian's own interpreter
(/usr/bin/python3, not whichever Python the build machine has first on PATH), so it runs
on any Debian 12 machine; Debian refuses pip into the system Python, and its python3-textual
is far too old. Into it go the wheels of requirements/runtime.lock, each checked against
its hash, and skutui's own wheel. Around it: ``skutui`` in /usr/sbin (root's PATH, also for
a non-interactive SSH session), the agent's unit, a logrotate file, the man page and the
bash completion (both generated from the parser), and maintainer scripts.

Wheels are kept in build/wheelhouse: a build downloads only what the lock names and the
wheelhouse does not hold yet, so a second build needs no network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

from manual import completion, man_page  # noqa: E402 - the checkout's own modules, by path

from skutui.domain.paths import Paths  # noqa: E402
from skutui.system.units import AGENT_UNIT, LAUNCHER, PACKAGE_UNIT_DIR, agent_unit  # noqa: E402

DEBIAN_PYTHON = Path("/usr/bin/python3")
PREFIX = Path("/opt/skutui")
LOCK = ROOT / "requirements" / "runtime.lock"
BUILD = ROOT / "build"
WHEELHOUSE = BUILD / "wheelhouse"
STAGING = BUILD / "deb"
DEPENDS = ("keepalived", "conntrackd", "conntrack", "nftables", "openssh-server", "iproute2",
           "systemd")
"""What skutui drives besides Python: the cluster's daemons, the firewall, SSH, ``ip``, and
systemd, which runs them all."""
KEPT_SCRIPTS = re.compile(r"^(python[0-9.]*|skutui)$")
"""The virtualenv's bin/ keeps its interpreter links and skutui; the console scripts of the
dependencies (pygmentize, markdown-it…) are not the appliance's commands."""
MAINTAINER = "skutui <skutui@localhost>"
DESCRIPTION = """\
console and command line for a two-node active-passive cluster
 skutui creates and runs a two-node load-balancer cluster: keepalived VRRP between
 the cluster IPs, conntrackd FTFW for connection state, configuration sync from
 master to backup and command replication, from a full-screen console or the
 command line. It brings its own Python libraries in /opt/skutui."""


class BuildError(Exception):
    pass


def step(what: str, started: float) -> None:
    print(f"package: {what} ({time.monotonic() - started:.1f} s)", flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BuildError(f"`{' '.join(map(str, argv))}` failed:\n{result.stderr or result.stdout}")
    return result


def pip(*args: str, target: Path | None = None) -> None:
    """The project's pip, acting for ``target`` (an interpreter) when given."""
    run([sys.executable, "-m", "pip", "--disable-pip-version-check",
         *(["--python", str(target)] if target else []), *args])


def debian_python() -> tuple[Path, str]:
    """Debian's interpreter, by its versioned name (what the package depends on), and its
    X.Y version."""
    if not DEBIAN_PYTHON.exists():
        raise BuildError(f"{DEBIAN_PYTHON} is missing: install Debian's python3")
    version = run([str(DEBIAN_PYTHON), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
                  ).stdout.strip()
    return Path(f"/usr/bin/python{version}"), version


def fill_wheelhouse(python: Path) -> None:
    """Every wheel the lock names, for Debian's interpreter, into the wheelhouse; from the
    index only when the wheelhouse lacks one. Nothing at all when it was filled from this
    very lock for this interpreter (its stamp says so)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    stamp = WHEELHOUSE / ".filled-from"
    digest = hashlib.sha256(LOCK.read_bytes() + str(python).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    common = ["download", "--require-hashes", "--no-deps", "--only-binary=:all:",
              "--dest", str(WHEELHOUSE), "-r", str(LOCK)]
    try:
        pip(*common, "--no-index", "--find-links", str(WHEELHOUSE), target=python)
    except BuildError:
        pip(*common, target=python)
    stamp.write_text(digest)


def skutui_wheel(out: Path) -> Path:
    """skutui's own wheel, built by the backend the dev lock installed (no download)."""
    shutil.rmtree(out, ignore_errors=True)
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(ROOT))
    wheels = list(out.glob("skutui-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one skutui wheel in {out}, found {wheels}")
    return wheels[0]


def make_virtualenv(root: Path, python: Path, version: str, wheel: Path) -> Path:
    """The virtualenv at PREFIX inside ``root``, its paths rewritten to PREFIX."""
    venv = root / PREFIX.relative_to("/")
    run([str(python), "-m", "venv", "--without-pip", str(venv)])
    pip("install", "--no-index", "--find-links", str(WHEELHOUSE), "--require-hashes",
        "--no-deps", "--no-compile", "-r", str(LOCK), target=venv / "bin" / "python")
    pip("install", "--no-index", "--no-deps", "--no-compile", str(wheel),
        target=venv / "bin" / "python")
    site = venv / "lib" / f"python{version}" / "site-packages"
    _drop_the_lab(site)
    for entry in (venv / "bin").iterdir():
        if not KEPT_SCRIPTS.match(entry.name):
            entry.unlink()
        elif entry.is_file() and not entry.is_symlink():
            text = entry.read_text()
            entry.write_text(text.replace(str(venv), str(PREFIX)))
    # python3 names the versioned interpreter the package depends on: the virtualenv keeps
    # working should /usr/bin/python3 ever name another version.
    (venv / "bin" / "python3").unlink()
    (venv / "bin" / "python3").symlink_to(python)
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(venv), str(PREFIX)))
    # Bytecode as the installed files' paths will be, by Debian's interpreter itself.
    run([str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0",
         "-s", str(root), "-p", "/", str(venv / "lib")])
    return venv


def _drop_the_lab(site: Path) -> None:
    """The lab (skutui_lab) is for tests and demos, not an appliance: out of the package,
    and out of the wheel's record of its files."""
    shutil.rmtree(site / "skutui_lab")
    for record in site.glob("skutui-*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if not line.startswith("skutui_lab/")))


def add_files(root: Path, version: str) -> None:
    paths = Paths()
    launcher = root / LAUNCHER.lstrip("/")
    launcher.parent.mkdir(parents=True)
    launcher.symlink_to(PREFIX / "bin" / "skutui")
    units = root / PACKAGE_UNIT_DIR.relative_to("/")
    units.mkdir(parents=True)
    (units / AGENT_UNIT).write_text(agent_unit(paths))
    man = root / "usr/share/man/man8/skutui.8.gz"
    man.parent.mkdir(parents=True)
    man.write_bytes(gzip.compress(man_page(version).encode(), compresslevel=9, mtime=0))
    bash = root / "usr/share/bash-completion/completions/skutui"
    bash.parent.mkdir(parents=True)
    bash.write_text(completion())
    logrotate = root / "etc/logrotate.d/skutui"
    logrotate.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "packaging" / "logrotate", logrotate)
    doc = root / "usr/share/doc/skutui"
    doc.mkdir(parents=True)
    shutil.copyfile(ROOT / "README.md", doc / "README.md")


def control(root: Path, version: str, arch: str, python_version: str) -> None:
    debian = root / "DEBIAN"
    debian.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        shutil.copy2(ROOT / "packaging" / "debian" / script, debian / script)
    (debian / "conffiles").write_text("/etc/logrotate.d/skutui\n")
    size = int(run(["du", "-sk", "--exclude=DEBIAN", str(root)]).stdout.split()[0])
    depends = ", ".join((f"python{python_version}", *DEPENDS))
    (debian / "control").write_text(
        f"Package: skutui\nVersion: {version}\nArchitecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\nInstalled-Size: {size}\nDepends: {depends}\n"
        f"Section: net\nPriority: optional\nDescription: {DESCRIPTION}\n")


def build(out_dir: Path) -> Path:
    started = time.monotonic()
    # What the checkout's skutui says it is: read from the file, as hatch does.
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "skutui/__init__.py").read_text())
    if version is None:
        raise BuildError("skutui/__init__.py has no __version__")
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    python, python_version = debian_python()
    fill_wheelhouse(python)
    step("wheels of requirements/runtime.lock in build/wheelhouse", started)
    wheel = skutui_wheel(BUILD / "dist")
    step(f"skutui's wheel {wheel.name}", started)
    shutil.rmtree(STAGING, ignore_errors=True)
    root = STAGING / "root"
    make_virtualenv(root, python, python_version, wheel)
    step(f"virtualenv {PREFIX} on {python}", started)
    add_files(root, version.group(1))
    control(root, version.group(1), arch, python_version)
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"skutui_{version.group(1)}_{arch}.deb"
    # zstd: a tenth of gzip's time at the same size; Debian 12's dpkg reads it.
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "-z3", "--build", str(root), str(deb)])
    step(f"{deb} ({deb.stat().st_size / 1e6:.1f} MB)", started)
    return deb


def main(argv: list[str]) -> int:
    try:
        build(Path(argv[0] if argv else "dist").resolve())
    except BuildError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1:]))
