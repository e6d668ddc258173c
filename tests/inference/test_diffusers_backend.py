"""The diffusers backend's loading errors, on the tiny models of tests/tiny_models.py."""

import pytest

from inference.backends import diffusers_backend
from inference.jobs import BadInput, LoraRef, ModelRef, NetworkUnavailable


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_a_lora_file_that_does_not_exist_is_named_as_not_found(tiny_sd, tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    source = str(tmp_path / "styles" / "watercolour.safetensors") if where == "absolute" else "watercolour.safetensors"
    ref = ModelRef(str(tiny_sd), loras=(LoraRef(source, 0.8),))
    with pytest.raises(BadInput, match=r"The LoRA file watercolour\.safetensors was not found") as caught:
        diffusers_backend.load(ref)
    assert "network" not in caught.value.message and "downloaded" not in caught.value.message
    assert str(tmp_path / "styles" / "watercolour.safetensors" if where == "absolute"
               else tmp_path / "watercolour.safetensors") in caught.value.details


def test_a_lora_repo_id_not_in_the_cache_offline_says_so(tiny_sd):
    ref = ModelRef(str(tiny_sd), loras=(LoraRef("quickbrush-tests/no-such-lora"),))
    with pytest.raises(NetworkUnavailable, match="not downloaded yet"):
        diffusers_backend.load(ref)
