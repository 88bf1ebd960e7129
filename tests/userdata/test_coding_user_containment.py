"""The boot against a hostile coding user, with real users and real file ownership.

The coding user (Cline, its terminals, any extension) owns its home and may have left anything
there before a boot: symbolic links to root's places, a .pth file in its Python user site. The
real userdata/boot.sh runs as root in the sandbox (tests/userdata/boot_sandbox.py) with the real
chown, mkdir, stat and Python; its steps as the coding user really drop to that user (the
systemd-run stand-in uses setpriv), here `nobody`, the second real user of this machine. After
the boot nothing outside the coding user's home may have changed owner, mode or content, and
nothing the coding user planted may have run inside the boot.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.userdata.boot_sandbox import USER_KEY, Sandbox, render_bundle_zip

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user (CI runs as root)")

CODING_USER = "nobody"


def tree_state(top: Path) -> dict[str, tuple[int, int, int, str]]:
    """Owner, group, mode and content (or link target) of everything under top, links not followed."""
    state = {}
    for path in [top, *sorted(top.rglob("*"))]:
        info = path.lstat()
        if path.is_symlink():
            content = "-> " + os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        state[str(path.relative_to(top))] = (info.st_uid, info.st_gid, info.st_mode, content)
    return state


class HostileBox:
    """A sandbox whose coding user is a real second user that already owns its home."""

    def __init__(self, root: Path, bundle_zip: Path, *, light: bool = False) -> None:
        self.sandbox = Sandbox(root, bundle_zip, light=light)
        self.sandbox.env["WORKBENCH_CODING_USER"] = CODING_USER
        account = pwd.getpwnam(CODING_USER)
        self.uid, self.gid = account.pw_uid, account.pw_gid
        self.home = root / "home" / CODING_USER
        self.home.mkdir(mode=0o700)
        os.chown(self.home, self.uid, self.gid)
        # The stand-ins the coding user's steps run (code-server's CLI) keep their log and state here.
        self.sandbox.calls.touch(mode=0o666)
        self.sandbox.calls.chmod(0o666)
        self.sandbox.state.chmod(0o777)
        # Root's places the attacks aim at, each with something in it.
        self.per_boot = self.root_place("var/lib/cloud/scripts/per-boot", 0o755)
        self.seed_dir = self.root_place("var/lib/workbench-data/workbench", 0o700)
        self.etc = self.root_place("etc/victim", 0o755)
        self.private = self.root_place("root/private", 0o700)
        self.watched = [self.per_boot, self.seed_dir, self.etc, self.private]

    def root_place(self, relative: str, mode: int) -> Path:
        place = self.sandbox.root / relative
        place.mkdir(parents=True, exist_ok=True)
        place.chmod(mode)
        (place / "keep").write_text(f"root's {relative}\n")
        return place

    def as_coding_user(self, action: Callable[[], None]) -> None:
        """Does what the coding user could do itself, as that user (in a child process)."""
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                action()
                os._exit(0)
            except BaseException:  # the child reports any failure through its exit status
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the coding user could not set up the attack"

    def owned_by_coding_user_outside_its_home(self) -> list[str]:
        # The data volume's home/ is /home itself on the box (bind-mounted; the sandbox's mount is a stand-in).
        homes = (self.home, self.sandbox.root / "var/lib/workbench-data/home" / CODING_USER, self.sandbox.state)
        found = []
        for path in self.sandbox.root.rglob("*"):
            if path == self.sandbox.calls or any(path.is_relative_to(home) for home in homes):
                continue
            if path.lstat().st_uid == self.uid:
                found.append(str(path))
        return found


def hostile_box(bundle_zip: Path, *, light: bool = False) -> Iterator[HostileBox]:
    # Not under pytest's tmp_path: its directories are root's 0700, which the coding user could not enter.
    root = Path(tempfile.mkdtemp(prefix="workbench-containment-"))
    root.chmod(0o755)
    try:
        yield HostileBox(root, bundle_zip, light=light)
    finally:
        shutil.rmtree(root)


@pytest.fixture
def hostile(bundle_zip) -> Iterator[HostileBox]:
    yield from hostile_box(bundle_zip)


@pytest.fixture(scope="module")
def light_bundle_zip(tmp_path_factory) -> Path:
    return render_bundle_zip(tmp_path_factory.mktemp("light-bundle"), light=True)


@pytest.fixture
def hostile_light(light_bundle_zip) -> Iterator[HostileBox]:
    """A light workbench (gateway: team), whose boot rewrites Cline's base URL and key on every boot."""
    yield from hostile_box(light_bundle_zip, light=True)


def link(box: HostileBox, name: str, target: Callable[[HostileBox], Path]) -> Callable[[], None]:
    def plant() -> None:
        path = box.home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(box))
    return plant


ATTACKS = {
    # `rm -rf ~/workspace && ln -s /var/lib/cloud/scripts/per-boot ~/workspace`: a chown there hands
    # the coding user cloud-init's per-boot hooks, which run as root on the next boot.
    "workspace-to-per-boot": lambda box: link(box, "workspace", lambda b: b.per_boot),
    # ... or the seed's directory on the data volume: its secret.json decides every key.
    "workspace-to-seed": lambda box: link(box, "workspace", lambda b: b.seed_dir),
    "config-to-etc": lambda box: link(box, ".config", lambda b: b.etc),
    "code-server-config-to-etc": lambda box: link(box, ".config/code-server", lambda b: b.etc),
    # After editing ~/.npmrc, a file at its old temporary name points where root would write.
    "npmrc-temporary-to-per-boot": lambda box: lambda: (
        (box.home / ".npmrc").write_text("prefix=/tmp/mine\n"),
        (box.home / ".npmrc.tmp").symlink_to(box.per_boot / "zz"),
    ),
    "cline-to-root-private": lambda box: link(box, ".cline", lambda b: b.private),
}


# What the boot reports when a link leads its step as the coding user where that user may not write.
EXPECTED_WARNINGS = {
    "config-to-etc": f"could not write code-server's config as {CODING_USER}\n",
    "code-server-config-to-etc": f"could not write code-server's config as {CODING_USER}\n",
    "cline-to-root-private": "could not pre-fill Cline's settings\n",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_root_never_follows_the_coding_users_links(hostile, attack):
    hostile.as_coding_user(ATTACKS[attack](hostile))
    before = {str(place): tree_state(place) for place in hostile.watched}
    result = hostile.sandbox.run()
    after = {str(place): tree_state(place) for place in hostile.watched}
    # The boot's own work there: its per-boot hook and the root-only copy of the seed.
    for place, name, mode in ((hostile.per_boot, "workbench-boot", 0o100755), (hostile.seed_dir, "secret.json", 0o100600)):
        assert after[str(place)].pop(name)[:3] == (0, 0, mode), name
    assert after == before, result.stdout[-2000:]
    assert not (hostile.per_boot / "zz").exists() and not (hostile.per_boot / "zz").is_symlink()
    assert hostile.owned_by_coding_user_outside_its_home() == []
    # A step the link made fail on the coding user's own privileges is reported, not fatal: the
    # coding user cannot veto a deploy either.
    assert result.returncode == 0, result.stdout[-2000:]
    assert [signal["Status"] for signal in hostile.sandbox.signals] == ["SUCCESS"]
    warnings = (hostile.sandbox.root / "var/lib/workbench/coding-user-warnings").read_text()
    assert warnings == EXPECTED_WARNINGS.get(attack, ""), warnings
    health = hostile.sandbox.run("--health").stdout.splitlines()
    assert f"coding-user-setup {'unhealthy' if warnings else 'healthy'}" in health


def test_the_coding_users_steps_run_as_it_and_its_files_are_its_own(hostile):
    result = hostile.sandbox.run()
    assert result.returncode == 0, result.stdout[-2000:]
    for written in (".npmrc", ".config/code-server/config.yaml", ".cline/data/secrets.json", "workspace"):
        info = (hostile.home / written).lstat()
        assert (info.st_uid, info.st_gid) == (hostile.uid, hostile.gid), written
    assert hostile.owned_by_coding_user_outside_its_home() == []
    # Root's step output (the secret's among it) and the coding user's never share a file, and
    # neither can be reopened for reading through a descriptor the coding user kept.
    state = hostile.sandbox.root / "var/lib/workbench"
    for output in ("last-output", "coding-user-output"):
        info = (state / output).stat()
        assert (info.st_uid, info.st_mode & 0o777) == (0, 0o600), output


def test_nothing_the_coding_user_planted_runs_inside_the_boot(hostile):
    # A .pth file in the user site runs in every Python the user starts without -I; inside the
    # boot it would see the boot's environment (the wait handle's URL) and could outlive the step.
    site = subprocess.run(
        ["/usr/bin/python3", "-c", "import site; print(site.getusersitepackages())"],
        env={"HOME": str(hostile.home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    ).stdout.strip()
    witness = hostile.home / "planted-code-ran"
    planted = (f"import os; open({str(witness)!r}, 'w').write(os.environ.get('WAIT_HANDLE_URL', 'no handle'))\n")

    def plant() -> None:
        Path(site).mkdir(parents=True)
        (Path(site) / "zz-planted.pth").write_text(planted)
    hostile.as_coding_user(plant)
    # The plant works: any Python the coding user starts runs it.
    subprocess.run(["setpriv", f"--reuid={hostile.uid}", f"--regid={hostile.gid}", "--clear-groups",
                    "env", "-i", f"HOME={hostile.home}", "/usr/bin/python3", "-c", "pass"], check=True)
    assert witness.read_text() == "no handle"
    witness.unlink()
    result = hostile.sandbox.run()
    assert result.returncode == 0, result.stdout[-2000:]
    assert (hostile.home / ".cline/data/secrets.json").exists()  # the step it would have run in did run
    assert not witness.exists()


# On a light workbench the boot writes Cline's key into ~/.cline/data/secrets.json on every boot (a key
# re-issued by `workbench team add-user` must reach Cline), not only when it is missing.
LIGHT_ATTACKS = {
    # The file the key is rewritten into, pointed at root's own file: written through, it would put the
    # person's key where root keeps its things, or overwrite them.
    "cline-secrets-to-root-file": lambda box: link(box, ".cline/data/secrets.json", lambda b: b.private / "keep"),
    "cline-data-to-per-boot": lambda box: link(box, ".cline/data", lambda b: b.per_boot),
    "workspace-to-seed": ATTACKS["workspace-to-seed"],
}


@pytest.mark.parametrize("attack", LIGHT_ATTACKS)
def test_a_light_boot_never_follows_the_coding_users_links_either(hostile_light, attack):
    hostile_light.as_coding_user(LIGHT_ATTACKS[attack](hostile_light))
    before = {str(place): tree_state(place) for place in hostile_light.watched}
    result = hostile_light.sandbox.run()
    after = {str(place): tree_state(place) for place in hostile_light.watched}
    # The boot's own work there: its per-boot hook (a light box keeps no copy of its seed).
    assert after[str(hostile_light.per_boot)].pop("workbench-boot")[:3] == (0, 0, 0o100755)
    assert after == before, result.stdout[-2000:]
    assert hostile_light.owned_by_coding_user_outside_its_home() == []
    assert result.returncode == 0, result.stdout[-2000:]
    assert [signal["Status"] for signal in hostile_light.sandbox.signals] == ["SUCCESS"]
    # The key reached no file of root's: the only copy is where the coding user's own Cline keeps it.
    for place in hostile_light.watched:
        for path in place.rglob("*"):
            assert not path.is_file() or USER_KEY not in path.read_text(errors="replace"), path
