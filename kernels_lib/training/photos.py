"""Real photographs that install offline: a small training corpus for the appendix experiments.

No natural-image data set is installable here, but photographs ship inside Debian packages
(desktop wallpapers) and inside the scikit-image wheel. This module pins each kept photograph
by sha256 (and each .deb by version and sha256), fetches it on first use into the kernels_lib
cache, and decodes it to an RGB float array at a chosen size. Vector art, 3-D renders and
microscopy were looked at and left out (`DROPPED` says which and why).

How a .deb is fetched: straight from the Debian archive's pool over HTTP(S) (deb.debian.org,
then snapshot.debian.org, which keeps every version ever published), then `apt-get download
NAME=VERSION` as a fallback that honours the machine's own apt mirror or proxy. The direct
fetch needs neither root, nor `apt-get update`, nor apt lists that still carry the pinned
version, so it gives the same bytes on any fresh bookworm machine that can reach the archive.
The .deb is unpacked in Python (ar + tar), reading only the pinned members: no `dpkg`, no install.

- `PHOTOS`, `DEBS`, `DROPPED`          the pins and the list of what was left out, with reasons
- `photo_file(key)`                     the verified file in the cache (fetched on first use)
- `load_photos(keys, short_side)`       decoded RGB arrays, cached as .npy
- `phase_scrambled`, `iid_noise`        the controls: same power spectrum / same mean and std, no edges
- `python -m kernels_lib.training.photos`        fetch everything before going offline
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_write, sha256_file
from ..paths import cache_dir
from ..errors import CorruptFileError, KernelsLibError, UnknownModelError, did_you_mean

SKIMAGE = "scikit-image"
#: Where a .deb is looked for, in order; each is the root of a Debian archive (…/pool/main/…).
MIRRORS = (
    "https://deb.debian.org/debian",
    "http://deb.debian.org/debian",
    "https://snapshot.debian.org/archive/debian/20250520T000000Z",
)
#: Largest side kept in the decoded cache is `short_side` on the short side; 256 px keeps ~1/8 of
#: a photo's height in a 32-px crop (edges at the scale of a 7×7 kernel on a 2×2-patch network).
DEFAULT_SHORT_SIDE = 256


class PhotosUnavailableError(KernelsLibError, FileNotFoundError):
    """A pinned photograph that cannot be had here; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class DebPackage:
    """One pinned Debian bookworm package (architecture `all`)."""

    name: str
    version: str
    pool_path: str      # path under a Debian archive root
    sha256: str
    size: int
    licence: str

    @property
    def filename(self) -> str:
        return self.pool_path.rsplit("/", 1)[1]


@dataclass(frozen=True)
class Photo:
    """One kept photograph: a member of a .deb or a scikit-image sample file, pinned by sha256."""

    key: str
    origin: str         # a DEBS key, or SKIMAGE
    member: str         # path inside the .deb's data archive, or file name in skimage/data
    sha256: str


DEBS: dict[str, DebPackage] = {d.name: d for d in [
    DebPackage("mate-backgrounds", "1.26.0-1", "pool/main/m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb",
               "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04", 46638500,
               "GPL-2+ (the kept nature photographs; usr/share/doc/mate-backgrounds/copyright)"),
    DebPackage("plasma-workspace-wallpapers", "4:5.27.5-2",
               "pool/main/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb",
               "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", 94047772,
               "GPL-2+ (KDE Visual Design Group; usr/share/doc/plasma-workspace-wallpapers/copyright)"),
    DebPackage("lomiri-wallpapers-16.04", "20.04.0-2",
               "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb",
               "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab", 15783184,
               "CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 per photograph (usr/share/doc/lomiri-wallpapers-16.04/copyright)"),
    DebPackage("lomiri-wallpapers-20.04", "20.04.0-2",
               "pool/main/l/lomiri-wallpapers/lomiri-wallpapers-20.04_20.04.0-2_all.deb",
               "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709", 11377208,
               "CC-BY-SA-3.0 (usr/share/doc/lomiri-wallpapers-20.04/copyright)"),
]}

_MATE = "usr/share/backgrounds/mate/nature/"
_LOMIRI = "usr/share/backgrounds/"


def _plasma(name: str) -> str:
    return f"usr/share/wallpapers/{name}/contents/images/2560x1600.jpg"


#: The corpus: 38 photographs from four Debian packages and 12 scikit-image sample photographs,
#: in a fixed order (a photo's index is its class label in the "which photo is this crop from" task).
PHOTOS: tuple[Photo, ...] = (
    Photo("Aqua", "mate-backgrounds", _MATE + "Aqua.jpg", "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce"),
    Photo("Blinds", "mate-backgrounds", _MATE + "Blinds.jpg", "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600"),
    Photo("Dune", "mate-backgrounds", _MATE + "Dune.jpg", "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91"),
    Photo("FreshFlower", "mate-backgrounds", _MATE + "FreshFlower.jpg", "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e"),
    Photo("Garden", "mate-backgrounds", _MATE + "Garden.jpg", "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78"),
    Photo("GreenMeadow", "mate-backgrounds", _MATE + "GreenMeadow.jpg", "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
    Photo("LadyBird", "mate-backgrounds", _MATE + "LadyBird.jpg", "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d"),
    Photo("RainDrops", "mate-backgrounds", _MATE + "RainDrops.jpg", "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16"),
    Photo("Storm", "mate-backgrounds", _MATE + "Storm.jpg", "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957"),
    Photo("TwoWings", "mate-backgrounds", _MATE + "TwoWings.jpg", "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb"),
    Photo("Wood", "mate-backgrounds", _MATE + "Wood.jpg", "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07"),
    Photo("YellowFlower", "mate-backgrounds", _MATE + "YellowFlower.jpg", "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306"),
    Photo("BytheWater", "plasma-workspace-wallpapers", _plasma("BytheWater"), "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f"),
    Photo("ColdRipple", "plasma-workspace-wallpapers", _plasma("ColdRipple"), "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f"),
    Photo("ColorfulCups", "plasma-workspace-wallpapers", _plasma("ColorfulCups"), "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d"),
    Photo("DarkestHour", "plasma-workspace-wallpapers", _plasma("DarkestHour"), "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce"),
    Photo("EveningGlow", "plasma-workspace-wallpapers", _plasma("EveningGlow"), "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a"),
    Photo("FallenLeaf", "plasma-workspace-wallpapers", _plasma("FallenLeaf"), "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de"),
    Photo("Grey", "plasma-workspace-wallpapers", _plasma("Grey"), "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed"),
    Photo("Kite", "plasma-workspace-wallpapers", _plasma("Kite"), "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8"),
    Photo("OneStandsOut", "plasma-workspace-wallpapers", _plasma("OneStandsOut"), "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd"),
    Photo("Path", "plasma-workspace-wallpapers", _plasma("Path"), "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8"),
    Photo("summer_1am", "plasma-workspace-wallpapers", _plasma("summer_1am"), "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8"),
    Photo("Bridge", "lomiri-wallpapers-16.04", _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050"),
    Photo("Dragonfly", "lomiri-wallpapers-16.04", _LOMIRI + "Dragonfly_by_Bolly.jpg", "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3"),
    Photo("Picture_0B", "lomiri-wallpapers-16.04", _LOMIRI + "Picture_0B_by_freespace.jpg", "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad"),
    Photo("Picture_1A", "lomiri-wallpapers-16.04", _LOMIRI + "Picture_1A_by_freespace.jpg", "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b"),
    Photo("Wine", "lomiri-wallpapers-16.04", _LOMIRI + "Wine_by_Jakkub_Mede.jpg", "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74"),
    Photo("aitzgorri", "lomiri-wallpapers-16.04", _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36"),
    Photo("analogpattern", "lomiri-wallpapers-16.04", _LOMIRI + "analogpattern_by_Peter_Nerlich.jpg", "15372488a192b2be2eafc67bd3ed31cbfca19abe3929e925607fcbc9cb4d4202"),
    Photo("free", "lomiri-wallpapers-16.04", _LOMIRI + "free_by_Peter_Nerlich.jpg", "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373"),
    Photo("friends", "lomiri-wallpapers-16.04", _LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d"),
    Photo("greentock", "lomiri-wallpapers-16.04", _LOMIRI + "greentock_by_Peter_Nerlich.jpg", "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889"),
    Photo("life", "lomiri-wallpapers-16.04", _LOMIRI + "life_by_Aitzol_Berasategi.jpg", "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05"),
    Photo("picosdeeuropa", "lomiri-wallpapers-16.04", _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a"),
    Photo("seeding", "lomiri-wallpapers-16.04", _LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f"),
    Photo("sunset", "lomiri-wallpapers-16.04", _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18"),
    Photo("Kleiber", "lomiri-wallpapers-20.04", _LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7"),
    Photo("astronaut", SKIMAGE, "astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    Photo("brick", SKIMAGE, "brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
    Photo("camera", SKIMAGE, "camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
    Photo("chelsea", SKIMAGE, "chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    Photo("coffee", SKIMAGE, "coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    Photo("coins", SKIMAGE, "coins.png", "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba"),
    Photo("grass", SKIMAGE, "grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
    Photo("gravel", SKIMAGE, "gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
    Photo("moon", SKIMAGE, "moon.png", "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577"),
    Photo("motorcycle_left", SKIMAGE, "motorcycle_left.png", "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"),
    Photo("rocket", SKIMAGE, "rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
    Photo("text", SKIMAGE, "text.png", "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1"),
)
_BY_KEY = {p.key: p for p in PHOTOS}
#: The scikit-image photographs: they ship inside the installed wheel, so they need no download.
SKIMAGE_KEYS = tuple(p.key for p in PHOTOS if p.origin == SKIMAGE)

#: What was looked at and left out: (source, files, reason). Every image file of these packages
#: and of skimage/data that is not in PHOTOS is covered by one line.
DROPPED: tuple[tuple[str, str, str], ...] = (
    ("mate-backgrounds", "abstract/*, desktop/*", "vector art, gradients and logos (Elephants is a painting)"),
    ("plasma-workspace-wallpapers", "Altai, Cascade, Canopee, Cluster, Elarun, Flow, FlyingKonqui, Honeywave, "
     "IceCold, Kay, Kokkini, MilkyWay, Opal, PastelHills, Patak, SafeLanding, Shell",
     "vector art or 3-D renders"),
    ("plasma-workspace-wallpapers", "Autumn", "a painting (brush strokes and polygons at full size)"),
    ("plasma-workspace-wallpapers", "Volna", "looks like an aerial beach photograph as a thumbnail; at full size a low-poly render"),
    ("plasma-workspace-wallpapers", "*/contents/images/<other sizes>, screenshot.*",
     "symbolic links to the same file, or thumbnails"),
    ("lomiri-wallpapers-16.04", "umang_by_Abhishek_Mudgal.jpg", "a colour gradient"),
    ("lomiri-wallpapers-20.04", "Fossa_by_Jasper_Roks.jpg, Painting-Colors_by__herobrine7gamer.jpg", "vector art"),
    ("lomiri-wallpapers-20.04", "Infinite-Sea_by_Aury88.jpg", "a digital composite (galaxy over a sea), not one photograph"),
    ("lomiri-wallpapers", "warty-final-ubuntu.png, lomiri-default-background.png", "vector art"),
    ("gnome-backgrounds", "all", "3-D renders and vector art (adwaita, blobs, drool, dune, field, grid, licorice, "
     "pixels, symbolic, truchet, wood, vnc)"),
    ("ukui-wallpapers", "all", "vector art and 3-D renders"),
    ("sway-backgrounds", "all", "vector art with a logo"),
    ("desktop-base", "all", "Debian theme artwork, mostly SVG"),
    (SKIMAGE, "cell, ihc, microaneurysms, retina", "microscopy and medical images, not natural scenes"),
    (SKIMAGE, "hubble_deep_field", "astronomical: black sky with point sources"),
    (SKIMAGE, "page, clock_motion", "a scanned text page; a demonstration image with synthetic motion blur"),
    (SKIMAGE, "motorcycle_right", "the other half of a stereo pair: the same scene as motorcycle_left, "
     "which would make two classes indistinguishable"),
    (SKIMAGE, "chessboard_GRAY, chessboard_RGB, color, horse, logo, phantom, no_time_for_that_tiny",
     "synthetic images"),
    (SKIMAGE, "lfw_subset.npy and every image fetched with pooch", "not inside the wheel: needs a download"),
)


def photo(key: str) -> Photo:
    """The pinned photograph called `key` (see `PHOTOS`)."""
    if key not in _BY_KEY:
        raise UnknownModelError(f"no pinned photograph {key!r}; {did_you_mean(key, _BY_KEY)}known: {', '.join(_BY_KEY)}")
    return _BY_KEY[key]


def write_bytes(path: Path, data: bytes) -> Path:
    """Write bytes atomically (through `fileio.atomic_write`), so a kill leaves no half-written file."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=True)


# ---------------------------------------------------------------------------------------------
# Fetching: .deb from the Debian archive, files from the scikit-image wheel
# ---------------------------------------------------------------------------------------------

def _deb_urls(deb: DebPackage, mirrors) -> list[str]:
    return [f"{root.rstrip('/')}/{deb.pool_path}" for root in mirrors]


def _try_url(url: str, target: Path, timeout: float) -> str | None:
    """Download `url` to `target`; None on success, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        return None
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        return f"{type(err).__name__}: {err}"


def _try_apt(deb: DebPackage, folder: Path) -> tuple[Path | None, str | None]:
    """`apt-get download NAME=VERSION` into `folder` (uses the machine's apt sources; no install)."""
    if shutil.which("apt-get") is None:
        return None, "apt-get is not installed"
    command = ["apt-get", "download", f"{deb.name}={deb.version}"]
    try:
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"failed: {err}"
    found = sorted(folder.glob(f"{deb.name}_*.deb"))
    if result.returncode != 0 or not found:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
        return None, f"exit status {result.returncode}: {tail}"
    return found[0], None


def _accept(fetched: Path, deb: DebPackage, target: Path) -> str | None:
    """Move a downloaded .deb into the cache if its sha256 is the pinned one; else say why not."""
    actual = sha256_file(fetched)
    if actual != deb.sha256:
        fetched.unlink(missing_ok=True)
        return f"got sha256 {actual}, expected {deb.sha256}; discarded"
    os.replace(fetched, target)
    return None


def deb_path(name: str | DebPackage, mirrors=MIRRORS, timeout: float = 60.0, use_apt: bool = True) -> Path:
    """The pinned .deb (a `DEBS` name, or a `DebPackage` pinned elsewhere) in the cache, fetched on first
    use and checked against its sha256.

    Tried in order: each of `mirrors` (the archive's pool over HTTP(S)), then `apt-get download`.
    A download whose hash differs is discarded and the next source is tried.
    """
    if not isinstance(name, DebPackage) and name not in DEBS:
        raise UnknownModelError(f"no pinned Debian package {name!r}; known: {', '.join(DEBS)}")
    deb = name if isinstance(name, DebPackage) else DEBS[name]
    target = cache_dir("photos", "debs") / deb.filename
    if target.is_file():
        if sha256_file(target) == deb.sha256:
            return target
        target.unlink()
    tried = []
    folder = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        for url in _deb_urls(deb, mirrors):
            fetched = folder / deb.filename
            problem = _try_url(url, fetched, timeout) or _accept(fetched, deb, target)
            if problem is None:
                return target
            tried.append(f"  {url}: {problem}")
        if use_apt:
            fetched, problem = _try_apt(deb, folder)
            problem = problem or _accept(fetched, deb, target)
            if problem is None:
                return target
            tried.append(f"  apt-get download {deb.name}={deb.version}: {problem}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raise PhotosUnavailableError(
        f"cannot fetch the Debian package {deb.name} {deb.version} ({deb.filename}, {deb.size:,} bytes).\n"
        f"Looked for it in the cache at: {target}\nTried:\n" + "\n".join(tried) + "\n"
        f"To fix: on a machine that reaches the Debian archive, download any of the URLs above (or run "
        f"`apt-get download {deb.name}={deb.version}`) and copy the file to {target.parent}; "
        f"it is checked against sha256 {deb.sha256}.")


def _ar_members(data: bytes):
    """(name, bytes) of each member of a Unix ar archive (the .deb container)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        start = offset + 60
        yield name, data[start:start + size]
        offset = start + size + (size % 2)


def read_deb_members(deb_file: Path, members) -> dict[str, bytes]:
    """The regular-file `members` of a .deb's data archive, read in Python (no dpkg needed)."""
    wanted = {m.lstrip("./") for m in members}
    found: dict[str, bytes] = {}
    try:
        blob = Path(deb_file).read_bytes()
        data_tar = next(b for name, b in _ar_members(blob) if name.startswith("data.tar"))
        with tarfile.open(fileobj=io.BytesIO(data_tar), mode="r:*") as archive:
            for info in archive:
                name = info.name.lstrip("./")
                if name in wanted and info.isfile():
                    found[name] = archive.extractfile(info).read()
    except (StopIteration, ValueError, tarfile.TarError, EOFError, OSError) as err:
        raise CorruptFileError(f"{deb_file} is not a readable .deb ({err}); delete it and fetch again") from err
    missing = sorted(wanted - set(found))
    if missing:
        raise CorruptFileError(f"{deb_file} has no regular file {missing}; the pins in kernels_lib.training.photos do not "
                               "match this package")
    return found


def _skimage_source(member: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / member


def photo_file(key: str, **fetch_options) -> Path:
    """The photograph `key` as a verified file in the cache (cache_dir("photos")/files/).

    Debian photographs are extracted from their .deb (fetched on first use; every pinned
    photograph of that package is extracted at once, then the .deb is deleted); scikit-image
    photographs are copied from the installed wheel. The sha256 is checked on every call.
    """
    pin = photo(key)
    target = cache_dir("photos", "files") / f"{pin.key}{Path(pin.member).suffix}"
    if target.is_file():
        if sha256_file(target) == pin.sha256:
            return target
        target.unlink()
    if pin.origin == SKIMAGE:
        source = _skimage_source(pin.member)
        if not source.is_file():
            raise PhotosUnavailableError(
                f"scikit-image has no sample file {source}; install scikit-image (it ships {pin.member} "
                "inside its wheel): pip install scikit-image")
        payload = {pin.member: source.read_bytes()}
        where = str(source)
    else:
        deb_file = deb_path(pin.origin, **fetch_options)
        payload = read_deb_members(deb_file, [p.member for p in PHOTOS if p.origin == pin.origin])
        where = str(deb_file)
    for other in (p for p in PHOTOS if p.origin == pin.origin and p.member in payload):
        digest = hashlib.sha256(payload[other.member]).hexdigest()
        if digest != other.sha256:
            raise CorruptFileError(f"{other.member} in {where} has sha256 {digest}, expected {other.sha256}; "
                                   f"the installed or downloaded {pin.origin} is not the pinned one")
        write_bytes(cache_dir("photos", "files") / f"{other.key}{Path(other.member).suffix}", payload[other.member])
    if pin.origin != SKIMAGE:
        Path(where).unlink(missing_ok=True)
    return target


def fetch_photos(keys=None, **fetch_options) -> list[Path]:
    """Every pinned photograph (or those in `keys`) in the cache; run once before going offline."""
    return [photo_file(p.key, **fetch_options) for p in select(keys)]


def select(keys=None) -> list[Photo]:
    """The photographs named in `keys` (PHOTOS order kept), all of them for None."""
    if keys is None:
        return list(PHOTOS)
    wanted = [photo(k) for k in ([keys] if isinstance(keys, str) else keys)]
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"photograph keys repeat: {list(keys)}")
    return wanted


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhotoImage:
    """A decoded photograph: RGB float32 pixels in [0, 1], short side at most the requested size."""

    key: str
    pixels: np.ndarray      # [H, W, 3] float32
    sha256: str             # of the source file

    @property
    def array_sha256(self) -> str:
        """Hash of the decoded pixels (decoders can differ across library versions)."""
        return hashlib.sha256(np.ascontiguousarray(self.pixels).tobytes()).hexdigest()


def decode(path, short_side: int | None = DEFAULT_SHORT_SIDE) -> np.ndarray:
    """An image file as RGB float32 [H, W, 3] in [0, 1], resized (Lanczos) so that its short side is
    `short_side`; never enlarged, and None keeps the original size. Grey images repeat in R, G, B."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if short_side is not None:
            if short_side < 8:
                raise ValueError(f"short_side must be at least 8 px, got {short_side}")
            scale = short_side / min(image.size)
            if scale < 1:
                size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
                image = image.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.float32) / 255.0


def load_photos(keys=None, short_side: int | None = DEFAULT_SHORT_SIDE, **fetch_options) -> list[PhotoImage]:
    """The photographs (all, or those in `keys`) decoded at `short_side`; cached as .npy beside the files."""
    out = []
    for pin in select(keys):
        cached = cache_dir("photos", f"decoded-{short_side or 'full'}") / f"{pin.key}-{pin.sha256[:16]}.npy"
        if cached.is_file():
            try:
                pixels = np.load(cached)
            except (ValueError, OSError):
                cached.unlink()
        if not cached.is_file():
            pixels = decode(photo_file(pin.key, **fetch_options), short_side)
            buffer = io.BytesIO()
            np.save(buffer, pixels)
            write_bytes(cached, buffer.getvalue())
        out.append(PhotoImage(pin.key, pixels, pin.sha256))
    return out


# ---------------------------------------------------------------------------------------------
# Controls: the same images without edges
# ---------------------------------------------------------------------------------------------

def phase_scrambled(pixels: np.ndarray, seed: int) -> np.ndarray:
    """The image with its Fourier phases randomised: same amplitude (power) spectrum per channel and
    same mean, no edges or objects. One random phase field (that of real white noise, so the result
    is real) is added to every channel, which keeps the colour channels' cross-spectrum."""
    x = np.asarray(pixels, dtype=np.float64)
    rng = np.random.default_rng(seed)
    noise_phase = np.angle(np.fft.rfft2(rng.standard_normal(x.shape[:2])))
    spectrum = np.fft.rfft2(x, axes=(0, 1))
    scrambled = np.abs(spectrum) * np.exp(1j * (np.angle(spectrum) + noise_phase[..., None]))
    scrambled[0, 0] = spectrum[0, 0]            # the mean of each channel stays exactly
    return np.fft.irfft2(scrambled, s=x.shape[:2], axes=(0, 1)).astype(np.float32)


def iid_noise(pixels: np.ndarray, seed: int) -> np.ndarray:
    """Independent Gaussian noise per pixel with the image's per-channel mean and standard deviation:
    the colour and brightness cues stay, every spatial structure goes."""
    x = np.asarray(pixels, dtype=np.float64)
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=(0, 1))
    std = x.std(axis=(0, 1))
    return (mean + std * rng.standard_normal(x.shape)).astype(np.float32)


if __name__ == "__main__":
    for path in fetch_photos():
        print(path)
