"""PANNs-format checkpoints: built here with PANNs' key names and shapes, loaded from a file and
from a URL on 127.0.0.1 (downloaded once, SHA-256 checked), then fine-tuned for 2 epochs."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from asc_sweep.errors import SpecError
from asc_sweep.models import ModelSpec, build_model
from asc_sweep.models.pretrained import PretrainedError, fetch, load_panns, set_features_frozen
from asc_sweep.run.train import train_and_evaluate
from asc_sweep.sweep.config import RunConfig


def panns_checkpoint(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """A checkpoint as PANNs' training code saves it: {"model": state_dict, ...}."""
    kernel, layers = (5, 1) if arch == "cnn6" else (3, 2)
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, n: int) -> None:
        state.update({f"{prefix}.weight": torch.rand(n, generator=g) + 0.5,
                      f"{prefix}.bias": torch.randn(n, generator=g) * 0.1,
                      f"{prefix}.running_mean": torch.randn(n, generator=g) * 0.1,
                      f"{prefix}.running_var": torch.rand(n, generator=g) + 0.5,
                      f"{prefix}.num_batches_tracked": torch.tensor(1000)})  # fmt: skip

    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(513, 1, 1024, generator=g)
    state["spectrogram_extractor.stft.conv_imag.weight"] = torch.randn(513, 1, 1024, generator=g)
    state["logmel_extractor.melW"] = torch.rand(513, 64, generator=g)
    bn("bn0", 64)
    c_in = 1
    for i, c_out in enumerate((64, 128, 256, 512), start=1):
        for j in range(1, layers + 1):
            fan_in = c_in if j == 1 else c_out
            state[f"conv_block{i}.conv{j}.weight"] = (
                torch.randn(c_out, fan_in, kernel, kernel, generator=g) * 0.05
            )
            bn(f"conv_block{i}.bn{j}", c_out)
        c_in = c_out
    state["fc1.weight"] = torch.randn(512, 512, generator=g) * 0.05
    state["fc1.bias"] = torch.zeros(512)
    state["fc_audioset.weight"] = torch.randn(527, 512, generator=g) * 0.05
    state["fc_audioset.bias"] = torch.zeros(527)
    torch.save({"model": state, "iteration": 600000}, path)
    return state


@pytest.mark.parametrize("arch", ["cnn6", "cnn10"])
def test_a_panns_checkpoint_loads_every_feature_layer(arch: str, tmp_path: Path) -> None:
    state = panns_checkpoint(tmp_path / "panns.pth", arch)
    model = build_model(arch, ModelSpec(n_classes=4, n_mels=64, sample_rate=32000))
    head = model.state_dict()["fc_out.weight"].clone()
    loaded = load_panns(model, tmp_path / "panns.pth", layers=1 if arch == "cnn6" else 2)
    own = model.state_dict()
    assert torch.equal(own["blocks.0.convs.0.weight"], state["conv_block1.conv1.weight"])
    assert torch.equal(own["blocks.3.convs.1.running_var"], state["conv_block4.bn1.running_var"])
    if arch == "cnn10":
        assert torch.equal(own["blocks.2.convs.3.weight"], state["conv_block3.conv2.weight"])
        assert torch.equal(own["blocks.2.convs.4.bias"], state["conv_block3.bn2.bias"])
    assert torch.equal(own["bn0.running_mean"], state["bn0.running_mean"])
    assert torch.equal(own["fc1.weight"], state["fc1.weight"])
    assert torch.equal(own["fc_out.weight"], head)  # the dataset's head is not AudioSet's
    assert not any(name.startswith("fc_out") for name in loaded)


def test_the_wrong_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    panns_checkpoint(tmp_path / "cnn6.pth", "cnn6")
    cnn10 = build_model("cnn10", ModelSpec(n_classes=4, n_mels=64, sample_rate=32000))
    with pytest.raises(PretrainedError, match="not a PANNs CNN10 checkpoint"):
        load_panns(cnn10, tmp_path / "cnn6.pth", layers=2)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError, match=r"junk\.pth: not a PyTorch checkpoint"):
        load_panns(cnn10, tmp_path / "junk.pth", layers=2)
    with pytest.raises(SpecError, match="PANNs weights fit cnn6 and cnn10, not arch crnn"):
        RunConfig.from_dict({"arch": "crnn", "pretrained": str(tmp_path / "cnn6.pth")})
    with pytest.raises(SpecError, match="trained on 64 mel bands"):
        RunConfig.from_dict(
            {"arch": "cnn6", "n_mels": 40, "pretrained": str(tmp_path / "cnn6.pth")}
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A folder served over HTTP on 127.0.0.1 (nothing leaves the machine); logs each GET."""
    hits: list[str] = []
    folder = tmp_path / "www"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    thread.join()


def test_a_url_is_downloaded_once_and_checked(
    served: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, hits = served
    panns_checkpoint(tmp_path / "www" / "Cnn6_mAP=0.343.pth", "cnn6")
    digest = hashlib.sha256((tmp_path / "www" / "Cnn6_mAP=0.343.pth").read_bytes()).hexdigest()
    url = f"{base}/Cnn6_mAP=0.343.pth"
    first = fetch(url, tmp_path / "cache", digest)
    second = fetch(url, tmp_path / "cache", digest)
    assert first == second and first.parent == tmp_path / "cache" and len(hits) == 1
    with pytest.raises(PretrainedError, match=r"SHA-256 is \w+, expected 00"):
        fetch(url, tmp_path / "cache", "00" * 32)
    with pytest.raises(PretrainedError, match="cannot download"):
        fetch(f"{base}/missing.pth", tmp_path / "cache")


def test_a_pretrained_cnn6_fine_tunes_for_two_epochs(
    synth_root: Path, served: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, hits = served
    panns_checkpoint(tmp_path / "www" / "cnn6.pth", "cnn6")
    monkeypatch.setenv("ASC_SWEEP_CACHE", str(tmp_path / "cache"))
    config = RunConfig.from_dict({
        "dataset": "synth", "data_root": str(synth_root), "arch": "cnn6", "sample_rate": 16000,
        "n_mels": 64, "f_max": 8000, "epochs": 2, "batch_size": 8, "crop_seconds": 0.5,
        "patience": 0, "device": "cpu", "val_fraction": 0.25,
        "pretrained": f"{base}/cnn6.pth", "freeze_epochs": 1,
    })  # fmt: skip
    result = train_and_evaluate(config)
    assert result.epochs_run == 2 and 0.0 <= result.test["accuracy"] <= 1.0
    assert hits == ["/cnn6.pth"] and (tmp_path / "cache" / "weights").is_dir()


def test_freezing_leaves_only_the_output_layer_trainable() -> None:
    model = build_model("cnn6", ModelSpec(n_classes=4, n_mels=64, sample_rate=32000))
    set_features_frozen(model, True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc_out.weight", "fc_out.bias"}
    set_features_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())
