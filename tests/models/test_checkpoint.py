"""The model file: round trips, atomic saves, refusing unsafe or foreign files, fine-tune checks."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from napari_cellseg import __version__
from napari_cellseg.errors import CellsegError
from napari_cellseg.models import ModelSpec, build_model
from napari_cellseg.models.checkpoint import (
    FORMAT_VERSION,
    check_compatible,
    export_model,
    get_rng_state,
    load_checkpoint,
    load_model,
    save_checkpoint,
    set_rng_state,
)

SPEC = ModelSpec("omni", nchan=2, nclasses=3, nbase=(4, 8, 16), blocks_per_level=1)
META = {
    "normalization": {"method": "percentile", "lower": 1.0, "upper": 99.8},
    "diameter": np.float32(17.5),
    "config": {"learning_rate": 0.1, "nbase": (4, 8, 16), "dir": Path("/data/train")},
}


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(SPEC)
    net.train()
    net(torch.randn(2, 2, 16, 16))  # move the batch-norm statistics away from their defaults
    return net.eval()


def test_save_then_load_gives_identical_weights_outputs_and_description(tmp_path, model):
    path = save_checkpoint(tmp_path / "models" / "m.pt", model, SPEC, META, epoch=3)
    ckpt = load_checkpoint(path)
    assert ckpt.spec == SPEC and ckpt.epoch == 3 and ckpt.format_version == FORMAT_VERSION
    assert ckpt.state_dict.keys() == model.state_dict().keys()
    assert all(torch.equal(v, ckpt.state_dict[k]) for k, v in model.state_dict().items())
    assert ckpt.meta["diameter"] == 17.5 and isinstance(ckpt.meta["diameter"], float)
    assert ckpt.meta["normalization"] == META["normalization"]
    assert ckpt.meta["config"] == {"learning_rate": 0.1, "nbase": [4, 8, 16], "dir": "/data/train"}
    assert ckpt.meta["package_version"] == __version__ and ckpt.meta["created"]
    loaded, _ = load_model(path)
    assert not loaded.training
    x = torch.randn(1, 2, 24, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_channels_last_weights_are_saved_in_the_standard_layout(tmp_path, model):
    model = model.to(memory_format=torch.channels_last)
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, SPEC, {}))
    assert all(v.is_contiguous() for v in ckpt.state_dict.values())


def test_yaml_beside_the_model_describes_it_and_loads_it(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.pt", model, SPEC, META, epoch=5)
    info = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert info["model"] == "m.pt" and info["epoch"] == 5
    assert info["spec"]["nchan"] == 2 and info["spec"]["nbase"] == [4, 8, 16]
    assert info["meta"]["config"]["learning_rate"] == 0.1
    assert info["meta"]["diameter"] == 17.5
    assert load_checkpoint(tmp_path / "m.yaml").path == path


def test_yaml_without_model_key_finds_the_model_with_the_same_stem(tmp_path, model):
    save_checkpoint(tmp_path / "m.pth", model, SPEC, {})
    (tmp_path / "m.yaml").write_text("spec: {arch: omni}\n")
    assert load_checkpoint(tmp_path / "m.yaml").path == tmp_path / "m.pth"


def test_no_yaml_is_written_when_not_asked(tmp_path, model):
    save_checkpoint(tmp_path / "m.pt", model, SPEC, {}, write_yaml=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_meta_with_an_object_a_model_file_cannot_hold_is_a_programming_error(tmp_path, model):
    with pytest.raises(TypeError, match=r"meta\.config\.callback"):
        save_checkpoint(tmp_path / "m.pt", model, SPEC, {"config": {"callback": print}})
    assert not list(tmp_path.iterdir())


def test_failed_save_leaves_the_previous_file_untouched_and_no_temporary_file(
    tmp_path, model, monkeypatch
):
    path = save_checkpoint(tmp_path / "m.pt", model, SPEC, {}, epoch=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def interrupted_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, SPEC, {}, epoch=2)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    assert load_checkpoint(path).epoch == 1


class _RunsCodeOnLoad:
    """Unpickling this creates the marker file: what a malicious model file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(("writer", "protocol"), [("torch", 2), ("pickle", 2), ("pickle", 5)])
def test_model_file_crafted_to_run_code_is_refused_without_running_it(tmp_path, writer, protocol):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    payload = {
        "format": "napari-cellseg",
        "format_version": 1,
        "spec": SPEC.to_dict(),
        "state_dict": {},
        "meta": {"x": _RunsCodeOnLoad(marker)},
    }
    with open(path, "wb") as f:
        if writer == "torch":
            torch.save(payload, f, pickle_protocol=protocol)
        else:
            pickle.dump(payload, f, protocol=protocol)
    with pytest.raises(CellsegError, match="evil.pt.*not a napari-cellseg model file") as err:
        load_checkpoint(path)
    if protocol == 2:  # torch's own protocol: the refused object is recognised as code
        assert "could run code" in str(err.value)
    with pytest.raises(CellsegError, match="not a napari-cellseg model file"):
        load_model(path)
    assert not marker.exists()
    # the file really is malicious: an unrestricted load runs the payload
    if writer == "torch":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())  # noqa: S301
    assert marker.exists()


def test_bare_state_dict_is_refused_as_not_self_describing(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "omnipose_model")
    with pytest.raises(CellsegError, match="not a napari-cellseg model file.*bare weights"):
        load_checkpoint(tmp_path / "omnipose_model")


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"just some text\n", "notes.txt"), (b"", "empty.pt"), (b"\x89PNG\r\n\x1a\n....", "a.png")],
)
def test_non_model_files_are_refused_with_the_file_named(tmp_path, content, name):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CellsegError, match=rf"{name} is not a napari-cellseg model file"):
        load_checkpoint(tmp_path / name)


def test_truncated_model_file_is_refused(tmp_path, model):
    path = save_checkpoint(tmp_path / "m.pt", model, SPEC, {})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CellsegError, match="m.pt is not a napari-cellseg model file"):
        load_checkpoint(path)


def test_other_torch_files_are_refused(tmp_path):
    torch.save({"format": "something-else", "weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CellsegError, match="without the napari-cellseg header"):
        load_checkpoint(tmp_path / "x.pt")


def test_missing_file_and_folder_are_reported(tmp_path):
    with pytest.raises(CellsegError, match="nope.pt not found"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CellsegError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_file_from_a_newer_napari_cellseg_asks_for_an_upgrade(tmp_path):
    torch.save(
        {"format": "napari-cellseg", "format_version": FORMAT_VERSION + 1}, tmp_path / "new.pt"
    )
    with pytest.raises(CellsegError, match="newer napari-cellseg.*upgrade"):
        load_checkpoint(tmp_path / "new.pt")


def test_weights_that_do_not_fit_the_stored_spec_are_reported(tmp_path, model):
    other = ModelSpec("omni", nchan=2, nclasses=3, nbase=(4, 8, 32), blocks_per_level=1)
    path = save_checkpoint(tmp_path / "m.pt", model, other, {})
    with pytest.raises(CellsegError, match="do not fit the architecture"):
        load_model(path)


def test_fine_tuning_with_other_nchan_says_what_to_pass():
    with pytest.raises(CellsegError) as err:
        check_compatible(SPEC, nchan=1, nclasses=3, dim=2, arch="omni", source="bact.pt")
    assert str(err.value) == (
        "model bact.pt was trained with --nchan 2, you passed --nchan 1: pass --nchan 2 or "
        "train from scratch (without --pretrained_model)"
    )


def test_fine_tuning_mismatch_lists_every_differing_setting():
    with pytest.raises(CellsegError) as err:
        check_compatible(SPEC, nchan=1, nclasses=2, dim=3, arch="omni", source="m.pt")
    msg = str(err.value)
    assert "trained with --nchan 2 and --nclasses 3 and --dim 2" in msg
    assert "you passed --nchan 1 and --nclasses 2 and --dim 3" in msg
    assert "pass --nchan 2 --nclasses 3 --dim 2 or train from scratch" in msg


def test_fine_tuning_another_family_names_the_architecture_not_nclasses():
    with pytest.raises(CellsegError, match="--architecture omni, you passed --architecture dcan:"):
        check_compatible(SPEC, nchan=2, nclasses=2, dim=2, arch="dcan")


def test_matching_settings_are_compatible_and_nclasses_only_matters_for_omni():
    check_compatible(SPEC, nchan=2, nclasses=3, dim=2, arch="omni")
    check_compatible(ModelSpec("unet", nclasses=2), nchan=1, nclasses=1, dim=2, arch="unet")


def test_rng_states_round_trip_through_a_model_file(tmp_path, model):
    gen = np.random.default_rng(5)
    torch.manual_seed(1)
    random.seed(2)
    state = get_rng_state(gen)
    expected = (torch.rand(3), gen.random(3), random.random())
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, SPEC, {}, rng_state=state))
    gen2 = np.random.default_rng(99)
    set_rng_state(ckpt.rng, gen2)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(gen2.random(3), expected[1])
    assert random.random() == expected[2]


def _steps(model, opt, gen, n):
    for _ in range(n):
        x = torch.from_numpy(gen.standard_normal((2, 1, 16, 16), dtype=np.float32))
        opt.zero_grad()
        out = model(x)  # dropout draws from torch's RNG, the batch from the numpy generator
        target = (x > 0).float().expand_as(out)
        torch.nn.functional.binary_cross_entropy_with_logits(out, target).backward()
        opt.step()


def _fresh(spec, seed):
    torch.manual_seed(seed)
    model = build_model(spec).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2), np.random.default_rng(seed)


@pytest.mark.parametrize("arch", ["unet", "dcan"])
def test_resuming_from_a_checkpoint_gives_the_weights_of_an_uninterrupted_run(tmp_path, arch):
    spec = ModelSpec(arch, nbase=(4, 8), blocks_per_level=1, dropout=0.2)
    straight, opt, gen = _fresh(spec, 0)
    _steps(straight, opt, gen, 4)

    first, opt, gen = _fresh(spec, 0)
    _steps(first, opt, gen, 2)
    save_checkpoint(
        tmp_path / "run.pt",
        first,
        spec,
        {},
        optimizer=opt,
        epoch=2,
        rng_state=get_rng_state(gen),
        scheduler_state={"last_epoch": 2},
    )
    del first, opt, gen

    ckpt = load_checkpoint(tmp_path / "run.pt")
    resumed, opt, gen = _fresh(ckpt.spec, 123)
    resumed.load_state_dict(ckpt.state_dict)
    opt.load_state_dict(ckpt.optimizer_state)
    set_rng_state(ckpt.rng, gen)
    assert ckpt.epoch == 2 and ckpt.scheduler_state == {"last_epoch": 2}
    _steps(resumed, opt, gen, 2)

    expected = straight.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in resumed.state_dict().items())


def test_export_keeps_weights_and_description_and_drops_the_training_state(tmp_path, model):
    src = save_checkpoint(
        tmp_path / "run.pt",
        model,
        SPEC,
        {"diameter": 30.0},
        optimizer=torch.optim.AdamW(model.parameters()),
        epoch=7,
    )
    dst = export_model(src, tmp_path / "slim" / "nuclei.pt", meta={"description": "test"})

    slim = load_checkpoint(dst)
    assert slim.optimizer_state is None and slim.rng is None and slim.epoch == 7
    assert slim.meta["diameter"] == 30.0 and slim.meta["description"] == "test"
    full = load_checkpoint(src)
    assert all(torch.equal(full.state_dict[k], v) for k, v in slim.state_dict.items())
    assert (tmp_path / "slim" / "nuclei.yaml").is_file()


@pytest.mark.parametrize(
    "dump",
    [
        lambda f: pickle.dump({"weights": [1.0, 2.0]}, f, protocol=4),
        lambda f: pickle.dump({"state": {"w": 1}}, f, protocol=5),
    ],
)
def test_a_pickle_that_is_not_a_weights_file_gets_our_message_not_torchs(tmp_path, dump):
    path = tmp_path / "foreign.pt"
    with open(path, "wb") as f:
        dump(f)
    with pytest.raises(CellsegError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"refused to load {path}") and "could run code" in message
    # torch's own text invites an unrestricted load: it must never reach the user
    assert "weights_only" not in message and "will likely succeed" not in message
