"""A document's history of results: the model object the History panel only shows.

`History` (a QObject, no widget) owns the entries of one document: every finished result with
its exact recipe and its Target (where it lands, decided when its job was built). It knows which
results were applied (the ApplyResult commands tell it, so undo and redo keep it right), which
were not, and whether it changed since the document was last saved. It travels with its
Document (`Document.history`) and is saved with it (`records()` / `load_records()`).

A Refine's result (the same picture decoded again by the model's full decoder) becomes an entry
of the job it refines, decoded in full (which is what its recipe says and what reproduces it),
marked `refined` in its model_info so the panel can say so. The latents a Refine needs live in
the Result only, in memory: they are not saved with the document.

An entry's recipe is its Job (minus pixels); a file keeps it as `entry_to_dict(entry)` or, in
an .ora, as `entry_to_record(entry)` (the Job itself, so its input images are saved and Re-run
works after reopening); `entry_from_dict` rebuilds either.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from inference.jobs import BadInput, Job, Refine, Result, Target, random_seed
from inference.metadata import format_parameters, recipe_payload

_THUMB_STORED = 192  # stored pixels: sharp on 2x screens

MODE_LABELS = {"generate": "Generate", "vary": "Vary", "inpaint": "Inpaint", "outpaint": "Outpaint", "edit": "Edit"}

_entry_ids = itertools.count(1)


def make_thumbnail(image: Image.Image, size: int = _THUMB_STORED) -> QImage:
    """A QImage of at most size x size (aspect kept) that owns its pixels."""
    small = image.convert("RGBA")
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    arr = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGBA8888).copy()


@dataclass(eq=False)
class HistoryEntry:
    """One result in the history: the Result (image + exact recipe + Target) and its thumbnail.

    `target` is where the result lands; `box` its box on the canvas, kept for files and panels.
    `has_inputs` is False for entries loaded from a file without the job's input images: their
    job holds grey placeholders of the recorded sizes, fine for the recipe but not for re-running.
    """

    result: Result
    box: tuple[int, ...] | None = None
    thumbnail: QImage = field(default_factory=QImage)
    created: float = field(default_factory=time.time)
    id: int = field(default_factory=lambda: next(_entry_ids))
    has_inputs: bool = True
    target: Target | None = None

    def __post_init__(self) -> None:
        if self.target is None:
            self.target = self.result.target
        if self.box is None and self.target is not None:
            self.box = self.target.box

    @property
    def job(self) -> Job:
        return self.result.job

    @property
    def image(self) -> Image.Image | None:
        return self.result.image

    @property
    def mode(self) -> str:
        return self.job.kind

    @property
    def mode_label(self) -> str:
        label = MODE_LABELS.get(self.mode, self.mode.capitalize())
        return f"{label} · refined" if self.refined else label

    @property
    def refined(self) -> bool:
        """Whether this is a Refine's result: a fast-decoded one, decoded again in full."""
        return bool(self.result.model_info.get("refined"))

    @property
    def can_refine(self) -> bool:
        """Whether Refine can decode this result again in full: it was decoded by the tiny
        decoder in this session (its latents are kept in memory only, never in a file)."""
        return self.result.latents is not None

    def refine_job(self) -> Refine:
        """The Refine of this result: same picture, the model's full decoder, same place."""
        if not self.can_refine:
            raise BadInput("Only a result decoded with Fast decode in this session can be refined (its latents "
                           "are kept in memory, not in the saved document).")
        return Refine.of(self.job.replace(target=self.target), self.result.latents)

    @property
    def prompt(self) -> str:
        return self.job.prompt

    @property
    def seed(self) -> int:
        return int(self.job.seed)

    def job_with_new_seed(self, seed: int | None = None, **images: Image.Image) -> Job:
        """The same recipe and target with a fresh random seed (or `seed`); `image=`/`mask=`
        replace the inputs."""
        if not self.has_inputs and not images and self.job.needs_image:
            raise BadInput("This result's original image was not kept with the document, so it cannot be re-run as it "
                           "was. Make a new one from the canvas instead.")
        new = random_seed() if seed is None else int(seed)
        while seed is None and new == self.seed:
            new = random_seed()
        return self.job.replace(seed=new, target=self.target, **images)

    def parameters_text(self) -> str:
        """The A1111 "parameters" text of the recipe."""
        size = self.image.size if self.image is not None else None
        return format_parameters(self.job, size=size, model_info=self.result.model_info)

    def recipe(self) -> dict[str, Any]:
        """The exact recipe as stored in PNGs (`inference.metadata.recipe_payload`)."""
        return recipe_payload(self.job, timings=dict(self.result.timings), model_info=dict(self.result.model_info))


# --------------------------------------------------------------------------- the model object


class History(QObject):
    """The results of one document, oldest first, and which of them are applied.

    Signals:
      added(entry), removed(entry): one entry came or went.
      reset(): the whole list was replaced (a document loaded) or cleared.
      changed(): anything above, or an entry was applied or un-applied (undo).
    """

    added = Signal(object)
    removed = Signal(object)
    reset = Signal()
    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._entries: list[HistoryEntry] = []
        # Entries in the order they were applied, as the undo stack stands; an entry applied
        # twice is here twice. Entries discarded from the list stay here while applied, so the
        # document's recipe survives a discard.
        self._applied: list[HistoryEntry] = []
        self._dirty = False

    # ------------------------------------------------------------------ reading

    def entries(self) -> list[HistoryEntry]:
        """Every entry, oldest first (the order they were added)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry: object) -> bool:
        return any(candidate is entry for candidate in self._entries)

    def find(self, entry_id: int) -> HistoryEntry | None:
        for entry in self._entries:
            if entry.id == entry_id:
                return entry
        return None

    def is_applied(self, entry: HistoryEntry) -> bool:
        return any(candidate is entry for candidate in self._applied)

    def unapplied(self) -> list[HistoryEntry]:
        """Results never applied to the document (what a designer would lose with the history)."""
        return [entry for entry in self._entries if not self.is_applied(entry)]

    def last_applied(self) -> HistoryEntry | None:
        """The result applied most recently, as the undo stack stands: the document's recipe."""
        return self._applied[-1] if self._applied else None

    @property
    def dirty(self) -> bool:
        """Whether entries came or went since the document was last saved or loaded."""
        return self._dirty

    # ------------------------------------------------------------------ changing

    def add_result(self, result: Result) -> HistoryEntry | None:
        """Add a finished result (failed or cancelled ones are not history: returns None)."""
        if not result.ok:
            return None
        if isinstance(result.job, Refine):
            result = refined_result(result)
        return self.add(HistoryEntry(result, thumbnail=make_thumbnail(result.image)))

    def add(self, entry: HistoryEntry) -> HistoryEntry:
        self._entries.append(entry)
        self._set_dirty()
        self.added.emit(entry)
        self.changed.emit()
        return entry

    def discard(self, entry: HistoryEntry) -> bool:
        for i, candidate in enumerate(self._entries):
            if candidate is entry:
                del self._entries[i]
                self._set_dirty()
                self.removed.emit(entry)
                self.changed.emit()
                return True
        return False

    def clear(self) -> None:
        self._entries.clear()
        self._applied.clear()
        self._set_dirty()
        self.reset.emit()
        self.changed.emit()

    def mark_saved(self) -> None:
        self._dirty = False

    def _set_dirty(self) -> None:
        self._dirty = True

    # Called by ApplyResult's redo and undo only: applying is a document change, so it goes
    # through the undo stack like every other one.
    def _applied_push(self, entry: HistoryEntry) -> None:
        self._applied.append(entry)
        self.changed.emit()

    def _applied_pop(self, entry: HistoryEntry) -> None:
        for i in range(len(self._applied) - 1, -1, -1):
            if self._applied[i] is entry:
                del self._applied[i]
                break
        self.changed.emit()

    # ------------------------------------------------------------------ persistence

    def records(self, layer_index: Any = None) -> list[dict[str, Any]]:
        """The history as `editor.ora.save_ora(path, document, history=...)` takes it.

        `layer_index(layer_id)` turns a target's layer id (valid for this session only) into the
        layer's index in the saved file; without it, targets are saved without their layer.
        """
        applied = {id(entry): n for n, entry in enumerate(self._applied)}
        records = []
        for entry in self._entries:
            record = entry_to_record(entry)
            target = record.get("target")
            if target is not None:
                layer = target.pop("layer_id", None)
                target["layer"] = layer_index(layer) if (layer_index is not None and layer is not None) else None
            record["applied"] = applied.get(id(entry))
            records.append(record)
        return records

    def load_records(self, records: Sequence[Mapping[str, Any]], layer_id: Any = None) -> list[HistoryEntry]:
        """Replace the history with `records` (from `editor.ora.load_ora` or `entry_to_dict`),
        oldest first. `layer_id(index)` maps a saved layer index back to a layer id."""
        entries = [entry_from_dict(record, layer_id=layer_id) for record in records]
        order = sorted((int(r["applied"]), e) for r, e in zip(records, entries)
                       if isinstance(r.get("applied"), int) and not isinstance(r.get("applied"), bool))
        self._entries = entries
        self._applied = [entry for _n, entry in order]
        self._dirty = False
        self.reset.emit()
        self.changed.emit()
        return entries


def refined_result(result: Result) -> Result:
    """A Refine's Result as the History keeps it: the refined job decoded in full (its recipe,
    with its input images and its target), marked "refined" in model_info (saved with it)."""
    refine = result.job
    assert isinstance(refine, Refine)
    job = refine.source.replace(decoder="full", target=refine.target or refine.source.target)
    return Result(result.job_id, job, image=result.image, timings=result.timings, error=result.error,
                  model_info={**dict(result.model_info), "refined": True})


# --------------------------------------------------------------------------- serialisation


def _target_spec(target: Target | None) -> dict[str, Any] | None:
    """A target as JSON-safe data; its mask is not stored, it is rebuilt from the job."""
    if target is None:
        return None
    return {"box": list(target.box), "layer_id": target.layer, "composite": target.composite, "fit": target.fit}


def entry_to_dict(entry: HistoryEntry) -> dict[str, Any]:
    """A JSON-safe dict of the entry: recipe (job.to_dict(), no pixels), timings, target, time, id."""
    payload = entry.recipe()
    return {
        "id": entry.id,
        "created": entry.created,
        "box": list(entry.box) if entry.box is not None else None,
        "target": _target_spec(entry.target),
        "job_id": entry.result.job_id,
        "job": payload["job"],
        "timings": payload.get("timings", {}),
        "model_info": payload.get("model_info", {}),
    }


def entry_to_record(entry: HistoryEntry) -> dict[str, Any]:
    """The entry as `editor.ora.save_ora` takes it: like entry_to_dict, but "job" is the Job itself
    (so its input images are saved too) and "image" the result image."""
    return {
        "id": entry.id,
        "created": entry.created,
        "box": entry.box,
        "target": _target_spec(entry.target),
        "image": entry.image,
        "job": entry.job,
        "timings": dict(entry.result.timings),
        "model_info": dict(entry.result.model_info),
    }


def entry_from_dict(data: Mapping[str, Any], image: Image.Image | None = None, thumbnail: QImage | None = None,
                    layer_id: Any = None, **inputs: Image.Image | None) -> HistoryEntry:
    """Rebuild an entry from `entry_to_dict` output or an `editor.ora.load_ora` history record.

    "job" is a recipe dict (job.to_dict()) or a Job; the result image is `image` or data["image"].
    The job's input images may come as `job_image=` / `job_mask=`. A recipe whose kind needs
    inputs that are not given gets grey placeholders of the recorded sizes, and `has_inputs`
    False (re-running it then asks for images). The target is rebuilt from its saved spec (or,
    for older files, from the box) and the job (`editor.targets.restore`).
    """
    from editor.targets import restore

    if image is None and isinstance(data.get("image"), Image.Image):
        image = data["image"]
    has_inputs = True
    if isinstance(data["job"], Job):
        job = data["job"]
        if inputs.get("job_image") is not None or inputs.get("job_mask") is not None:
            job = job.replace(**{k: v for k, v in (("image", inputs.get("job_image")),
                                                   ("mask", inputs.get("job_mask"))) if v is not None})
    else:
        recipe = dict(data["job"])
        job_images = {"image": inputs.get("job_image"), "mask": inputs.get("job_mask")}
        for name, mode, fill in (("image", "RGB", (127, 127, 127)), ("mask", "L", 0)):
            size = recipe.get(f"{name}_size")
            if job_images[name] is None and size:
                job_images[name] = Image.new(mode, (int(size[0]), int(size[1])), fill)
                has_inputs = False
        job = Job.from_dict(recipe, **job_images)
    box = data.get("box")
    box = tuple(int(v) for v in box) if box is not None else None
    spec = data.get("target") if isinstance(data.get("target"), Mapping) else None
    if spec is not None and "layer_id" in spec:  # entry_to_dict output: a session's own layer id
        spec = {**spec, "layer": spec.get("layer_id")}
        layer_id = None
    target = restore(job, spec, box, image.size if image is not None else None, layer_id)
    job = job.replace(target=target)
    result = Result(int(data.get("job_id") or 0), job, image=image, timings=dict(data.get("timings") or {}),
                    model_info=dict(data.get("model_info") or {}))
    if thumbnail is None or thumbnail.isNull():
        thumbnail = make_thumbnail(image) if image is not None else QImage()
    try:
        entry_id = int(data.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        entry_id = next(_entry_ids)
    _bump_ids(entry_id)
    return HistoryEntry(result, box if box is not None else (target.box if target else None), thumbnail,
                        _timestamp(data.get("created")), entry_id, has_inputs, target)


def _timestamp(value: Any) -> float:
    """Seconds since the epoch from a number or ISO text (what a file may hold); now if neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return time.time()


def _bump_ids(used: int) -> None:
    """Keep new ids above every id loaded from a file."""
    global _entry_ids
    current = next(_entry_ids)
    _entry_ids = itertools.count(max(current, used + 1))


__all__ = ["History", "HistoryEntry", "entry_to_dict", "entry_to_record", "entry_from_dict", "make_thumbnail",
           "MODE_LABELS"]
