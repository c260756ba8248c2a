"""Readers for the real file formats. Each returns numpy arrays and refuses bad files clearly.

Images come back as uint8 ``(N, C, H, W)``; labels as int64 ``(N,)``; feature tables as float32
``(N, D)``. No reader ever unpickles arbitrary objects from a user's file.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError  # re-exported: every reader raises it


# ---------------------------------------------------------------------------- IDX (MNIST)

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_DEFLATE_RATIO = 1032  # the most data deflate can encode per compressed byte


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST, Fashion-MNIST), gzipped or not. The header is checked against the
    file's size before the data is read: a header that claims more than the file can hold (even
    gzipped at deflate's best ratio) is refused without allocating it."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise DataError(
                    f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'}); "
                    "expected e.g. train-images-idx3-ubyte[.gz] from MNIST or Fashion-MNIST")
            dtype, ndim = np.dtype(_IDX_TYPES[head[2]]), head[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(shape) * dtype.itemsize
            if expected > (MAX_DEFLATE_RATIO if gz else 1) * size:
                raise DataError(f"{path}: the IDX header claims shape {shape} ({expected:,} bytes), more "
                                f"than a {size:,}-byte file can hold; the file is damaged: download it again")
            data = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip data ({e}); download the file again") from e
    if len(data) != expected:
        raise DataError(
            f"{path}: truncated or padded IDX data: header says shape {shape} "
            f"({expected} bytes) but the file has {len(data)}{'' if len(data) <= expected else ' or more'}; "
            "download it again")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images)
    y = read_idx(labels).astype(np.int64)
    if x.ndim != 3:
        raise DataError(f"{images}: expected (N, H, W) images, got shape {x.shape}")
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return x[:, None], y


# ---------------------------------------------------------------------------- MATLAB (.mat)


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for a broken file
        raise DataError(f"{path}: cannot read as a MATLAB .mat file ({e})") from e


def _mat_get(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no variable {key!r} (it has: {keys})")
    return np.asarray(mat[key])


def _columns_to_images(cols: np.ndarray, path: Path, side: int = 28) -> np.ndarray:
    """(784, N) or (N, 784) float/bool in [0, 1], stored column-major -> uint8 (N, 1, 28, 28)."""
    if cols.ndim != 2 or side * side not in cols.shape:
        raise DataError(f"{path}: expected {side * side} pixels per image, got shape {cols.shape}")
    rows = cols if cols.shape[1] == side * side else cols.T
    rows = rows.astype(np.float64)
    if np.isnan(rows).any() or rows.min() < 0 or rows.max() > 1:
        raise DataError(f"{path}: pixel values must lie in [0, 1] with no NaN")
    # MATLAB order: each 784-vector is a column-major 28x28 image; order="F" un-transposes it.
    imgs = rows.reshape(-1, side, side, order="F")
    return np.round(imgs * 255).astype(np.uint8)[:, None]


def read_omniglot(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Omniglot ``chardata.mat`` (Burda et al.'s 28x28 split): 24,345 train / 8,070 test.

    Labels are the 50 alphabets (``target``, one-hot columns), as in the SSAVAE paper.
    """
    path = Path(path)
    mat = _loadmat(path)
    x_tr = _columns_to_images(_mat_get(mat, "data", path), path)
    x_te = _columns_to_images(_mat_get(mat, "testdata", path), path)
    y_tr = _onehot_columns_to_labels(_mat_get(mat, "target", path), len(x_tr), path)
    y_te = _onehot_columns_to_labels(_mat_get(mat, "testtarget", path), len(x_te), path)
    return x_tr, y_tr, x_te, y_te


def _onehot_columns_to_labels(t: np.ndarray, n: int, path: Path) -> np.ndarray:
    if t.ndim != 2 or n not in t.shape:
        raise DataError(f"{path}: label matrix of shape {t.shape} does not match {n} images")
    t = t if t.shape[0] == n else t.T
    return t.argmax(1).astype(np.int64)


def read_caltech101(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``caltech101_silhouettes_28_split1.mat``: train+val (6,364) / test (2,307), 101 classes."""
    path = Path(path)
    mat = _loadmat(path)
    parts = {}
    for split in ("train", "val", "test"):
        x = _columns_to_images(_mat_get(mat, f"{split}_data", path), path)
        y = _mat_get(mat, f"{split}_labels", path).reshape(-1).astype(np.int64) - 1  # 1-based
        if len(x) != len(y):
            raise DataError(f"{path}: {split}_data has {len(x)} images, {split}_labels {len(y)}")
        parts[split] = (x, y)
    x_tr = np.concatenate([parts["train"][0], parts["val"][0]])
    y_tr = np.concatenate([parts["train"][1], parts["val"][1]])
    return x_tr, y_tr, parts["test"][0], parts["test"][1]


# ---------------------------------------------------------------------------- CIFAR-10


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows only the numpy array reconstruction CIFAR's pickles need; refuses anything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}: not a CIFAR-10 batch file")


def _cifar_python_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where}: not a CIFAR-10 python batch ({e})") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataError(f"{where}: a CIFAR-10 batch must hold 'data' and 'labels'")
    x = np.asarray(d[b"data"], dtype=np.uint8)
    y = np.asarray(d[b"labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(f"{where}: data of shape {x.shape} with {len(y)} labels; expected (N, 3072)")
    return x.reshape(-1, 3, 32, 32), y


def _cifar_binary_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    if len(raw) % 3073:
        raise DataError(f"{where}: size {len(raw)} is not a multiple of 3073 (label + 3x32x32)")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
    y = rec[:, 0].astype(np.int64)
    if y.max(initial=0) > 9:
        raise DataError(f"{where}: label {y.max()} out of range 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), y


def read_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10 from the python or binary version: a folder or the official .tar.gz."""
    path = Path(path)
    files: dict[str, bytes] = {}
    if path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    files[Path(m.name).name] = tar.extractfile(m).read()
    elif path.is_dir():
        files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    else:
        raise DataError(f"{path}: expected a CIFAR-10 folder or cifar-10-*.tar.gz")
    python_names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    binary_names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    if all(n in files for n in python_names):
        batches = [_cifar_python_batch(files[n], f"{path}/{n}") for n in python_names]
    elif all(n in files for n in binary_names):
        batches = [_cifar_binary_batch(files[n], f"{path}/{n}") for n in binary_names]
    else:
        raise DataError(
            f"{path}: missing CIFAR-10 batches; expected data_batch_1..5 and test_batch "
            "(python version) or the same with .bin (binary version)"
        )
    x_tr = np.concatenate([b[0] for b in batches[:5]])
    y_tr = np.concatenate([b[1] for b in batches[:5]])
    return x_tr, y_tr, batches[5][0], batches[5][1]


# ---------------------------------------------------------------------------- user arrays


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be a 1-D array, got shape {y.shape}")
    if y.dtype.kind == "f":
        if np.isnan(y).any() or (y != np.round(y)).any():
            raise DataError(f"{where}: labels must be whole numbers (use -1 for unlabeled)")
    elif y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if (y < -1).any():
        raise DataError(f"{where}: label {y.min()} is invalid; use 0..K-1, or -1 for unlabeled")
    return y


def as_images_or_vectors(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 images stay; float arrays must be finite; (N, H, W) gains a channel axis."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    if x.ndim not in (2, 4):
        raise DataError(f"{where}: expected (N, D) vectors or (N, [C,] H, W) images, got {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"{where}: array of dtype {x.dtype} is not numeric")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: array contains NaN or infinite values; clean or impute them")
    if x.ndim == 4 and (x.min() < 0 or x.max() > 1):
        raise DataError(f"{where}: images of floats must lie in [0, 1], these span [{x.min():g}, {x.max():g}]; "
                        "divide 0..255 pixels by 255 or store them as uint8")
    return x


def _check_npz_headers(path: Path) -> None:
    """Every array's header against the bytes the archive holds for it, before numpy allocates
    the array: a header claiming more than its member can hold (even compressed at deflate's best
    ratio) is refused."""
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
            claimed = math.prod(shape) * dtype.itemsize
            if claimed > min(info.file_size, MAX_DEFLATE_RATIO * info.compress_size):
                raise DataError(f"{path}: array {info.filename} claims shape {shape} ({claimed:,} bytes) "
                                f"but the archive holds {info.file_size:,} bytes for it; the file is damaged")


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """A ``.npz`` with ``x_train`` (and optional ``y_train``, ``x_test``, ``y_test``), or ``x``/``y``."""
    path = Path(path)
    try:
        _check_npz_headers(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except DataError:
        raise
    except Exception as e:  # zipfile and numpy raise many kinds for a damaged archive
        raise DataError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from e
    if "x_train" not in arrays and "x" in arrays:
        arrays["x_train"] = arrays.pop("x")
        if "y" in arrays:
            arrays["y_train"] = arrays.pop("y")
    if "x_train" not in arrays:
        raise DataError(f"{path}: needs an array named x_train (or x); it has {sorted(arrays)}")
    out = {}
    for split in ("train", "test"):
        if f"x_{split}" not in arrays:
            continue
        x = as_images_or_vectors(arrays[f"x_{split}"], f"{path}:x_{split}")
        y = arrays.get(f"y_{split}")
        y = np.full(len(x), -1, np.int64) if y is None else _check_labels(y, f"{path}:y_{split}")
        if len(x) != len(y):
            raise DataError(f"{path}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out


def read_csv(path: str | Path, label_column: str = "label",
             unlabeled: str = "") -> tuple[np.ndarray, np.ndarray, Optional[list[str]]]:
    """A CSV table with a header line, read by the csv module (quoted fields, any dialect the
    sniffer recognises): every column but ``label_column`` is a numeric feature. Label cells
    may be numbers or names; an empty cell, ``unlabeled`` or -1 marks an unlabeled row. Returns
    (x, y, class names): names sorted (numbers numerically) and y their indices, -1 unlabeled;
    names None without a label column (every row unlabeled)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as text ({e})") from e
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV table ({e})") from e
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header line and at least one row")
    header = [h.strip() for h in rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise DataError(f"{path}:{i}: {len(r)} cells but the header has {len(header)}")
    yi = header.index(label_column) if label_column in header else None
    feat = [j for j in range(len(header)) if j != yi]
    if not feat:
        raise DataError(f"{path}: no feature columns besides {label_column!r}")
    x = np.empty((len(rows) - 1, len(feat)), np.float32)
    for i, r in enumerate(rows[1:]):
        for jj, j in enumerate(feat):
            try:
                x[i, jj] = float(r[j])
            except ValueError:
                raise DataError(f"{path}:{i + 2}: column {header[j]!r} holds {r[j]!r}, not a number; every "
                                f"column but the label column ({label_column!r}) must be numeric") from None
    if not np.isfinite(x).all():
        raise DataError(f"{path}: the table contains NaN or infinite values; clean or impute them")
    if yi is None:
        return x, np.full(len(x), -1, np.int64), None
    cells = [r[yi].strip() for r in rows[1:]]
    known = [c for c in cells if c not in ("", unlabeled, "-1")]
    numeric = all(_is_number(c) for c in known)
    names = sorted(set(known), key=float if numeric else str)
    if numeric and any(float(c) != int(float(c)) for c in known):
        raise DataError(f"{path}: column {label_column!r} holds numbers that are not whole; labels are "
                        "class numbers or names")
    index = {c: k for k, c in enumerate(names)}
    y = np.array([index.get(c, -1) for c in cells], np.int64)
    return x, y, [str(int(float(c))) if numeric else c for c in names]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


UNLABELED_FOLDER = "unlabeled"  # ROOT/unlabeled/: images without a label


def _read_image(f: Path):
    """One image file, decoded, or a DataError; its header's size is checked against the file's."""
    from PIL import Image

    try:
        # from memory: a chunk length that lies makes a file object preallocate what it claims
        img = Image.open(io.BytesIO(f.read_bytes()))  # decodes the header only
        claimed = img.width * img.height * len(img.getbands())
        if claimed > MAX_DEFLATE_RATIO * f.stat().st_size:
            raise DataError(f"{f}: the header claims a {img.width}x{img.height} image, more than "
                            f"its {f.stat().st_size:,} bytes can hold; the file is damaged")
        img.load()
    except DataError:
        raise
    except Exception as e:  # PIL raises many kinds for a damaged file (SyntaxError, struct.error...)
        raise DataError(f"{f}: not a readable image ({type(e).__name__}: {e})") from e
    return img


def read_image_folder(path: str | Path, size: int | None = None,
                      channels: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``ROOT/<class>/<image>``: one sub-folder per class (sorted names -> labels 0..K-1), and
    optionally ``ROOT/unlabeled/<image>`` (y = -1; not a class).

    Images are converted to the first image's mode (grayscale or RGB) unless ``channels`` is
    given. With ``size`` every image is resized to size x size; without it they must all have
    the first image's size, which must be square (otherwise the error says to set a size).
    """
    from PIL import Image

    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; expected ROOT/<class>/<image files>")
    folders = sorted(p.name for p in path.iterdir() if p.is_dir())
    classes = [c for c in folders if c != UNLABELED_FOLDER]
    if not classes:
        raise DataError(f"{path}: no class sub-folders; expected ROOT/<class>/<image files>")
    xs, ys = [], []
    resize = size is not None
    for cls in folders:
        k = classes.index(cls) if cls in classes else -1
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            img = _read_image(f)
            if channels is None:
                channels = 1 if img.mode in ("1", "L", "I", "F", "I;16") else 3
            img = img.convert("L" if channels == 1 else "RGB")
            if size is None:
                if img.width != img.height:
                    raise DataError(f"{f}: image is {img.width}x{img.height}, not square; set data.image_size N "
                                    "to resize every image to N x N")
                size, first = img.width, f
            if img.size != (size, size):
                if not resize:
                    raise DataError(f"{f}: image is {img.width}x{img.height} but {first} is {size}x{size}; set "
                                    "data.image_size N to resize every image to N x N")
                img = img.resize((size, size), Image.BILINEAR)
            a = np.asarray(img, dtype=np.uint8)
            xs.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
            ys.append(k)
    if not xs:
        raise DataError(f"{path}: class folders hold no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    return np.stack(xs), np.array(ys, np.int64), classes
