"""Where results land: decided when the jobs are built (targets.plan), fitted once (targets.fit)."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from editor import targets
from editor.document import Document
from editor.ora import load_ora, save_ora
from editor.settings import Settings
from inference.jobs import ModelRef, Result, Target

MODEL = ModelRef("builtin")


@pytest.fixture
def settings(qapp, tmp_path):
    s = Settings(QSettings(str(tmp_path / "quickbrush.ini"), QSettings.Format.IniFormat))
    s.prompt = "a red scarf"
    return s


def _gradient(width, height):
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 3 % 256, y * 5 % 256, (x + y) % 256], -1).astype(np.uint8)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


@pytest.fixture
def layered(qapp):
    """A photo background and, above it, an opaque red band over part of the area to inpaint and
    reaching well past it."""
    doc = Document.from_image(Image.fromarray(_gradient(96, 64), "RGBA"))
    doc.apply_result(Image.new("RGBA", (60, 30), (220, 20, 20, 255)), (30, 5), as_new_layer=True, name="Red")
    doc.set_active_layer(0)  # the designer inpaints the photo, under the red layer
    doc.undo_stack.clear()
    yield doc
    doc.deleteLater()


def paint(doc, box):
    doc.begin_stroke()
    for x in range(box[0], box[2], 3):
        for y in range(box[1], box[3], 3):
            doc.stroke_to(x, y, 3)
    doc.end_stroke()


def fake_result(job, seed=3):
    """What the engine gives back: its input, repainted (noise) where the blend mask reaches."""
    source = np.asarray(job.image.convert("RGBA")).copy()
    alpha = np.asarray(job.target.mask) > 0
    noise = np.random.default_rng(seed).integers(0, 256, source.shape, dtype=np.uint8)
    noise[..., 3] = 255
    source[alpha] = noise[alpha]
    return Result(1, job, image=Image.fromarray(source, "RGBA"))


def test_inpaint_on_a_lower_layer_keeps_its_pixels_outside_the_mask(layered, settings):
    """Defect 1: the job's source is the composite (red layer included), but only the masked part
    of the result may reach the photo layer; before, the whole box was written into it."""
    doc = layered
    paint(doc, (20, 20, 50, 40))
    settings.mode = "inpaint"
    request = targets.plan(doc, settings, MODEL, [5])
    (job,) = request.jobs
    assert job.target.layer == doc.layers[0].id and job.target.composite == "masked"
    before = [layer.pixels.copy() for layer in doc.layers]

    entry = doc.history.add_result(fake_result(job))
    targets.fit(doc, entry)

    blend = np.asarray(job.target.mask)
    x0, y0, x1, y1 = job.target.box
    photo, red = doc.layers[0].pixels, doc.layers[1].pixels
    outside = blend == 0
    assert outside.any() and (~outside).any()
    assert np.array_equal(photo[y0:y1, x0:x1][outside], before[0][y0:y1, x0:x1][outside])
    # Not a single red pixel of the upper layer was baked into the photo outside the mask.
    assert np.array_equal(red, before[1]), "the other layer is untouched"
    assert not np.array_equal(photo, before[0]), "inside the mask the photo did change"
    assert doc.history.last_applied() is entry

    doc.undo_stack.undo()
    assert np.array_equal(doc.layers[0].pixels, before[0]) and doc.history.last_applied() is None


def test_outpaint_keeps_the_layer_inside_the_old_canvas_past_the_feather(qapp, settings):
    doc = Document.from_image(Image.fromarray(_gradient(64, 48), "RGBA"))
    settings.mode = "outpaint"
    settings.outpaint_right = 32
    (job,) = targets.plan(doc, settings, MODEL, [1]).jobs
    assert job.target.box == (0, 0, 96, 48)
    before = doc.layers[0].pixels.copy()
    result = Image.new("RGBA", (96, 48), (0, 200, 0, 255))
    targets.fit(doc, doc.history.add_result(Result(1, job, image=result)))
    assert doc.size == (96, 48)
    layer = doc.layers[0].pixels
    feather = job.mask_options.feather
    assert np.array_equal(layer[:, :64 - feather], before[:, :64 - feather]), "old pixels kept exactly"
    assert np.all(layer[:, 64:] == (0, 200, 0, 255)), "the new area is the result"


def test_as_a_new_layer_an_inpaint_covers_only_its_mask(layered, settings):
    doc = layered
    paint(doc, (10, 40, 30, 60))
    settings.mode = "inpaint"
    (job,) = targets.plan(doc, settings, MODEL, [2]).jobs
    targets.fit(doc, doc.history.add_result(fake_result(job)), as_new_layer=True)
    new = doc.layers[1]
    assert new.box == job.target.box
    assert np.array_equal(new.pixels[..., 3], np.asarray(job.target.mask)), "the mask is its alpha"


def test_a_result_for_a_removed_layer_goes_into_the_active_one(layered, settings):
    doc = layered
    settings.mode = "vary"
    doc.set_active_layer(1)
    (job,) = targets.plan(doc, settings, MODEL, [4]).jobs
    doc.remove_layer(1)
    entry = doc.history.add_result(Result(1, job, image=Image.new("RGB", (96, 64), (1, 2, 3))))
    targets.fit(doc, entry)
    assert np.all(doc.layers[0].pixels[..., :3] == (1, 2, 3))


def test_placement_of_each_fit():
    centre = Target((0, 0, 768, 512), fit="centre")
    assert targets.placement(centre, (128, 128)) == (320, 192, 448, 320)
    assert targets.placement(centre, (768, 512)) == (0, 0, 768, 512), "a full-size result covers the canvas"
    assert targets.placement(centre, (1024, 64)) == (0, 0, 1024, 64), "wider: top left, the canvas grows"
    contain = Target((10, 20, 110, 60), fit="contain")
    assert targets.placement(contain, (128, 128)) == (40, 20, 80, 60), "square in a 100x40 box: centred"
    assert targets.placement(Target((0, 0, 128, 64), fit="contain"), (64, 32)) == (0, 0, 128, 64)
    assert targets.placement(Target((5, 5, 25, 15)), (64, 64)) == (5, 5, 25, 15), "stretch"


def test_a_live_preview_lands_where_the_result_will(qapp):
    target = Target((8, 4, 48, 40))
    assert targets.preview_box(target, (40, 36), None, (64, 48)) == (8, 4, 48, 40)
    assert targets.preview_box(target, (10, 10), (2, 3, 12, 13), (64, 48)) == (10, 7, 20, 17)
    assert targets.preview_box(None, (64, 48), None, (64, 48)) == (0, 0, 64, 48)


def test_targets_and_the_applied_recipe_survive_a_save_and_reopen(layered, settings, tmp_path):
    """Defect 3's other half: the document's recipe is its last applied result, kept in its file."""
    doc = layered
    paint(doc, (20, 20, 50, 40))
    settings.mode = "inpaint"
    (job,) = targets.plan(doc, settings, MODEL, [9]).jobs
    applied = doc.history.add_result(fake_result(job))
    targets.fit(doc, applied)
    settings.mode = "vary"
    doc.history.add_result(Result(2, targets.plan(doc, settings, MODEL, [10]).jobs[0],
                                  image=Image.new("RGB", (96, 64))))
    save_ora(tmp_path / "art.ora", doc, history=doc.history_records())

    loaded, records = load_ora(tmp_path / "art.ora")
    loaded.load_history(records)
    history = loaded.history
    entries = history.entries()
    assert [e.job.seed for e in entries] == [9, 10]
    assert history.last_applied() is entries[0] and history.unapplied() == [entries[1]]
    target = entries[0].target
    assert target.composite == "masked" and target.box == job.target.box
    assert target.layer == loaded.layers[0].id
    assert np.array_equal(np.asarray(target.mask), np.asarray(job.target.mask)), "mask rebuilt from the job"


def test_the_runtime_and_fast_decode_preferences_reach_every_job(layered, settings):
    settings.mode = "vary"
    (job,) = targets.plan(layered, settings, MODEL, [1]).jobs
    assert job.runtime is None and job.decoder is None, "auto: the path chosen for this computer; full decode"
    settings.runtime, settings.fast_decode, settings.device = "openvino", True, "cpu"
    jobs = targets.plan(layered, settings, MODEL, [1, 2]).jobs
    assert [(j.runtime, j.decoder, j.device) for j in jobs] == [("openvino", "tiny", "cpu")] * 2
    settings.runtime, settings.mode = "torch", "generate"
    (job,) = targets.plan(layered, settings, MODEL, [3]).jobs
    assert (job.runtime, job.decoder) == ("torch", "tiny")
