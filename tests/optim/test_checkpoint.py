"""Checkpoints (State.save / State.load, steplab.optim.checkpoint): atomic, validated before
writing, and every damaged or foreign file is one ValueError naming the file and the reason."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import steplab as sl
from steplab.optim import checkpoint


def adam_state(dtype=np.float64):
    opt = sl.Adam(lr=0.01)
    theta = np.array([1.0, -2.0, 3.0], dtype=dtype)
    state = opt.init(theta)
    for t in range(3):
        with np.errstate(all="ignore"):  # float16: Adam's first steps underflow there
            opt.step(theta, (np.arange(3, dtype=dtype) - t).astype(dtype), state)
    return opt, state


def same_state(a, b):
    assert vars(a).keys() == vars(b).keys()
    for key, value in vars(a).items():
        other = getattr(b, key)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype
            np.testing.assert_array_equal(value, other)
        else:
            assert type(value) is type(other) and value == other, key


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_round_trip_is_bit_for_bit(tmp_path, dtype):
    opt, state = adam_state(dtype)
    state.skipped = 2
    state.save(tmp_path / "s.npz", opt)
    loaded = sl.State.load(tmp_path / "s.npz", opt)
    same_state(state, loaded)
    assert loaded.shape == (3,) and loaded.t == 3


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    opt, state = adam_state()
    path = tmp_path / "s.npz"
    state.save(path, opt)
    good = path.read_bytes()

    def fails_half_way(stream, **arrays):
        stream.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fails_half_way)
    with pytest.raises(OSError, match="disk full"):
        state.save(path, opt)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary file left


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("arrays", np.zeros(3), "would hide the state's method"),
        ("save", 1, "would hide the state's method"),
        ("_private", 1, "starts with '_'"),
        ("s", np.array([{"a": 1}], dtype=object), "holds ndarray of dtype object"),
        ("s", [1.0, 2.0], "holds list"),
        ("s", None, "holds NoneType"),
    ],
)
def test_save_refuses_what_load_would_refuse_before_writing(tmp_path, field, value, message):
    opt, state = adam_state()
    path = tmp_path / "s.npz"
    state.save(path, opt)
    good = path.read_bytes()
    setattr(state, field, value)
    with pytest.raises(ValueError, match=message):
        sl.State.save(state, path, opt)  # (state.save may be the shadowing field itself)
    assert path.read_bytes() == good


def test_a_field_named_like_a_method_cannot_shadow_it_on_load(tmp_path):
    path = tmp_path / "crafted.npz"
    meta = '{"fields": {"t": "int", "arrays": "ndarray"}}'
    np.savez(path, __meta__=np.array(meta), t=np.array(1), arrays=np.zeros(2))
    with pytest.raises(ValueError, match="crafted.npz .*would hide the state's method"):
        sl.State.load(path)


def test_bit_flip_sweep_is_a_value_error_or_the_same_state(tmp_path):
    """One bit flipped in every byte of a saved file: either the file still holds exactly
    the same state (a flip in a ZIP timestamp, say) or loading is one ValueError that names
    the file. (Before: EOFError, BadZipFile, NotImplementedError, RuntimeError, KeyError…)"""
    opt, state = adam_state()
    path = tmp_path / "s.npz"
    state.save(path, opt)
    original = path.read_bytes()
    damaged = tmp_path / "damaged.npz"
    outcomes = {"same": 0, "refused": 0}
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 1 << (i % 8)
        damaged.write_bytes(bytes(data))
        try:
            loaded = sl.State.load(damaged, opt)
        except ValueError as exc:
            assert str(exc).startswith(f"{damaged} is not a steplab optimizer state file (")
            outcomes["refused"] += 1
        else:
            same_state(state, loaded)
            outcomes["same"] += 1
    assert outcomes["refused"] > 0.8 * len(original)  # the CRC-32 guards the data


def test_every_truncation_is_a_value_error(tmp_path):
    opt, state = adam_state()
    path = tmp_path / "s.npz"
    state.save(path, opt)
    original = path.read_bytes()
    for cut in range(0, len(original), 7):
        path.write_bytes(original[:cut])
        with pytest.raises(ValueError, match="is not a steplab optimizer state file"):
            sl.State.load(path)


def npy(array_header_shape, data: bytes, dtype="<f8") -> bytes:
    stream = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": array_header_shape}
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue() + data


def test_zip_bombs_allocate_nothing(tmp_path):
    cases = {}
    # 1. A compressed member: 16 MB of zeros in a few KB.
    path = tmp_path / "compressed.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__meta__.npy", npy((), b"", dtype="<U0"))
        archive.writestr("m.npy", npy((2 * 1024**2,), bytes(16 * 1024**2)))
    cases[path] = "compressed or too large"
    # 2. A stored member whose header claims 2 GiB but holds 16 bytes.
    path = tmp_path / "liar.npz"
    meta_text = '{"fields": {"m": "ndarray"}}'
    with zipfile.ZipFile(path, "w") as archive:
        stream = io.BytesIO()
        np.lib.format.write_array(stream, np.array(meta_text))
        archive.writestr("__meta__.npy", stream.getvalue())
        archive.writestr("m.npy", npy((2**28,), bytes(16)))
    cases[path] = "does not match its data"
    assert all(p.stat().st_size < 100_000 for p in cases)
    for path, reason in cases.items():
        tracemalloc.start()
        with pytest.raises(ValueError, match=f"{path.name} .*{reason}"):
            sl.State.load(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2 * 1024**2, f"{path.name}: {peak} bytes"


def test_foreign_files_are_one_value_error(tmp_path):
    files = {
        "text.npz": b"not a zip file",
        "empty.npz": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))  # a NumPy archive, not a checkpoint
    np.savez(
        tmp_path / "pickled.npz",
        __meta__=np.array('{"fields": {"s": "ndarray"}}'),
        s=np.array([object()], dtype=object),
    )
    np.savez(tmp_path / "kinds.npz", __meta__=np.array('{"fields": {"t": "int"}}'), t=np.zeros(3))
    np.savez(tmp_path / "json.npz", __meta__=np.array("{not json"))
    (tmp_path / "folder.npz").mkdir()
    reasons = {
        "text.npz": "File is not a zip file",
        "empty.npz": "File is not a zip file",
        "plain.npz": "no __meta__ member",
        "pickled.npz": "never loaded",
        "kinds.npz": "should be a int",
        "json.npz": "JSONDecodeError",
        "folder.npz": "IsADirectoryError",
    }
    for name, reason in reasons.items():
        with pytest.raises(
            ValueError, match=f"{name} is not a steplab optimizer state file .*{reason}"
        ):
            sl.State.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        sl.State.load(tmp_path / "missing.npz")


def test_generic_api_takes_any_named_arrays_and_scalars(tmp_path):
    """checkpoint.py knows no State class: a dict of named arrays and scalars in, the same out."""
    fields = {
        "t": 7,
        "mu": np.float64(0.5).item(),
        "m": np.ones((2, 3), np.float32),
        "flag": True,
        "who": "adam",
        "shape": (2, 3),
    }
    checkpoint.save(tmp_path / "c.npz", fields, {"name": "adam", "lr": 0.1})
    loaded, config = checkpoint.load(tmp_path / "c.npz")
    assert config == {"name": "adam", "lr": 0.1}
    assert loaded.keys() == fields.keys()
    for key, value in fields.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == value.dtype
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value)


# -- steplab.torch state dicts ------------------------------------------------------------


def torch_run(dtype, steps, optimizer=None, param=None):
    import torch

    import steplab.torch as st

    generator = torch.Generator().manual_seed(1)
    if param is None:
        param = torch.nn.Parameter(torch.randn(64, generator=generator).to(dtype))
    optimizer = optimizer or st.Adam([param], lr=1e-2)
    grads = [torch.randn(64, generator=generator) * 1e-4 for _ in range(20)]
    for g in grads[:steps]:
        param.grad = g.to(dtype)
        optimizer.step()
    return param, optimizer, grads


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
def test_torch_low_precision_moments_load_bit_for_bit(dtype_name):
    """torch's base class rounds loaded moments through the parameter's dtype: fp16 moments
    of 1e-4 gradients (r ≈ 1e-11) became 0. They stay float32, and a resumed run is the run."""
    torch = pytest.importorskip("torch")

    import steplab.torch as st

    dtype = getattr(torch, dtype_name)
    param, optimizer, grads = torch_run(dtype, 10)
    saved = optimizer.state_dict()
    resumed_param = torch.nn.Parameter(param.detach().clone())
    resumed = st.Adam([resumed_param], lr=1e-2)
    resumed.load_state_dict(saved)
    for key in ("s", "r"):
        loaded = resumed.state[resumed_param][key]
        assert loaded.dtype == torch.float32
        assert torch.equal(loaded, saved["state"][0][key])
    assert (saved["state"][0]["r"] != 0).all() and saved["state"][0]["r"].max() < 1e-6
    for g in grads[10:]:
        param.grad, resumed_param.grad = g.to(dtype), g.to(dtype)
        optimizer.step()
        resumed.step()
    assert torch.equal(param, resumed_param)
    assert torch.equal(optimizer.state[param]["r"], resumed.state[resumed_param]["r"])


def test_torch_foreign_and_malformed_state_dicts_are_refused_untouched():
    torch = pytest.importorskip("torch")

    import steplab.torch as st

    param, _, _ = torch_run(torch.float32, 2)
    torch_adam = torch.optim.Adam([param])
    param.grad = torch.ones_like(param)
    torch_adam.step()
    fresh = st.Adam([param], lr=1e-2)
    before = [dict(group) for group in fresh.param_groups]
    with pytest.raises(ValueError, match="not a steplab.torch.Adam state dict"):
        fresh.load_state_dict(torch_adam.state_dict())
    _, ours, _ = torch_run(torch.float32, 2, param=torch.nn.Parameter(param.detach().clone()))
    extra = ours.state_dict()
    extra["state"]["momentum_buffer"] = {"t": 1}  # torch itself accepts such a key
    with pytest.raises(ValueError, match="which no param group lists"):
        fresh.load_state_dict(extra)
    renamed = ours.state_dict()
    renamed["state"][0] = {"step": 2, **{k: v for k, v in renamed["state"][0].items() if k != "t"}}
    with pytest.raises(ValueError, match="holds \\['r', 's', 'step'\\], but Adam"):
        fresh.load_state_dict(renamed)
    rmsprop = st.RMSProp([param], lr=1e-2)
    with pytest.raises(ValueError, match="RMSProp.load_state_dict: param group 0 lacks rho"):
        rmsprop.load_state_dict(ours.state_dict())
    with pytest.raises(ValueError, match="needs a dict with 'state' and 'param_groups'"):
        fresh.load_state_dict({"state": {}})
    # Nothing was applied by the refused loads.
    assert len(fresh.state) == 0
    assert [dict(group) for group in fresh.param_groups] == before


# -- round two: overlapping members, stale temporaries, non-regular files, states ---------


def overlapping_zip(count: int) -> bytes:
    """``count`` stored members m0..m{count-1}, each CRC-valid, where m_i's bytes are a
    .npy header followed by m_{i+1}'s local header and bytes: the file grows linearly, the
    members' sizes together quadratically (the issue's 1.42 MB file held 2.2 GiB so)."""
    import struct
    import zlib

    def npy_uint8(length: int) -> bytes:
        stream = io.BytesIO()
        header = {"descr": "|u1", "fortran_order": False, "shape": (length,)}
        np.lib.format.write_array_header_1_0(stream, header)
        return stream.getvalue()

    def local(name: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(payload)
        size = len(payload)
        fixed = struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 33, crc, size, size, len(name), 0
        )
        return fixed + name

    fields = {f"m{i}": "ndarray" for i in range(count)}
    meta = io.BytesIO()
    np.lib.format.write_array(meta, np.array(json.dumps({"fields": fields})))
    entries = [(b"__meta__.npy", meta.getvalue())]
    tail = b""
    chain = []
    for i in reversed(range(count)):
        header = npy_uint8(len(tail))
        payload = header + tail
        tail = local(f"m{i}.npy".encode(), payload) + payload
        chain.append((f"m{i}.npy".encode(), payload, len(header)))
    body = local(*entries[0]) + entries[0][1]
    offsets = [(entries[0][0], entries[0][1], 0)]
    position = len(body)
    for name, payload, header_size in reversed(chain):  # m0 first: each inside the last
        offsets.append((name, payload, position))
        position += 30 + len(name) + header_size
    body += tail
    directory = b""
    for name, payload, offset in offsets:
        crc, size = zlib.crc32(payload), len(payload)
        directory += (
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                33,
                crc,
                size,
                size,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(offsets), len(offsets), len(directory), len(body), 0
    )
    return body + directory + end


def test_overlapping_members_are_refused_before_reading_them(tmp_path):
    """Before: 3,000 such members in 1.42 MB loaded as 2.2 GiB of arrays. 300 here: the
    file is 88 KB, its members hold 7.5 MB together."""
    path = tmp_path / "overlap.npz"
    path.write_bytes(overlapping_zip(300))
    with zipfile.ZipFile(path) as archive:  # zipfile itself reads every member
        assert archive.testzip() is None
        assert sum(m.file_size for m in archive.infolist()) > 50 * path.stat().st_size
    tracemalloc.start()
    with pytest.raises(ValueError, match="overlap.npz .*members together hold more bytes"):
        sl.State.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 1024**2


def test_two_overlapping_members_are_refused_even_within_the_file_size(tmp_path):
    path = tmp_path / "two.npz"
    path.write_bytes(overlapping_zip(2))
    with zipfile.ZipFile(path) as archive:
        assert sum(m.file_size for m in archive.infolist()) <= path.stat().st_size
    with pytest.raises(ValueError, match="two.npz .*members 'm0.npy' and 'm1.npy' overlap"):
        checkpoint.load(path)


def test_npy_header_declaring_fewer_elements_than_its_bytes_is_refused(tmp_path):
    """A member with 3 float64s of bytes whose header says 2: never loaded cut short."""
    path = tmp_path / "short.npz"
    meta = io.BytesIO()
    np.lib.format.write_array(meta, np.array('{"fields": {"m": "ndarray"}}'))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__.npy", meta.getvalue())
        archive.writestr("m.npy", npy((2,), np.arange(3.0).tobytes()))
    with pytest.raises(ValueError, match="short.npz .*shape \\(2,\\) does not match its data"):
        checkpoint.load(path)


def temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_temporaries_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    """A writer killed with SIGKILL inside atomic_write leaves its temporary; the next save
    to the same name removes it (before: 21-27 left after 30 kills, never cleaned)."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "s.npz"
    code = (
        "import sys, time\n"
        "from steplab._io import atomic_write\n"
        f"with atomic_write({str(path)!r}) as stream:\n"
        "    stream.write(b'x' * 1000); stream.flush()\n"
        "    print('writing', flush=True); time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline() == b"writing\n"  # a condition, not a sleep
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    # Each writer removed its killed predecessors' temporaries: only the last one is left.
    assert [name.split(".")[3] for name in temporaries(tmp_path)] == [str(child.pid)]
    # A temporary of a process that still runs is someone's save in progress: kept.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (tmp_path / f".s.npz.{live.pid}.{'0' * 16}.tmp").write_bytes(b"in progress")
        opt, state = adam_state()
        state.save(path, opt)
        assert temporaries(tmp_path) == [f".s.npz.{live.pid}.{'0' * 16}.tmp"]
        assert live.poll() is None  # asked whether it runs (signal 0), never signalled
        same_state(state, sl.State.load(path, opt))
    finally:
        live.kill()
        live.wait()


def test_saving_never_replaces_a_link_fifo_or_device(tmp_path):
    import os

    opt, state = adam_state()
    target = tmp_path / "target.npz"
    target.write_bytes(b"someone's file")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    cases = {
        link: "a symbolic link",
        fifo: "a FIFO",
        folder: "a folder",
        "/dev/null": "a device",
    }
    for path, kind in cases.items():
        with pytest.raises(ValueError, match=f"{path} is {kind}; steplab only replaces regular"):
            state.save(path, opt)
    assert link.is_symlink() and target.read_bytes() == b"someone's file"
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert fifo.is_fifo() and folder.is_dir()
    assert temporaries(tmp_path) == []


def test_saving_never_touches_the_process_umask(tmp_path, monkeypatch):
    """Another thread creating a file while the umask was 0 got a world-writable file."""
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(0o022)
    try:

        def forbidden(mask):
            raise AssertionError("os.umask called")

        monkeypatch.setattr(os, "umask", forbidden)
        opt, state = adam_state()
        state.save(tmp_path / "s.npz", opt)
        assert stat.S_IMODE((tmp_path / "s.npz").stat().st_mode) == 0o644
    finally:
        monkeypatch.undo()
        os.umask(umask)


def crafted(tmp_path, opt_name="adam", **changes):
    opt = sl.make(opt_name, amsgrad=True) if opt_name == "adam" else sl.make(opt_name)
    state = opt.init(np.ones(3))
    opt.step(np.ones(3), np.array([1.0, -2.0, 3.0]), state)
    fields = dict(vars(state))
    for key, value in changes.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    path = tmp_path / "crafted.npz"
    checkpoint.save(path, fields, opt.config())
    return path, opt


@pytest.mark.parametrize(
    ("opt_name", "changes", "message"),
    [
        ("adam", {"t": -5}, "t must be an integer >= 0, got -5"),
        ("adam", {"r": np.array([1.0, -1e-3, 2.0])}, "r holds negative values"),
        ("adam", {"r_max": np.array([1.0, -1.0, 2.0])}, "r_max holds negative values"),
        ("adam", {"r": np.array([1.0, np.nan, 2.0])}, "r holds NaN"),
        ("adam", {"s": np.array([1.0, np.nan, 2.0])}, "s holds NaN"),
        ("adam", {"extra": 1}, "adam's state has no field extra"),
        ("adam", {"r_max": None}, "holds the moments r, s, but adam .* keeps r, r_max, s"),
        ("adam", {"s": np.ones(3, np.float32)}, "moment s must be an array of shape"),
        ("adam", {"s": np.ones(4)}, "moment s must be an array of shape"),
        ("adam", {"s": 0.0}, "moment s must be an array"),
        ("adam", {"made_by": "bogus"}, "made_by 'bogus' is not one of"),
        ("adam", {"t": None}, "no field t"),
        ("adam", {"skipped": -1}, "skipped must be an integer >= 0"),
        ("adam", {"impl": "gpu"}, "impl must be one of numpy, fused"),
        ("adam", {"dtype": "<i8"}, "dtype must name a floating dtype"),
        ("adagrad", {"r": np.array([1.0, -1.0, 2.0])}, "r holds negative values"),
        ("adadelta", {"u": np.array([1.0, -1.0, 2.0])}, "u holds negative values"),
        ("nadam", {"mu_product": float("nan")}, "mu_product holds NaN"),
        ("nadam", {"mu_product": "abc"}, "mu_product must be a number"),
        ("rmsprop", {"r": np.array([-1.0, 1.0, 2.0])}, "r holds negative values"),
    ],
)
def test_loaded_states_are_checked_as_states(tmp_path, opt_name, changes, message):
    """Before: t = -5, negative or NaN second moments and unknown fields loaded, and the
    next step gave NaN parameters silently."""
    path, opt = crafted(tmp_path, opt_name, **changes)
    fields, config = checkpoint.load(path)
    for optimizer in (opt, None):  # given to State.load, or rebuilt from the file
        expected = f"crafted.npz is not a valid optimizer state .*{message}"
        with pytest.raises(ValueError, match=expected):
            checkpoint.check_state(path, fields, config, optimizer)


def test_state_load_checks_the_state(tmp_path):
    """State.load calls check_state (optim/base.py: one line)."""
    path, opt = crafted(tmp_path, t=-5)
    with pytest.raises(ValueError, match="t must be an integer >= 0"):
        sl.State.load(path, opt)


def test_signed_moments_may_be_negative_and_inf_accumulators_load(tmp_path):
    """First moments (Adam's s, centred RMSProp's m, Lion's m) change sign; an accumulator
    that overflowed to +inf (float16) is a state the rule steps from finitely."""
    for opt in (sl.Adam(), sl.RMSProp(centered=True, momentum=0.9), sl.Lion()):
        theta = np.ones(3)
        state = opt.init(theta)
        opt.step(theta, np.array([-1.0, -2.0, 3.0]), state)
        if opt.name == "adam":
            state.r[0] = np.inf
        state.save(tmp_path / "s.npz", opt)
        same_state(state, sl.State.load(tmp_path / "s.npz", opt))
        assert sl.State.load(tmp_path / "s.npz").t == 1


def test_stale_temporaries_are_listed_and_another_users_writer_is_kept(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from steplab import _io

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".s.npz.{dead.pid}.{'a' * 16}.tmp"
    stale.write_bytes(b"killed")
    other = tmp_path / f".s.npz.{dead.pid + 1}.{'b' * 16}.tmp"
    other.write_bytes(b"someone else's save")
    unrelated = tmp_path / ".t.npz.1.0000000000000000.tmp"
    unrelated.write_bytes(b"another file's")
    real_kill = os.kill
    signals = []

    def kill(pid, sig):
        signals.append(sig)
        if pid == dead.pid + 1:  # a process of another user: it runs, we may not signal it
            raise PermissionError(1, "Operation not permitted")
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    assert _io.remove_stale_temporaries(tmp_path / "s.npz") == [stale]
    assert not stale.exists() and other.exists() and unrelated.exists()
    assert signals == [0, 0]  # asked whether each writer runs; never signalled


def patched_member(path, name: str, extra: int):
    """Rewrite ``path`` so that member ``name`` claims ``extra`` more bytes than it has
    (its .npy shape, sizes and CRC all consistent): they are the next bytes of the file."""
    import struct
    import zlib

    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        start_dir = archive.start_dir
    local = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[local + 26 : local + 30])
    begin = local + 30 + name_length + extra_length
    size = info.file_size + extra
    payload = bytes(data[begin : begin + size])
    header = payload[:128].decode("latin-1")
    old_shape = f"({info.file_size - 128},)"
    new_shape = f"({size - 128},)"
    assert old_shape in header and len(old_shape) == len(new_shape)
    payload = payload.replace(old_shape.encode(), new_shape.encode(), 1)
    data[begin : begin + size] = payload
    crc = zlib.crc32(payload)
    central = data.index(b"PK\x01\x02" + data[start_dir + 4 : start_dir + 6], start_dir)
    while True:  # find the member's central directory entry
        n, e, c = struct.unpack("<HHH", data[central + 28 : central + 34])
        if data[central + 46 : central + 46 + n] == name.encode():
            break
        central += 46 + n + e + c
    struct.pack_into("<III", data, central + 16, crc, size, size)
    struct.pack_into("<III", data, local + 14, crc, size, size)
    path.write_bytes(bytes(data))


def two_member_archive(path):
    meta = io.BytesIO()
    np.lib.format.write_array(meta, np.array('{"fields": {"a": "ndarray", "b": "ndarray"}}'))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__.npy", meta.getvalue())
        archive.writestr("a.npy", npy((4,), bytes(4), dtype="|u1"))
        archive.writestr("b.npy", npy((4,), bytes(4), dtype="|u1"))


def test_members_overlapping_by_one_byte_are_refused_and_adjacent_ones_load(tmp_path):
    """The exact boundary: a member ending where the next one begins is fine; one byte
    into the next member's header, or into the ZIP directory, is an overlap."""
    path = tmp_path / "adjacent.npz"
    two_member_archive(path)
    assert set(checkpoint.load(path)[0]) == {"a", "b"}
    into_next = tmp_path / "into_next.npz"
    two_member_archive(into_next)
    patched_member(into_next, "a.npy", 1)
    with zipfile.ZipFile(into_next) as archive:
        assert archive.read("a.npy")[-1:] == b"P"  # CRC-valid, its last byte is b's "PK"
    with pytest.raises(ValueError, match="members 'a.npy' and 'b.npy' overlap"):
        checkpoint.load(into_next)
    into_directory = tmp_path / "into_directory.npz"
    two_member_archive(into_directory)
    patched_member(into_directory, "b.npy", 1)
    with pytest.raises(ValueError, match="member 'b.npy' overlaps the ZIP directory"):
        checkpoint.load(into_directory)


def test_a_member_missing_from_the_fields_is_named(tmp_path):
    path = tmp_path / "missing.npz"
    np.savez(path, __meta__=np.array('{"fields": {"t": "int", "s": "ndarray"}}'), t=np.array(1))
    with pytest.raises(ValueError, match=r"missing \['s.npy'\], extra \[\]"):
        checkpoint.load(path)


def test_state_checks_at_the_edges(tmp_path):
    """An empty theta's state (shape (0,)) is a state; a negative size is not; a
    hyperparameter array that does not fit the state's shape is named; a configuration
    that no longer builds (a file from another version) falls back to the defaults."""
    opt = sl.Adam()
    empty = opt.init(np.zeros(0))
    fields = dict(vars(empty))
    checkpoint.check_state("e.npz", fields, opt.config(), None)
    with pytest.raises(ValueError, match="shape must be a tuple of sizes >= 0"):
        checkpoint.check_state("e.npz", {**fields, "shape": (-1,)}, opt.config(), opt)
    per_row = sl.Adam(lr=np.array([0.1, 0.2]))
    state = vars(sl.Adam().init(np.zeros(3)))
    with pytest.raises(ValueError, match="lr of shape \\(2,\\) does not broadcast"):
        checkpoint.check_state("r.npz", state, per_row.config(), per_row)
    checkpoint.check_state("old.npz", state, {"name": "adam", "lr": -1.0, "gone": 1}, None)


def test_one_public_function_says_which_state_must_be_nonnegative():
    """``nonnegative_state`` reads it from the rule (no optimizer named): second moments,
    Adadelta's accumulated updates, Nadam's running product of μ; first moments and Lion's
    momentum change sign. Asked for names, it answers among those (a name the rule does
    not keep is never in it). State.load and steplab.torch both ask this one function
    (before: two copies of the probe)."""
    nonnegative_state = checkpoint.nonnegative_state
    assert nonnegative_state(sl.Adam()) == {"r"}
    assert nonnegative_state(sl.Adam(amsgrad=True)) == {"r", "r_max"}
    assert nonnegative_state(sl.Nadam()) == {"r", "mu_product"}
    assert nonnegative_state(sl.AdaDelta()) == {"r", "u"}
    assert nonnegative_state(sl.Lion()) == frozenset()
    assert nonnegative_state(sl.Momentum()) == frozenset()
    assert nonnegative_state(sl.Adam(), ["s"]) == frozenset()
    assert nonnegative_state(sl.Adam(), ["r", "not_kept"]) == {"r"}
    assert nonnegative_state(sl.Adam(lr=np.array([1e-3, 1e-1]))) == {"r"}  # arrays of lr
    torch_validation = pytest.importorskip("steplab.torch.validation")
    assert torch_validation.nonnegative_state is nonnegative_state
