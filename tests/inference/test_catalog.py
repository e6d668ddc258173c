"""The model catalog: one readable file, complete entries, presets that exist, licences asked."""

import dataclasses
import re
import subprocess
import sys

import pytest

from inference.jobs import BadInput
from inference.models import catalog
from inference.models.presets import DEFAULT_PRESET, PRESETS

REQUIRED = {
    "builtin": None,
    "sdxs-512": "IDKiro/sdxs-512-0.9",
    "sd-turbo": "stabilityai/sd-turbo",
    "sdxl-turbo": "stabilityai/sdxl-turbo",
    "sd15-lcm": "latent-consistency/lcm-lora-sdv1-5",
    "sd15-hyper": "ByteDance/Hyper-SD",
    "sd15-inpaint-lcm": "latent-consistency/lcm-lora-sdv1-5",
    "instruct-pix2pix": "timbrooks/instruct-pix2pix",
    "flux2-klein-4b": "black-forest-labs/FLUX.2-klein-4B",
    "taesd": "madebyollin/taesd",
    "taesdxl": "madebyollin/taesdxl",
}


def test_the_issue_s_models_are_listed():
    by_id = {e.id: e for e in catalog.entries()}
    for entry_id, repo in REQUIRED.items():
        assert entry_id in by_id, entry_id
        assert by_id[entry_id].repo == repo
    assert by_id["sd15-hyper"].files == ("Hyper-SD15-1step-lora.safetensors",)
    assert by_id["sd15-lcm"].base == "sd15" and by_id["sd15-inpaint-lcm"].base == "sd15-inpaint"
    assert "inpaint" in by_id["sd15-inpaint"].capabilities


def test_every_entry_is_complete():
    for e in catalog.entries():
        assert e.kind in catalog.KINDS
        assert e.name and e.description.endswith(".") and len(e.description) < 160, e.id
        assert e.capabilities and set(e.capabilities) <= set(catalog.CAPABILITIES), e.id
        assert e.licence and e.licence_url.startswith("https://"), e.id
        assert e.download_bytes >= 0 and e.memory_bytes > 0, e.id
        if e.kind != "builtin":
            assert e.repo and e.files and e.download_bytes > 0, e.id
        if e.revision is not None:
            assert re.fullmatch(r"[0-9a-f]{40}", e.revision), e.id
        elif e.kind != "builtin":
            # A floating revision must be flagged, never passed off as checked.
            assert not e.verified, e.id
        if e.kind == "lora":
            assert e.base and catalog.entry(e.base).kind == "pipeline" and "lora" in e.capabilities
        if e.variant == "fp16":
            weights = [f for f in e.files if f.endswith(".safetensors")]
            assert weights and all(".fp16." in f for f in weights), e.id


def test_every_entry_s_preset_exists():
    names = {p.name for p in PRESETS} | {DEFAULT_PRESET.name}
    for e in catalog.entries():
        if e.kind in ("pipeline", "lora") and e.pipeline is None or e.preset is not None:
            assert e.preset in names, e.id


def test_licences_are_the_known_ones():
    by_id = {e.id: e for e in catalog.entries()}
    for turbo in ("sd-turbo", "sdxl-turbo"):
        assert not by_id[turbo].commercial and "Non-Commercial" in by_id[turbo].licence
    assert by_id["sd15"].licence == "CreativeML OpenRAIL-M" and by_id["sd15"].commercial
    assert by_id["taesd"].licence == "MIT" and by_id["taesdxl"].licence == "MIT"
    flux = by_id["flux2-klein-4b"]
    assert flux.licence == "Apache-2.0" and flux.commercial
    assert flux.large and flux.pipeline == "Flux2KleinPipeline" and "GB" in flux.description
    assert {"generate", "edit"} <= set(flux.capabilities)


def test_filter_by_capability():
    assert {e.id for e in catalog.entries("decoder")} == {"taesd", "taesdxl"}
    assert "instruct-pix2pix" in {e.id for e in catalog.entries("edit")}
    assert all("inpaint" in e.capabilities for e in catalog.entries("inpaint"))
    with pytest.raises(BadInput):
        catalog.entries("paint")


def test_unknown_id_names_the_known_ones():
    with pytest.raises(BadInput) as info:
        catalog.entry("sd-trubo")
    assert "sd-turbo" in info.value.details
    assert catalog.entry("stabilityai/sd-turbo").id == "sd-turbo"


def test_for_repo_makes_an_adhoc_entry():
    assert catalog.for_repo("stabilityai/sdxl-turbo").id == "sdxl-turbo"
    assert catalog.for_repo("madebyollin/taesd").id == "taesd"
    assert catalog.for_repo("latent-consistency/lcm-lora-sdv1-5").adhoc  # two entries use it
    e = catalog.for_repo("someone/their-model")
    assert e.adhoc and e.repo == "someone/their-model" and e.files == () and not e.commercial
    for bad in ("not a repo", "../etc", "a/b/c", ""):
        with pytest.raises(BadInput):
            catalog.for_repo(bad)


def test_requires_puts_the_base_first():
    assert [e.id for e in catalog.requires(catalog.entry("sd15-hyper"))] == ["sd15", "sd15-hyper"]


def test_licence_is_asked_once_and_remembered(monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_DATA_DIR", str(tmp_path))
    turbo, sdxl_turbo = catalog.entry("sd-turbo"), catalog.entry("sdxl-turbo")
    assert catalog.licence_accepted(catalog.entry("taesd"))
    assert not catalog.licence_accepted(turbo)
    catalog.accept_licence(turbo)
    assert catalog.licence_accepted(turbo)
    assert not catalog.licence_accepted(sdxl_turbo)  # each model's licence is its own
    assert (tmp_path / "licences.json").is_file()
    # A licence changed in the catalog is asked again.
    assert not catalog.licence_accepted(dataclasses.replace(turbo, licence="Another licence"))


def test_pipeline_problem_explains_a_missing_class():
    flux = catalog.entry("flux2-klein-4b")
    missing = dataclasses.replace(flux, pipeline="NoSuchPipelineAnywhere")
    assert "newer diffusers" in catalog.pipeline_problem(missing)
    assert catalog.pipeline_problem(catalog.entry("sd-turbo")) is None


def test_catalog_imports_nothing_heavy():
    code = ("import sys; from inference.models import catalog; catalog.entries(); "
            "catalog.pipeline_problem(catalog.entry('flux2-klein-4b')); "
            "print([m for m in ('torch', 'diffusers', 'PySide6', 'huggingface_hub') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_broken_catalog_says_where(monkeypatch, tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text('[[model]]\nid = "x"\nname = "X"\ndescription = "d."\nkind = "pipeline"\n'
                   'capabilities = ["fly"]\ndownload_bytes = 1\nmemory_bytes = 1\nlicence = "MIT"\n'
                   'licence_url = "https://x"\ncommercial = true\nrepo = "a/b"\nfiles = ["f"]\n')
    monkeypatch.setattr(catalog, "catalog_path", lambda: bad)
    catalog._load.cache_clear()
    try:
        with pytest.raises(ValueError, match="model 1 .x.: unknown capabilities"):
            catalog.entries()
    finally:
        monkeypatch.undo()
        catalog._load.cache_clear()
