"""The dockable panels of the main window: Prompt, History, Layers and Model.

Each panel is a plain QWidget that the main window puts into a QDockWidget. Panels bind their
fields to `editor.settings.Settings` both ways and change a Document only through its undo
commands; what needs the rest of the window (running a job, previewing on the canvas) they ask
for with signals.
"""

from editor.panels.history import HistoryEntry, HistoryPanel, entry_from_dict, entry_to_dict
from editor.panels.layers import LayersPanel
from editor.panels.models import ModelPanel, choose_model_path
from editor.panels.prompt import PromptPanel

__all__ = ["PromptPanel", "HistoryPanel", "HistoryEntry", "entry_to_dict", "entry_from_dict", "LayersPanel",
           "ModelPanel", "choose_model_path"]
