"""Where the DM's answers come from, and what the DM sees.

* :mod:`ttrpg.dm.keyboard`: the DM at a terminal (:class:`~ttrpg.dm.keyboard.KeyboardDM`).
* :mod:`ttrpg.dm.script`: DM scripts (:class:`~ttrpg.dm.script.ScriptDM`), checked in full when loaded.
* :mod:`ttrpg.dm.story`: the story view (:class:`~ttrpg.dm.story.StoryUI`).
"""
