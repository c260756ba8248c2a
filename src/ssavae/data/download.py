"""``ssavae download NAME``: fetch the official files into the user cache, checksums verified.

Only this command touches the network; nothing else in the library downloads.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.request
from pathlib import Path
from typing import Optional

from ..fileio import atomic_path
from .datasets import DATASETS, cache_dir, load_dataset
from .readers import DataError

log = logging.getLogger(__name__)

_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# name -> [(url, file name, md5 or None)]. None: no checksum is published for that file; the
# download is then checked by reading it, and its sha256 is printed for the user's records.
SOURCES: dict[str, list[tuple[str, str, Optional[str]]]] = {
    "mnist": [
        (_MNIST + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        (_MNIST + "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        (_MNIST + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        (_MNIST + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ],
    "fashion-mnist": [
        (_FASHION + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        (_FASHION + "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        (_FASHION + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        (_FASHION + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ],
    "cifar10": [
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
         "c58f30108f718f92721af3b95e74349a"),
    ],
    "omniglot": [
        ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",
         "chardata.mat", None),
    ],
    "caltech101": [
        ("https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",
         "caltech101_silhouettes_28_split1.mat", None),
    ],
}


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, dest: Optional[str] = None, force: bool = False) -> Path:
    """Fetch ``name`` into ``dest`` (default: the user cache), verify, and test-load it."""
    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise DataError(f"no download source for {name!r}; downloadable: {known}")
    DATASETS.get(name)
    folder = Path(dest) if dest else cache_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    for url, fname, md5 in SOURCES[name]:
        target = folder / fname
        if target.exists() and not force and (md5 is None or _digest(target, "md5") == md5):
            log.info("%s already present", target)
            continue
        log.info("downloading %s", url)
        with atomic_path(target) as tmp:
            try:
                urllib.request.urlretrieve(url, tmp)  # noqa: S310 (fixed https/http sources above)
            except OSError as e:  # offline, refused, DNS: nothing is kept
                raise DataError(f"could not download {url} ({e}); without internet put the "
                                f"files in a folder and pass --data-dir FOLDER"
                                + (", or on Debian: apt-get install dataset-fashion-mnist"
                                   if name == "fashion-mnist" else "")) from None
            got = _digest(tmp, "md5")
            if md5 is not None and got != md5:
                raise DataError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); "
                                "the file was not kept, try again later")
        if md5 is None:
            log.warning("%s: no published checksum; sha256 %s", target, _digest(target, "sha256"))
    if name == "cifar10":
        import tarfile

        with tarfile.open(folder / "cifar-10-python.tar.gz") as tar:
            tar.extractall(folder, filter="data")
    load_dataset(name, str(folder))  # proves the files read
    return folder
