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


def _generate(engine, model, prompt, seed=3, negative=""):
    from inference.jobs import Generate

    job = Generate(prompt=prompt, negative_prompt=negative, model=ModelRef(str(model)), steps=1, seed=seed,
                   scheduler="euler", width=64, height=64, runtime="torch")
    image, _resolved, _timings, _info = engine.run(1, job, lambda _p: None, lambda: False)
    return image


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_sdxl"])
def test_a_prompt_seen_before_is_not_encoded_again_and_draws_the_same(request, model):
    """The prompt-embedding memory: a new seed with the same words skips the text encoders,
    and the picture is the one a fresh encoding gives."""
    import numpy as np

    from inference.engine import Engine

    folder = request.getfixturevalue(model)
    engine = Engine(max_models=1)
    try:
        first = _generate(engine, folder, "a red apple", seed=3)
        (loaded,) = engine.loaded_models()
        encoders = [m for m in (loaded.pipe.text_encoder, getattr(loaded.pipe, "text_encoder_2", None)) if m is not None]
        counters = []
        for encoder in encoders:  # count the encoder's real forward under the memory
            counted = []
            inner = encoder.forward.__kwdefaults__["_forward"]
            encoder.forward.__kwdefaults__["_forward"] = lambda *a, _inner=inner, _c=counted, **k: (_c.append(1), _inner(*a, **k))[1]
            counters.append(counted)
        again = _generate(engine, folder, "a red apple", seed=3)
        assert np.array_equal(np.asarray(first), np.asarray(again))
        assert all(c == [] for c in counters), "the text encoders ran again for a prompt they had seen"
        _generate(engine, folder, "a red apple", seed=4)
        assert all(c == [] for c in counters)
        other = _generate(engine, folder, "a blue pear", seed=3)
        assert all(len(c) >= 1 for c in counters), "a new prompt must be encoded"
        assert not np.array_equal(np.asarray(first), np.asarray(other))
    finally:
        engine.unload()


def test_the_prompt_memory_is_bounded_and_forgets_the_oldest(tiny_sd):
    from inference.engine import Engine

    engine = Engine(max_models=1)
    try:
        for index in range(diffusers_backend.PROMPT_MEMORY + 3):
            _generate(engine, tiny_sd, f"prompt number {index}")
        (loaded,) = engine.loaded_models()
        memory = loaded.pipe.text_encoder.remembered_prompts
        assert len(memory) <= diffusers_backend.PROMPT_MEMORY * 2
        assert len(memory) >= diffusers_backend.PROMPT_MEMORY
        diffusers_backend.remember_prompts(loaded.pipe)  # idempotent: the same memory stays
        assert loaded.pipe.text_encoder.remembered_prompts is memory
    finally:
        engine.unload()
