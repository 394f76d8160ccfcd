"""Where the DM's answers come from, and what the DM sees.

* :mod:`ttrpg.dm.keyboard`: the DM at a terminal (:class:`~ttrpg.dm.keyboard.KeyboardDM`).
* :mod:`ttrpg.dm.script`: DM scripts (:class:`~ttrpg.dm.script.ScriptDM`), checked in full when loaded.
* :mod:`ttrpg.dm.autopilot`: DMs with nobody at the keyboard, for research batches: rules and a
  scenario (:class:`~ttrpg.dm.autopilot.RulesDM`) or a model with the rules as fallback
  (:class:`~ttrpg.dm.autopilot.LLMDM`); :func:`~ttrpg.dm.autopilot.make_dm` picks one by name.
* :mod:`ttrpg.dm.story`: the story view (:class:`~ttrpg.dm.story.StoryUI`).
"""
