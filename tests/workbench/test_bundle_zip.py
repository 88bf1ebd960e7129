"""The bundle as the box downloads it: one zip whose bytes follow from the rendered tree alone,
so its sha256 can go into the template at synth and a repeated synth changes nothing."""

import hashlib
import os
import py_compile
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from workbench import bundle, settings


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return bundle.render(settings.load(), tmp_path_factory.mktemp("bundle") / "tree")


def test_the_same_tree_packs_to_the_same_bytes_whatever_its_timestamps_and_modes(tree, tmp_path):
    # A second render, as another checkout (other mtimes, another umask) would produce it.
    again = bundle.render(settings.load(), tmp_path / "again")
    for index, path in enumerate(sorted(p for p in again.rglob("*") if p.is_file())):
        os.utime(path, (1_000_000_000 + index, 1_000_000_000 + index))
        path.chmod(0o600 if index % 2 else 0o775)
    first_sha = bundle.pack(tree, tmp_path / "first.zip")
    second_sha = bundle.pack(again, tmp_path / "second.zip")
    assert (tmp_path / "first.zip").read_bytes() == (tmp_path / "second.zip").read_bytes()
    assert first_sha == second_sha == hashlib.sha256((tmp_path / "first.zip").read_bytes()).hexdigest()


def test_every_entry_carries_the_fixed_metadata_in_path_order(tree, tmp_path):
    bundle.pack(tree, tmp_path / "bundle.zip")
    with zipfile.ZipFile(tmp_path / "bundle.zip") as archive:
        entries = archive.infolist()
    names = [entry.filename for entry in entries]
    assert names == sorted(names) and "litellm/config.yaml" in names and "boot/workbench_secrets.py" in names
    assert {(e.date_time, e.external_attr >> 16, e.create_system, e.compress_type) for e in entries} == {
        ((1980, 1, 1, 0, 0, 0), 0o100644, 3, zipfile.ZIP_STORED)}


def test_the_boots_unpacker_gives_back_exactly_the_rendered_tree(tree, tmp_path):
    bundle.pack(tree, tmp_path / "bundle.zip")
    # As userdata/boot.sh unpacks it, with the system's python3.
    subprocess.run(["python3", "-m", "zipfile", "-e", str(tmp_path / "bundle.zip"), str(tmp_path / "out")],
                   check=True, capture_output=True, timeout=60)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(tmp_path / "out") == files(tree)


def test_byte_code_a_test_run_leaves_under_assets_stays_out_of_the_bundle(tmp_path, monkeypatch):
    # tests/assets/test_idle_rule.py imports assets/boot/idle_rule.py, and Python caches its byte
    # code next to it; shipped, it would change the bundle's hash (and restart the box) after
    # every test run.
    clean = tmp_path / "assets-clean"
    shutil.copytree(bundle.ASSETS, clean, ignore=shutil.ignore_patterns(bundle.BYTE_CODE_CACHE))
    tested = tmp_path / "assets-tested"
    shutil.copytree(clean, tested)
    py_compile.compile(str(tested / "boot" / "idle_rule.py"), doraise=True)  # the cache an import writes
    assert list((tested / "boot" / bundle.BYTE_CODE_CACHE).glob("idle_rule.*.pyc"))

    def packed(assets: Path) -> bytes:
        monkeypatch.setattr(bundle, "ASSETS", assets)
        bundle.pack(bundle.render(settings.load(), tmp_path / f"tree-{assets.name}"), tmp_path / f"{assets.name}.zip")
        return (tmp_path / f"{assets.name}.zip").read_bytes()

    assert packed(tested) == packed(clean)
