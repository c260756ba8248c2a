"""Every reader over mutated files (hypothesis): bytes changed, cut, inserted or the header's
sizes rewritten. Only ``DataError`` may escape, and no reader allocates more than the file's size
justifies (peak traced memory against the file's size)."""
import gzip
import io
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssavae.data import readers
from ssavae.errors import DataError

EXAMPLES = 300  # per reader; 8 readers: 2,400 mutated files per run of the suite
rng = np.random.default_rng(0)


def _idx(gz: bool) -> bytes:
    raw = struct.pack(">IIII", 0x803, 6, 5, 5) + rng.integers(0, 256, 150).astype(np.uint8).tobytes()
    return gzip.compress(raw) if gz else raw


def _npz(compressed: bool) -> bytes:
    f = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(
        f, x_train=rng.integers(0, 256, (6, 4, 4)).astype(np.uint8), y_train=np.arange(6) % 3)
    return f.getvalue()


def _png() -> bytes:
    from PIL import Image

    f = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)).save(f, format="PNG")
    return f.getvalue()


def _cifar_python() -> bytes:
    return pickle.dumps({b"data": rng.integers(0, 256, (2, 3072)).astype(np.uint8), b"labels": [1, 2]})


def read_folder(path: Path):
    root = path.parent / "folder"
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "a" / "0.png").write_bytes(path.read_bytes())
    return readers.read_image_folder(root)


SEEDS = {  # name: (valid file, reader, largest allocation per byte of file it may justify)
    "idx": (_idx(False), readers.read_idx, 8),
    "idx.gz": (_idx(True), readers.read_idx, 3 * readers.MAX_DEFLATE_RATIO),
    "npz": (_npz(False), readers.read_npz, 8),
    "npz-compressed": (_npz(True), readers.read_npz, 3 * readers.MAX_DEFLATE_RATIO),
    "csv": (b'a,b,label\n1,2,0\n3.5,-1,1\n0,0,\n', readers.read_csv, 64),
    "cifar-python": (_cifar_python(), lambda p: readers._cifar_python_batch(p.read_bytes(), str(p)), 8),
    "cifar-binary": (bytes(3073 * 2), lambda p: readers._cifar_binary_batch(p.read_bytes(), str(p)), 8),
    "png-folder": (_png(), read_folder, 64),
}

mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 10 ** 6), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10 ** 6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.integers(0, 255)),
    st.tuples(st.just("huge"), st.integers(0, 10 ** 6), st.integers(0, 255)),  # 0xFF.. over 4 bytes
)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, val in ops:
        if not b:
            break
        i = pos % len(b)
        if op == "set":
            b[i] = val
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = bytes([val])
        else:
            b[i:i + 4] = b"\xff\xff\xff" + bytes([val])
    return bytes(b)


@pytest.mark.parametrize("name", list(SEEDS))
def test_reader_raises_only_data_error_and_allocates_what_the_file_justifies(name, tmp_path_factory):
    data, read, per_byte = SEEDS[name]
    folder = tmp_path_factory.mktemp(name)
    read(_write(folder, data))  # the unmutated file reads
    from PIL import Image
    Image.init()  # every image plugin imported now, not counted as a read's memory

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(mutation, min_size=1, max_size=4))
    def check(ops):
        path = _write(folder, mutate(data, ops))
        tracemalloc.start()
        try:
            read(path)
        except DataError:
            pass
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= per_byte * path.stat().st_size + 4 * 2 ** 20, (name, ops, peak)

    check()


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "file"
    path.write_bytes(data)
    return path


def test_a_header_claiming_a_trillion_images_is_refused_before_allocation(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 10 ** 9, 1000, 1000) + bytes(100)))
    tracemalloc.start()
    with pytest.raises(DataError, match="claims shape"):
        readers.read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 ** 20
