"""Few-step models get their recipe from their name, without the designer knowing."""

import pytest

from inference.models.presets import DEFAULT_PRESET, SCHEDULERS, match_preset, with_steps_from_name


@pytest.mark.parametrize(
    "names, expected, steps, guidance, scheduler",
    [
        (["stabilityai/sd-turbo"], "sd-turbo", 1, 0.0, "euler_trailing"),
        (["stabilityai/sdxl-turbo"], "sdxl-turbo", 1, 0.0, "euler_trailing"),
        (["IDKiro/sdxs-512-0.9"], "sdxs", 1, 0.0, "euler_trailing"),
        (["latent-consistency/lcm-lora-sdv1-5", "runwayml/stable-diffusion-v1-5"], "lcm-lora", 4, 1.0, "lcm"),
        (["SimianLuo/LCM_Dreamshaper_v7"], "lcm", 4, 8.0, "lcm"),
        (["Hyper-SD15-8steps-lora.safetensors", "sd15"], "hyper-sd", 8, 0.0, "ddim_trailing"),
        (["Hyper-SD15-1step-lora.safetensors"], "hyper-sd-1step", 1, 0.0, "tcd"),
        (["h1t/TCD-SD15-LoRA"], "tcd", 4, 0.0, "tcd"),
        (["timbrooks/instruct-pix2pix"], "instruct-pix2pix", 10, 7.0, "euler_a"),
        (["runwayml/stable-diffusion-v1-5"], "default", 20, 7.0, "dpmpp_2m_karras"),
    ],
)
def test_presets_by_name(names, expected, steps, guidance, scheduler):
    preset = with_steps_from_name(match_preset(names), names)
    assert (preset.name, preset.steps, preset.guidance, preset.scheduler) == (expected, steps, guidance, scheduler)
    assert preset.scheduler in SCHEDULERS


def test_a_lora_name_decides_over_the_base_model():
    assert match_preset(["lcm-lora-sdv1-5", "my-sd-turbo-merge"]).name == "lcm-lora"


def test_explicit_preset_wins_and_unknown_preset_is_refused():
    assert match_preset(["whatever"], explicit="sd-turbo").name == "sd-turbo"
    assert match_preset(["sd-turbo"], explicit="default") is DEFAULT_PRESET
    with pytest.raises(KeyError, match="Unknown preset"):
        match_preset([], explicit="nope")


def test_few_step_presets_stay_few_step():
    for name in ("sd-turbo", "sdxl-turbo", "sdxs", "lcm-lora", "hyper-sd", "tcd"):
        preset = match_preset([], explicit=name)
        assert preset.few_step and 1 <= preset.steps <= 8


def test_guidance_by_steps_picks_the_entry_at_or_below_the_step_count():
    from inference.models.presets import Preset, guidance_for

    assert guidance_for(4, 2.0, {}) == 2.0
    by_steps = {1: 1.0, 2: 1.5, 4: 3.0}
    assert [guidance_for(n, 2.0, by_steps) for n in (1, 2, 3, 4, 6)] == [1.0, 1.5, 1.5, 3.0, 3.0]
    assert guidance_for(1, 2.0, {2: 1.5, 4: 3.0}) == 1.5  # below every entry: the smallest one
    preset = Preset("x", (), None, steps=4, guidance=2.0, guidance_by_steps=((4, 3.0), (1, 1.0)))
    assert preset.guidance_for(1) == 1.0 and preset.guidance_for(8) == 3.0
    assert Preset("y", (), None, steps=4, guidance=2.0).guidance_for(1) == 2.0
