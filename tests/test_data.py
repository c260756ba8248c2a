import gzip
import logging
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from ssavae.data import DataError, InMemoryLoader, apply_split, labeled_mask, load_dataset
from ssavae.data import readers
from ssavae.data.synthetic import make_synthetic


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    arr = np.asarray(arr, np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    raw += arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_mnist_dir(d: Path, n_train=20, n_test=10, gz=True) -> Path:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(d / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_train, 28, 28)), gz)
    write_idx(d / f"train-labels-idx1-ubyte{suffix}", np.arange(n_train) % 10, gz)
    write_idx(d / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28)), gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{suffix}", np.arange(n_test) % 10, gz)
    return d


# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    assert np.array_equal(readers.read_idx(write_idx(tmp_path / "a", a, gz)), a)


def test_idx_refuses_bad_magic_truncation_and_count_mismatch(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="not an IDX file"):
        readers.read_idx(tmp_path / "bad")
    good = write_idx(tmp_path / "t", np.zeros((4, 28, 28)))
    (tmp_path / "trunc").write_bytes(good.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        readers.read_idx(tmp_path / "trunc")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good.read_bytes())[:30])
    with pytest.raises(DataError, match="corrupt gzip|truncated"):
        readers.read_idx(tmp_path / "broken.gz")
    labels = write_idx(tmp_path / "l", np.zeros(3))
    with pytest.raises(DataError, match="4 images but .* 3 labels"):
        readers.read_idx_pair(good, labels)


def test_registry_finds_mnist_in_data_dir_and_explains_absence(tmp_path):
    ds = load_dataset("mnist", str(write_mnist_dir(tmp_path)))
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.info.num_classes == 10 and ds.info.unit_range
    with pytest.raises(DataError) as e:
        load_dataset("mnist", str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "nowhere" in msg and "ssavae download mnist" in msg and "--data-dir" in msg
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnistt")


def test_search_order_data_dir_then_environment_then_cache(tmp_path, monkeypatch):
    from ssavae.data.datasets import locate

    env_dir, arg_dir, cache = tmp_path / "env", tmp_path / "arg", tmp_path / "cache"
    for d in (env_dir, arg_dir, cache / "mnist"):
        d.mkdir(parents=True)
    write_mnist_dir(env_dir)
    write_mnist_dir(arg_dir)
    write_mnist_dir(cache / "mnist")
    monkeypatch.setenv("SSAVAE_CACHE", str(cache))
    assert locate("mnist") == cache / "mnist"
    monkeypatch.setenv("SSAVAE_DATA_DIR", str(env_dir))
    assert locate("mnist") == env_dir
    assert locate("mnist", str(arg_dir)) == arg_dir
    monkeypatch.delenv("SSAVAE_DATA_DIR")
    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="SSAVAE|ssavae download mnist"):
        locate("mnist")


def test_registry_reads_plain_idx_in_a_subfolder(tmp_path):
    (tmp_path / "mnist").mkdir()
    write_mnist_dir(tmp_path / "mnist", gz=False)
    assert len(load_dataset("mnist", str(tmp_path)).y_test) == 10


# ---------------------------------------------------------------------------- .mat


def _image_with_marker() -> np.ndarray:
    img = np.zeros((28, 28))
    img[2, 20] = 1.0  # row 2, column 20: transposed reading would put it at row 20
    return img


def test_omniglot_reads_column_major(tmp_path):
    img = _image_with_marker()
    col = img.reshape(-1, order="F")  # how MATLAB stores it
    data = np.stack([col] * 3, 1)  # (784, 3)
    target = np.eye(50)[:, [0, 4, 49]]
    scipy.io.savemat(tmp_path / "chardata.mat", {"data": data, "target": target,
                                                 "testdata": data[:, :2], "testtarget": target[:, :2]})
    ds = load_dataset("omniglot", str(tmp_path))
    assert ds.x_train.shape == (3, 1, 28, 28) and ds.x_test.shape == (2, 1, 28, 28)
    assert ds.x_train[0, 0, 2, 20] == 255 and ds.x_train[0, 0, 20, 2] == 0
    assert list(ds.y_train) == [0, 4, 49]


def test_caltech_merges_train_and_val_and_shifts_labels(tmp_path):
    rows = np.stack([_image_with_marker().reshape(-1, order="F")] * 4)  # (N, 784)
    scipy.io.savemat(tmp_path / "caltech101_silhouettes_28_split1.mat", {
        "train_data": rows[:2], "train_labels": np.array([[1], [101]]),
        "val_data": rows[:1], "val_labels": np.array([[5]]),
        "test_data": rows, "test_labels": np.array([[1], [2], [3], [4]])})
    ds = load_dataset("caltech101", str(tmp_path))
    assert len(ds.y_train) == 3 and list(ds.y_train) == [0, 100, 4]
    assert ds.x_test[0, 0, 2, 20] == 255


def test_mat_reader_refuses_missing_variable_and_bad_range(tmp_path):
    scipy.io.savemat(tmp_path / "chardata.mat", {"data": np.zeros((784, 2))})
    with pytest.raises(DataError, match="no variable 'testdata'"):
        readers.read_omniglot(tmp_path / "chardata.mat")
    scipy.io.savemat(tmp_path / "x.mat", {"data": np.full((784, 2), 3.0), "testdata": np.zeros((784, 1)),
                                          "target": np.eye(2), "testtarget": np.eye(2)[:, :1]})
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        readers.read_omniglot(tmp_path / "x.mat")
    (tmp_path / "junk.mat").write_bytes(b"not matlab")
    with pytest.raises(DataError, match="MATLAB"):
        readers.read_omniglot(tmp_path / "junk.mat")


# ---------------------------------------------------------------------------- CIFAR-10


def _cifar_batches(n=4):
    rng = np.random.default_rng(0)
    return {name: (rng.integers(0, 256, (n, 3072), dtype=np.uint8), list(range(n)))
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}


def test_cifar_python_folder_and_tarball(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, (x, y) in _cifar_batches().items():
        (folder / name).write_bytes(pickle.dumps({b"data": x, b"labels": y}))
    x_tr, y_tr, x_te, y_te = readers.read_cifar10(folder)
    assert x_tr.shape == (20, 3, 32, 32) and x_te.shape == (4, 3, 32, 32) and list(y_te) == [0, 1, 2, 3]
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    assert np.array_equal(readers.read_cifar10(tar_path)[0], x_tr)
    ds = load_dataset("cifar10", str(tmp_path))
    assert ds.info.shape == (3, 32, 32)


def test_cifar_binary_and_its_errors(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, (x, y) in _cifar_batches().items():
        rec = np.concatenate([np.array(y, np.uint8)[:, None], x], 1)
        (folder / f"{name}.bin").write_bytes(rec.tobytes())
    x_tr, y_tr, _, _ = readers.read_cifar10(folder)
    assert x_tr.shape == (20, 3, 32, 32) and list(y_tr[:4]) == [0, 1, 2, 3]
    (folder / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="multiple of 3073"):
        readers.read_cifar10(folder)


def test_cifar_refuses_malicious_pickle(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        readers.read_cifar10(folder)


# ---------------------------------------------------------------------------- user data


def test_npz_images_vectors_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(30) % 3)
    ds = load_dataset(f"npz:{tmp_path / 'a.npz'}")
    assert ds.info.shape == (1, 28, 28) and len(ds.y_train) + len(ds.y_test) == 30
    assert len(ds.classes) == 3
    v = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    np.savez(tmp_path / "v.npz", x=v)
    dv = load_dataset(f"npz:{tmp_path / 'v.npz'}")
    assert dv.info.shape == (5,) and not dv.info.unit_range and (dv.y_train == -1).all()
    v[3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=v)
    with pytest.raises(DataError, match="NaN"):
        load_dataset(f"npz:{tmp_path / 'nan.npz'}")
    np.savez(tmp_path / "lab.npz", x_train=x, y_train=np.full(30, -3))
    with pytest.raises(DataError, match="label -3"):
        load_dataset(f"npz:{tmp_path / 'lab.npz'}")
    np.savez(tmp_path / "cnt.npz", x_train=x, y_train=np.zeros(29, int))
    with pytest.raises(DataError, match="30 rows but y_train has 29"):
        load_dataset(f"npz:{tmp_path / 'cnt.npz'}")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")


def test_csv_table_and_errors(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20))
                                    + "1,2,\n")
    ds = load_dataset(f"csv:{tmp_path / 't.csv'}")
    assert ds.info.shape == (2,)
    assert (np.concatenate([ds.y_train, ds.y_test]) == -1).sum() == 1
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n")
    with pytest.raises(DataError, match="'b' holds 'x', not a number"):
        readers.read_csv(tmp_path / "bad.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(DataError, match="3 cells"):
        readers.read_csv(tmp_path / "ragged.csv")


def test_csv_with_quotes_named_labels_a_marker_and_a_stratified_test_split(tmp_path):
    """Quoted fields (a comma inside a header), class names kept, a chosen label column and
    unlabeled marker; the test split holds labeled rows of every class."""
    rows = ['"width, cm";height;species']
    for i in range(60):
        name = ["setosa", "versicolor", "virginica"][i % 3]
        rows.append(f"{i * 0.1:.1f};{i % 7};{name if i < 30 else '?'}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    x, y, classes = readers.read_csv(tmp_path / "t.csv", "species", "?")
    assert x.shape == (60, 2) and classes == ["setosa", "versicolor", "virginica"]
    assert (y[:30] == np.arange(30) % 3).all() and (y[30:] == -1).all()
    ds = load_dataset(f"csv:{tmp_path / 't.csv'}", label_column="species", unlabeled="?")
    assert ds.classes == classes
    assert sorted(set(ds.y_test[ds.y_test >= 0].tolist())) == [0, 1, 2]  # every class is tested
    assert len(ds.y_test) + len(ds.y_train) == 60
    (tmp_path / "n.csv").write_text("a,label\n" + "".join(f"{i},{1 + i % 3}\n" for i in range(9)))
    assert readers.read_csv(tmp_path / "n.csv")[2] == ["1", "2", "3"]  # numbers: 3 classes, not 4


def test_image_folder(tmp_path):
    from PIL import Image

    for k, cls in enumerate(["cat", "dog"]):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(np.full((28, 28), 40 * k + i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    x, y, classes = readers.read_image_folder(tmp_path)
    assert x.shape == (10, 1, 28, 28) and classes == ["cat", "dog"] and list(y) == [0] * 5 + [1] * 5
    (tmp_path / "unlabeled").mkdir()  # images without a label: y = -1, not a class
    for i in range(3):
        Image.fromarray(np.full((32, 32), 7 * i, np.uint8)).save(tmp_path / "unlabeled" / f"{i}.png")
    with pytest.raises(DataError, match="is 32x32 but .* is 28x28; set data.image_size"):
        readers.read_image_folder(tmp_path)
    x, y, classes = readers.read_image_folder(tmp_path, size=28)
    assert x.shape == (13, 1, 28, 28) and classes == ["cat", "dog"] and (y == -1).sum() == 3
    assert (x[y == -1][:, 0, 0, 0] == [0, 7, 14]).all()  # resized, values kept
    (tmp_path / "dog" / "broken.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="broken.png"):
        readers.read_image_folder(tmp_path)


# ---------------------------------------------------------------------------- split & loader


def test_split_exact_per_class_disjoint_and_seeded():
    y = np.repeat(np.arange(5), 40)
    m = labeled_mask(y, labels_per_class=7, seed=3)
    assert all((m & (y == k)).sum() == 7 for k in range(5))
    assert np.array_equal(m, labeled_mask(y, labels_per_class=7, seed=3))
    assert not np.array_equal(m, labeled_mask(y, labels_per_class=7, seed=4))
    ys = apply_split(y, m)
    assert (ys[~m] == -1).all() and (ys[m] == y[m]).all()
    f = labeled_mask(y, label_fraction=0.1, seed=0)
    assert all((f & (y == k)).sum() == 4 for k in range(5))
    assert labeled_mask(y).all()
    with pytest.raises(DataError, match="fewer than"):
        labeled_mask(y, labels_per_class=41)
    with pytest.raises(DataError, match="not both"):
        labeled_mask(y, labels_per_class=1, label_fraction=0.5)


def test_loader_batches_are_float_in_unit_range_and_epochs_reproducible():
    ds = make_synthetic(100, 10)
    loader = InMemoryLoader(ds.x_train, ds.y_train, batch_size=32, seed=1)
    assert loader.x.dtype == torch.uint8  # stays compact in memory
    assert np.shares_memory(loader.x.numpy(), ds.x_train)  # on the CPU: not copied
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    x, y = batches[0]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and y.dtype == torch.int64
    again = list(loader.iterate(2))
    assert torch.equal(again[0][0], batches[2][0])  # resume mid-epoch: same batches
    loader.epoch_key = 1
    assert not torch.equal(next(iter(loader))[0], x)  # another epoch, another order
    ids = np.arange(100, dtype=np.float32)[:, None]
    ranks = [InMemoryLoader(ids, np.zeros(100), 10, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([b[0] for b in r]).flatten() for r in ranks]
    assert len(ranks[0]) == len(ranks[1]) == 5
    assert sorted(torch.cat(seen).tolist()) == list(range(100))  # disjoint shards, all covered


def test_the_dataset_moves_to_an_accelerator_only_when_it_fits():
    """The whole dataset goes to the training device when it takes at most half of the free
    memory ("meta" stands in for an accelerator); on the CPU it is used where it is."""
    from ssavae.data.loader import on_device

    x = torch.zeros(1000, dtype=torch.uint8)
    meta = torch.device("meta")
    assert on_device(x, meta, free=2000).device == meta
    assert on_device(x, meta, free=1999).device.type == "cpu"  # over half of it: stays on the host
    assert on_device(x, meta).device.type == "cpu"  # free memory unknown: stays on the host
    assert on_device(x, torch.device("cpu")) is x


def test_synthetic_is_deterministic_and_balanced():
    a, b = make_synthetic(80, 8), make_synthetic(80, 8)
    assert np.array_equal(a.x_train, b.x_train)
    assert np.bincount(a.y_train).tolist() == [20, 20, 20, 20]


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian_path_is_compact():
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert ds.nbytes() < 100e6


def test_download_verifies_checksums_and_keeps_nothing_bad(tmp_path, monkeypatch):
    """The download command, against local file:// sources (tests never touch the network)."""
    import hashlib

    from ssavae.data import download as dl

    (tmp_path / "src").mkdir()
    src = write_mnist_dir(tmp_path / "src")
    files = sorted(p.name for p in src.iterdir())
    good = [(f"file://{src / f}", f, hashlib.md5((src / f).read_bytes()).hexdigest()) for f in files]
    monkeypatch.setitem(dl.SOURCES, "mnist", good)
    dest = dl.download("mnist", str(tmp_path / "dest"))
    assert sorted(p.name for p in dest.iterdir()) == files
    assert len(load_dataset("mnist", str(dest)).y_train) == 20
    bad = [(u, f, "0" * 32) for u, f, _ in good]
    monkeypatch.setitem(dl.SOURCES, "mnist", bad)
    with pytest.raises(DataError, match="checksum mismatch"):
        dl.download("mnist", str(tmp_path / "dest2"))
    assert not any((tmp_path / "dest2").iterdir())  # nothing half-downloaded is left
    offline = [(f"file://{tmp_path / 'missing'}", f, None) for _, f, _ in good]
    monkeypatch.setitem(dl.SOURCES, "mnist", offline)
    with pytest.raises(DataError, match="could not download .*--data-dir"):
        dl.download("mnist", str(tmp_path / "dest3"))


def test_csv_tables_are_standardized_by_default_with_the_training_rows_statistics(tmp_path, caplog):
    from ssavae.config import build_run_config
    from ssavae.runs import prepare_data

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(60, 2))
    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(
        f"{a},{1000 * b + 5000},{i % 2}\n" for i, (a, b) in enumerate(rows)))

    def prepared(**data):
        return prepare_data(build_run_config({"model": {"name": "vae"}, "data": {"name": f"csv:{tmp_path / 't.csv'}", **data}}))[0]

    ds = prepared()
    assert np.allclose(ds.x_train.mean(0), 0, atol=1e-5) and np.allclose(ds.x_train.std(0), 1, atol=1e-4)
    raw = prepared(standardize=False)
    stats = ds.standardization
    assert np.allclose((raw.x_test - stats["mean"]) / stats["scale"], ds.x_test, atol=1e-4)  # test rows: train stats
    assert abs(stats["mean"][1] - raw.x_train[:, 1].mean()) < 1e-2 and stats["mean"][1] > 4000
    with caplog.at_level(logging.WARNING):
        prepared(standardize=False)
    assert "different scales" in caplog.text and "data.standardize true" in caplog.text
    with pytest.raises(DataError, match="applies to tables"):
        prepare_data(build_run_config({"model": {"name": "vae"}, "data": {"name": "synthetic", "standardize": True}}))
